"""The rendered site (`python -m fgdi.docs site`) in a real headless Chromium: every page loads without console
errors, its equations are typeset by the MathJax the site serves itself, its images show, the front page links every
notebook, and a screenshot of the front page is kept in tests/artifacts/ (CI keeps it as an artifact)."""
import functools, http.server, os, re, shutil, threading
from pathlib import Path
import nbformat, pytest
from fgdi.docs import build_site

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/'tests'/'artifacts'
BROWSER, DRIVER = shutil.which('chromium'), shutil.which('chromedriver')

def _need_browser():
    "Skip, saying why, where Chromium is absent; in CI (CI=true) its absence is a failure."
    if BROWSER and DRIVER: return
    why = "Chromium and its driver are not installed (Debian: apt-get install chromium chromium-driver)"
    if os.environ.get('CI') == 'true': pytest.fail(f"CI must run the site test: {why}")
    pytest.skip(why)

@pytest.fixture(scope='module')
def site():
    "The site built into tests/artifacts/site and served over HTTP on a free local port."
    _need_browser()
    build_site(ARTIFACTS/'site', nbs=ROOT/'nbs', examples=ROOT/'examples')
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args): pass
    handler = functools.partial(Quiet, directory=str(ARTIFACTS/'site'))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown(); server.server_close()

@pytest.fixture(scope='module')
def browser():
    "Headless Debian Chromium through its chromedriver, keeping the console log."
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for arg in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--window-size=1400,1800'):
        options.add_argument(arg)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()

TYPESET = """const done = arguments[arguments.length - 1];
if (!window.MathJax) return done(null);
MathJax.Hub.Queue(() => done([document.querySelectorAll('.MathJax, .MathJax_Display').length,
                              document.querySelectorAll('.MathJax_Error, merror').length]));"""
FOREIGN = """return [...document.scripts, ...document.styleSheets].map(x => x.src || x.href)
                                                     .filter(u => u && !u.startsWith(location.origin))"""
BROKEN_IMAGES = """return [...document.images].filter(i => !i.complete || i.naturalWidth === 0)
                                        .map(i => i.alt || i.src.slice(0, 60))"""

def _has_math(path: Path) -> bool:
    "Whether a notebook's prose (outside `code`) holds LaTeX between dollar signs."
    prose = [re.sub(r'`[^`]*`', '', c.source) for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == 'markdown']
    return any(re.search(r'\$\$|\$[^$\s][^$\n]*\$', text) for text in prose)

def _pages():
    "The notebooks the site must show: the front page, the lessons and the paper notebooks."
    return sorted((ROOT/'nbs').glob('*.ipynb'))

def _open(browser, url: str) -> list[str]:
    "Load `url`; the console errors it logged."
    browser.get_log('browser')
    browser.get(url)
    return [e['message'] for e in browser.get_log('browser') if e['level'] == 'SEVERE']

@pytest.mark.parametrize('page', _pages(), ids=lambda p: p.stem)
def test_page(site, browser, page):
    errors = _open(browser, f"{site}/{page.stem}.html")
    assert not errors, f"{page.stem}.html logged console errors: {errors}"
    assert browser.title and browser.find_elements('css selector', '.jp-Cell'), f"{page.stem}.html shows no notebook"
    foreign = browser.execute_script(FOREIGN)
    assert not foreign, f"{page.stem}.html loads scripts or styles from outside the site: {foreign}"
    typeset = browser.execute_async_script(TYPESET)
    assert typeset is not None, f"{page.stem}.html did not load MathJax from the site"
    rendered, failed = typeset
    assert failed == 0, f"{page.stem}.html: {failed} equations failed to typeset"
    if _has_math(page): assert rendered > 0, f"{page.stem}.html has LaTeX in its prose but no typeset equation"
    broken = browser.execute_script(BROKEN_IMAGES)
    assert not broken, f"{page.stem}.html: images that do not show: {broken}"

def test_front_page_links_every_notebook(site, browser):
    assert not _open(browser, f"{site}/index.html")
    assert browser.find_elements('css selector', '.jp-OutputArea img'), "the front page shows no pipeline figure"
    anchors = browser.find_elements('css selector', 'a[href$=".html"]')
    linked = {a.get_attribute('href').rsplit('/', 1)[-1] for a in anchors}
    missing = {f"{p.stem}.html" for p in _pages() if p.stem != 'index'} - linked
    assert not missing, f"the front page does not link {sorted(missing)}"
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS/'site-index.png'))
    assert (ARTIFACTS/'site-index.png').stat().st_size > 10_000

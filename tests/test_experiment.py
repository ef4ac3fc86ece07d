"End-to-end checks through the `fgdi` command, as a user runs it (smoke scale, a private cache)."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

FGDI = str(Path(sys.executable).parent/'fgdi')  # the console script `pip install -e .` put beside this Python

def fgdi(*args, env, **kw):
    return subprocess.run([FGDI, *args], env=env, capture_output=True, text=True, **kw)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return {**os.environ, 'FGDI_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1'}

def test_synth_write_then_data_check_finds_all_nine(tmp_path, env):
    w = fgdi('synth', 'write', str(tmp_path/'world'), '--scale', 'smoke', env=env)
    assert w.returncode == 0, w.stderr
    c = fgdi('data', 'check', str(tmp_path/'world'), env=env)
    assert c.returncode == 0, c.stderr
    status = {l.split()[0]: l.split()[1] for l in c.stdout.splitlines()[2:11]}
    assert status == dict.fromkeys(['Market', 'MSMT17', 'cuhk03', 'CUHK02', 'cuhk_sysu', 'PRID', 'GRID', 'VIPeR', 'iLIDS'], 'found'), c.stdout
    assert 'all datasets found and complete' in c.stdout

def test_run_prints_metrics_and_is_cached(tmp_path, env):
    args = ('run', '--protocol', '2', '--target', 'M', '--scale', 'smoke', '--runs-dir', str(tmp_path/'runs'))
    first = fgdi(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert '### fgdi scale: SMOKE' in first.stdout and 'average' in first.stdout
    files = {f: f.stat().st_mtime_ns for f in (tmp_path/'runs').rglob('*') if f.is_file()}
    again = fgdi(*args, env=env)
    assert again.stdout.splitlines()[-3:] == first.stdout.splitlines()[-3:]  # the same table
    assert '### fgdi scale' not in again.stdout  # read back: nothing trained
    assert {f: f.stat().st_mtime_ns for f in (tmp_path/'runs').rglob('*') if f.is_file()} == files  # nothing written

def _result(runs):
    (res,) = list(Path(runs).glob('*/result.json'))
    r = json.loads(res.read_text())
    return r['targets'], [{k: v for k, v in json.loads(l).items() if k != 'seconds'} for l in (res.parent/'log.jsonl').read_text().splitlines()]

def test_killed_run_resumes_to_the_same_numbers(tmp_path, env):
    "SIGKILL mid-run (after two logged epochs), start again: same metrics and log as a run that never stopped."
    args = ('run', '--protocol', '2', '--target', 'M', '--scale', 'smoke')
    straight = fgdi(*args, '--runs-dir', str(tmp_path/'a'), env=env)
    assert straight.returncode == 0, straight.stderr
    p = subprocess.Popen([FGDI, *args, '--runs-dir', str(tmp_path/'b')], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        logs = list((tmp_path/'b').rglob('log.jsonl'))  # the shared stages' log comes first
        if logs and len(logs[0].read_text().splitlines()) >= 2: break
        time.sleep(0.05)
    assert p.poll() is None, 'the run finished before it could be killed'
    p.send_signal(signal.SIGKILL); p.wait()
    assert not list((tmp_path/'b').glob('*/result.json'))
    resumed = fgdi(*args, '--runs-dir', str(tmp_path/'b'), env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert _result(tmp_path/'b') == _result(tmp_path/'a')

"What the user passes is what runs: scale picks the schedule and the model size, never the data or the weights."
import hashlib, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch
from fgdi.clip import new_clip

FGDI = str(Path(sys.executable).parent/'fgdi')  # the console script `pip install -e .` put beside this Python
P2M = ('run', '--protocol', '2', '--target', 'M', '--scale', 'smoke')

def fgdi(*args, env):
    return subprocess.run([FGDI, *args], env=env, capture_output=True, text=True)

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp('cache'))
    return {**os.environ, 'FGDI_CACHE': cache, 'PYTHONUNBUFFERED': '1', 'OMP_NUM_THREADS': '1'}

@pytest.fixture(scope='module')
def world(tmp_path_factory, env):
    "A smoke world of the user's own (seed 1), outside fgdi's cache."
    root = tmp_path_factory.mktemp('reid')/'world'
    w = fgdi('synth', 'write', str(root), '--scale', 'smoke', '--seed', '1', env=env)
    assert w.returncode == 0, w.stderr
    return root

def test_junk_weights_are_one_clear_error(tmp_path, env):
    junk = tmp_path/'junk.pt'
    junk.write_bytes(os.urandom(200_000))
    r = fgdi(*P2M, '--clip-weights', str(junk), '--runs-dir', str(tmp_path/'runs'), env=env)
    assert r.returncode != 0 and f'Cannot read CLIP weights from {junk}' in r.stderr, r.stderr
    assert 'average' not in r.stdout and not list(tmp_path.rglob('log.jsonl'))  # no metrics: nothing trained

def test_data_root_and_weights_are_used_named_and_recorded(tmp_path, env, world):
    tiny = tmp_path/'tiny.pt'
    torch.save(new_clip('fgdi-tiny-vit').state_dict(), tiny)
    mini = fgdi(*P2M[:-1], 'mini', '--clip-weights', str(tiny), '--data-root', str(world), env=env)
    assert mini.returncode != 0 and "the model of scale 'smoke': use scale='smoke'" in mini.stderr, mini.stderr
    r = fgdi(*P2M, '--data-root', str(world), '--clip-weights', str(tiny), '--runs-dir', str(tmp_path/'runs'), env=env)
    assert r.returncode == 0, r.stderr
    sha = hashlib.sha256(tiny.read_bytes()).hexdigest()[:16]
    assert f'fgdi data: MSMT17, Market, cuhk03, cuhk_sysu from {world}\n' in r.stdout, r.stdout
    assert f'fgdi weights: fgdi-tiny-vit from {tiny} (sha256 {sha})' in r.stdout, r.stdout
    (res,) = (tmp_path/'runs').glob('*/result.json')
    rec = json.loads(res.read_text())
    sources_and_target = ['MSMT17', 'Market', 'cuhk03', 'cuhk_sysu']
    assert rec['data'] == dict(source='data_root', world=None, root=str(world), datasets=sources_and_target, splits=None)
    assert rec['weights'] == dict(model='fgdi-tiny-vit', clip_weights=str(tiny), file=str(tiny), sha256=sha)
    assert (rec['config']['data_root'], rec['config']['world']) == (str(world), None)

def test_truncated_jpeg_is_named_by_the_check_and_stops_the_run(tmp_path, env, world):
    root = tmp_path/'world'
    shutil.copytree(world, root)
    cut = sorted((root/'Market-1501-v15.09.15'/'bounding_box_train').glob('*.jpg'))[0]
    cut.write_bytes(cut.read_bytes()[:300])  # an interrupted download
    c = fgdi('data', 'check', str(root), env=env)
    assert c.returncode != 0 and 'Market: cannot decode the image' in c.stdout, c.stdout
    assert f'{cut}\n  fix: extract this file again from the Market1501 archive, or delete it' in c.stdout
    assert 'all datasets found' not in c.stdout and '1 problem(s)' in c.stdout
    r = fgdi(*P2M, '--data-root', str(root), '--runs-dir', str(tmp_path/'runs'), env=env)
    assert r.returncode != 0 and str(cut) in r.stderr, r.stderr
    assert 'average' not in r.stdout and not list(tmp_path.rglob('log.jsonl'))  # stopped before training

"Table V under papermill at smoke scale (small random BLIP), and the notebook without the `blip` extra."
import json, math, os, subprocess, sys
from pathlib import Path
import pandas as pd
import pytest
from fgdi.tables import PAPER_COLUMNS
from test_tables import assert_paired, papermill, streams  # shared with tests/test_tables.py

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return {**os.environ, 'FGDI_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1'}

def markdown_outputs(nb_path) -> str:
    "All markdown display output of an executed notebook."
    nb = json.loads(Path(nb_path).read_text())
    return ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for c in nb['cells'] for o in c.get('outputs', []))

def test_table5_smoke(tmp_path, env):
    pytest.importorskip('transformers', reason='the blip extra is not installed: pip install -e ".[blip]"')
    p, _ = papermill('table5.ipynb', tmp_path, ('scale', 'smoke'), ('seeds', 1), ('runs_dir', tmp_path/'runs'),
                     ('out_dir', tmp_path), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert_paired(tmp_path, 'table5', 'method', {'BLIP-FGDI'}, 1)
    df = pd.read_csv(tmp_path/'table5.csv')
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert df.method.tolist() == ['BLIP', 'BLIP', 'BLIP-FGDI', 'BLIP-FGDI'] and set(df.metric) == {'mAP', 'R1'}
    assert set(df.target) == {'average'} and set(df.over) == {'PRID+GRID+VIPeR+iLIDS'} and set(df.scale) == {'smoke'}
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in df.ours), df[['method', 'metric', 'ours']]
    assert ((df.ours - df.value - df.delta).abs() < 1e-9).all()
    assert (tmp_path/'table5.png').stat().st_size > 0
    cfgs = [json.loads(f.read_text()) for f in (tmp_path/'runs').glob('*/config.json')]
    assert sorted((c['backbone'], c['clip_weights'], c['use_initial'], c['use_domain'], c['use_apn']) for c in cfgs) == [
        ('fgdi-tiny-blip', None, False, False, False), ('fgdi-tiny-blip', None, True, True, True)]
    assert '### fgdi scale: SMOKE' in streams(tmp_path/'out.ipynb')
    assert 'with RANDOM weights, never pretrained' in markdown_outputs(tmp_path/'out.ipynb')

def test_table5_without_the_blip_extra_stops_with_the_install_command(tmp_path, env):
    hide = tmp_path/'hide'; hide.mkdir()
    (hide/'sitecustomize.py').write_text("import sys\nsys.modules['transformers'] = None  # as if the blip extra were not installed\n")
    env = {**env, 'PYTHONPATH': os.pathsep.join(filter(None, [str(hide), env.get('PYTHONPATH')]))}
    probe = subprocess.run([sys.executable, '-c', 'import transformers'], env=env, capture_output=True, text=True)
    assert 'ModuleNotFoundError' in probe.stderr  # the kernel papermill starts gets the same environment
    p, _ = papermill('table5.ipynb', tmp_path, ('scale', 'smoke'), ('runs_dir', tmp_path/'runs'), env=env)
    assert p.returncode != 0
    assert 'fgdi.blip needs Hugging Face transformers' in p.stderr + p.stdout
    assert 'pip install -e ".[blip]"' in p.stderr + p.stdout
    failed = [c for c in json.loads((tmp_path/'out.ipynb').read_text())['cells']
              if any(o['output_type'] == 'error' for o in c.get('outputs', []))]
    assert [''.join(c['source']).split('  #')[0] for c in failed] == ['import fgdi.blip']
    assert not (tmp_path/'runs').exists()

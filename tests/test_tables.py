"Paper notebooks run by papermill at smoke scale, as a user runs them (a private cache and runs folder)."
import json, math, os, re, subprocess, sys, time
from pathlib import Path
import pandas as pd
import pytest
from fgdi.tables import PAPER_COLUMNS, PAIRED_COLUMNS

NBS = Path(__file__).parent.parent/'nbs'

def papermill(nb, out_dir, *params, env):
    "Execute `nbs/<nb>` into `out_dir/out.ipynb` with papermill (kernel python3 = this venv) → (process, seconds)."
    args = [sys.executable, '-m', 'papermill', str(NBS/nb), str(out_dir/'out.ipynb'), '-k', 'python3', '--cwd', str(out_dir)]
    for k, v in params: args += ['-p', k, str(v)]
    t0 = time.time()
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    return p, time.time() - t0


def assert_stops_early(nb, tmp_path, params, message, env):
    "Executing `nb` at smoke scale with bad `params` fails with `message`, before any run folder exists."
    p, _ = papermill(nb, tmp_path, ('scale', 'smoke'), *params, ('runs_dir', tmp_path/'runs'), env=env)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout
    assert not (tmp_path/'runs').exists()  # stopped before the grid

def streams(nb_path) -> str:
    "All stream output text of an executed notebook."
    nb = json.loads(Path(nb_path).read_text())
    return ''.join(''.join(o.get('text', '')) for c in nb['cells'] for o in c.get('outputs', []) if o['output_type'] == 'stream')

def trained_runs(text:str) -> int:
    "How many runs a notebook's grids trained: the sum of their 'N of M runs to train' lines (0 when all were read back)."
    return sum(int(n) for n in re.findall(r'(\d+) of \d+ runs to train', text))

def assert_paired(d, name:str, by:str, rows:set, n:int):
    "`d/<name>_paired.csv` pairs each of `rows` (column `by`) with the reference over `n` seeds; the notebook says so."
    pairs = pd.read_csv(d/f'{name}_paired.csv')
    assert pairs.columns[0] == by and list(pairs.columns[-len(PAIRED_COLUMNS):]) == PAIRED_COLUMNS, list(pairs.columns)
    assert set(pairs[by]) == set(rows) and set(pairs.n) == {n}, pairs
    text = json.dumps(json.loads((d/'out.ipynb').read_text()))
    assert ('n=1, no interval' if n == 1 else f'Paired by seed over {n} seeds') in text and 'Kendall tau' in text

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return {**os.environ, 'FGDI_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1'}

SMOKE_P2 = (('scale', 'smoke'), ('protocol', 2), ('targets', 'M'))

@pytest.fixture(scope='module')
def table4(tmp_path_factory, env):
    d = tmp_path_factory.mktemp('table4')
    p, secs = papermill('table4.ipynb', d, *SMOKE_P2, ('seeds', '1,2'), ('runs_dir', d/'runs'), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, secs

def test_table4_csv_has_the_paper_rows_and_ours(table4):
    d, _ = table4
    df = pd.read_csv(d/'table4_protocol2.csv')
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert len(df) == 10 and set(df.protocol) == {2} and set(df.metric) == {'mAP', 'R1'}
    assert df.setting.tolist()[::2] == ['none', 'A', 'B', 'A+B w/o C', 'A+B']
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in df.ours), df[['setting', 'metric', 'ours']]
    assert ((df.ours - df.value - df.delta).abs() < 1e-9).all()
    assert set(df.scale) == {'smoke'} and set(df.over) == {'Market1501'} and set(df.ours_n) == {2}
    assert (d/'table4_protocol2.png').stat().st_size > 0
    assert '### fgdi scale: SMOKE' in streams(d/'out.ipynb')  # each trained run's banner

def test_table4_pairs_each_row_with_the_baseline_by_seed(table4):
    d, _ = table4
    pairs = pd.read_csv(d/'table4_protocol2_paired.csv')
    assert set(pairs.setting) == {'A', 'B', 'A+B w/o C', 'A+B'} and set(pairs.n) == {2}
    ours = pd.read_csv(d/'table4_protocol2.csv').set_index(['setting', 'metric'])['ours']
    avg = pairs.query("target == 'average'").set_index(['setting', 'metric'])['diff']
    for (setting, metric), diff in avg.items():  # mean of paired differences = difference of the means
        assert abs(diff - (ours[setting, metric] - ours['none', metric])) < 1e-9
    text = json.dumps(json.loads((d/'out.ipynb').read_text()))
    assert 'Paired by seed over 2 seeds (average mAP)' in text and 'Kendall tau' in text
    assert_paired(d, 'table4_protocol2', 'setting', {'A', 'B', 'A+B w/o C', 'A+B'}, 2)

def test_table4_rerun_is_cached(table4, env):
    d, first = table4
    before = pd.read_csv(d/'table4_protocol2.csv')
    p, secs = papermill('table4.ipynb', d, *SMOKE_P2, ('seeds', '1,2'), ('runs_dir', d/'runs'), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert secs < 60, f'cached re-run took {secs:.0f} s (first run {first:.0f} s)'
    assert '### fgdi scale' not in streams(d/'out.ipynb')  # nothing trained
    pd.testing.assert_frame_equal(pd.read_csv(d/'table4_protocol2.csv'), before)

@pytest.mark.parametrize('params, message', [
    ((('protocol', 4),), 'parameter protocol=4 is not valid (Table IV has Protocol-1 and Protocol-2 rows only); allowed: 1, 2'),
    ((('protocol', 2), ('targets', 'X')), "parameter targets='X' is not valid"),
])
def test_table4_bad_parameter_stops_with_the_message(tmp_path, env, params, message):
    assert_stops_early('table4.ipynb', tmp_path, params, message, env)

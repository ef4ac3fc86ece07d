"Tables III and VIII executed by papermill at smoke scale, as a user runs them (a private cache, one shared runs folder)."
import json, math
import pandas as pd
import pytest
from fgdi.tables import PAPER_COLUMNS
from test_tables import assert_paired, assert_stops_early, papermill, streams, trained_runs, env  # noqa: F401  (env is a fixture)

EPOCHS = ('epochs_initial', 'epochs_id_tokens', 'epochs_domain_tokens', 'epochs_final')

def finite_percent(df): return all(math.isfinite(v) and 0 <= v <= 100 for v in df.query("metric != 'minutes'").ours)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp('runs')  # shared: Table III's 3/96/24/57 at smoke is Table VIII's ed, β = 0.3

@pytest.fixture(scope='module')
def table3(tmp_path_factory, env, runs):
    d = tmp_path_factory.mktemp('table3')
    p, _ = papermill('table3.ipynb', d, ('scale', 'smoke'), ('seeds', 1), ('runs_dir', runs), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d

def test_table3_csv_has_the_paper_plans_and_ours(table3, runs):
    df = pd.read_csv(table3/'table3.csv', keep_default_na=False, na_values=[''])
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert list(dict.fromkeys(df.setting)) == ['-/120/-/60', '3/96/24/57', '10/96/24/50'] and set(df.protocol) == {1}
    assert set(df.metric) == {'mAP', 'R1', 'R5', 'R10', 'minutes'} and set(df.scale) == {'smoke'}
    assert finite_percent(df) and (df.query("metric == 'minutes'").ours > 0).all(), df[['setting', 'metric', 'ours']]
    assert (table3/'table3.png').stat().st_size > 0
    plans = {tuple(json.loads(f.read_text())['config'][k] for k in EPOCHS) for f in runs.glob('*/result.json')}
    assert {(1, 1, 1, 1), (3, 1, 1, 1)} <= plans, plans  # 3/96/24/57 and 10/96/24/50 kept their proportions at smoke scale

def test_table8_subset_csv_has_the_paper_rows_and_ours(tmp_path, env, runs, table3):
    p, _ = papermill('table8.ipynb', tmp_path, ('scale', 'smoke'), ('apns', 'ed'), ('betas', '0.1,0.3'), ('seeds', 1),
                     ('runs_dir', runs), ('out_dir', tmp_path), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    df = pd.read_csv(tmp_path/'table8.csv')
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert list(dict.fromkeys(df.setting)) == ['apn=ed;beta=0.1', 'apn=ed;beta=0.3'] and len(df) == 20
    assert set(df.target) == {'PRID', 'GRID', 'VIPeR', 'iLIDS', 'average'} and finite_percent(df)
    assert (tmp_path/'table8.png').stat().st_size > 0
    assert trained_runs(streams(tmp_path/'out.ipynb')) == 1  # β = 0.3 was Table III's run
    assert_paired(tmp_path, 'table8', 'setting', {'apn=ed;beta=0.1'}, 1)  # against the default, ED β = 0.3

def test_table3_pairs_each_plan_with_the_baseline_plan(table3):
    assert_paired(table3, 'table3', 'setting', {'3/96/24/57', '10/96/24/50'}, 1)

@pytest.mark.parametrize('nb, params, message', [
    ('table3.ipynb', (('protocol', 2),), 'parameter protocol=2 is not valid (Table III is a Protocol-1 experiment)'),
    ('table8.ipynb', (('betas', '0.2'),), 'parameter betas=0.2 is not valid'),
])
def test_bad_parameter_stops_with_the_message(tmp_path, env, nb, params, message):
    assert_stops_early(nb, tmp_path, params, message, env)

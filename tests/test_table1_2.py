"Tables I and II run by papermill at smoke scale: the paper's rows with ours (Ours, framework baseline) beside them."
import math, os
import pandas as pd
import pytest
from fgdi.tables import PAPER_COLUMNS, papers_dir
from test_tables import assert_paired, assert_stops_early, papermill, streams  # the papermill runner shared with tests/test_tables.py

OURS = {'Ours', 'CLIP-ReID'}  # paper rows that fgdi trains; the rest are quoted

@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return {**os.environ, 'FGDI_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1'}

def run_table(nb, d, env, *params):
    p, secs = papermill(nb, d, ('scale', 'smoke'), *params, ('runs_dir', d/'runs'), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return secs

def check_side_by_side(df, protocol, targets):
    "Paper columns first, every paper row kept, ours finite exactly on the trained rows of `targets`."
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS and set(df.protocol) == {protocol}
    trained = df.method.isin(OURS) & df.target.isin([*targets, 'average'])
    assert (df.quoted == ~df.method.isin(OURS)).all()
    assert all(math.isfinite(v) and 0 <= v <= 100 for v in df.ours[trained]), df[trained]
    assert df.ours[~trained].isna().all()
    assert ((df.ours - df.value - df.delta).abs() < 1e-9)[trained].all()
    assert set(df.row[trained]) == {'Ours', 'CLIP-ReID (ours, framework baseline)'}

def test_table1_smoke(tmp_path, env):
    run_table('table1.ipynb', tmp_path, env, ('seeds', 1))
    df = pd.read_csv(tmp_path/'table1.csv')
    check_side_by_side(df, 1, ['PRID', 'GRID', 'VIPeR', 'iLIDS'])
    assert len(df) == len(pd.read_csv(papers_dir()/'table1.csv'))
    assert set(df.source[df.method == 'Ours']) == {'readme-figure'}
    assert (tmp_path/'table1.png').stat().st_size > 0
    assert '### fgdi scale: SMOKE' in streams(tmp_path/'out.ipynb')
    assert_paired(tmp_path, 'table1', 'method', {'Ours'}, 1)

def test_table2_smoke_one_target(tmp_path, env):
    run_table('table2.ipynb', tmp_path, env, ('protocol', 2), ('targets', 'M'), ('seeds', 1))
    df = pd.read_csv(tmp_path/'table2_protocol2.csv')
    check_side_by_side(df, 2, ['Market1501'])
    assert set(df.over.dropna()) == {'Market1501'}
    assert (tmp_path/'table2_protocol2.png').stat().st_size > 0
    assert_paired(tmp_path, 'table2_protocol2', 'method', {'Ours'}, 1)

@pytest.mark.parametrize('nb, params, message', [
    ('table1.ipynb', (('protocol', 2),), 'parameter protocol=2 is not valid (Table I is Protocol-1'),
    ('table2.ipynb', (('protocol', 1),), 'parameter protocol=1 is not valid (Table II has Protocol-2 and Protocol-3'),
    ('table2.ipynb', (('targets', 'X'),), "parameter targets='X' is not valid (a left-out target, or all three)"),
])
def test_bad_parameter_stops_with_the_message(tmp_path, env, nb, params, message):
    assert_stops_early(nb, tmp_path, params, message, env)

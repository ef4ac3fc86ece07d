"Figs. 3 and 4 executed by papermill at smoke scale, on one runs folder shared with Table VIII (a private cache)."
import json, math
import pandas as pd
import pytest
from test_tables import assert_paired, papermill, streams, env  # noqa: F401  (env is a fixture)

SUBSET = (('apns', 'none,ed'), ('betas', '0.3'), ('seeds', 1))  # Table VIII's rows `none` and ED β = 0.3: one shared prefix, two final stages

def results(runs) -> set: return set(runs.glob('*/result.json'))

def finite_percent(values) -> bool: return all(math.isfinite(v) and 0 <= v <= 100 for v in values)

@pytest.fixture(scope='module')
def runs(tmp_path_factory): return tmp_path_factory.mktemp('runs')

@pytest.fixture(scope='module')
def table8(tmp_path_factory, env, runs):
    d = tmp_path_factory.mktemp('table8')
    p, _ = papermill('table8.ipynb', d, ('scale', 'smoke'), *SUBSET, ('runs_dir', runs), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return results(runs)

@pytest.fixture(scope='module')
def fig3(tmp_path_factory, env, runs, table8):
    d = tmp_path_factory.mktemp('fig3')
    p, secs = papermill('fig3_beta.ipynb', d, ('scale', 'smoke'), *SUBSET, ('runs_dir', runs), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, secs

def test_fig3_after_table8_trains_nothing(fig3, runs, table8):
    d, secs = fig3
    assert len(table8) == 2 and results(runs) == table8  # the same two runs, read back
    assert '### fgdi scale' not in streams(d/'out.ipynb')  # no run printed its training banner
    assert secs < 60, f'fig3 on cached runs took {secs:.0f} s'

def test_fig3_csv_and_png(fig3):
    d, _ = fig3
    df = pd.read_csv(d/'fig3_beta.csv')
    assert list(df.columns[:5]) == ['source', 'apn', 'beta', 'metric', 'mean']
    assert set(df.source) == {'paper', 'ours (smoke)'} and set(df.apn) == {'ed'} and set(df.metric) == {'mAP', 'R1'}
    assert sorted(df.beta) == [0, 0, 0, 0, 0.3, 0.3, 0.3, 0.3]  # `none` is the line's β = 0 point
    assert finite_percent(df['mean'])
    paper = df.query("source == 'paper' and metric == 'mAP'").set_index('beta')['mean']
    assert paper.to_dict() == {0.0: 80.7, 0.3: 82.7}  # Table VIII's none and ED β = 0.3 averages
    assert (d/'fig3_beta.png').stat().st_size > 0
    assert_paired(d, 'fig3_beta', 'setting', {'apn=none;beta=0'}, 1)  # against the default, ED β = 0.3

@pytest.fixture(scope='module')
def fig4(tmp_path_factory, env, runs, fig3):
    d, before = tmp_path_factory.mktemp('fig4'), results(runs)
    p, _ = papermill('fig4_init_epochs.ipynb', d, ('scale', 'smoke'), ('epochs', '0,1,3'), ('seeds', 1), ('runs_dir', runs), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, results(runs) - before

def test_fig4_collapses_paper_epochs_onto_runs(fig4):
    d, new = fig4
    df = pd.read_csv(d/'fig4_init_epochs.csv')
    assert df.drop_duplicates('epochs')[['epochs', 'epochs_run']].values.tolist() == [[0, 0], [1, 1], [3, 1]]
    assert set(df.metric) == {'mAP', 'R1'} and finite_percent(df.ours) and set(df.scale) == {'smoke'}
    assert (df.query('epochs_run == 1').groupby('metric').ours.nunique() == 1).all()  # paper epochs 1 and 3: one run
    assert df.query("epochs == 3 and metric == 'mAP'").paper.item() == 82.1 and df.paper.notna().sum() == 1
    assert (d/'fig4_init_epochs.png').stat().st_size > 0
    assert_paired(d, 'fig4_init_epochs', 'epochs_run', {0}, 1)  # 1 and 3 paper epochs are the reference run
    # 1 and 3 epochs shrink to Table VIII's ED β = 0.3 run, already trained: only the run without initial stage is new
    assert len(new) == 1
    cfg = json.loads(next(iter(new)).read_text())['config']
    assert (cfg['use_initial'], cfg['epochs_initial']) == (False, 0)

@pytest.mark.parametrize('nb, params, message', [
    ('fig3_beta.ipynb', (('apns', 'none,apnce'),), "parameter apns='none,apnce' is not valid (Fig. 3 draws β lines"),
    ('fig3_beta.ipynb', (('betas', '0.2'),), 'parameter betas=0.2 is not valid (Table VIII has betas 0.1, 0.3, 0.5, 1.0)'),
    ('fig4_init_epochs.ipynb', (('epochs', '0,-1'),), "parameter epochs='0,-1' is not valid; use distinct integers >= 0"),
    ('fig4_init_epochs.ipynb', (('protocol', 2),), 'parameter protocol=2 is not valid (Fig. 4 is a Protocol-1 experiment'),
])
def test_bad_parameter_stops_with_the_message(tmp_path, env, nb, params, message):
    p, _ = papermill(nb, tmp_path, ('scale', 'smoke'), *params, ('runs_dir', tmp_path/'runs'), env=env)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout
    assert not (tmp_path/'runs').exists()  # stopped before the grid

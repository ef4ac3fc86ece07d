"Figures 5 and 6 executed by papermill at smoke scale, as a user runs them (a private cache, one runs folder for both)."
import math
import pandas as pd
import pytest
from fgdi.synth import VIEWS
from test_tables import papermill, streams, trained_runs, env  # noqa: F401  (env is a fixture)

SMOKE = (('scale', 'smoke'),)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp('runs')  # both figures show the same two runs: baseline and ours

@pytest.fixture(scope='module')
def fig5(tmp_path_factory, env, runs):
    d = tmp_path_factory.mktemp('fig5')
    p, secs = papermill('fig5_tsne.ipynb', d, *SMOKE, ('runs_dir', runs), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    print(f'fig5 smoke: {secs:.0f} s')
    return d

def finite(values): return all(math.isfinite(v) for v in values)

def test_fig5_png_and_finite_mixing(fig5):
    assert (fig5/'fig5_protocol1.png').stat().st_size > 0
    df = pd.read_csv(fig5/'fig5_protocol1_mixing.csv')
    assert list(df.columns) == ['what', 'target', 'space', 'baseline', 'ours', 'ours − baseline', 'scale']
    assert df.target.tolist() == ['all'] * 2 + [t for t in ('PRID', 'GRID', 'VIPeR', 'iLIDS') for _ in (0, 1)]
    assert set(df.space) == {'embedding', 't-SNE'} and set(df.scale) == {'smoke'}
    assert finite(df.baseline) and finite(df.ours) and df[['baseline', 'ours']].abs().le(1).all().all(), df
    points = pd.read_csv(fig5/'fig5_protocol1_points.csv')
    assert set(points.method) == {'baseline', 'ours'} and finite(points.x) and finite(points.y)
    assert trained_runs(streams(fig5/'out.ipynb')) == 2  # the two runs were trained here

def test_fig6_png_csv_and_cached_runs(tmp_path, env, runs, fig5):
    p, secs = papermill('fig6_gradcam.ipynb', tmp_path, *SMOKE, ('runs_dir', runs), ('out_dir', tmp_path), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    print(f'fig6 smoke (runs cached): {secs:.0f} s')
    assert (tmp_path/'fig6_protocol1.png').stat().st_size > 0
    df = pd.read_csv(tmp_path/'fig6_protocol1.csv')
    mixing = df[df.measure.str.startswith('domain silhouette')]
    assert len(mixing) == 1 and finite(mixing.baseline) and finite(mixing.ours), df
    shares = df[df.measure == 'CAM share on person']
    assert len(shares) == 5 and shares[['baseline', 'ours', 'chance']].stack().dropna().between(0, 1).all(), df
    images = pd.read_csv(tmp_path/'fig6_protocol1_images.csv')
    assert images.panel.tolist() == ['(a) source: Market'] * 2 + ['(b) target: PRID'] * 2
    assert images.wanted.tolist() == ['front', 'back'] * 2 and set(images.view) <= set(VIEWS)
    assert '### fgdi scale' not in streams(tmp_path/'out.ipynb')  # Fig. 5's runs were read back, nothing trained

@pytest.mark.parametrize('nb, params, message', [
    ('fig5_tsne.ipynb', (('protocol', 2),), 'parameter protocol=2 is not valid (Fig. 5 maps the four Protocol-1 target domains)'),
    ('fig6_gradcam.ipynb', (('protocol', 4),), 'parameter protocol=4 is not valid; allowed: 1, 2, 3'),
    ('fig6_gradcam.ipynb', (('source_dataset', 'PRID'),), "parameter source_dataset='PRID' is not valid (a source of Protocol-1)"),
])
def test_bad_parameter_stops_with_the_message(tmp_path, env, nb, params, message):
    p, _ = papermill(nb, tmp_path, *SMOKE, *params, ('runs_dir', tmp_path/'runs'), ('out_dir', tmp_path), env=env)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout
    assert not (tmp_path/'runs').exists()  # stopped before the runs

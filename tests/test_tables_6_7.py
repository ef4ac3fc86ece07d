"Tables VI and VII executed by papermill at smoke scale, as a user runs them (a private cache and runs folder)."
import json, math
from pathlib import Path
import pandas as pd
import pytest
from fgdi.tables import PAPER_COLUMNS
from test_tables import assert_paired, papermill, streams, trained_runs, env  # noqa: F401  (env is a fixture)

def finite_percent(values): return all(math.isfinite(v) and 0 <= v <= 100 for v in values)

def displayed_markdown(nb_path) -> str:
    "All Markdown display output of an executed notebook (the scale banner)."
    nb = json.loads(Path(nb_path).read_text())
    return ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for c in nb['cells'] for o in c.get('outputs', []))

def trained_configs(runs) -> list:
    "The configs of the finished runs in `runs`."
    return [json.loads(f.read_text())['config'] for f in Path(runs).glob('*/result.json')]

def run_ok(nb, d, *params, env):
    "Execute `nb` at smoke scale into `d` (with its own runs folder); fail with its stderr if it fails."
    p, _ = papermill(nb, d, ('scale', 'smoke'), ('seeds', 1), *params, ('runs_dir', d/'runs'), ('out_dir', d), env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    return d

@pytest.fixture(scope='module')
def table6(tmp_path_factory, env): return run_ok('table6.ipynb', tmp_path_factory.mktemp('table6'), env=env)

@pytest.fixture(scope='module')
def table7(tmp_path_factory, env):
    return run_ok('table7.ipynb', tmp_path_factory.mktemp('table7'), ('backbones', 'RN50,RN101'), env=env)

def test_table6_csv_has_the_paper_rows_and_ours(table6):
    df = pd.read_csv(table6/'table6_protocol1.csv')
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert df.method.tolist() == ['ViT-B w/ C'] * 2 + ['CLIP-FGDI'] * 2 and df.metric.tolist() == ['mAP', 'R1'] * 2
    assert set(df.protocol) == {1} and set(df.scale) == {'smoke'} and set(df.over) == {'PRID+GRID+VIPeR+iLIDS'}
    assert finite_percent(df.ours) and ((df.ours - df.value - df.delta).abs() < 1e-9).all(), df[['method', 'metric', 'ours']]
    assert (table6/'table6_protocol1.png').stat().st_size > 0
    assert_paired(table6, 'table6_protocol1', 'method', {'CLIP-FGDI'}, 1)
    assert "ViT-B-16 runs as `fgdi-tiny-vit`" in displayed_markdown(table6/'out.ipynb')

def test_table6_vit_w_c_trains_without_text(table6):
    cfgs = trained_configs(table6/'runs')
    assert {c['backbone'] for c in cfgs} == {'fgdi-tiny-vit'}
    switches = sorted((c['use_text'], c['use_initial'], c['use_domain'], c['use_apn']) for c in cfgs)
    assert switches == [(False,) * 4, (True,) * 4]

def test_table7_subset_csv_has_the_paper_rows_and_ours(table7):
    df = pd.read_csv(table7/'table7.csv')
    assert list(df.columns[:len(PAPER_COLUMNS)]) == PAPER_COLUMNS
    assert list(dict.fromkeys(df.setting)) == ['backbone=ResNet-50', 'backbone=ResNet-101'] and len(df) == 16
    assert set(df.method) == {'ResNet-50', 'ResNet-101', '+ours'} and set(df.metric) == {'mAP', 'R1', 'R5', 'R10'}
    assert set(df.protocol) == {1} and set(df.scale) == {'smoke'} and set(df.target) == {'average'}
    assert finite_percent(df.ours) and ((df.ours - df.value - df.delta).abs() < 1e-9).all(), df[['setting', 'method', 'ours']]
    assert (table7/'table7.png').stat().st_size > 0
    assert_paired(table7, 'table7', 'method', {'ResNet-50 +ours', 'ResNet-101', 'ResNet-101 +ours'}, 1)  # vs ResNet-50

def test_table7_pairs_each_gain_with_its_own_backbone(table7):
    gains = pd.read_csv(table7/'table7_gains.csv')
    assert set(gains.method) == {'ResNet-50 +ours', 'ResNet-101 +ours'} and set(gains.n) == {1}, gains
    df = pd.read_csv(table7/'table7.csv')
    rows = df.assign(kind=df.method.where(df.method == '+ours', 'base')).set_index(['setting', 'metric', 'kind']).ours
    for _, g in gains.iterrows():  # one seed: the paired gain is +ours − baseline of the same backbone
        key = ('backbone=' + g.method.removesuffix(' +ours'), g.metric)
        assert math.isclose(g['diff'], rows[(*key, '+ours')] - rows[(*key, 'base')], abs_tol=1e-9), g
    assert "from the same backbone's baseline" in json.dumps(json.loads((table7/'out.ipynb').read_text()))

def test_table7_resnets_share_one_stand_in_at_smoke(table7):
    df = pd.read_csv(table7/'table7.csv')
    rn50, rn101 = (df[df.setting == f'backbone=ResNet-{n}'].ours.tolist() for n in (50, 101))
    assert rn50 == rn101  # both are fgdi-tiny-rn: the same two runs
    assert {c['backbone'] for c in trained_configs(table7/'runs')} == {'fgdi-tiny-rn'}
    assert trained_runs(streams(table7/'out.ipynb')) == 2  # RN101 read RN50's runs back
    assert 'RN50 → `fgdi-tiny-rn`, RN101 → `fgdi-tiny-rn`' in displayed_markdown(table7/'out.ipynb')

@pytest.mark.parametrize('nb, params, message', [
    ('table6.ipynb', (('protocol', 4),), "parameter protocol=4 is not valid (the paper does not print Table VI's protocol"),
    ('table6.ipynb', (('targets', 'M'),), "parameter targets='M' is not valid (Protocol-1 has fixed targets"),
    ('table7.ipynb', (('backbones', 'RN50,ViT-H-14'),),
     "parameter backbones='ViT-H-14' is not valid (the image encoders of Table VII, comma-separated); "
     "allowed: 'RN50', 'RN101', 'ViT-B-16', 'ViT-B-32'"),
])
def test_bad_parameter_stops_with_the_message(tmp_path, env, nb, params, message):
    p, _ = papermill(nb, tmp_path, ('scale', 'smoke'), *params, ('runs_dir', tmp_path/'runs'), env=env)
    assert p.returncode != 0
    assert message in p.stderr + p.stdout
    assert not (tmp_path/'runs').exists()  # stopped before the grid

"The world report at smoke scale, and the world's identity in every run's cache key."
import json, os, subprocess, sys
from dataclasses import replace
from pathlib import Path
import pytest
from fgdi.config import make_config, config_hash
from fgdi.experiment import at_scale
from fgdi.synth import world_id, WORLD_VERSION
from fgdi.world import KINDS

NBS = Path(__file__).parent.parent/'nbs'

def test_world_id_enters_the_cache_key():
    cfg = at_scale(make_config(protocol=2, target='M'), 'smoke')
    assert cfg.world == world_id('smoke') and cfg.world.startswith(f'v{WORLD_VERSION}-')
    assert config_hash(replace(cfg, world='v0-00000000')) != config_hash(cfg)  # another world, another run
    null = at_scale(make_config(protocol=2, target='M', styles='shared'), 'smoke')
    assert null.world == world_id('smoke', 'shared') != cfg.world and null.data_root != cfg.data_root

@pytest.fixture(scope='module')
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp('world')
    env = {**os.environ, 'FGDI_CACHE': str(d/'cache'), 'PYTHONUNBUFFERED': '1'}
    args = [sys.executable, '-m', 'papermill', str(NBS/'world.ipynb'), str(d/'out.ipynb'), '-k', 'python3', '--cwd', str(d),
            '-p', 'scale', 'smoke', '-p', 'seeds', '1,2', '-p', 'runs_dir', str(d/'runs'), '-p', 'out_dir', str(d),
            '-p', 'curve_epochs', '2', '-p', 'curve_targets', 'M,C3']
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, p.stderr[-3000:]
    return d, json.loads((d/'world_report.json').read_text())

def test_report_has_every_key_with_seeds_and_intervals(report):
    d, rep = report
    assert set(rep) >= {'world', 'scale', 'seeds', 'in_domain', 'cross_domain', 'retention', 'controls', 'checks', 'seconds',
                        'run_seconds', 'runs'}
    assert rep['run_seconds'] > 0
    assert rep['runs'] == dict(total=6 * 3 * 2, trained=6 * 3 * 2)  # 6 kinds x 3 targets x 2 seeds, none cached
    assert rep['world'] == dict(version=WORLD_VERSION, id=world_id('smoke'), null_id=world_id('smoke', 'shared'))
    assert rep['scale'] == 'smoke' and rep['seeds'] == [1, 2]
    for t in ('M', 'MS', 'C3'):
        for part in (rep['in_domain'], rep['cross_domain'], rep['retention'], rep['controls']['null']['retention']):
            s = part[t]
            assert len(s['values']) == 2 and s['n'] == 2 and s['low'] <= s['mean'] <= s['high']
        for c in ('oracle', 'positive'):
            diff = rep['controls'][c]['diff'][t]
            assert abs(diff['mean'] - (rep['controls'][c]['cross_domain'][t]['mean'] - rep['cross_domain'][t]['mean'])) < 1e-3
    assert set(rep['checks']) >= {'in_domain_mean', 'retention_M', 'null_retention_C3', 'positive_beats_baseline'}
    assert (d/'world_report.png').stat().st_size > 0

def test_report_runs_are_ordinary_cached_runs(report):
    d, rep = report
    records = [json.loads(p.read_text()) for p in (d/'runs').glob('*/result.json')]
    assert len(records) == len(KINDS) * 3 * 2
    assert {r['config']['world'] for r in records} == {rep['world']['id'], rep['world']['null_id']}
    assert {r['config']['train_on'] for r in records} == {'sources', 'target', 'sources+target'}
    normed = [r for r in records if r['config'].get('camera_norm')]  # the positive control trains nothing:
    assert len(normed) == 3 * 2 and all(r['seconds']['stages'] == {} for r in normed)
    cross = {r['hash'] for r in records if r['config']['train_on'] == 'sources' and not r['config'].get('camera_norm')
             and r['config']['styles'] == 'distinct'}
    assert {r['trained_run'] for r in normed} == cross  # it evaluates the cross-domain runs' models again

def test_convergence_curves_written(report):
    d, _ = report
    curves = json.loads((d/'convergence.json').read_text())
    assert set(curves) == {'cross_domain M', 'cross_domain C3'}  # the targets asked for; smoke: no in-domain curves
    for c in curves.values(): assert [e for e, _ in c] == [2] and 0 <= c[0][1] <= 100
    assert (d/'convergence.png').stat().st_size > 0

def test_bad_curve_targets_named(tmp_path):
    args = [sys.executable, '-m', 'papermill', str(NBS/'world.ipynb'), str(tmp_path/'out.ipynb'), '-k', 'python3',
            '--cwd', str(tmp_path), '-p', 'scale', 'smoke', '-p', 'curve_targets', 'M,Duke']
    p = subprocess.run(args, env={**os.environ, 'FGDI_CACHE': str(tmp_path/'cache')}, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode != 0 and "curve_targets='M,Duke' is not valid" in p.stderr
    assert not (tmp_path/'runs').exists()  # refused before any run

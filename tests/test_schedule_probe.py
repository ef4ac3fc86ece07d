"bench/schedule_probe.py stays runnable: the cross-domain kinds at another schedule, beside a report's in-domain runs."
import json, os, subprocess, sys
import pytest
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]/'bench'/'schedule_probe.py'
IN_DOMAIN, CROSS = dict(M=[50.], MS=[40.], C3=[20.]), dict(M=[10.], MS=[9.], C3=[8.])

def report(world:str, null:str) -> dict:
    "A smoke world report holding only what the probe reads: the world, seeds, in-domain and cross-domain mAPs."
    per = lambda mAPs: {t: dict(values=v) for t, v in mAPs.items()}
    return dict(scale='smoke', seeds=[1], world=dict(id=world, null_id=null), in_domain=per(IN_DOMAIN),
                cross_domain=per(CROSS), controls=dict(null=dict(in_domain=per(IN_DOMAIN))))

def probe(tmp_path, rep:dict, epochs:int=2):
    env = {**os.environ, 'FGDI_CACHE': str(tmp_path/'cache'), 'OMP_NUM_THREADS': '1'}
    (tmp_path/'report.json').write_text(json.dumps(rep))
    args = ['--epochs', str(epochs), '--scale', 'smoke', '--seeds', '1', '--report', 'report.json', '--json', 'p.json']
    return subprocess.run([sys.executable, str(BENCH), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)

def test_probe_trains_cross_domain_kinds_at_the_schedule(tmp_path):
    from fgdi.synth import world_id
    r = probe(tmp_path, report(world_id('smoke'), world_id('smoke', 'shared')))
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path/'p.json').read_text())
    assert out['epochs_final'] == 2 and out['trained'] == out['total'] == 12, out  # 4 kinds x 3 targets x 1 seed
    near = lambda x: pytest.approx([x], abs=1.51e-4)  # three roundings to 4 digits: the value and its two inputs
    for t, (within,) in IN_DOMAIN.items():
        (cross,) = out['cross_domain'][t]['values']
        assert out['retention'][t]['values'] == near(cross / within)
        (oracle,) = out['controls']['oracle']['cross_domain'][t]['values']
        assert out['controls']['oracle']['diff'][t]['values'] == near(oracle - cross)
        assert out['gain_over_report'][t]['values'] == near(cross - CROSS[t][0])
    assert set(out['checks']) >= {'retention_M', 'null_retention_C3', 'positive_beats_baseline'}
    assert 'positive_beats_baseline' in r.stdout and "gain over the report's schedule" in r.stdout
    runs = [json.loads(p.read_text()) for p in (tmp_path/'runs').glob('*/config.json')]
    assert runs and all(c['epochs_final'] == 2 for c in runs), 'every run trains the probed schedule'

def test_probe_refuses_a_report_of_another_world(tmp_path):
    r = probe(tmp_path, report('v0-00000000', 'v0-11111111'))
    assert r.returncode != 0 and 'v0-00000000' in r.stderr and 'world_report.json' in r.stderr
    assert not (tmp_path/'runs').exists(), 'nothing is trained for a report of another world'

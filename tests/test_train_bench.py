"bench/train_bench.py --whole-run stays runnable: one whole run per input pipeline, timed, in fresh runs folders."
import json, os, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]/'bench'/'train_bench.py'

def test_whole_run_times_both_pipelines(tmp_path):
    env = {**os.environ, 'FGDI_CACHE': str(tmp_path/'cache'), 'OMP_NUM_THREADS': '1'}
    args = ['--whole-run', 'M', '--scale', 'smoke', '--json', str(tmp_path/'whole.json')]
    r = subprocess.run([sys.executable, str(BENCH), *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path/'whole.json').read_text())
    assert (out['scale'], out['target'], out['seed']) == ('smoke', 'M', 1)
    assert set(out['runs']) == {'pil', 'tensor'}
    for run in out['runs'].values():
        assert set(run['stages']) == {'initial', 'id_tokens', 'domain_tokens', 'final'}, run  # the full method
        assert run['seconds'] >= sum(run['stages'].values()) > 0 and 0 <= run['mAP'] <= 100
    assert out['pil_over_tensor'] == round(out['runs']['pil']['seconds'] / out['runs']['tensor']['seconds'], 2)
    assert not list(tmp_path.glob('runs*')), 'the benchmark leaves no runs folder behind'

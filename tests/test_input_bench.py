"bench/input_bench.py stays runnable: a tiny run writes its JSON with both pipelines measured."
import json, subprocess, sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]/'bench'/'input_bench.py'

def test_input_bench_tiny(tmp_path):
    out = tmp_path/'input.json'
    r = subprocess.run([sys.executable, str(BENCH), '--n', '64', '--sizes', '32x16:16', '--repeats', '1', '--workers', '1',
                        '--devices', 'cpu', '--json', str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(out.read_text())['runs']
    assert run['size'] == [32, 16] and run['images_per_epoch'] > 0 and run['images_per_epoch'] % 16 == 0
    for key in ('pil_images_per_s', 'pil_inprocess_images_per_s', 'tensor_cpu_images_per_s', 'tensor_cpu_vs_pil'):
        assert run[key] > 0, key

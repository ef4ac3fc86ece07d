"`bench/gpu_check.sh --tiny`: the full-scale code path end to end on the CPU, so the GPU check cannot rot."
import json, os, subprocess, sys
from pathlib import Path
from fgdi.config import STAGES

ROOT = Path(__file__).resolve().parents[1]

def test_gpu_check_tiny(tmp_path):
    out = subprocess.run(['bash', str(ROOT/'bench'/'gpu_check.sh'), '--tiny', '--out', str(tmp_path)],
                         capture_output=True, text=True, timeout=900,
                         env=os.environ | {'PYTHON': sys.executable})
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, f'gpu_check must print ONE JSON line on stdout, got {len(lines)}:\n{out.stdout[-2000:]}'
    r = json.loads(lines[0])
    assert (r['tiny'], r['precision'], r['batch'], r['world']['scale']) == (True, 'fp32', 16, 'smoke')
    assert list(r['stage_seconds']) == list(STAGES) and all(v > 0 for v in r['stage_seconds'].values())
    assert set(r['step_seconds']) >= {'final_step', 'id_token_step', 'extract'}
    assert all(v > 0 for v in r['step_seconds'].values())
    assert 0 < r['targets_mAP'] <= 1 and 0 < r['msmt17_eval']['mAP'] <= 1
    assert r['input_images_per_s'] > 0 and r['input_vs_gpu'] > 0 and r['peak_memory_gib'] > 0
    h = r['projected_hours']
    assert 0 < h['protocol_1'] < h['protocol_2'] < h['protocol_3']   # 88k images < 3 runs of 55-78k < 3 of 81-191k
    assert (tmp_path/'run'/'log.jsonl').exists() and (tmp_path/'fgdi-tiny-vit-random-openai.pt').exists()

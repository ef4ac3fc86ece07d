"bench/input_bench.py stays runnable, and the tensor pipeline it times gives each image's own result exactly."
import json, subprocess, sys
import numpy as np, pytest, torch
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]/'bench'/'input_bench.py'

def test_input_bench_tiny(tmp_path):
    out = tmp_path/'input.json'
    args = ['--n', '64', '--sizes', '32x16:16', '--repeats', '1', '--workers', '1', '--devices', 'cpu',
            '--against', 'HEAD', '--steps', '--json', str(out)]
    r = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (run,) = json.loads(out.read_text())['runs']
    assert run['size'] == [32, 16] and run['images_per_epoch'] > 0 and run['images_per_epoch'] % 16 == 0
    for key in ('pil_images_per_s', 'pil_inprocess_images_per_s', 'tensor_cpu_images_per_s', 'tensor_cpu_vs_pil',
                'tensor_cpu_at_HEAD_images_per_s', 'tensor_cpu_vs_HEAD'):
        assert run[key] > 0, key
    assert run['tensor_cpu_same_batches_as_HEAD'] is True  # the committed pipeline, loaded from git, agrees
    steps, at_head = run['tensor_cpu_steps_us_per_image'], run['tensor_cpu_steps_at_HEAD_us_per_image']
    assert list(steps) == list(at_head) and list(steps)[:2] == ['Maybe(grayscale)', 'Pad'] and 'BatchAugMix' in steps
    *each, total = steps.values()
    assert list(steps)[-1] == 'total' and abs(total - sum(each)) < 0.05 and min(each) >= 0
    assert steps['BatchAugMix'] > 0 and steps['Pad'] > 0  # always at work (a step that draws no image may round to 0)

def test_input_bench_unknown_revision(tmp_path):
    r = subprocess.run([sys.executable, str(BENCH), '--n', '16', '--against', 'no-such-revision'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and '--against no-such-revision' in r.stderr

def _augmix_alone(am, x, q):
    "`fgdi.data.AugMix`'s formula on one image (n = 1), every chain's operations called one by one."
    if not q['apply'][0]: return x
    one = lambda a: torch.as_tensor(a).reshape(1)
    mixed = None
    for j in range(am.width):
        chain = x
        for d in range(am.depth):
            chain = am.ops[q['ops'][0, j, d]](chain, one(q['level'][0, j, d]), one(q['sign'][0, j, d]))
        term = chain.float() * torch.tensor(q['ws'][0, j], dtype=torch.float32)
        mixed = term if mixed is None else mixed + term
    m = torch.tensor(q['m'][0], dtype=torch.float32)
    out = x.float() * torch.tensor(1 - q['m'][0], dtype=torch.float32) + mixed * m
    return out.clamp(0, 255).to(torch.uint8)

def _one_by_one(tf, x, params, by_ops:bool):
    "Each image alone through every step with its own row of parameters: no grouping, no parts, no threads."
    from fgdi.batches import BatchAugMix
    out = []
    for k in range(len(x)):
        y = x[k:k + 1].clone()
        for step, q in zip(tf.steps, params):
            row = {key: v[k:k + 1] for key, v in q.items()}
            y = _augmix_alone(step, y, row) if by_ops and isinstance(step, BatchAugMix) else step.apply(y, row)
        out.append(y)
    return torch.cat(out)

@pytest.mark.parametrize('path', ['kernels', 'ops'])
def test_batches_equal_one_image_at_a_time(monkeypatch, path):
    """The batch path (parts in threads; with the batch operations, as on CUDA, ops grouped across samples and
    chains) gives each image's own result exactly."""
    import fgdi.batches as fb
    from fgdi.config import RunConfig
    from fgdi.transforms import build_transforms
    if path == 'ops':  # the batch operations on the CPU, as they run on CUDA
        monkeypatch.setattr(fb, 'CPU_KERNELS', False)
    cfg = RunConfig(size_train=(64, 32), pad=4, gray_prob=0.3, flip_prob=0.5, color_jitter_prob=0.5, augmix_prob=0.9,
                    style_aug=0.5, optics_aug=0.5, framing_aug=0.5, erasing_prob=0.5)
    tf = fb.BatchTransform(build_transforms(cfg, True))
    rng = np.random.default_rng(0)
    x = torch.from_numpy(np.clip(np.cumsum(rng.integers(-9, 10, (23, 3, 64, 32)), 2) + 128, 0, 255).astype(np.uint8))
    monkeypatch.setattr(fb, 'CPU_PART_BYTES', x[0].numel() * 5)  # 6 parts (4 or 3 images) in 2 threads
    batch = tf(x.clone(), np.random.default_rng(7), threads=2)
    alone = _one_by_one(tf, x, tf.draw(np.random.default_rng(7), len(x)), by_ops=path == 'ops')
    assert batch.shape == alone.shape == (23, 3, 64, 32)
    assert torch.equal(batch, alone)

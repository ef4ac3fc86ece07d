"""Training input pipelines, images/s: the per-image PIL reference against fgdi's batch ("tensor") pipeline.

Writes --n synthetic 128x64 JPEG person crops (smooth random colour fields, about Market's file size) into a temporary
folder and times one pass of PK batches over them with the 'fgdi' training transforms (grayscale, pad + crop, flip,
colour jitter, AugMix, InstanceNorm) at each size of --sizes:
  pil     `fgdi.data.ReidImages` + `build_transforms` in a DataLoader with --workers workers (default: one per core,
          as `num_workers` is meant to be set), PK sampler, persistent workers started before the clock; and
          pil_inprocess, the same with 0 workers (how mini and smoke runs load with augment='pil'), torch
          on one thread (its per-image InstanceNorm gains nothing from more, and loses much on a busy machine);
  tensor  `fgdi.batches.TensorBatches` (`RunConfig(augment='tensor')`): images decoded once into the uint8 cache
          (its build time is reported apart), then gathered and augmented in batches on each device of --devices
          (cpu in one thread per core, AugMix, colour jitter, grayscale and the standardisation by the compiled
          loops of `fgdi.kernels`; cuda, when present, by torch operations).
  --against REV  the tensor pipeline of git revision REV (its `fgdi/batches.py`, the rest of fgdi as it is now) on
          the same devices in the same rounds, with the ratio now / REV and whether both give the same batches (all of
          one epoch).
The pipelines run in interleaved rounds (--repeats); the median images/s of each is reported, with the ratio
tensor / pil. Prints a summary and writes JSON (--json).
  --steps  also profile the tensor pipeline step by step (and REV's with --against): the median microseconds per image
          of each step on one thread, on the part of a batch one CPU thread transforms (its float steps on the whole
          part at once, not in the pipeline's blocks), and their total.

  OMP_NUM_THREADS=2 python bench/input_bench.py --json input_bench.json   # ~1 min on 2 cores
  OMP_NUM_THREADS=2 python bench/input_bench.py --sizes 128x64:32 --n 4096 --repeats 5 --against HEAD~1
  OMP_NUM_THREADS=2 python bench/input_bench.py --repeats 5 --steps --against HEAD~1   # where the time goes
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, tempfile, time, types
from pathlib import Path
import numpy as np, torch
from PIL import Image
from torch.utils.data import DataLoader

from fgdi.config import RunConfig
from fgdi.data import Item, ReidImages
from fgdi.transforms import PKSampler, build_transforms
from fgdi.batches import GROUP, TensorBatches

def write_images(folder:Path, n:int, ids:int, seed:int=0) -> list:
    "`n` JPEG crops of 128x64 (smooth colour fields) of `ids` identities on 2 cameras, as training `Item`s."
    rng, items = np.random.default_rng(seed), []
    for k in range(n):
        a = np.clip(np.cumsum(rng.integers(-6, 7, (128, 64, 3)), 0) + rng.integers(40, 200, 3), 0, 255).astype(np.uint8)
        path = folder/f'{k % ids:04d}_c{k % 2}_{k:05d}.jpg'
        Image.fromarray(a).save(path, quality=90)
        items.append(Item(str(path), k % ids, k % 2, 0))
    return items

def config(size:tuple, batch:int, workers:int, augment:str) -> RunConfig:
    return RunConfig(size_train=size, size_test=size, batch_size=batch, num_workers=workers, augment=augment)

def pil_pass(items, cfg, seed) -> float:
    "Seconds for one epoch of PK batches from a DataLoader whose workers are already running."
    loader = pil_pass.loaders.get(cfg)
    if loader is None:
        ds = ReidImages(items, build_transforms(cfg, True))
        sampler = PKSampler([it.pid for it in items], cfg.batch_size, cfg.num_instances, seed)
        loader = pil_pass.loaders[cfg] = DataLoader(ds, cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                                                    persistent_workers=cfg.num_workers > 0)
        for _ in loader: pass  # start the workers and warm the page cache
    threads = torch.get_num_threads()
    if cfg.num_workers == 0: torch.set_num_threads(1)
    t = time.perf_counter()
    for _ in loader: pass
    t = time.perf_counter() - t
    torch.set_num_threads(threads)
    return t
pil_pass.loaders = {}

def batches_at(rev:str) -> types.ModuleType:
    "`fgdi.batches` as it was at git revision `rev`, importing the rest of fgdi as it is now."
    root = Path(__file__).resolve().parents[1]
    code = subprocess.run(['git', 'show', f'{rev}:fgdi/batches.py'], cwd=root, capture_output=True, text=True)
    if code.returncode: raise SystemExit(f'--against {rev}: {code.stderr.strip()}')
    name = 'fgdi_batches_at_' + re.sub(r'\W', '_', rev)
    mod = sys.modules[name] = types.ModuleType(name)  # dataclasses look their module up by name
    source = re.sub(r'^from \.( import)?', lambda m: 'from fgdi' + (m[1] or '.'), code.stdout, flags=re.M)
    exec(compile(source, f'{rev}:fgdi/batches.py', 'exec'), vars(mod))
    return mod

def tensor_pass(batches, device) -> float:
    t = time.perf_counter()
    for x, *_ in batches: pass
    if device == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t

def step_name(step) -> str: return type(step).__name__ + (f'({step.op.__name__})' if hasattr(step, 'op') else '')

def step_profile(tf, x, repeats:int) -> dict:
    "Median microseconds per image of each step of the `BatchTransform` `tf` on the uint8 images `x`, on one thread."
    times, threads = [[] for _ in tf.steps], torch.get_num_threads()
    torch.set_num_threads(1)
    for r in range(-1, repeats):  # round -1 warms up (the hue tables, the rotation grids)
        y = x
        for k, (step, q) in enumerate(zip(tf.steps, tf.draw(np.random.default_rng(r + 1), len(x)))):
            t = time.perf_counter()
            y = step.apply(y, q)
            if r >= 0: times[k].append(time.perf_counter() - t)
    torch.set_num_threads(threads)
    us = {step_name(s): round(1e6 * statistics.median(t) / len(x), 1) for s, t in zip(tf.steps, times)}
    return us | {'total': round(sum(us.values()), 1)}

def thread_part(tb) -> torch.Tensor:
    "The images of the first group of `tb`'s training images that one CPU thread transforms at once."
    group = tb.train[np.arange(min(GROUP, len(tb.train)))]
    return group[tb.train_tf.parts(group, torch.get_num_threads())[0]]

def measure(items, size, batch, workers, devices, repeats, against=None, steps=False) -> dict:
    "images/s of each pipeline at `size` (median of `repeats` interleaved rounds)."
    cfg, inproc = config(size, batch, workers, 'pil'), config(size, batch, 0, 'pil')
    n = len(PKSampler([it.pid for it in items], batch, cfg.num_instances, 0).plan())
    tensor, versions = {}, {'': TensorBatches} | ({f'@{against[0]}': against[1].TensorBatches} if against else {})
    for d in devices:
        for tag, make in versions.items():
            t = time.perf_counter()
            tb = make(items, config(size, batch, workers, 'tensor'), d, progress=False)
            tb.train.arrays  # build (or open) the cache
            tensor[d + tag] = dict(tb=tb, cache_s=time.perf_counter() - t)
            tensor_pass(tb.pk_batches(0), d)  # warm-up (CUDA kernels, page cache)
    times = {'pil': [], 'pil_inprocess': []} | {k: [] for k in tensor}
    for r in range(repeats):
        times['pil'].append(pil_pass(items, cfg, 0))
        times['pil_inprocess'].append(pil_pass(items, inproc, 0))
        for k, v in tensor.items(): times[k].append(tensor_pass(v['tb'].pk_batches(r), k.split('@')[0]))
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    out = dict(size=list(size), batch_size=batch, images_per_epoch=n, pil_workers=workers,
               pil_images_per_s=round(rate['pil'], 1), pil_inprocess_images_per_s=round(rate['pil_inprocess'], 1))
    for d in devices:
        out[f'tensor_{d}_images_per_s'] = round(rate[d], 1)
        out[f'tensor_{d}_vs_pil'] = round(rate[d] / rate['pil'], 2)
        out[f'tensor_{d}_vs_pil_inprocess'] = round(rate[d] / rate['pil_inprocess'], 2)
        out[f'tensor_{d}_cache_build_s'] = round(tensor[d]['cache_s'], 2)
        if against:
            old, rev = f'{d}@{against[0]}', against[0]
            out[f'tensor_{d}_at_{rev}_images_per_s'] = round(rate[old], 1)
            out[f'tensor_{d}_vs_{rev}'] = round(rate[d] / rate[old], 2)
            epochs = zip(tensor[d]['tb'].pk_batches(1), tensor[old]['tb'].pk_batches(1))  # every batch of an epoch
            out[f'tensor_{d}_same_batches_as_{rev}'] = all(torch.equal(a[0], b[0]) for a, b in epochs)
    if steps and 'cpu' in tensor:
        part = thread_part(tensor['cpu']['tb'])
        versions = {'': 'cpu'} | ({f'_at_{against[0]}': f'cpu@{against[0]}'} if against else {})
        for suffix, key in versions.items():
            out[f'tensor_cpu_steps{suffix}_us_per_image'] = step_profile(tensor[key]['tb'].train_tf, part, repeats)
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=1024, help='number of images')
    ap.add_argument('--sizes', default='128x64:32,256x128:128', help='HxW:batch, comma-separated')
    ap.add_argument('--workers', type=int, default=os.cpu_count(), help='PIL DataLoader workers (default: cores)')
    ap.add_argument('--devices', default='cpu,cuda', help='devices of the tensor pipeline (cuda only when present)')
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--against', help='also time the tensor pipeline of this git revision (see above)')
    ap.add_argument('--steps', action='store_true', help='also time each step of the tensor pipeline (see above)')
    ap.add_argument('--json', help='write the results here')
    a = ap.parse_args(argv)
    torch.set_num_threads(os.cpu_count())
    devices = [d for d in a.devices.split(',') if d != 'cuda' or torch.cuda.is_available()]
    against = (a.against, batches_at(a.against)) if a.against else None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ['FGDI_CACHE'] = str(Path(tmp)/'cache')  # a cold, private image cache
        (Path(tmp)/'img').mkdir()
        items = write_images(Path(tmp)/'img', a.n, ids=a.n // 8)
        runs = []
        for spec in a.sizes.split(','):
            hw, batch = spec.split(':')
            size = tuple(int(v) for v in hw.split('x'))
            runs.append(measure(items, size, int(batch), a.workers, devices, a.repeats, against, a.steps))
            print(json.dumps(runs[-1]), flush=True)
    res = dict(bench='input', date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), cores=os.cpu_count(),
               cpu=platform.processor() or platform.machine(), torch=torch.__version__,
               torch_threads=torch.get_num_threads(),
               gpu=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
               load_avg=[round(v, 2) for v in os.getloadavg()], transforms='fgdi', n_images=a.n, against=a.against,
               runs=runs)
    if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    return res

if __name__ == '__main__': main()

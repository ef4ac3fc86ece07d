"""The full-scale code path end to end in a few minutes: `bash bench/gpu_check.sh` on one GPU, `--tiny` on the CPU.

On the synthetic world (its datasets have the real ones' image sizes: Market 128x64, MSMT17 128x48, ...) and a
random CLIP written here in OpenAI's format, it runs what `fgdi run` runs at full scale: Protocol-1 data, the model
built from the weights file, all four stages (one epoch each, a few iterations on the small world) at the full
settings (ViT-B-16, batch 128, 256x128, bf16 autocast), the targets' evaluation. Then it measures the step time of
each stage (bench/train_bench.py), the training input pipeline's images/s, an MSMT17-sized evaluation (11,659 x
82,161 random 1280-d features, as bench/eval_bench.py makes them) and the peak memory, and projects the full
Protocol-1/2/3 schedules (every run of a protocol, its evaluations every `eval_period` final epochs included).
Prints ONE JSON line; everything else goes to stderr.

  bash bench/gpu_check.sh                  # one CUDA GPU, <= 5 min (the mini world is written once, ~1 min)
  bash bench/gpu_check.sh --tiny           # CPU, fgdi-tiny-vit at 64x32, smoke world: about a minute
  bash bench/gpu_check.sh --compile inductor   # the same with torch.compile (RunConfig.compile)
"""
import argparse, json, math, os, resource, shutil, sys, tempfile, time
from pathlib import Path
import torch
from fgdi.clip import new_clip
from fgdi.config import COMPILE_BACKENDS, RunConfig, make_config
from fgdi.check import OFFICIAL_COUNTS
from fgdi.protocols import PROTOCOLS, load_protocol
from fgdi.eval import evaluate
from fgdi.experiment import train_data, evaluate_targets
from fgdi.model import build_model
from fgdi.pretrain import ensure_world, world_root
from fgdi.train import Trainer
from train_bench import P1_EPOCHS, protocol_images, projection, step_functions, timed_rounds
from eval_bench import make_features

MSMT17_TEST = OFFICIAL_COUNTS['MSMT17']['query'][0], OFFICIAL_COUNTS['MSMT17']['gallery'][0]
FULL = dict(world='mini', backbone='ViT-B-16', size=(256, 128), batch=128, workers=min(8, os.cpu_count() or 1),
            eval_size=MSMT17_TEST, repeats=5)
TINY = dict(world='smoke', backbone='fgdi-tiny-vit', size=(64, 32), batch=16, workers=0,
            eval_size=(MSMT17_TEST[0] // 20, MSMT17_TEST[1] // 20), repeats=1)

def log(msg): print(f'gpu_check: {msg}', file=sys.stderr, flush=True)

def write_random_openai_weights(backbone:str, path:Path) -> Path:
    "A random CLIP of `backbone` saved as OpenAI's release is: its tensors under OpenAI's names + the 3 extra keys."
    model = new_clip(backbone, quick_gelu=True)
    extra = dict(input_resolution=224, context_length=model.context_length, vocab_size=model.vocab_size)
    sd = model.state_dict() | {k: torch.tensor(v) for k, v in extra.items()}
    torch.save(sd, path)
    return path

def _sync(device):
    if device == 'cuda': torch.cuda.synchronize()

def input_images_per_s(data, device, seed:int=12345) -> float:
    "Images/s of one epoch of training batches (decoded, augmented, on `device`), start-up included as a run pays it."
    _sync(device); t, n = time.perf_counter(), 0
    for img, *_ in data.pk_batches(seed): img.to(device, non_blocking=True); n += len(img)
    _sync(device)
    return n / (time.perf_counter() - t)

def msmt17_sized_eval(size, device) -> dict:
    "`fgdi.eval.evaluate` on MSMT17-sized random 1280-d features with identity/camera structure, on `device`."
    qf, gf, *labels = make_features(*size, 1280, 0)
    qf, gf = qf.to(device), gf.to(device)
    _sync(device); t = time.perf_counter()
    res = evaluate(qf, gf, *labels, device=device)
    _sync(device)
    return dict(size=list(size), seconds=round(time.perf_counter() - t, 3), mAP=round(res['mAP'], 4))

def eval_seconds(spec, extract_s:float, pair_s:float) -> float:
    "One evaluation of a protocol's targets: test-image features at the measured rate + ranking at the measured cost."
    sizes = [(OFFICIAL_COUNTS[t]['query'][0], OFFICIAL_COUNTS[t]['gallery'][0]) for t in spec.targets]
    return sum((q + g) * extract_s + q * g * pair_s for q, g in sizes)

def projected_hours(t:dict, batch:int, eval_pair_s:float, eval_period:int) -> dict:
    "Full-schedule hours of every protocol (all its runs): the stages (`projection`) + the final stage's evaluations."
    n_evals, extract_s = math.ceil(P1_EPOCHS['final'] / eval_period), t['extract'] / batch
    specs = {n: [s for name, s in PROTOCOLS.items() if name.startswith(n)] for n in protocol_images()}
    def run_s(images, spec):
        return sum(projection(t, batch, images).values()) + n_evals * eval_seconds(spec, extract_s, eval_pair_s)
    return {n: round(sum(map(run_s, protocol_images()[n], specs[n])) / 3600, 3) for n in specs}

def peak_memory_gib(device) -> float:
    if device == 'cuda': return round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)   # kB -> GiB

def train_all_stages(cfg, p, run_dir, device):
    "Every stage for one epoch through `Trainer.fit`, evaluating the targets at the end → (trainer, log, seconds)."
    torch.manual_seed(cfg.seed)
    model, data = build_model(cfg, p.num_classes, p.num_domains), train_data(p, cfg, device=device, progress=False)
    t = time.perf_counter()
    tr = Trainer(cfg, model, data, run_dir, device, progress=False, evaluate=lambda m: evaluate_targets(m, p, cfg))
    tr.fit()
    _sync(device)
    return tr, [json.loads(l) for l in tr.log_path.read_text().splitlines()], time.perf_counter() - t

def check(s:dict, device:str, work:Path, compile_backend:str|None=None) -> dict:
    t0 = time.perf_counter()
    root = ensure_world(world_root(s['world']), s['world'])
    world_s = time.perf_counter() - t0
    log(f"world {root} ready ({world_s:.0f} s); writing random {s['backbone']} weights")
    weights = write_random_openai_weights(s['backbone'], work/f"{s['backbone']}-random-openai.pt")
    one_epoch = dict(epochs_initial=1, epochs_id_tokens=1, epochs_domain_tokens=1, epochs_final=1, eval_period=1)
    cfg = make_config(backbone=s['backbone'], clip_weights=str(weights), data_root=str(root), protocol=1,
                      size_train=s['size'], size_test=s['size'], batch_size=s['batch'], precision='bf16',
                      num_workers=s['workers'], compile=compile_backend, **one_epoch)
    p = load_protocol(1, None, root, cfg)
    if device == 'cuda': torch.cuda.reset_peak_memory_stats()
    log(f'training all stages on {len(p.train)} images ({p.num_classes} identities)')
    tr, records, fit_s = train_all_stages(cfg, p, work/'run', device)
    log('step times, input rate, MSMT17-sized evaluation')
    steps = timed_rounds(step_functions(tr.model, cfg, device, s['batch'], s['size'], p.num_classes, p.num_domains),
                         device, s['repeats'])
    rate = input_images_per_s(tr.data, device)
    ev = msmt17_sized_eval(s['eval_size'], device)
    gpu_rate = s['batch'] / steps['final_step']
    return dict(
        device=torch.cuda.get_device_name() if device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)',
        date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), torch=torch.__version__, tiny=device == 'cpu',
        backbone=s['backbone'], size=list(s['size']), batch=s['batch'], compile=compile_backend,
        precision='bf16' if device == 'cuda' else 'fp32',
        world=dict(scale=s['world'], seconds=round(world_s, 1)), train_images=len(p.train),
        stage_seconds={r['stage']: r['seconds'] for r in records}, fit_seconds=round(fit_s, 2),
        targets_mAP=round(records[-1]['eval']['average']['mAP'], 4),
        step_seconds={k: round(v, 4) for k, v in steps.items()},
        input_images_per_s=round(rate, 1), gpu_images_per_s=round(gpu_rate, 1), input_vs_gpu=round(rate / gpu_rate, 2),
        msmt17_eval=ev, peak_memory_gib=peak_memory_gib(device),
        projected_hours=projected_hours(steps, s['batch'], ev['seconds'] / math.prod(ev['size']),
                                        RunConfig().eval_period))

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--tiny', action='store_true', help='the same on the CPU: tiny model, smoke world')
    ap.add_argument('--compile', choices=[b for b in COMPILE_BACKENDS if b], help='torch.compile backend')
    ap.add_argument('--out', help='working folder (weights file, run); a temporary one, removed afterwards, by default')
    a = ap.parse_args()
    device = 'cpu' if a.tiny else 'cuda'
    if device == 'cuda' and not torch.cuda.is_available():
        sys.exit('gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); '
                 'run `bash bench/gpu_check.sh --tiny` on the CPU')
    work = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix='fgdi-gpu-check-'))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    try: out = check(TINY if a.tiny else FULL, device, work, a.compile)
    finally:
        if not a.out: shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out | dict(wall_seconds=round(time.perf_counter() - t, 1))), flush=True)

if __name__ == '__main__': main()

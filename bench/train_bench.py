"""Step-time benchmark of the training stages (a script, not a test).

Measures, on one machine in one run:
  * the bare image-encoder forward+backward (the floor any re-ID training pays),
  * the initial/final-stage step (encoder + BNNeck + classifiers + every loss of Eq. 9 + Adam),
  * the ID-token-stage step (text encoder over B prompts + SupCon + GRL domain loss + Adam),
  * feature extraction (eval forward),
  * the text tower over B prompts up to the end-of-text token (what fgdi runs) and over the whole context,
and prints times, images/s, the final-stage overhead over the bare backbone, peak GPU memory (CUDA), and a projection
of the full Protocol-1 training time (88,151 images: 3/120/30/60 epochs, batch 128).
`--whole-run M` instead trains one whole Table IV run at mini (Protocol 2 -> M, the full method, from the cached
world and small CLIP, in a fresh runs folder) once per input pipeline, and prints each wall time and their ratio.

  python bench/train_bench.py                                   # CPU, fgdi-mini-vit at 128x64, batch 32
  python bench/train_bench.py --whole-run M --json run.json     # one mini run with augment='pil', then 'tensor'
  python bench/train_bench.py --device cuda --backbone ViT-B-16 --size 224 224 --batch 128 --n-ids 16719
"""
import argparse, json, tempfile, time
from pathlib import Path
import torch
from fgdi.config import make_config
from fgdi.experiment import run
from fgdi.model import build_model
from fgdi.losses import final_losses, initial_losses, prompt_losses
from fgdi.train import Trainer, TrainData, Precision, param_groups, image_params
from fgdi.check import OFFICIAL_COUNTS
from fgdi.protocols import PROTOCOLS

P1_EPOCHS = dict(initial=3, id_tokens=120, domain_tokens=30, final=60)

def protocol_images() -> dict:
    "Training images of every run of Protocols 1-3 at full scale (the official releases' counts): name -> per target."
    def images(spec):
        parts = ('train', 'query', 'gallery') if spec.combine_all else ('train',)
        return sum(OFFICIAL_COUNTS[s].get(k, (0, 0))[0] for s in spec.sources for k in parts)
    return {f'protocol_{n}': [images(s) for name, s in PROTOCOLS.items() if name.startswith(f'protocol_{n}')]
            for n in (1, 2, 3)}

def projection(t:dict, batch:int, images:int) -> dict:
    "Seconds per stage of one full-schedule run on `images` training images (batch 128) from step times `t` at `batch`."
    it_img, it_txt, per = images / 128, images // 128, 128 / batch
    return dict(initial=P1_EPOCHS['initial'] * it_img * t['final_step'] * per,
                id_tokens=P1_EPOCHS['id_tokens'] * it_txt * t['id_token_step'] * per,
                domain_tokens=P1_EPOCHS['domain_tokens'] * it_txt * t['id_token_step'] * per,
                final=P1_EPOCHS['final'] * it_img * t['final_step'] * per,
                caching=2 * images / (batch / t['extract']))

def timed_rounds(fns:dict, device, repeats) -> dict:
    "Median seconds per call of each function, measured in interleaved rounds after two warm-up rounds."
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    times = {k: [] for k in fns}
    for r in range(repeats + 2):
        for k, fn in fns.items():
            sync(); t0 = time.perf_counter(); fn(); sync()
            if r >= 2: times[k].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}

def step_functions(model, cfg, device, batch:int, size, n_ids:int, n_domains:int) -> dict:
    "One step of each stage, the bare encoder and text tower steps, and feature extraction, on a fixed random batch."
    prec = Precision(device, cfg.precision)
    x = torch.randn(batch, 3, *size, device=device)
    y = torch.arange(batch, device=device) // 4 % n_ids
    dom = y % n_domains
    opt_img = torch.optim.Adam(param_groups(image_params(model), 5e-6, 1e-4, 1e-5))
    opt_txt = torch.optim.Adam(param_groups([('id_ctx', model.prompt_learner.id_ctx)], 3.5e-4, 1e-4) +
                               param_groups(model.dcgrl.named_parameters(), 0.01, 1e-4))
    with torch.no_grad(): tp = model.text(torch.arange(min(n_ids, 512), device=device))
    text_pos = tp.repeat(n_ids // len(tp) + 1, 1)[:n_ids]; text_neg = text_pos.flip(0)
    v_cache = torch.randn(batch, text_pos.shape[1], device=device)

    def optimise(loss, opt):
        "The optimiser step of fgdi's training loop: zero_grad, (scaled) backward, step, scaler update."
        opt.zero_grad(set_to_none=True); prec.scaler.scale(loss).backward(); prec.scaler.step(opt); prec.scaler.update()

    def bare():
        model.train()
        with prec.autocast(): f = model.image_encoder(x)
        optimise(f.float().pow(2).mean(), opt_img)

    def final_step():
        model.train()
        with prec.autocast(): scores, feats, v = model(x)
        terms = final_losses([s.float() for s in scores], [f.float() for f in feats], y, v.float(), text_pos, cfg,
                             t_pos=text_pos[y], t_neg=text_neg[y], text_neg_all=text_neg)
        optimise(terms['total'], opt_img)

    def id_token_step():
        model.train()
        with prec.autocast():
            t = model.text(y); logp = model.domain_logits(t, False)
        terms = prompt_losses(v_cache, t.float(), y, cfg, logprobs=logp.float(), domains=dom)
        optimise(terms['total'], opt_txt)

    def text_step(full_context:bool):
        "Text tower forward+backward over B prompts: up to the end-of-text token (what fgdi runs) or the whole context."
        prompts, eot = model.prompt_learner(y), model.prompt_learner.eot_index()
        read = torch.full_like(y, prompts.shape[1] - 1) if full_context else eot  # reading the last position forces all of it
        with prec.autocast(): t = model.text_encoder(prompts, read)
        t.float().pow(2).mean().backward(); model.zero_grad(set_to_none=True)

    @torch.no_grad()
    def extract():
        model.eval()
        model(x)

    return dict(bare_backbone=bare, final_step=final_step, id_token_step=id_token_step, extract=extract,
                text_to_eot=lambda: text_step(False), text_full_context=lambda: text_step(True))

def whole_run(target:str, seed:int, scale:str='mini', pipelines=('pil', 'tensor')) -> dict:
    "Wall seconds, stage seconds and mAP of one Table IV run (Protocol 2, the full method) per input pipeline."
    out = {}
    for augment in pipelines:
        cfg = make_config(protocol=2, target=target, seed=seed, scale=scale, augment=augment)
        with tempfile.TemporaryDirectory() as runs_dir:  # nothing read back, no stages shared with another run
            t0 = time.perf_counter()
            res = run(cfg, runs_dir=runs_dir, progress=False, verbose=False)
            out[augment] = dict(seconds=round(time.perf_counter() - t0, 1), stages=res['seconds']['stages'],
                                mAP=round(100 * res['average']['mAP'], 2))
    return out

def whole_run_report(a) -> dict:
    runs = whole_run(a.whole_run, a.seed, a.scale)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f'cpu ({torch.get_num_threads()} threads)'
    return dict(device=device, scale=a.scale, target=a.whole_run, seed=a.seed,
                runs=runs, pil_over_tensor=round(runs['pil']['seconds'] / runs['tensor']['seconds'], 2))

def step_report(a) -> dict:
    torch.manual_seed(0)
    cfg = make_config(backbone=a.backbone, clip_weights=None, size_train=tuple(a.size), size_test=tuple(a.size),
                      batch_size=a.batch, precision=a.precision)
    model = build_model(cfg, a.n_ids, a.n_domains).to(a.device)
    fns = step_functions(model, cfg, a.device, a.batch, a.size, a.n_ids, a.n_domains)

    if a.device == 'cuda': torch.cuda.reset_peak_memory_stats()
    t = timed_rounds(fns, a.device, a.repeats)
    out = dict(device=torch.cuda.get_device_name() if a.device == 'cuda' else f'cpu ({torch.get_num_threads()} threads)',
               backbone=a.backbone, size=a.size, batch=a.batch, n_ids=a.n_ids, precision=a.precision if a.device == 'cuda' else 'fp32',
               seconds_per_step={k: round(v, 4) for k, v in t.items()},
               images_per_s={k: round(a.batch / v, 1) for k, v in t.items()},
               final_overhead_vs_bare=round(t['final_step'] / t['bare_backbone'] - 1, 3),
               text_full_context_vs_to_eot=round(t['text_full_context'] / t['text_to_eot'], 2))
    if a.device == 'cuda': out['peak_gpu_gib'] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    proj = projection(t, a.batch, protocol_images()['protocol_1'][0])
    out['protocol1_projection_hours'] = {k: round(v / 3600, 2) for k, v in proj.items()} | {'total': round(sum(proj.values()) / 3600, 2)}
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu'); ap.add_argument('--backbone', default='fgdi-mini-vit')
    ap.add_argument('--size', type=int, nargs=2, default=(128, 64)); ap.add_argument('--batch', type=int, default=32)
    ap.add_argument('--n-ids', type=int, default=1000); ap.add_argument('--n-domains', type=int, default=4)
    ap.add_argument('--repeats', type=int, default=5); ap.add_argument('--precision', default='fp16')
    ap.add_argument('--whole-run', metavar='TARGET', help='time one whole mini run per input pipeline instead')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--scale', default='mini', choices=('mini', 'smoke'), help='of --whole-run (smoke: for the tests)')
    ap.add_argument('--json', help='also write the result to this file')
    a = ap.parse_args()
    out = whole_run_report(a) if a.whole_run else step_report(a)
    print(json.dumps(out, indent=1))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1) + '\n')

if __name__ == '__main__': main()

"""Chunked re-ID evaluation (`fgdi.eval.evaluate`) against the released full-matrix approach.

For each size Q×G: seeded random features with identity and camera structure (`fgdi.eval.clustered_problem`, like
MSMT17's test set: 3,060 identities scaled to G, 15 cameras), evaluated by
  chunked  `fgdi.eval.evaluate`: query blocks within --chunk-mb, never the full ranking;
  full     the released pipeline: the Q×G squared-Euclidean matrix in torch (`euclidean_distance`), then
           `reference_eval_func` (np.argsort of the whole matrix, a Python loop over queries);
           skipped when its estimated peak exceeds --full-limit-gb.
Each method runs in a fresh subprocess; peak memory is that process's peak RSS during the evaluation minus its
RSS just before (features already in memory); with --device cuda the chunked method runs on the GPU and its peak
is torch's peak GPU allocation beyond the features. Prints wall time, peak memory, ratios and whether metrics agree.

  python bench/eval_bench.py                                  # all sizes, up to MSMT17 (several minutes)
  python bench/eval_bench.py --sizes 1000x5000 --chunk-mb 64
"""
import argparse, json, re, resource, subprocess, sys, time
import numpy as np, torch
from fgdi.eval import evaluate, reference_eval_func, full_matrix_gb, clustered_problem

SIZES = '1000x5000,3368x15913,8000x50000,11659x82161'

def make_features(n_query, n_gallery, dim, seed):
    "MSMT17-like structure: 3,060 identities at G = 82,161 (scaled with G), 15 cameras; mAP well away from 0 and 1."
    return clustered_problem(n_query, n_gallery, dim, n_ids=max(50, round(3060 * n_gallery / 82161)), n_cams=15,
                             noise=3.0, cam_shift=0.5, seed=seed)

def _rss(field):
    return int(re.search(rf'{field}:\s+(\d+) kB', open('/proc/self/status').read()).group(1)) * 1024

def _reset_peak():
    "Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False where not allowed."
    try: open('/proc/self/clear_refs', 'w').write('5'); return True
    except OSError: return False

def full_matrix(qf, gf, qp, gp, qc, gc):
    "The released code: torch `euclidean_distance` (addmm on the full matrix) → NumPy `eval_func`."
    m, n = len(qf), len(gf)
    dist = torch.pow(qf, 2).sum(dim=1, keepdim=True).expand(m, n) + torch.pow(gf, 2).sum(dim=1, keepdim=True).expand(n, m).t()
    dist.addmm_(qf, gf.t(), beta=1, alpha=-2)
    cmc, mAP, mINP = reference_eval_func(dist.numpy(), qp, gp, qc, gc)
    return dict(cmc=cmc, mAP=float(mAP), mINP=float(mINP))

def _peak_meter(cuda):
    "A function returning the peak bytes allocated since this call (GPU allocator, or process RSS)."
    if cuda:
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        return lambda: torch.cuda.max_memory_allocated() - base
    exact = _reset_peak()   # else: ru_maxrss, the process's peak so far (feature generation included)
    peak = lambda: _rss('VmHWM') if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = _rss('VmRSS') if exact else peak()
    return lambda: peak() - base

def worker(method, size, args):
    torch.set_num_threads(args.threads)
    qf, gf, qp, gp, qc, gc = make_features(*size, args.dim, args.seed)
    cuda = method == 'chunked' and args.device == 'cuda'
    if cuda: qf, gf = qf.cuda(), gf.cuda()
    peak = _peak_meter(cuda)
    t = time.perf_counter()
    res = (evaluate(qf, gf, qp, gp, qc, gc, chunk_mb=args.chunk_mb, device=qf.device) if method == 'chunked'
           else full_matrix(qf, gf, qp, gp, qc, gc))
    if cuda: torch.cuda.synchronize()
    wall = time.perf_counter() - t
    print(json.dumps(dict(wall_s=wall, peak_mb=peak() / 2**20, features_mb=(qf.numel() + gf.numel()) * 4 / 2**20,
                          mAP=res['mAP'], mINP=res['mINP'], cmc=res['cmc'].tolist())))

def run(method, size, args):
    cmd = [sys.executable, __file__, '--worker', method, '--sizes', f'{size[0]}x{size[1]}', '--chunk-mb', str(args.chunk_mb),
           '--dim', str(args.dim), '--seed', str(args.seed), '--threads', str(args.threads), '--device', args.device]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode: raise RuntimeError(f'{method} {size} failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])

def compare(a, b):
    same_cmc = np.array_equal(np.float32(a['cmc']), np.float32(b['cmc']))
    d_map, d_minp = abs(a['mAP'] - b['mAP']), abs(a['mINP'] - b['mINP'])
    if same_cmc and d_map == 0 and d_minp == 0: return 'identical (bit for bit)'
    return f"CMC {'identical' if same_cmc else 'DIFFERS'}, |ΔmAP| {d_map:.1e}, |ΔmINP| {d_minp:.1e}"

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default=SIZES, help=f'comma-separated QxG list (default {SIZES})')
    p.add_argument('--chunk-mb', type=float, default=256, help='memory budget of one query block (default 256)')
    p.add_argument('--full-limit-gb', type=float, default=12, help='skip the full-matrix method above this estimated peak')
    p.add_argument('--dim', type=int, default=1280, help='feature dimension (CLIP-FGDI: 768 + 512)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2, help='torch threads (this machine: 2 cores)')
    p.add_argument('--device', default='cpu', help="where the chunked method runs ('cpu' or 'cuda'; the full-matrix one is NumPy)")
    p.add_argument('--worker', choices=('chunked', 'full'), help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]
    if args.worker: return worker(args.worker, sizes[0], args)
    gpu = f', chunked on {torch.cuda.get_device_name()}' if args.device == 'cuda' else ''
    print(f'torch {torch.__version__}, {args.threads} threads, dim {args.dim}, chunk {args.chunk_mb:g} MB, seed {args.seed}{gpu}')
    for q, g in sizes:
        c = run('chunked', (q, g), args)
        print(f'\n{q:,} x {g:,} (features {c["features_mb"]:.0f} MB): mAP {100*c["mAP"]:.4f}  R1 {100*c["cmc"][0]:.4f}  mINP {100*c["mINP"]:.4f}')
        print(f'  chunked: {c["wall_s"]:8.1f} s  peak +{c["peak_mb"]:8.0f} MB' + (' (GPU)' if args.device == 'cuda' else ''))
        est = full_matrix_gb(q, g)
        if est > args.full_limit_gb:
            print(f'  full   : skipped: needs ~{est:.1f} GB (> --full-limit-gb {args.full_limit_gb:g}) beyond the features'); continue
        f = run('full', (q, g), args)
        print(f'  full   : {f["wall_s"]:8.1f} s  peak +{f["peak_mb"]:8.0f} MB   (estimate {1024*est:.0f} MB)')
        print(f'  ratio full/chunked: time {f["wall_s"]/c["wall_s"]:.2f}x, memory {f["peak_mb"]/max(c["peak_mb"], 1):.1f}x;  metrics: {compare(c, f)}')

if __name__ == '__main__': main()

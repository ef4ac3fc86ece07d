"""fgdi's exact re-ID evaluation (`fgdi.eval.evaluate`) against the released full-matrix approach and torchreid's.

For each size Q×G: seeded random features with identity and camera structure (`fgdi.eval.clustered_problem`, like
MSMT17's test set: 3,060 identities scaled to G, 15 cameras), evaluated by
  fgdi       `fgdi.eval.evaluate`: distance blocks within --chunk-mb, each scored without sorting a row;
  reference  the released pipeline: the Q×G squared-Euclidean matrix in torch (`euclidean_distance`), then
             `reference_eval_func` (np.argsort of the whole matrix, a Python loop over queries);
  torchreid  the same distance matrix, then torchreid's `evaluate_rank` (its Cython version when the installed
             package has it, else its NumPy one). torchreid is not a dependency of fgdi: it is installed with
             `pip install --no-deps --target --torchreid-dir torchreid` on first use and only its
             `reid/metrics/rank.py` is loaded. --no-torchreid skips it.
The full-matrix methods are skipped when their estimated peak exceeds --full-limit-gb. Each method runs in a fresh
subprocess, --repeats times in interleaved rounds (the run with the median time is reported); its time is split into
distances and metrics; peak memory is the process's peak RSS during the evaluation minus its RSS just before
(features already in memory); with --device cuda fgdi runs on the GPU and its peak is torch's peak GPU allocation
beyond the features. Prints a summary and writes JSON (--json) with the times, the ratios to fgdi (from features,
and metrics only) and whether the metrics agree.

  nice -n 10 python bench/eval_bench.py --sizes 3000x20000 --repeats 3 --json eval_bench.json   # ~8 min
  python bench/eval_bench.py --no-torchreid                          # up to MSMT17 (several minutes)
"""
import argparse, importlib.util, json, os, platform, re, resource, subprocess, sys, time, warnings
import numpy as np, torch
from fgdi.eval import evaluate, reference_eval_func, full_matrix_gb, clustered_problem

SIZES = '1000x5000,3368x15913,8000x50000,11659x82161'
METHODS = ('fgdi', 'reference', 'torchreid')

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

def _peak_meter(cuda):
    "A function returning the peak bytes allocated since this call (GPU allocator, or process RSS)."
    if cuda:
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        return lambda: torch.cuda.max_memory_allocated() - base
    exact = _reset_peak()   # else: ru_maxrss, the process's peak so far (feature generation included)
    peak = lambda: _rss('VmHWM') if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = _rss('VmRSS') if exact else peak()
    return lambda: peak() - base

def full_distances(qf, gf):
    "The released code's `euclidean_distance`: torch addmm on the full Q×G matrix → NumPy."
    m, n = len(qf), len(gf)
    dist = (torch.pow(qf, 2).sum(dim=1, keepdim=True).expand(m, n) +
            torch.pow(gf, 2).sum(dim=1, keepdim=True).expand(n, m).t())
    return dist.addmm_(qf, gf.t(), beta=1, alpha=-2).numpy()

def torchreid_rank(directory):
    "torchreid's `reid/metrics/rank.py` as a module (pip-installed into `directory` on first use), and a note."
    path = os.path.join(directory, 'torchreid', 'reid', 'metrics', 'rank.py')
    if not os.path.exists(path):
        pip = [sys.executable, '-m', 'pip', 'install', '-q', '--no-deps', '--target', directory, 'torchreid']
        out = subprocess.run(pip, capture_output=True, text=True)
        if out.returncode or not os.path.exists(path):
            raise RuntimeError(f'pip could not install torchreid into {directory}: {out.stderr[-500:]}')
    spec = importlib.util.spec_from_file_location('torchreid_rank', path)
    rank = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); spec.loader.exec_module(rank)
    version = next((d[len('torchreid-'):-len('.dist-info')] for d in os.listdir(directory)
                    if d.startswith('torchreid-') and d.endswith('.dist-info')), 'unknown')
    cython = rank.IS_CYTHON_AVAI
    missing = 'NumPy evaluate_py: the PyPI package ships no compiled rank_cy (nor its .pyx), so no Cython evaluation'
    note = f'torchreid {version} from PyPI, ' + ('Cython evaluate_cy' if cython else missing)
    return rank, dict(version=version, cython=cython, note=note)

class _Timed:
    "Wraps a generator of distance blocks and adds up the time spent producing them."
    def __init__(self, gen): self.gen, self.seconds = gen, 0.
    def __iter__(self):
        while True:
            t = time.perf_counter()
            try: item = next(self.gen)
            except StopIteration: return
            finally: self.seconds += time.perf_counter() - t
            yield item

def _run_fgdi(qf, gf, labels, args):
    import fgdi.eval as E
    qf, gf = E._query_gallery(qf, gf, 'sqeuclidean', qf.device)
    chunks = _Timed(E._distance_chunks(qf, gf, E.chunk_rows(len(gf), args.chunk_mb)))
    res = E.evaluate_chunks(chunks, *E._check_labels(len(qf), len(gf), *labels))
    return chunks.seconds, dict(mAP=res['mAP'], mINP=res['mINP'], cmc=res['cmc'].tolist())

def _run_full(method, qf, gf, labels, args):
    t = time.perf_counter(); dist = full_distances(qf, gf); t_dist = time.perf_counter() - t
    if method == 'reference':
        cmc, mAP, mINP = reference_eval_func(dist, *labels)
        return t_dist, dict(mAP=float(mAP), mINP=float(mINP), cmc=cmc.tolist())
    rank, info = torchreid_rank(args.torchreid_dir)
    cmc, mAP = rank.evaluate_rank(dist, *labels, max_rank=50, use_cython=True)
    return t_dist, dict(mAP=float(mAP), mINP=None, cmc=np.asarray(cmc).tolist(), **info)

def worker(method, size, args):
    torch.set_num_threads(args.threads)
    qf, gf, qp, gp, qc, gc = make_features(*size, args.dim, args.seed)
    labels = (qp, gp, qc, gc)
    cuda = method == 'fgdi' and args.device == 'cuda'
    if cuda: qf, gf = qf.cuda(), gf.cuda()
    if method == 'torchreid': torchreid_rank(args.torchreid_dir)   # install / load outside the timed region
    peak = _peak_meter(cuda)
    t = time.perf_counter()
    t_dist, res = _run_fgdi(qf, gf, labels, args) if method == 'fgdi' else _run_full(method, qf, gf, labels, args)
    if cuda: torch.cuda.synchronize()
    wall = time.perf_counter() - t
    print(json.dumps(dict(res, wall_s=wall, distances_s=t_dist, metrics_s=wall - t_dist, peak_mb=peak() / 2**20,
                          features_mb=(qf.numel() + gf.numel()) * 4 / 2**20)))

def run(method, size, args):
    cmd = [sys.executable, __file__, '--worker', method, '--sizes', f'{size[0]}x{size[1]}',
           '--chunk-mb', str(args.chunk_mb), '--dim', str(args.dim), '--seed', str(args.seed),
           '--threads', str(args.threads), '--device', args.device, '--torchreid-dir', args.torchreid_dir]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode: raise RuntimeError(f'{method} {size} failed:\n{out.stderr[-2000:]}')
    return json.loads(out.stdout.strip().splitlines()[-1])

def compare(a, b):
    "How the metrics of two methods agree (mINP where both report it)."
    n = min(len(a['cmc']), len(b['cmc']))
    same_cmc = np.array_equal(np.float32(a['cmc'][:n]), np.float32(b['cmc'][:n]))
    d_map = abs(a['mAP'] - b['mAP'])
    d_minp = abs(a['mINP'] - b['mINP']) if a['mINP'] is not None and b['mINP'] is not None else None
    if same_cmc and d_map == 0 and d_minp in (0, None): return 'identical (bit for bit)'
    minp = f', |ΔmINP| {d_minp:.1e}' if d_minp is not None else ''
    return f"CMC {'identical' if same_cmc else 'DIFFERS'}, |ΔmAP| {d_map:.1e}{minp}"

def _ratios(results):
    "Time of each other method over fgdi's: from features (wall) and for the metrics alone."
    base = results['fgdi']
    return {f'{m}/fgdi': dict(from_features=round(r['wall_s'] / base['wall_s'], 2),
                              metrics_only=round(r['metrics_s'] / base['metrics_s'], 2))
            for m, r in results.items() if m != 'fgdi' and 'wall_s' in r}

def _median_run(runs):
    "The run with the median wall time, with every run's wall time beside it."
    median = sorted(runs, key=lambda r: r['wall_s'])[len(runs) // 2]
    return dict(median, all_wall_s=[round(r['wall_s'], 2) for r in runs])

def bench_size(q, g, args):
    est = full_matrix_gb(q, g)
    too_big = est > args.full_limit_gb and f'needs ~{est:.1f} GB (> --full-limit-gb {args.full_limit_gb:g})'
    asked = [('torchreid', args.no_torchreid and '--no-torchreid')]
    skipped = {m: why for m, why in [(m, too_big) for m in METHODS[1:]] + asked if why}
    runs = {m: [] for m in METHODS if m not in skipped}
    for _ in range(args.repeats):   # interleaved rounds: a busy spell of a shared machine hits every method alike
        for m in runs: runs[m].append(run(m, (q, g), args))
    results = {m: _median_run(runs[m]) if m in runs else dict(skipped=skipped[m]) for m in METHODS}
    agree = {f'{m} vs fgdi': compare(r, results['fgdi']) for m, r in results.items() if m != 'fgdi' and 'wall_s' in r}
    return dict(size=[q, g], full_matrix_estimate_gb=round(est, 2), results=results, ratios=_ratios(results),
                metrics=agree)

def _print(entry, cuda):
    q, g = entry['size']
    f = entry['results']['fgdi']
    print(f'\n{q:,} x {g:,} (features {f["features_mb"]:.0f} MB): mAP {100*f["mAP"]:.4f}  R1 {100*f["cmc"][0]:.4f}  '
          f'mINP {100*f["mINP"]:.4f}')
    for m, r in entry['results'].items():
        if 'skipped' in r: print(f'  {m:9s}: skipped: {r["skipped"]}'); continue
        print(f'  {m:9s}: {r["wall_s"]:7.1f} s (distances {r["distances_s"]:5.1f} s, metrics {r["metrics_s"]:6.1f} s)  '
              f'peak +{r["peak_mb"]:6.0f} MB' + (' (GPU)' if cuda and m == 'fgdi' else '') +
              (f'  [{r["note"]}]' if 'note' in r else ''))
    for k, v in entry['ratios'].items():
        print(f'  {k}: {v["from_features"]:.2f}x from features, {v["metrics_only"]:.2f}x metrics only;  '
              f'metrics: {entry["metrics"][k.split("/")[0] + " vs fgdi"]}')

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', default=SIZES, help=f'comma-separated QxG list (default {SIZES})')
    p.add_argument('--chunk-mb', type=float, default=256, help='memory budget of one query block (default 256)')
    p.add_argument('--full-limit-gb', type=float, default=12, help='skip full-matrix methods above this peak')
    p.add_argument('--dim', type=int, default=1280, help='feature dimension (CLIP-FGDI: 768 + 512)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=2, help='torch threads (this machine: 2 cores)')
    p.add_argument('--device', default='cpu', help="where fgdi runs ('cpu' or 'cuda'; the full-matrix ones are NumPy)")
    p.add_argument('--torchreid-dir', default=os.path.join(os.environ.get('TMPDIR', '/tmp'), 'fgdi-bench-torchreid'),
                   help='where torchreid is pip-installed for the benchmark (never into the environment)')
    p.add_argument('--no-torchreid', action='store_true', help="skip torchreid's evaluation")
    p.add_argument('--repeats', type=int, default=1, help='runs of each method, interleaved; the median is reported')
    p.add_argument('--json', help='write the results here as JSON')
    p.add_argument('--worker', choices=METHODS, help=argparse.SUPPRESS)
    args = p.parse_args()
    sizes = [tuple(int(v) for v in s.split('x')) for s in args.sizes.split(',')]
    if args.worker: return worker(args.worker, sizes[0], args)
    cuda = args.device == 'cuda'
    setup = dict(torch=torch.__version__, numpy=np.__version__, threads=args.threads, repeats=args.repeats,
                 dim=args.dim, chunk_mb=args.chunk_mb, seed=args.seed, cpu=platform.processor() or platform.machine(),
                 cores=os.cpu_count(), load_avg_1min=os.getloadavg()[0],
                 device=torch.cuda.get_device_name() if cuda else 'cpu',
                 date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    print(', '.join(f'{k} {v}' for k, v in setup.items()))
    entries = []
    for q, g in sizes:
        entries.append(bench_size(q, g, args)); _print(entries[-1], cuda)
    if args.json:
        with open(args.json, 'w') as f: json.dump(dict(setup=setup, sizes=entries), f, indent=1)
        print(f'\nwrote {args.json}')

if __name__ == '__main__': main()

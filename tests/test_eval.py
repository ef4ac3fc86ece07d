"The chunked evaluator must reproduce the released `eval_func` (and k-reciprocal re-ranking) on hard random problems."
import math
import numpy as np, pytest, torch
from scipy import stats
from fgdi.eval import (evaluate, evaluate_distmat, reference_eval_func, pairwise_distances, random_problem,
                       assert_same_metrics, re_ranking, mean_ci, extract_features, BYTES_PER_DISTANCE)

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

def _mb(rows, n_gallery): return rows * n_gallery * BYTES_PER_DISTANCE / 2**20

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('seed', range(40))
def test_equal_to_reference(seed, device):
    "Junk items, unmatched queries and ties (integer features), scored in blocks of 1..64 rows."
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(5, 80)), int(rng.integers(60, 300))
    qf, gf, qp, gp, qc, gc = p = random_problem(nq, ng, dim=int(rng.integers(2, 10)), n_ids=int(rng.integers(5, 60)),
                                                n_cams=int(rng.integers(2, 6)), levels=[2, 3, 5, None][seed % 4], seed=seed)
    dist = pairwise_distances(qf, gf).numpy()
    if not np.any((qp[:, None] == gp[None]) & (qc[:, None] != gc[None])): pytest.skip('no valid query')
    ref = reference_eval_func(dist, qp, gp, qc, gc)
    assert_same_metrics(evaluate_distmat(dist, qp, gp, qc, gc, chunk_mb=_mb(3, ng), device=device), ref)
    if device == 'cpu' or seed % 4 != 3:   # a GPU's float products may differ in the last bit; integer features are exact
        assert_same_metrics(evaluate(*p, chunk_mb=_mb(int(rng.integers(1, 64)), ng), device=device), ref)

def _distances(kind, nq, ng, rng):
    "Distance matrices that stress the histogram bins of the ranking (few distinct values, signs, scales, extremes)."
    if kind == 'two_values': return rng.integers(0, 2, (nq, ng)).astype(np.float32)            # bins of ~G/2 items
    if kind == 'signed_zeros': return rng.choice(np.float32([-1e-7, -0.0, 0.0, 1e-7, 3.0]), (nq, ng))
    if kind == 'row_scales': return (rng.random((nq, ng)) * 10.0 ** rng.integers(-6, 7, (nq, 1))).astype(np.float32)
    if kind == 'extremes':                                                                       # one row spans ~2^254
        d = rng.random((nq, ng)).astype(np.float32); d[0, :3] = [1e-38, 3e38, -3e38]; return d
    if kind == 'tight_cluster': return np.float32(25000) + rng.normal(0, 1, (nq, ng)).astype(np.float32)   # few ulps apart

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('kind', ['two_values', 'signed_zeros', 'row_scales', 'extremes', 'tight_cluster'])
def test_ranking_bins_are_exact(kind, device):
    "The histogram + own-bin ranking equals the full stable argsort wherever values crowd, tie, change sign or span far."
    rng = np.random.default_rng(7)
    nq, ng = 40, 3000
    qp, gp = rng.integers(0, 30, nq), rng.integers(0, 30, ng)
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    dist = _distances(kind, nq, ng, rng)
    ref = reference_eval_func(dist, qp, gp, qc, gc)
    assert_same_metrics(evaluate_distmat(dist, qp, gp, qc, gc, chunk_mb=_mb(16, ng), device=device), ref)

def test_ties_follow_gallery_index():
    "All distances equal: the stable order puts the lowest gallery index first."
    dist = np.zeros((2, 6), np.float32)
    qp, gp = np.array([1, 2]), np.array([0, 1, 2, 1, 2, 0])
    qc, gc = np.array([0, 0]), np.array([1, 1, 1, 1, 1, 1])
    res = evaluate_distmat(dist, qp, gp, qc, gc, max_rank=6)
    assert res['mAP'] == pytest.approx(((1/2 + 2/4) / 2 + (1/3 + 2/5) / 2) / 2)
    assert_same_metrics(res, reference_eval_func(dist, qp, gp, qc, gc, max_rank=6))

def test_negative_zero_and_negative_distances():
    "-0.0 ties with +0.0; tiny negative distances (rounding) rank before zero, as in NumPy."
    dist = np.array([[0.0, -0.0, -1e-7, 1.0, -2e-7, 0.0]], np.float32)
    qp, gp, qc, gc = np.array([1]), np.array([0, 1, 1, 0, 2, 1]), np.array([0]), np.array([1, 1, 1, 1, 1, 1])
    assert_same_metrics(evaluate_distmat(dist, qp, gp, qc, gc, max_rank=6), reference_eval_func(dist, qp, gp, qc, gc, max_rank=6))

def test_short_list_after_junk_removal():
    "Fewer than max_rank items left after removing junk (the released code fails there): CMC stays at 1."
    qf, gf, qp, gp, qc, gc = random_problem(10, 12, n_ids=3, n_cams=2, seed=3)
    ref = reference_eval_func(pairwise_distances(qf, gf).numpy(), qp, gp, qc, gc)
    with pytest.warns(UserWarning, match='exceeds the gallery size'): res = evaluate(qf, gf, qp, gp, qc, gc)
    assert_same_metrics(res, ref)
    assert len(res['cmc']) == 12

def test_cosine_equals_normalised_sqeuclidean():
    qf, gf, qp, gp, qc, gc = random_problem(30, 100, levels=None, seed=5)
    n = lambda x: torch.nn.functional.normalize(x, dim=1)
    assert_same_metrics(evaluate(qf, gf, qp, gp, qc, gc, metric='cosine'),
                        reference_eval_func(pairwise_distances(n(qf), n(gf)).numpy(), qp, gp, qc, gc))

@pytest.mark.parametrize('bad, msg', [
    (dict(qf=torch.full((3, 4), float('nan'))), 'qf has NaN/inf'),
    (dict(gf=torch.ones(0, 4)), 'gf is empty'),
    (dict(gf=torch.ones(5, 3)), 'qf has 4 dims but gf has 3'),
    (dict(qf=torch.ones(3)), 'qf must be a 2-D'),
    (dict(g_pids=np.arange(4)), 'g_pids has shape (4,) but there are 5'),
    (dict(q_camids=np.zeros(3, np.float32)), 'q_camids must hold integers'),
    (dict(metric='manhattan'), 'not one of'),
])
def test_clear_errors(bad, msg):
    args = dict(qf=torch.ones(3, 4), gf=torch.ones(5, 4), q_pids=np.arange(3), g_pids=np.arange(5),
                q_camids=np.zeros(3, int), g_camids=np.ones(5, int), max_rank=5) | bad
    with pytest.raises((ValueError, TypeError), match=msg.replace('(', r'\(').replace(')', r'\)')): evaluate(**args)

def _zhong_re_ranking(qf, gf, k1, k2, lam):
    "Loop transcription of the original k-reciprocal re-ranking (Zhong et al. 2017), float64, for comparison."
    nq, feat = len(qf), np.concatenate([qf, gf]).astype(np.float64)
    n = len(feat)
    sq = (feat ** 2).sum(1)
    d = sq[:, None] + sq[None] - 2 * feat @ feat.T
    d = np.transpose(d / np.max(d, axis=0))
    rank = np.argsort(d, axis=1, kind='stable')
    V = np.zeros((n, n))
    def recip(i, k):
        fwd = rank[i, :k + 1]
        return fwd[np.where(rank[fwd, :k + 1] == i)[0]]
    for i in range(n):
        R = recip(i, k1)
        E = R
        for c in R:
            Rc = recip(c, int(np.around(k1 / 2)))
            if len(np.intersect1d(Rc, R)) > 2 / 3 * len(Rc): E = np.append(E, Rc)
        E = np.unique(E)
        w = np.exp(-d[i, E])
        V[i, E] = w / w.sum()
    if k2 != 1: V = np.stack([V[rank[i, :k2]].mean(0) for i in range(n)])
    jac = np.stack([1 - (m := np.minimum(V[i], V).sum(1)) / (2 - m) for i in range(nq)])
    return (jac * (1 - lam) + d[:nq] * lam)[:, nq:]

@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('k1, k2, seed', [(20, 6, 0), (5, 1, 1), (7, 3, 2)])
def test_re_ranking_matches_original_algorithm(k1, k2, seed, device):
    qf, gf, *_ = random_problem(25, 70, dim=6, levels=None, seed=seed)
    ref = _zhong_re_ranking(qf.numpy(), gf.numpy(), k1, k2, 0.3)
    for mb in (0.05, 256):
        got = re_ranking(qf, gf, k1, k2, 0.3, chunk_mb=mb, device=device)
        np.testing.assert_allclose(got.double().cpu().numpy(), ref, atol=2e-5)

def test_mean_ci_is_the_t_interval():
    v = [0.81, 0.83, 0.80, 0.84]
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    ci = mean_ci(v)
    assert (ci.low, ci.high) == pytest.approx((lo, hi), abs=1e-12)
    with pytest.warns(UserWarning, match='undefined'): assert math.isnan(mean_ci([0.5]).high)

def test_extract_features_autocast_is_ignored_on_cpu():
    model = torch.nn.Linear(4, 3)
    loader = [(torch.randn(5, 4), torch.arange(5), torch.zeros(5, dtype=torch.long), 'extra')]
    f, p, c = extract_features(model, loader, autocast=True, progress=False)
    assert f.dtype == torch.float32 and torch.equal(f, model(loader[0][0]).detach()) and p.tolist() == list(range(5))

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_extract_features_autocast_on_cuda():
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 32)).cuda()
    x = torch.randn(20, 64)
    loader = [(x[:10], torch.arange(10), torch.zeros(10, dtype=torch.long)), (x[10:], torch.arange(10), torch.ones(10, dtype=torch.long))]
    f16, _, _ = extract_features(model, loader, autocast=True, progress=False)
    f32, _, c = extract_features(model, loader, progress=False)
    assert f16.dtype == f32.dtype == torch.float32 and f16.device.type == 'cpu' and c.tolist() == [0] * 10 + [1] * 10
    assert not torch.equal(f16, f32) and torch.allclose(f16, f32, atol=2e-2)
    assert torch.allclose(f32, model(x.cuda()).detach().cpu(), atol=1e-5)

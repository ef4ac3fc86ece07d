"Extra checks of fgdi.losses and fgdi.grl: precision, gradients, edge cases, errors."
import pytest, torch
import torch.nn.functional as F
from fgdi.config import APN_KINDS, make_config
from fgdi.grl import DomainClassifier, GRL, grad_reverse
from fgdi.losses import (apn_loss, domain_loss, euclidean_dist, i2tce_loss, id_loss, prompt_losses,
                         supcon_loss, triplet_loss)


def _apn_inputs(B=8, M=5, d=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    tp_all, tn_all = torch.randn(M, d, generator=g, dtype=dtype), torch.randn(M, d, generator=g, dtype=dtype)
    y = torch.randint(0, M, (B,), generator=g)
    v = torch.randn(B, d, generator=g, dtype=dtype)
    return dict(v=v, t_pos=tp_all[y], t_neg=tn_all[y], labels=y, text_pos_all=tp_all, text_neg_all=tn_all)


def _all_losses(dtype):
    torch.manual_seed(0)
    a, b = torch.randn(12, 16, dtype=torch.float64).to(dtype), torch.randn(12, 16, dtype=torch.float64).to(dtype)
    y = torch.arange(3).repeat_interleave(4)
    out = dict(supcon=supcon_loss(a, b, y, y), id=id_loss(a[:, :5], y), tri=triplet_loss(a, y),
               tri_m=triplet_loss(a, y, margin=0.3), i2tce=i2tce_loss(a, b[:4], y))
    x = {k: (t.to(dtype) if t.is_floating_point() else t) for k, t in _apn_inputs().items()}
    out.update({f'apn_{k}': apn_loss(k, **x) for k in APN_KINDS})
    return out


def test_float32_matches_float64():
    lo, hi = _all_losses(torch.float32), _all_losses(torch.float64)
    for k in hi: assert torch.allclose(lo[k].double(), hi[k], rtol=1e-5, atol=1e-5), k


@pytest.mark.parametrize('kind', APN_KINDS)
def test_apn_gradients_finite_and_only_into_v(kind):
    x = _apn_inputs()
    x['t_pos'][0] = x['v'][0]  # a zero distance: the clamp keeps the ED gradient finite
    v = x.pop('v').requires_grad_()
    texts = {k: x[k].clone().requires_grad_() for k in ('t_pos', 't_neg', 'text_pos_all', 'text_neg_all')}
    loss = apn_loss(kind, v, **{**x, **texts})
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(v.grad).all()
    assert all(t.grad is None for t in texts.values())


def test_triplet_gradient_finite_with_duplicate_features():
    f = torch.randn(8, 6, dtype=torch.float64)
    f[1] = f[0]
    f.requires_grad_()
    triplet_loss(f, torch.arange(4).repeat_interleave(2)).backward()
    assert torch.isfinite(f.grad).all()


@pytest.mark.parametrize('seed', range(3))
def test_triplet_equals_code_mining_on_pk_batches(seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 10, generator=g, dtype=torch.float64), torch.arange(8).repeat_interleave(4)
    y = y[torch.randperm(32, generator=g)]
    dist, same = euclidean_dist(x, x), y[:, None] == y[None]
    d_ap, d_an = dist[same].view(32, -1).max(1).values, dist[~same].view(32, -1).min(1).values
    assert torch.allclose(triplet_loss(x, y), F.soft_margin_loss(d_an - d_ap, torch.ones(32, dtype=x.dtype)))
    assert torch.allclose(triplet_loss(x, y, margin=0.3), F.margin_ranking_loss(d_an, d_ap, torch.ones(32, dtype=x.dtype), margin=0.3))


def test_batch_of_one():
    x = _apn_inputs(B=1)
    for k in APN_KINDS: assert torch.isfinite(apn_loss(k, **x))
    v, t, y = x['v'], x['t_pos'], x['labels']
    assert torch.isclose(supcon_loss(v, t, y, y), torch.zeros((), dtype=v.dtype))  # one candidate: log softmax = 0
    assert torch.isfinite(id_loss(v[:, :5], torch.tensor([2]))) and torch.isfinite(i2tce_loss(v, x['text_pos_all'], y))
    with pytest.raises(ValueError, match='at least two identities'): triplet_loss(v, y)
    dc = DomainClassifier(16, 3).train()
    lp = dc(GRL(0.1)(v.float()))
    assert lp.shape == (1, 3) and torch.isfinite(lp).all()


def test_prompt_stage_domain_gradient_is_reversed():
    "Through GRL(0.1) the prompt side receives -0.1 x alpha x dL_domain/dt (the -0.001 of reference §1.6)."
    torch.manual_seed(0)
    cfg, y, doms = make_config(), torch.arange(4).repeat_interleave(2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    v, t0, dc = torch.randn(8, 16), torch.randn(8, 16), DomainClassifier(16, 3)
    def grad_t(reverse):
        t = t0.clone().requires_grad_()
        lp = dc(grad_reverse(t, cfg.grl_lambda) if reverse else t)
        prompt_losses(v, t, y, cfg, logprobs=lp, domains=doms)['total'].backward()
        return t.grad
    t = t0.clone().requires_grad_()
    (supcon_loss(v, t, y, y) + supcon_loss(t, v, y, y)).backward()
    g_dom_plain, g_dom_rev = grad_t(False) - t.grad, grad_t(True) - t.grad
    assert torch.allclose(g_dom_rev, -cfg.grl_lambda * g_dom_plain, atol=1e-6)


def test_domain_loss_on_logprobs_equals_nll():
    lp = torch.randn(5, 4).log_softmax(1)
    d = torch.tensor([0, 3, 1, 2, 0])
    assert torch.allclose(domain_loss(lp, d), F.nll_loss(lp, d))


@pytest.mark.parametrize('call,msg', [
    (lambda x: apn_loss('triplet', **x), "unknown kind 'triplet'"),
    (lambda x: apn_loss('con', **{**x, 'text_neg_all': None}), 'needs `text_neg_all`'),
    (lambda x: apn_loss('apnce', **{**x, 'labels': None}), 'needs `labels`'),
    (lambda x: apn_loss('ed', **{**x, 't_neg': None}), 'needs `t_neg`'),
    (lambda x: i2tce_loss(x['v'], x['text_pos_all'][:2], x['labels'] * 0 + 4), 'text_all has only 2 rows'),
])
def test_errors_name_the_problem(call, msg):
    with pytest.raises(ValueError, match=msg.replace('(', r'\(').replace('`', '.')): call(_apn_inputs())

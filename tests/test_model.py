"CLIP loading (files, TorchScript, tags), image-tower adaptation, the prompt splice and the re-ID model, on random weights."
import time, warnings
import open_clip, pytest, torch
import fgdi.clip as fc
from fgdi.clip import (build_clip, new_clip, image_features, feature_dims, resize_pos_embed, read_state_dict,
                       weights_file, is_torchscript)
from fgdi.prompts import PromptLearner, TextEncoder, id_template, domain_template
from fgdi.config import make_config
from fgdi.model import build_model

TEXT = open_clip.tokenize(['a photo of a person in a red coat.'])

def _same_clip(a, b, size):
    "Image features and text features of two CLIP models agree to 1e-6."
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        for fa, fb in zip(image_features(a.visual, x), image_features(b.visual, x)): torch.testing.assert_close(fa, fb, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.encode_text(TEXT), b.encode_text(TEXT), atol=1e-6, rtol=0)

def _act(m): return type(m.visual.transformer.resblocks[0].mlp.gelu).__name__

@pytest.fixture
def ref():
    torch.manual_seed(0)
    return new_clip('fgdi-tiny-vit', quick_gelu=True).eval()

# --- weights from files ---------------------------------------------------------------------------------------------
def test_openai_state_dict_file(ref, tmp_path):
    sd = {**ref.state_dict(), 'input_resolution': torch.tensor(64), 'context_length': torch.tensor(77), 'vocab_size': torch.tensor(49408)}
    torch.save(sd, tmp_path/'openai.pt')
    m = build_clip('fgdi-tiny-vit', weights=tmp_path/'openai.pt', size=(64, 64))
    assert _act(m) == 'QuickGELU'
    _same_clip(m, ref, (64, 64))

def test_torchscript_archive(ref, tmp_path):
    "OpenAI's release format: a TorchScript archive, read with torch.jit.load, QuickGELU switched on."
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.save(torch.jit.trace(ref, (torch.randn(1, 3, 64, 64), TEXT), check_trace=False), str(tmp_path/'ViT.pt'))
    assert is_torchscript(tmp_path/'ViT.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(Exception): torch.load(tmp_path/'ViT.pt', weights_only=True)   # why the detection is needed
        m = build_clip('fgdi-tiny-vit', weights=str(tmp_path/'ViT.pt'), size=(64, 64))
    assert _act(m) == 'QuickGELU'
    _same_clip(m, ref, (64, 64))

def test_open_clip_checkpoint_wrapped_and_safetensors(tmp_path):
    "A plain open_clip checkpoint (under 'state_dict', DataParallel 'module.' prefixes) keeps GELU; safetensors loads too."
    from safetensors.torch import save_file
    torch.manual_seed(1)
    ref = new_clip('fgdi-tiny-vit').eval()
    torch.save({'epoch': 3, 'state_dict': {f'module.{k}': v for k, v in ref.state_dict().items()}}, tmp_path/'ckpt.pt')
    save_file(ref.state_dict(), str(tmp_path/'ckpt.safetensors'))
    for f in ('ckpt.pt', 'ckpt.safetensors'):
        m = build_clip('fgdi-tiny-vit', weights=tmp_path/f, size=(64, 64))
        assert _act(m) == 'GELU' and not is_torchscript(tmp_path/f)
        _same_clip(m, ref, (64, 64))

def test_loaded_weights_then_adapted(ref, tmp_path):
    "Weights load at the native grid, then the position embedding is resized bilinearly to the (h, w) grid."
    torch.save(ref.state_dict(), tmp_path/'w.pt')
    m = build_clip('fgdi-tiny-vit', weights=tmp_path/'w.pt', size=(96, 48), quick_gelu=True)
    torch.testing.assert_close(m.visual.positional_embedding.data, resize_pos_embed(ref.visual.positional_embedding.data, (4, 4), (6, 3)))
    assert m.visual.grid_size == (6, 3)

@pytest.mark.parametrize('content', [b'', b'garbage' * 10, 'truncated'])
def test_damaged_file(ref, tmp_path, content):
    if content == 'truncated':
        torch.save(ref.state_dict(), tmp_path/'full.pt')
        content = (tmp_path/'full.pt').read_bytes()[:5000]
    (tmp_path/'bad.pt').write_bytes(content)
    with pytest.raises(ValueError, match=r'(?s)bad\.pt.*download it again'): build_clip('fgdi-tiny-vit', weights=tmp_path/'bad.pt')

def test_not_a_state_dict(tmp_path):
    torch.save([torch.zeros(3)], tmp_path/'list.pt')
    with pytest.raises(ValueError, match=r'list\.pt holds a list'): read_state_dict(tmp_path/'list.pt')

def test_weights_for_another_backbone(ref, tmp_path):
    torch.save(ref.state_dict(), tmp_path/'tiny.pt')
    with pytest.raises(ValueError, match=r'tiny\.pt does not fit.*missing tensors.*another shape.*backbone'):
        build_clip('fgdi-mini-vit', weights=tmp_path/'tiny.pt')
    sd = ref.state_dict(); sd['extra.weight'] = torch.zeros(1); del sd['ln_final.bias']
    torch.save(sd, tmp_path/'edited.pt')
    with pytest.raises(ValueError, match=r"1 missing tensors \(e\.g\. ln_final\.bias\); 1 unexpected tensors \(e\.g\. extra\.weight\)"):
        build_clip('fgdi-tiny-vit', weights=tmp_path/'edited.pt')

# --- open_clip tags: local cache only unless downloads are allowed ----------------------------------------------------
@pytest.fixture
def fake_tag(ref, tmp_path, monkeypatch):
    "Register tag 'fgdi_test' for fgdi-tiny-vit (OpenAI-style URL, QuickGELU) with an empty cache under tmp_path."
    monkeypatch.setattr(fc, 'CLIP_CACHE', tmp_path/'cache')
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, 'fgdi-tiny-vit',
                        {'fgdi_test': dict(url='https://example.invalid/0123/tiny.pt', quick_gelu=True)})
    torch.save(ref.state_dict(), tmp_path/'tiny.pt')   # an open_clip-format file: only the tag says QuickGELU
    return tmp_path/'tiny.pt'

def test_tag_not_cached_fails_fast(fake_tag):
    t0 = time.time()
    with pytest.raises(FileNotFoundError, match=r'not on this machine.*cache/tiny\.pt.*allow_download=True'): build_clip('fgdi-tiny-vit', 'fgdi_test')
    assert time.time() - t0 < 2

def test_tag_from_cache(fake_tag, ref):
    (fc.CLIP_CACHE).mkdir()
    fake_tag.rename(fc.CLIP_CACHE/'tiny.pt')
    m = build_clip('fgdi-tiny-vit', 'fgdi_test', size=(64, 64))
    assert _act(m) == 'QuickGELU'
    _same_clip(m, ref, (64, 64))

def test_tag_download_only_when_allowed(fake_tag, ref, monkeypatch):
    import huggingface_hub.constants as hc
    calls, offline = [], hc.HF_HUB_OFFLINE
    def fake_download(pcfg, **kw):
        calls.append(hc.HF_HUB_OFFLINE)
        return str(fake_tag)
    monkeypatch.setattr(open_clip, 'download_pretrained', fake_download)
    with pytest.raises(FileNotFoundError): weights_file('fgdi-tiny-vit', 'fgdi_test')
    assert calls == []
    assert weights_file('fgdi-tiny-vit', 'fgdi_test', allow_download=True) == (fake_tag, True)
    assert calls == [False] and hc.HF_HUB_OFFLINE == offline   # the hub's offline switch is lifted for the download only

def test_unknown_tag():
    with pytest.raises(ValueError, match=r"neither an existing file nor an open_clip tag of ViT-B-16 \(tags: \['openai'"): build_clip('ViT-B-16', 'openia')

# --- image-tower adaptation ------------------------------------------------------------------------------------------
def _bilinear_reference(grid, nh, nw):
    "Bilinear resize with align_corners=False written out: source = (dst + 0.5) * in/out - 0.5, clamped at 0."
    h, w, c = grid.shape
    def coords(n_out, n_in):
        src = ((torch.arange(n_out, dtype=grid.dtype) + 0.5) * n_in / n_out - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        return i0, (i0 + 1).clamp(max=n_in - 1), src - i0
    (y0, y1, wy), (x0, x1, wx) = coords(nh, h), coords(nw, w)
    wy, wx = wy[:, None, None], wx[None, :, None]
    g = lambda ys, xs: grid[ys][:, xs]
    return (1 - wy) * ((1 - wx) * g(y0, x0) + wx * g(y0, x1)) + wy * ((1 - wx) * g(y1, x0) + wx * g(y1, x1))

@pytest.mark.parametrize('new', [(5, 2), (16, 8), (2, 3), (3, 3)])
def test_resize_pos_embed_is_bilinear(new):
    pe = torch.randn(1 + 3 * 3, 4, dtype=torch.float64)
    out = resize_pos_embed(pe, (3, 3), new)
    torch.testing.assert_close(out[0], pe[0])
    torch.testing.assert_close(out[1:].reshape(*new, 4), _bilinear_reference(pe[1:].reshape(3, 3, 4), *new))

@pytest.mark.parametrize('size,stride,grid', [((224, 224), None, (14, 14)), ((256, 128), None, (16, 8)),
                                              ((256, 128), 12, (21, 10)), ((64, 32), 8, (7, 3))])
def test_vit_grid(size, stride, grid):
    m = build_clip('fgdi-tiny-vit', size=size, stride=stride)
    assert m.visual.grid_size == grid and m.visual.conv1.stride == (stride or 16,) * 2
    assert m.visual.positional_embedding.shape[0] == 1 + grid[0] * grid[1]
    with torch.no_grad(): f_last, f, f_proj = image_features(m.visual, torch.randn(1, 3, *size))
    assert (f_last.shape, f.shape, f_proj.shape) == ((1, 64), (1, 64), (1, 32))

def test_vit_features_are_the_authors():
    "f_last = CLS after block L-1 (no ln_post), f = ln_post(CLS after block L), f_proj = f @ proj; via open_clip's hooks."
    m = build_clip('fgdi-tiny-vit', size=(64, 32))
    v, x, seen = m.visual, torch.randn(2, 3, 64, 32), {}
    hooks = [v.transformer.resblocks[-2].register_forward_hook(lambda mod, i, o: seen.__setitem__('l', o)),
             v.ln_post.register_forward_hook(lambda mod, i, o: seen.__setitem__('f', o))]
    with torch.no_grad(): pooled = v(x); f_last, f, f_proj = image_features(v, x)
    for h in hooks: h.remove()
    torch.testing.assert_close(f_last, seen['l'][:, 0]); torch.testing.assert_close(f, seen['f'][:, 0])
    torch.testing.assert_close(f_proj, pooled); torch.testing.assert_close(f_proj, f @ v.proj)

def test_rn50_non_square():
    "RN50 at 256x128: layer4 at stride 1 (16x8 map), attention pool resized to it; the CLIP-ReID input size."
    torch.manual_seed(0)
    m = build_clip('RN50', size=(256, 128))
    assert feature_dims(m) == (2048, 1024) and m.visual.grid_size == (16, 8)
    assert m.visual.attnpool.positional_embedding.shape == (1 + 16 * 8, 2048)
    x = torch.randn(1, 3, 256, 128)
    with torch.no_grad(): (f_last, f, f_proj), pooled = image_features(m.visual, x), m.visual(x)
    assert (f_last.shape, f.shape, f_proj.shape) == ((1, 1024), (1, 2048), (1, 1024))
    torch.testing.assert_close(f_proj, pooled)
    with pytest.raises(ValueError, match='applies to ViT'): build_clip('fgdi-tiny-rn', stride=12)

def test_other_backbones_dims():
    assert feature_dims(new_clip('RN101')) == (2048, 512)
    b32 = build_clip('ViT-B-32')
    assert feature_dims(b32) == (768, 512) and b32.visual.grid_size == (7, 7)

def test_unknown_backbone():
    with pytest.raises(ValueError, match=r"backbone='ViT-H-14' is not supported"): build_clip('ViT-H-14')

# --- prompts ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('m,n', [(4, 1), (2, 3)])
def test_splice_matches_hand_built_prompt(m, n):
    "Prompt = token embeddings of the template with the 'x' rows replaced by the learnable tokens (ID ones detached)."
    torch.manual_seed(0)
    clip = new_clip('fgdi-tiny-vit')
    pl = PromptLearner(clip, n_ids=7, n_domains=3, n_id_ctx=m, n_dm_ctx=n)
    labels, domains = torch.tensor([6, 0, 6]), torch.tensor([1, 2, 0])
    for text, dom in ((id_template(m), None), (domain_template(m, n), domains)):
        ids = open_clip.tokenize([text])[0]
        x_rows = (ids == 343).nonzero().flatten()        # 343 = 'x</w>' in CLIP's BPE
        want = clip.token_embedding(ids).detach().expand(3, -1, -1).clone()
        want[:, x_rows[:m]] = pl.id_ctx[labels].detach()
        if dom is not None: want[:, x_rows[m:]] = pl.dm_ctx[dom].detach()
        got = pl(labels, dom)
        torch.testing.assert_close(got, want, atol=0, rtol=0)
        assert pl.eot_index(dom is not None) == ids.argmax().item() == x_rows[-1].item() + (3 if dom is None else 4)  # '. EOT' / 'data set . EOT'

def test_text_encoder_uses_causal_mask():
    torch.manual_seed(0)
    clip = new_clip('fgdi-tiny-vit').eval()
    te = TextEncoder(clip)
    ids = open_clip.tokenize([id_template(), 'a person.'])
    eot = ids.argmax(-1)
    torch.testing.assert_close(te(clip.token_embedding(ids), eot), clip.encode_text(ids), atol=1e-6, rtol=0)
    assert te.attn_mask.shape == (77, 77) and torch.isinf(te.attn_mask[0, 1]) and te.attn_mask[1, 0] == 0

# --- the re-ID model -------------------------------------------------------------------------------------------------
def test_model_state_dict_round_trip(tmp_path):
    cfg = make_config(backbone='fgdi-tiny-rn', clip_weights=None, size_train=(64, 32))
    torch.manual_seed(0); a = build_model(cfg, n_ids=5, n_domains=2)
    torch.manual_seed(1); b = build_model(cfg, n_ids=5, n_domains=2)
    torch.save(a.state_dict(), tmp_path/'m.pt')
    b.load_state_dict(torch.load(tmp_path/'m.pt', weights_only=True))
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad(): torch.testing.assert_close(a.eval()(x), b.eval()(x))
    assert a(x).shape == (3, a.in_planes + a.in_planes_proj) == (3, 256 + 32)

def test_model_heads_and_freezing():
    cfg = make_config(backbone='fgdi-tiny-vit', clip_weights=None, size_train=(64, 32), grl_lambda=0.25)
    m = build_model(cfg, n_ids=9, n_domains=4)
    assert m.classifier.bias is None and m.classifier_proj.bias is None and m.classifier.out_features == 9
    assert abs(m.classifier.weight.std().item() - 0.001) < 3e-4
    for bn in (m.bottleneck, m.bottleneck_proj):
        assert not bn.bias.requires_grad and bn.weight.requires_grad and (bn.weight == 1).all() and (bn.bias == 0).all()
    assert not any(p.requires_grad for p in m.text_encoder.parameters())
    assert m.grl.lambd == 0.25 and m.dcgrl.fc2.out_features == 4 and m.dc.fc1.in_features == 32
    assert {n for n, p in m.named_parameters() if p.requires_grad and n.startswith('prompt_learner')} == {'prompt_learner.id_ctx', 'prompt_learner.dm_ctx'}

def test_vit_b16_test_feature():
    torch.manual_seed(0)
    m = build_model(make_config(clip_weights=None), n_ids=4, n_domains=2).eval()
    with torch.no_grad(): feat = m(torch.randn(2, 3, 224, 224))
    assert feat.shape == (2, 1280) and torch.isfinite(feat).all()

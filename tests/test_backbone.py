"""PromptedViT against upstream mmpretrain and against written-out method.md
equations, on tiny random archs."""

import pytest
import torch
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.models import METHODS as TABLE
from lspt_mm.models import PromptedViT

from mmpretrain.models import VisionTransformer

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=8)
# every method of the table that PromptedViT builds by name (LoRA wraps it:
# tests/test_peft_baselines.py)
METHODS = [name for name, spec in TABLE.items() if not spec.wrapper]


def make(method='lspt', num_prompts=3, **kwargs):
    torch.manual_seed(0)
    vit = PromptedViT(
        prompt_method=method,
        num_prompts=num_prompts,
        prompt_dropout=0.0,
        **{**KW, **kwargs},
    )
    vit.init_weights()
    with torch.no_grad():  # make every parameter non-trivial
        for name, p in vit.named_parameters():
            if 'prompt_method' in name and p.dim() == 1:
                p.add_(torch.randn_like(p))  # gates, temperatures, biases
        for p in vit.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return vit.eval()


def images(b=2, size=32):
    torch.manual_seed(1)
    return torch.randn(b, 3, size, size)


# ---------------------------------------------------------------- (a)
@pytest.mark.parametrize(
    'out_type', ['raw', 'cls_token', 'featmap', 'avg_featmap']
)
@pytest.mark.parametrize('size', [32, 48])
def test_no_prompts_equals_upstream_vit(out_type, size):
    ours = make('none', out_type=out_type, out_indices=[1, 3])
    upstream = VisionTransformer(out_type=out_type, out_indices=[1, 3], **KW)
    upstream.load_state_dict(ours.state_dict(), strict=True)
    upstream.eval()
    x = images(size=size)
    for a, b in zip(ours(x), upstream(x)):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-5


# ---------------------------------------------------------------- (b)
def qkv_weight(attn):
    """W_qkv, with LoRA's ``W_0 + (α / r)·B·A`` when LoRA wraps it."""
    qkv = attn.qkv
    if hasattr(qkv, 'original_layer'):
        w0 = qkv.original_layer.weight
        return w0 + qkv.scaling * qkv.lora_up.weight @ qkv.lora_down.weight
    return qkv.weight


def qkv_bias(attn):
    return getattr(attn.qkv, 'original_layer', attn.qkv).bias


def written_cross_attention(layer, x, prompts):
    """CVPT's CrossAttention with the block's own frozen weights: queries
    the raw tokens, keys and values the prompts, softmax(q·kᵀ/√d)·v, W_o."""
    attn, (B, T, D), N = layer.attn, x.shape, prompts.shape[1]
    w = (
        attn.qkv.original_layer.weight
        if hasattr(attn.qkv, 'original_layer')
        else attn.qkv.weight
    )
    b = qkv_bias(attn)
    heads, d = attn.num_heads, attn.head_dims

    def split(t, n):
        return t.reshape(B, n, heads, d).transpose(1, 2)

    q = split(x @ w[:D].T + b[:D], T)
    k = split(prompts @ w[D : 2 * D].T + b[D : 2 * D], N)
    v = split(prompts @ w[2 * D :].T + b[2 * D :], N)
    a = ((q @ k.transpose(-2, -1)) / d**0.5).softmax(-1) @ v
    return F.linear(
        a.transpose(1, 2).reshape(B, T, D), attn.proj.weight, attn.proj.bias
    )


def written_out_block(layer, x, tau=None, adapter=None, cross=None):
    """x + Attn(LN1 x) then x + MLP(LN2 x), attention logits / τ; with an
    adapter ``(W_d, b_d, W_u, b_u)`` the MLP branch f becomes
    f + W_u·GELU(W_d·f + b_d) + b_u (Pfeiffer, VPT's adapter_block.py);
    with ``cross = (P, s)`` (CVPT's insert 3) ``x + s·CA(x, P)`` between
    the two."""
    attn, (B, T, D) = layer.attn, x.shape
    h = layer.ln1(x)
    q, k, v = (
        F.linear(h, qkv_weight(attn), qkv_bias(attn))
        .reshape(B, T, 3, attn.num_heads, attn.head_dims)
        .permute(2, 0, 3, 1, 4)
    )
    logits = q @ k.transpose(-2, -1) / attn.head_dims**0.5
    if tau is not None:
        logits = logits / tau
    a = (logits.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
    x = x + F.linear(a, attn.proj.weight, attn.proj.bias)
    if cross is not None:
        prompts, scale = cross
        x = x + scale * written_cross_attention(layer, x, prompts)
    fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
    f = fc2(F.gelu(fc1(layer.ln2(x))))
    if adapter is not None:
        w_d, b_d, w_u, b_u = adapter
        f = f + F.gelu(f @ w_d.T + b_d) @ w_u.T + b_u
    return x + f


# methods with one learnable prompt set per block
PER_BLOCK = {'vpt_deep', 'lspt', 'lspt_lpc_only', 'cvpt', 'lspt_ca'}
# methods whose prompts only the cross-attention reads (not tokens)
CROSS = {'cvpt', 'lspt_ca'}


def reference_forward(vit, x, method):
    """method.md, written out token by token (no shared code paths)."""
    B, L = x.shape[0], len(vit.layers)
    patches = vit.patch_embed.projection(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([vit.cls_token.expand(B, -1, -1), patches], 1)
    tokens = tokens + vit.pos_embed
    cls, patches = tokens[:, :1], tokens[:, 1:]
    pm = vit.prompt_method
    if method in ('lspt_bias', 'lspt_lora'):  # LSPT; bias / LoRA tensors
        method = 'lspt'  # are the ViT's (LoRA: in qkv_weight)
    if method in ('linear', 'full', 'bias', 'partial', 'adapter'):
        prompts = tokens[:, :0]
    else:
        P = pm.prompts
        assert P.shape[0] == (L if method in PER_BLOCK else 1)
        prompts = P[0].expand(B, -1, -1)  # X_P^0 = P^0
    n_p = prompts.shape[1]
    cell = torch.zeros(B * n_p, vit.embed_dims)  # C^0 = 0
    for l in range(L):  # noqa: E741  (l: 0-based; block l+1 of method.md)
        tau = adapter = None
        if method == 'gapt':
            tau = pm.temperatures[l].clamp(0.01, 10.0)
        if method == 'adapter':
            a = pm.adapters[l]
            adapter = (a.down.weight, a.down.bias, a.up.weight, a.up.bias)
        if method in CROSS:  # prompts are no tokens: only CA reads them
            scale = 1.0 if method == 'cvpt' else pm.cross_scale[l]
            out = written_out_block(
                vit.layers[l],
                torch.cat([cls, patches], 1),
                cross=(prompts, scale),
            )
            cls, out_prompts, patches = out[:, :1], prompts, out[:, 1:]
        else:
            out = written_out_block(
                vit.layers[l],
                torch.cat([cls, prompts, patches], 1),
                tau,
                adapter,
            )
            cls, out_prompts, patches = (
                out[:, :1],
                out[:, 1 : 1 + n_p],
                out[:, 1 + n_p :],
            )
        if l == L - 1:
            break  # the last block's prompts feed no further block
        patch_mean = patches.mean(1, keepdim=True)  # patch tokens only
        if method == 'vpt_shallow':
            prompts = out_prompts
        elif method in ('vpt_deep', 'cvpt'):  # the next block's own
            prompts = P[l + 1].expand(B, -1, -1)
        elif method == 'gapt':
            g = torch.sigmoid(pm.gate_logits[l])
            prompts = g * out_prompts + (1 - g) * prompts
        elif method == 'lspt_gspc_only':
            prompts = out_prompts + patch_mean
        elif method in ('lspt', 'lspt_lpc_only', 'lspt_ca'):
            hidden = (
                out_prompts
                if method == 'lspt_lpc_only'
                else out_prompts + patch_mean
            )
            lstm = torch.nn.LSTMCell(vit.embed_dims, vit.embed_dims)
            lstm.load_state_dict(pm.lstm.state_dict())
            h, cell = lstm(
                P[l + 1].expand(B, -1, -1).reshape(-1, 32),
                (hidden.reshape(-1, 32), cell),
            )
            prompts = h.reshape(B, n_p, -1)
    if method in CROSS:
        out_prompts = out_prompts[:, :0]  # no prompt tokens to average
    tokens = torch.cat([cls, out_prompts, patches], 1)
    return vit.ln1(tokens[:, 1:].mean(1))  # MAE head: mean, then norm


@pytest.mark.parametrize('method', METHODS)
def test_forward_matches_written_out_equations(method):
    vit = make(method)
    x = images()
    with torch.no_grad():
        (ours,) = vit(x)
        ref = reference_forward(vit, x, method)
    assert (ours - ref).abs().max() < 1e-5


def test_lspt_differs_from_its_ablations_and_gates_matter():
    x = images()
    outs = {
        m: make(m)(x)[0]
        for m in ('lspt', 'lspt_lpc_only', 'lspt_gspc_only', 'vpt_deep')
    }
    for a in outs:
        for b in outs:
            if a != b:
                assert (outs[a] - outs[b]).abs().max() > 1e-4, (a, b)


def test_cls_token_and_featmap_outputs_drop_prompts():
    x = images(size=48)
    (raw,) = make('lspt', out_type='raw')(x)
    (cls,) = make('lspt', out_type='cls_token')(x)
    (feat,) = make('lspt', out_type='featmap')(x)
    assert raw.shape == (2, 1 + 3 + 36, 32)
    assert torch.allclose(cls, raw[:, 0], atol=1e-6)
    assert feat.shape == (2, 32, 6, 6)
    assert torch.allclose(
        feat.flatten(2).transpose(1, 2), raw[:, 4:], atol=1e-6
    )


# ---------------------------------------------------------------- (c)
BIASES = {
    f'layers.{i}.{m}.bias'
    for i in range(4)
    for m in (
        'ln1',
        'attn.qkv',
        'attn.proj',
        'ln2',
        'ffn.layers.0.0',
        'ffn.layers.1',
    )
}
LAST_BLOCK = {
    f'layers.3.{m}.{w}'
    for m in (
        'ln1',
        'attn.qkv',
        'attn.proj',
        'ln2',
        'ffn.layers.0.0',
        'ffn.layers.1',
    )
    for w in ('weight', 'bias')
}
TRAINABLE = {
    'linear': set(),
    'bias': BIASES | {'patch_embed.projection.bias', 'ln1.bias'},
    'partial': LAST_BLOCK | {'ln1.weight', 'ln1.bias'},  # k=1, final norm
    'adapter': {
        f'prompt_method.adapters.{i}.{m}.{w}'
        for i in range(4)
        for m in ('down', 'up')
        for w in ('weight', 'bias')
    },
    'vpt_shallow': {'prompt_method.prompts'},
    'vpt_deep': {'prompt_method.prompts'},
    'lspt_gspc_only': {'prompt_method.prompts'},
    'gapt': {
        'prompt_method.prompts',
        'prompt_method.gate_logits',
        'prompt_method.temperatures',
    },
    'lspt': {'prompt_method.prompts'}
    | {
        f'prompt_method.lstm.{n}'
        for n in ('weight_ih', 'weight_hh', 'bias_ih', 'bias_hh')
    },
}
TRAINABLE['lspt_lpc_only'] = TRAINABLE['lspt']
TRAINABLE['cvpt'] = {'prompt_method.prompts'}
TRAINABLE['lspt_ca'] = TRAINABLE['lspt'] | {'prompt_method.cross_scale'}
TRAINABLE['lspt_bias'] = TRAINABLE['lspt'] | TRAINABLE['bias']
TRAINABLE['lspt_lora'] = TRAINABLE['lspt'] | {
    f'layers.{i}.attn.qkv.lora_{w}.weight'
    for i in range(4)
    for w in ('down', 'up')
}


@pytest.mark.parametrize('method', [m for m in METHODS if m != 'full'])
def test_gradients_reach_trainable_and_no_frozen_tensor(method):
    # blocks whose tensors train run drop-path in training (a dropped
    # branch would have zero gradients): rates only where all is frozen
    rates = dict(drop_path_rate=0.5, drop_rate=0.3)
    trains_blocks = ('bias', 'partial', 'lspt_bias', 'lspt_lora')
    vit = make(method, **({} if method in trains_blocks else rates))
    head = torch.nn.Linear(32, 5)
    vit.train()
    x = images()
    loss = F.cross_entropy(head(vit(x)[0]), torch.tensor([1, 3]))
    loss.backward()
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable == TRAINABLE[method]
    for name, p in vit.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    assert head.weight.grad is not None


def test_frozen_backbone_stays_in_eval_mode():
    vit = make('lspt', drop_path_rate=0.5, drop_rate=0.3).train()
    assert vit.prompt_method.training
    assert not any(m.training for m in vit.layers.modules())
    assert not vit.patch_embed.training and not vit.drop_after_pos.training
    x = images()
    with torch.no_grad():  # no dropout / drop-path: deterministic in train
        assert torch.equal(vit(x)[0], vit(x)[0])


def test_full_finetune_trains_everything():
    torch.manual_seed(0)
    vit = PromptedViT(drop_path_rate=0.1, prompt_method='full', **KW).train()
    assert vit.method_name == 'full' and not vit.freeze_backbone
    assert all(p.requires_grad for p in vit.parameters())
    assert vit.layers[0].training
    vit(images())[0].sum().backward()
    assert all(p.grad is not None for p in vit.parameters())


def test_trainable_parameter_report():
    vit = make('lspt')
    trainable, total = lspt_mm.count_parameters(vit)
    lstm = 2 * (4 * 32 * 32) + 2 * 4 * 32
    assert trainable == 4 * 3 * 32 + lstm
    message = lspt_mm.log_trainable_parameters(vit)
    assert f'{trainable:,}' in message and f'{total:,}' in message
    assert f'{100 * trainable / total:.2f}%' in message


# ---------------------------------------------------------------- (e)
@pytest.mark.parametrize(
    'kwargs,option',
    [
        (dict(prompt_method='deep_vpt'), 'prompt_method'),
        (dict(prompt_method='full', freeze_backbone=True), 'freeze_backbone'),
        (dict(prompt_method='lora'), 'LoRAModel'),
        (dict(prompt_method='partial', prompt_cfg=dict(k=5)), 'k must be'),
        (
            dict(prompt_method='adapter', prompt_cfg=dict(reduction=0)),
            'reduction',
        ),
        (dict(prompt=dict(type='LSPT'), prompt_method='lspt'), 'not both'),
        (dict(prompt_method='lspt', num_prompts=0), 'num_prompts'),
        (dict(prompt_method='vpt_deep', num_prompts=-2), 'num_prompts'),
        (dict(num_register_tokens=-1), 'num_register_tokens'),
        (dict(out_type='mean'), 'out_type'),
    ],
)
def test_bad_config_raises_value_error_naming_option(kwargs, option):
    with pytest.raises(ValueError, match=option):
        PromptedViT(**{**KW, **kwargs})


@pytest.mark.parametrize('method', ['none', 'lspt'])
def test_input_not_multiple_of_patch_size_is_padded_as_upstream(method):
    """mmpretrain pads the last partial patch (bottom / right); so do we."""
    vit = make(method, out_type='featmap')
    x = torch.randn(1, 3, 36, 45)
    (fmap,) = vit(x)
    assert fmap.shape == (1, 32, 5, 6)
    if method == 'none':
        upstream = VisionTransformer(out_type='featmap', **KW)
        upstream.load_state_dict(vit.state_dict())
        upstream.eval()
        assert torch.allclose(fmap, upstream(x)[0], atol=1e-5)
    padded = F.pad(x, (0, 3, 0, 4))  # zero padding to 40 x 48
    assert torch.allclose(fmap, vit(padded)[0], atol=1e-5)


def test_registered_in_mmpretrain_and_mmseg_scopes():
    from mmpretrain.registry import MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    cfg = dict(type='PromptedViT', prompt_method='gapt', num_prompts=2, **KW)
    assert isinstance(MODELS.build(cfg), PromptedViT)
    cfg['type'] = 'mmpretrain.PromptedViT'
    assert isinstance(SEG_MODELS.build(cfg), PromptedViT)


def test_record_attention_gives_each_blocks_softmax_with_temperature():
    vit = make('gapt')
    x = images()
    with vit.record_attention() as maps:
        vit(x)
    assert len(maps) == 4 and vit._attention_record is None
    assert maps[0].shape == (2, 2, 1 + 3 + 16, 1 + 3 + 16)
    for m in maps:
        assert torch.allclose(m.sum(-1), torch.ones(()), atol=1e-5)
    # block 1 by hand: logits / (sqrt(d) · τ_1) on the embedded tokens
    tokens = torch.cat(
        [
            vit.cls_token.expand(2, -1, -1),
            vit.prompt_method.prompts[0].expand(2, -1, -1),
            vit.patch_embed(x)[0] + vit.pos_embed[:, 1:],
        ],
        1,
    )
    tokens[:, :1] += vit.pos_embed[:, :1]
    layer, tau = (
        vit.layers[0],
        vit.prompt_method.temperatures[0].clamp(0.01, 10.0),
    )
    h = layer.ln1(tokens)
    q, k, _ = layer.attn.qkv(h).reshape(2, 20, 3, 2, 16).permute(2, 0, 3, 1, 4)
    expected = (q @ k.transpose(-2, -1) / 4.0 / tau).softmax(-1)
    assert torch.allclose(maps[0], expected, atol=1e-5)


def test_vit_base_lspt_shapes_and_parameter_counts():
    torch.manual_seed(0)
    vit = PromptedViT(
        arch='base', img_size=224, prompt_method='lspt', num_prompts=10
    ).eval()
    trainable, total = lspt_mm.count_parameters(vit)
    lstm = 2 * 4 * 768 * 768 + 2 * 4 * 768
    assert trainable == 12 * 10 * 768 + lstm
    assert total - trainable == 85_798_656  # ViT-B/16 encoder, no head
    with torch.no_grad():
        (out,) = vit(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 768)


def test_lstm_input_term_is_cached_at_inference_only_until_params_change():
    vit = make('lspt')
    x = images()
    with torch.no_grad():
        (first,) = vit(x)
        cached = vit.prompt_method._input_terms_cache[1]
        (again,) = vit(x)
        assert vit.prompt_method._input_terms_cache[1] is cached
        assert torch.equal(first, again)
        vit.prompt_method.prompts[2].add_(0.5)  # in place: version bump
        (changed,) = vit(x)
        assert vit.prompt_method._input_terms_cache[1] is not cached
        assert torch.allclose(
            changed, reference_forward(vit, x, 'lspt'), atol=1e-5
        )
    with torch.enable_grad():  # training path: never the cache
        vit(x)[0].sum().backward()
    assert vit.prompt_method._input_terms_cache is None
    assert vit.prompt_method.lstm.weight_ih.grad is not None

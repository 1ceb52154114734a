"""Prompts that update every token (CVPT, LSPT-CA) and composed methods
(``compose``: a prompt method with bias, adapters or LoRA in one backbone).

CVPT's forward is checked against a reference written from the official
code (Lingyun0419/CVPT, ``CVPT.py``): ``CvptBlock.forward`` for
``insert`` 1, 3 and 5 and ``CrossAttention.forward``, with the
cross-attention's q / k / v / proj filled from the block's attention as the
official ``_load_weights`` does (``query/key/value`` kernels and ``out``).
The official file itself (with stand-ins for its timm imports) gave the
same outputs to 1.2e-7 on this machine (docs/lspt_ca.md); it is not
vendored (no licence)."""

import glob
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.analysis.flops import count_flops, model_flops
from lspt_mm.models import METHODS, PromptedViT
from lspt_mm.models.checkpoint_policy import (
    CheckpointMismatchError,
    load_checkpoint,
    model_tensors,
)

from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'segmentation')
ARCH = dict(embed_dims=48, num_layers=3, num_heads=4, feedforward_channels=96)
KW = dict(arch=ARCH, img_size=32, patch_size=8)
NEW = ('cvpt', 'lspt_ca', 'lspt_bias', 'lspt_lora')


def images(b=2, size=32):
    torch.manual_seed(1)
    return torch.randn(b, 3, size, size)


def make(method, perturb=True, **kwargs):
    torch.manual_seed(0)
    opts = dict(out_type='cls_token', final_norm=True)
    vit = PromptedViT(
        prompt_method=method,
        num_prompts=5,
        prompt_dropout=0.0,
        **{**KW, **opts, **kwargs},
    )
    vit.init_weights()
    if perturb:
        with torch.no_grad():
            for p in vit.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return vit.eval()


# ------------------------------------------------ CVPT, official forward
class OfficialCrossAttention(nn.Module):
    """CVPT.py ``CrossAttention``: q from x1 (the tokens), k and v from x2
    (the prompts), ``(q @ k) * scale``, softmax, ``proj``."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads, self.scale = num_heads, (dim // num_heads) ** -0.5
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x1, x2):
        B, N1, C = x1.size()
        N2, h = x2.size(1), self.num_heads
        q = self.q(x1).view(B, N1, h, C // h).permute(0, 2, 1, 3)
        k = self.k(x2).view(B, N2, h, C // h).permute(0, 2, 3, 1)
        v = self.v(x2).view(B, N2, h, C // h).permute(0, 2, 1, 3)
        attn = ((q @ k) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(B, N1, C))


def official_cvpt_forward(vit, x, insert):
    """CVPT.py ``forward_features`` on ``vit``'s weights: CLS + patches +
    position embedding, then per block ``CvptBlock.forward(x, P^i)``, the
    final norm, CLS."""
    B, D = x.shape[0], vit.embed_dims
    tokens = vit.patch_embed.projection(x).flatten(2).transpose(1, 2)
    x = torch.cat([vit.cls_token.expand(B, -1, -1), tokens], 1)
    x = x + vit.pos_embed
    for i, layer in enumerate(vit.layers):
        cross = OfficialCrossAttention(D, layer.attn.num_heads)
        w, b = layer.attn.qkv.weight, layer.attn.qkv.bias
        with torch.no_grad():  # the official _load_weights
            for n, (wi, bi) in zip('qkv', zip(w.chunk(3), b.chunk(3))):
                getattr(cross, n).weight.copy_(wi)
                getattr(cross, n).bias.copy_(bi)
            cross.proj.load_state_dict(layer.attn.proj.state_dict())
        prompt = vit.prompt_method.prompts[i].expand(B, -1, -1)

        def attn(t, layer=layer):
            return layer.attn(layer.ln1(t))

        def mlp(t, layer=layer):
            return layer.ffn(layer.ln2(t), identity=0)

        if insert == 1:
            x = x + cross(x, prompt)
            x = x + attn(x)
            x = x + mlp(x)
        elif insert == 3:
            x = x + attn(x)
            x = x + cross(x, prompt)
            x = x + mlp(x)
        else:  # 5
            x = x + attn(x)
            x = x + mlp(x)
            x = x + cross(x, prompt)
    return vit.ln1(x)[:, 0]


@pytest.mark.parametrize(
    'insert,position',
    [(1, 'before_attn'), (3, 'after_attn'), (5, 'after_mlp')],
)
def test_cvpt_forward_equals_the_official_block(insert, position):
    vit = make('cvpt', prompt_cfg=dict(position=position))
    x = images()
    with torch.no_grad():
        (ours,) = vit(x)
        ref = official_cvpt_forward(vit, x, insert)
    assert (ours - ref).abs().max() < 1e-5
    assert METHODS['cvpt'].options == {}  # insert 3: the code's default
    assert make('cvpt').prompt_method.update_position == 'after_attn'


def test_cvpt_trains_only_its_prompts_and_starts_from_xavier():
    vit = make('cvpt', perturb=False).train()
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert trainable == {'prompt_method.prompts'}
    P = vit.prompt_method.prompts
    assert P.shape == (3, 5, 48)
    # xavier_uniform_ on (L, N_p, D): bound sqrt(6 / (fan_in + fan_out))
    bound = (6 / (5 * 48 + 3 * 48)) ** 0.5
    assert P.abs().max() <= bound and P.abs().max() > 0.9 * bound
    vit(images())[0].sum().backward()
    assert P.grad.abs().sum() > 0
    # the prompts are no tokens of the blocks: T = CLS + patches
    assert vit.num_prompt_tokens == 0 and vit.num_tokens((4, 4)) == 17


# ------------------------------------------------------------- LSPT-CA
def test_lspt_ca_starts_at_the_frozen_vit_and_keeps_lspt_coding():
    x = images()
    lspt = make('lspt')
    linear, ca = make('linear'), make('lspt_ca', perturb=False)
    inside = make(
        'lspt_ca', perturb=False, prompt_cfg=dict(prompts_in_attention=True)
    )
    state = lspt.state_dict()
    for model in (linear, ca, inside):
        model.load_state_dict(state, strict=False)
    with torch.no_grad():
        # s_l = 0: prompts out of the self-attention -> the frozen ViT
        assert torch.equal(ca(x)[0], linear(x)[0])
        # prompts in the self-attention too -> exactly LSPT
        assert torch.equal(inside(x)[0], lspt(x)[0])
        ca.prompt_method.cross_scale.fill_(1.0)
        assert (ca(x)[0] - linear(x)[0]).abs().max() > 1e-3
    # at s = 0 only s gets a gradient; prompts and LSTM learn once s moves
    ca.train()
    ca.prompt_method.cross_scale.data.zero_()
    ca(x)[0].sum().backward()
    pm = ca.prompt_method
    assert pm.cross_scale.grad.abs().sum() > 0
    assert pm.prompts.grad.abs().sum() == 0


def test_lspt_ca_reads_the_lstm_prompts():
    """The tokens of block l read X_P^l = LSTM(P^l, X_P^{l-1} + mean X^l):
    changing P^2 changes the output, through the LSTM only."""
    vit = make('lspt_ca')
    x = images()
    with torch.no_grad():
        before = vit(x)[0]
        vit.prompt_method.prompts[2].add_(1.0)
        after = vit(x)[0]
    assert (before - after).abs().max() > 1e-4


def test_trained_cross_attention_copies_start_as_the_block():
    frozen = make('cvpt')
    trained = make('cvpt', prompt_cfg=dict(train_cross_attn=True))
    trained.load_state_dict(frozen.state_dict(), strict=False)
    trained.prompt_method.backbone_weights_ready(trained)
    x = images()
    with torch.no_grad():
        assert (frozen(x)[0] - trained(x)[0]).abs().max() < 1e-6
    names = {n for n, p in trained.named_parameters() if p.requires_grad}
    assert 'prompt_method.cross_attn.0.q.weight' in names
    assert len(names) == 1 + 3 * 4 * 2  # prompts + L x (q,k,v,o) x (W,b)


def test_bad_cross_attention_position_is_named():
    with pytest.raises(ValueError, match='position'):
        make('cvpt', prompt_cfg=dict(position='inside'))


# ------------------------------------------------------------ composing
def test_lspt_lora_is_lspt_plus_mmpretrain_lora_layers():
    from mmpretrain.models.peft.lora import LoRALinear

    vit = make('lspt_lora', perturb=False)
    assert vit.method_name == 'lspt_lora'
    assert all(isinstance(b.attn.qkv, LoRALinear) for b in vit.layers)
    lspt = make('lspt', perturb=False)
    lspt.load_state_dict(
        {
            k.replace('qkv.original_layer', 'qkv'): v
            for k, v in vit.state_dict().items()
            if 'lora_' not in k
        }
    )
    x = images()
    with torch.no_grad():  # B = 0 at the start: LSPT's output
        assert torch.equal(vit(x)[0], lspt(x)[0])


def test_lora_component_equals_mmpretrain_lora_model():
    """``compose=['lora']`` on the linear probe is the table's ``lora``
    (mmpretrain's LoRAModel) tensor for tensor."""
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    wrapped = MODELS.build(
        METHODS['lora'].apply(dict(type='PromptedViT', **KW, num_prompts=5))
    ).eval()
    ours = PromptedViT(prompt_method='linear', compose=['lora'], **KW).eval()
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if 'lora_up' in name:
                p.normal_()
    theirs = model_tensors(wrapped.module)
    assert set(theirs) == set(model_tensors(ours))
    ours.load_state_dict(theirs, strict=True)
    x = images()
    with torch.no_grad():
        for a, b in zip(wrapped(x), ours(x)):
            assert torch.equal(a, b)
    assert ours.method_name == 'linear+lora'


def test_compose_is_general_and_named():
    vit = make('vpt_deep', compose=['adapter', 'bias'])
    assert vit.method_name == 'vpt_deep+adapter+bias'
    trainable = {n for n, p in vit.named_parameters() if p.requires_grad}
    assert 'prompt_method.composed.adapter.adapters.0.down.weight' in trainable
    assert 'layers.0.attn.qkv.bias' in trainable
    assert 'prompt_method.prompts' in trainable
    # the table's composites are found by their parts
    assert make('lspt', compose=['bias']).method_name == 'lspt_bias'
    custom = make('gapt', compose=[dict(type='MLPAdapter', reduction=4)])
    assert custom.method_name == 'gapt+MLPAdapter'
    x = images()
    custom(x)[0].sum().backward()


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(prompt_method='lspt', compose=['vpt_deep']), 'without prompts'),
        (dict(prompt_method='full', compose=['bias']), 'frozen ViT'),
        (
            dict(prompt_method='adapter', compose=['adapter']),
            'MLP adapter',
        ),
        (dict(prompt_method='lspt', compose=['lroa']), 'lroa'),
    ],
)
def test_compose_errors_name_the_option(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptedViT(**KW, **kwargs)


@pytest.mark.parametrize('method', ['lspt_bias', 'lspt_lora', 'lspt_ca'])
def test_trainable_only_checkpoint_records_the_composite(tmp_path, method):
    pretrained = str(tmp_path / 'vit.pth')
    torch.manual_seed(3)
    base = PromptedViT(prompt_method='linear', **KW)
    torch.save(base.state_dict(), pretrained)
    trained = make(method, perturb=False, pretrained=pretrained)
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))
    sd = trained.state_dict()
    setup = sd._metadata['']['lspt_mm']
    assert setup['prompt_method'] == method and setup['trainable_only']
    saved = set(sd)
    assert saved == {
        n for n, p in trained.named_parameters() if p.requires_grad
    }
    path = str(tmp_path / 'run.pth')
    holder = nn.Module()  # as a runner saves it: metadata kept
    holder.backbone = trained
    torch.save({'state_dict': holder.state_dict()}, path)
    model = nn.Module()
    model.backbone = make(method, perturb=False, pretrained=pretrained)
    load_checkpoint(model, path)
    x = images()
    with torch.no_grad():
        assert torch.equal(model.backbone(x)[0], trained(x)[0])
    # the plain method is another model: refused, naming both
    other = nn.Module()
    other.backbone = make('lspt', perturb=False, pretrained=pretrained)
    with pytest.raises(CheckpointMismatchError, match=method):
        load_checkpoint(other, path)


# ---------------------------------------------------------- FLOP model
@pytest.mark.parametrize(
    'kwargs',
    [
        dict(prompt_method='cvpt', prompt_cfg=dict(position='before_attn')),
        dict(prompt_method='cvpt', prompt_cfg=dict(position='after_mlp')),
        dict(prompt_method='cvpt', prompt_cfg=dict(train_cross_attn=True)),
        dict(
            prompt_method='lspt_ca',
            prompt_cfg=dict(prompts_in_attention=True),
        ),
    ],
)
def test_analytic_flops_of_the_options_equal_counted(kwargs):
    kwargs = dict(kwargs)
    method = kwargs.pop('prompt_method')
    vit = make(method, perturb=False, out_type='avg_token', **kwargs).train()
    x = images()
    _, fwd = count_flops(lambda: vit(x)[0].sum())
    _, step = count_flops(lambda: vit(x)[0].sum().backward())
    analytic = model_flops(vit, batch=2)
    assert fwd == analytic['fwd']
    assert step - fwd == analytic['bwd']


# ------------------------------------------------------------- configs
def new_method_configs():
    names = [m.replace('_', '-') for m in NEW]
    found = sorted(
        p
        for n in names
        for p in glob.glob(osp.join(SEG, '**', f'{n}-*.py'), recursive=True)
    )
    return [p for p in found if 'vipamin' not in p and 'spt-kmeans' not in p]


def test_every_new_method_has_its_configs():
    paths = [osp.relpath(p, SEG) for p in new_method_configs()]
    for m in NEW:
        stem = m.replace('_', '-')
        mine = [p for p in paths if osp.basename(p).startswith(stem + '-')]
        camvid = [p for p in mine if p.startswith('camvid')]
        ade = [p for p in mine if 'ade20k' in p]
        assert len(camvid) == 4, (m, camvid)  # the CPU and 3 GPU settings
        assert any('upernet' in p for p in ade), (m, ade)
        if m in ('cvpt', 'lspt_ca'):
            assert any('setr-pup' in p for p in ade), (m, ade)


@pytest.mark.parametrize(
    'path', new_method_configs(), ids=lambda p: osp.basename(p)[:40]
)
def test_new_method_config_builds_and_runs_forward(path):
    from mmseg.registry import MODELS

    cfg = Config.fromfile(path)
    init_default_scope('mmseg')
    b = cfg.model.backbone.to_dict()
    b.update(arch=dict(ARCH), img_size=32, patch_size=8, pretrained=None)
    b['out_indices'] = (
        [0, 1, 2, 2] if len(b.get('out_indices', [])) == 4 else [2]
    )
    b.pop('layer_scale_init_value', None)
    vit = MODELS.build(b)
    name = osp.basename(path).split('-mae')[0].split('-dinov2')[0]
    name = name.split('-mocov3')[0].replace('-', '_')
    assert vit.method_name == name
    feats = vit(torch.randn(1, 3, 32, 32))
    assert feats[-1].shape == (1, 48, 4, 4)
    F.mse_loss(feats[-1], torch.zeros_like(feats[-1])).backward()


def test_cvpt_update_takes_the_blocks_layer_scale():
    """On a LayerScale ViT (DINOv2) the update is scaled by the block's
    γ1 as its own attention branch is; with γ1 = 1 (or layer_scale=False
    and γ1 = 1) it is CVPT's published form."""
    kw = dict(layer_scale_init_value=0.5)
    scaled = make('cvpt', **kw)
    raw = make('cvpt', prompt_cfg=dict(layer_scale=False), **kw)
    raw.load_state_dict(scaled.state_dict())
    x = images()
    with torch.no_grad():
        assert (scaled(x)[0] - raw(x)[0]).abs().max() > 1e-4
        for vit in (scaled, raw):
            for layer in vit.layers:
                layer.attn.gamma1.weight.fill_(1.0)
        assert torch.equal(scaled(x)[0], raw(x)[0])
    assert not make('lspt_ca').prompt_method.layer_scale


def test_console_line_says_what_trains():
    from lspt_mm.utils import log_trainable_parameters

    model = nn.Module()
    model.backbone = make('lspt_bias', perturb=False)
    model.decode_head = nn.Linear(4, 4)
    message = log_trainable_parameters(model)
    spec = METHODS['lspt_bias']
    assert f'method lspt_bias ({spec.title}: {spec.trains})' in message
    backbone = sum(
        p.numel() for p in model.backbone.parameters() if p.requires_grad
    )
    assert f'backbone {backbone:,}, decode_head 20' in message


def test_feature_change_is_zero_at_the_frozen_vit_and_grows_with_updates():
    from lspt_mm.analysis.tokens import feature_change

    frozen = make('linear', out_type='featmap', out_indices=[0, 2])
    ca = make('lspt_ca', perturb=False, out_type='featmap', out_indices=[0, 2])
    ca.load_state_dict(frozen.state_dict(), strict=False)
    x = images()
    assert (feature_change(ca, frozen, x) == 0).all()
    with torch.no_grad():
        ca.prompt_method.cross_scale.fill_(1.0)
    change = feature_change(ca, frozen, x)
    assert change.shape == (2,) and (change > 0).all()


def test_attention_tools_on_prompts_outside_the_self_attention():
    from lspt_mm.analysis.tokens import attention_summary, prompt_patch_cosine

    vit = make('cvpt', out_type='featmap')
    summary = attention_summary(vit, images(b=1))
    assert np.isnan(summary['prompt_mass']).all()
    # the patch rows' mass on [prefix, (no) prompts, patches] sums to 1
    assert np.allclose(summary['patch_mass'].sum(-1), 1, atol=1e-5)
    assert (summary['patch_mass'][:, 1] == 0).all()
    with pytest.raises(ValueError, match='no prompt tokens'):
        prompt_patch_cosine(vit, images())

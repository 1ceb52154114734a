"""mmpretrain 1.2's own ``test_vision_transformer.py`` cases, run against
``PromptedViT(prompt_method='linear')`` (it promises every VisionTransformer
argument), plus the prefix-token layouts those arguments imply for prompts:
no CLS token (prompts first) and DINOv2 register tokens."""

import math
import os.path as osp
from copy import deepcopy

import pytest
import torch
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT

from mmengine.runner import load_checkpoint, save_checkpoint
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed

CFG = dict(arch='b', img_size=224, patch_size=16, drop_path_rate=0.1)
TINY = dict(
    arch=dict(
        embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64
    ),
    img_size=32,
    patch_size=8,
)


def vit(**kwargs):
    return PromptedViT(prompt_method='linear', **kwargs)


def test_structure():
    with pytest.raises(AssertionError, match='not in default archs'):
        vit(**{**CFG, 'arch': 'unknown'})
    with pytest.raises(AssertionError, match='Custom arch needs'):
        vit(
            **{
                **CFG,
                'arch': dict(
                    num_layers=24, num_heads=16, feedforward_channels=4096
                ),
            }
        )
    model = vit(
        **{
            **CFG,
            'arch': dict(
                embed_dims=128,
                num_layers=24,
                num_heads=16,
                feedforward_channels=1024,
            ),
        }
    )
    assert model.embed_dims == 128 and model.num_layers == 24
    for layer in model.layers:
        assert layer.attn.num_heads == 16
        assert layer.ffn.feedforward_channels == 1024
    with pytest.raises(AssertionError, match="get <class 'dict'>"):
        vit(**{**CFG, 'out_indices': {1: 1}})
    with pytest.raises(AssertionError, match='Invalid out_indices 13'):
        vit(**{**CFG, 'out_indices': [0, 13]})
    model = vit(**CFG)
    assert len(model.layers) == 12
    for i, layer in enumerate(model.layers):
        assert layer.attn.embed_dims == 768
        assert layer.attn.num_heads == 12
        assert layer.ffn.feedforward_channels == 3072
        assert layer.attn.out_drop.drop_prob == pytest.approx(0.1 * i / 11)
        assert layer.ffn.dropout_layer.drop_prob == pytest.approx(0.1 * i / 11)
    model = vit(**{**CFG, 'pre_norm': True})
    assert not isinstance(model.pre_norm, torch.nn.Identity)


def test_init_weights_and_pos_embed_resize_on_load(tmp_path):
    cfg = {
        **CFG,
        'init_cfg': [
            dict(
                type='Kaiming',
                layer='Conv2d',
                mode='fan_in',
                nonlinearity='linear',
            )
        ],
    }
    model = vit(**cfg)
    before = model.patch_embed.projection.weight.clone()
    assert torch.allclose(model.pos_embed, torch.tensor(0.0))
    model.init_weights()
    assert not torch.allclose(before, model.patch_embed.projection.weight)
    assert not torch.allclose(model.pos_embed, torch.tensor(0.0))

    pos_embed = model.pos_embed.clone().detach()
    checkpoint = osp.join(tmp_path, 'test.pth')
    save_checkpoint(model.state_dict(), checkpoint)
    model = vit(**CFG)
    load_checkpoint(model, checkpoint, strict=True)
    assert torch.allclose(model.pos_embed, pos_embed)
    model = vit(**{**CFG, 'img_size': 384})
    load_checkpoint(model, checkpoint, strict=True)
    expected = resize_pos_embed(pos_embed, (14, 14), (24, 24), 'bicubic', 1)
    assert torch.allclose(model.pos_embed, expected)


@pytest.mark.parametrize(
    'out_type', ['featmap', 'avg_featmap', 'raw', 'cls_token']
)
@pytest.mark.parametrize('with_cls_token', [True, False])
@pytest.mark.parametrize('hw', [(32, 32), (40, 40), (40, 49)])
def test_forward_equals_upstream(out_type, with_cls_token, hw):
    """Every output type, with and without CLS, on dynamic (and partial
    patch) input sizes, with several out_indices; equal to upstream."""
    if out_type == 'cls_token' and not with_cls_token:
        with pytest.raises(ValueError, match='with_cls_token'):
            vit(**TINY, out_type=out_type, with_cls_token=False)
        return
    kw = dict(
        TINY,
        out_type=out_type,
        with_cls_token=with_cls_token,
        out_indices=[-3, -2, -1],
    )
    torch.manual_seed(0)
    ours = vit(**kw)
    ours.init_weights()
    upstream = VisionTransformer(**deepcopy(kw))
    upstream.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()
    upstream.eval()
    x = torch.randn(2, 3, *hw)
    outs, ref = ours(x), upstream(x)
    assert isinstance(outs, tuple) and len(outs) == 3
    grid = (math.ceil(hw[0] / 8), math.ceil(hw[1] / 8))
    for a, b in zip(outs, ref):
        if out_type == 'featmap':
            assert a.shape == (2, 32, *grid)
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-5


def _written_out_prefix_forward(model, x, prompts, registers):
    """Shallow prompts by hand: ``[CLS?; registers; prompts; patches]``,
    CLS and patches with position embedding, the rest without; mean of
    everything after the prefix, then the final norm."""
    B = x.shape[0]
    patches = model.patch_embed.projection(x).flatten(2).transpose(1, 2)
    pos = model.pos_embed
    parts = []
    if model.with_cls_token:
        parts.append(model.cls_token.expand(B, -1, -1) + pos[:, :1])
        pos = pos[:, 1:]
    parts.append(registers.expand(B, -1, -1))
    parts.append(prompts.expand(B, -1, -1))
    parts.append(patches + pos)
    tokens = torch.cat(parts, 1)
    for layer in model.layers:
        tokens = layer(tokens)
    n_prefix = int(model.with_cls_token) + registers.shape[1]
    return model.ln1(tokens[:, n_prefix:].mean(1)), tokens


@pytest.mark.parametrize('with_cls_token', [True, False])
@pytest.mark.parametrize('num_registers', [0, 2])
def test_prompts_follow_the_prefix_tokens(with_cls_token, num_registers):
    torch.manual_seed(0)
    model = PromptedViT(
        prompt_method='vpt_shallow',
        num_prompts=3,
        prompt_dropout=0.0,
        with_cls_token=with_cls_token,
        num_register_tokens=num_registers,
        **TINY,
    )
    model.init_weights()
    with torch.no_grad():
        if num_registers:
            model.register_tokens.normal_()
    model.eval()
    assert model.num_prefix_tokens == int(with_cls_token) + num_registers
    x = torch.randn(2, 3, 32, 32)
    registers = (
        model.register_tokens if num_registers else torch.zeros(1, 0, 32)
    )
    (ours,) = model(x)
    ref, tokens = _written_out_prefix_forward(
        model, x, model.prompt_method.prompts[0], registers
    )
    assert torch.allclose(ours, ref, atol=1e-5)
    prefix, prompts, patches = model.split_tokens(tokens)
    assert prompts.shape[1] == 3 and patches.shape[1] == 16
    assert torch.equal(model.join_tokens(prefix, prompts, patches), tokens)
    # feature maps drop prefix and prompts
    model.out_type = 'featmap'
    (fmap,) = model(x)
    expected = F.layer_norm(
        tokens[:, -16:], (32,), model.ln1.weight, model.ln1.bias, model.ln1.eps
    )
    assert torch.allclose(fmap.flatten(2).transpose(1, 2), expected, atol=1e-5)


def test_registers_are_frozen_backbone_weights():
    model = PromptedViT(
        prompt_method='lspt', num_prompts=2, num_register_tokens=4, **TINY
    )
    assert not model.register_tokens.requires_grad
    assert model.is_backbone_key('register_tokens')

"""DINOv2 in PromptedViT: the no-prompt forward of random weights written in
the official release layout and in Hugging Face ``Dinov2Model`` naming, with
and without register tokens, against DINOv2's forward written out here from
the raw tensors (``prepare_tokens_with_masks``, ``Block``, final norm)."""

import pytest
import torch
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT

D, HEADS, LAYERS, FFN, PATCH, GRID = 24, 2, 2, 48, 14, 4  # 56 px native


def random_official(num_registers):
    """A tiny ``dinov2_vit*14[_reg4]_pretrain.pth`` state dict."""
    g = torch.Generator().manual_seed(0)

    def r(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    sd = {
        'cls_token': r(1, 1, D),
        'pos_embed': r(1, 1 + GRID * GRID, D),
        'mask_token': r(1, D),
        'patch_embed.proj.weight': r(D, 3, PATCH, PATCH, scale=0.05),
        'patch_embed.proj.bias': r(D),
        'norm.weight': 1 + r(D),
        'norm.bias': r(D),
    }
    if num_registers:
        sd['register_tokens'] = r(1, num_registers, D)
    for i in range(LAYERS):
        b = f'blocks.{i}.'
        sd.update(
            {
                b + 'norm1.weight': 1 + r(D),
                b + 'norm1.bias': r(D),
                b + 'attn.qkv.weight': r(3 * D, D),
                b + 'attn.qkv.bias': r(3 * D),
                b + 'attn.proj.weight': r(D, D),
                b + 'attn.proj.bias': r(D),
                b + 'ls1.gamma': r(D, scale=0.5),
                b + 'norm2.weight': 1 + r(D),
                b + 'norm2.bias': r(D),
                b + 'mlp.fc1.weight': r(FFN, D),
                b + 'mlp.fc1.bias': r(FFN),
                b + 'mlp.fc2.weight': r(D, FFN),
                b + 'mlp.fc2.bias': r(D),
                b + 'ls2.gamma': r(D, scale=0.5),
            }
        )
    return sd


def official_to_hf(sd):
    """The same tensors under Hugging Face ``Dinov2Model`` names."""
    hf = {
        'embeddings.cls_token': sd['cls_token'],
        'embeddings.mask_token': sd['mask_token'],
        'embeddings.position_embeddings': sd['pos_embed'],
        'embeddings.patch_embeddings.projection.weight': sd[
            'patch_embed.proj.weight'
        ],
        'embeddings.patch_embeddings.projection.bias': sd[
            'patch_embed.proj.bias'
        ],
        'layernorm.weight': sd['norm.weight'],
        'layernorm.bias': sd['norm.bias'],
    }
    if 'register_tokens' in sd:
        hf['embeddings.register_tokens'] = sd['register_tokens']
    for i in range(LAYERS):
        b, h = f'blocks.{i}.', f'encoder.layer.{i}.'
        for j, name in enumerate(('query', 'key', 'value')):
            rows = slice(j * D, (j + 1) * D)
            hf[f'{h}attention.attention.{name}.weight'] = sd[
                b + 'attn.qkv.weight'
            ][rows]
            hf[f'{h}attention.attention.{name}.bias'] = sd[
                b + 'attn.qkv.bias'
            ][rows]
        pairs = {
            'attention.output.dense': 'attn.proj',
            'norm1': 'norm1',
            'norm2': 'norm2',
            'mlp.fc1': 'mlp.fc1',
            'mlp.fc2': 'mlp.fc2',
        }
        for hname, oname in pairs.items():
            for t in ('weight', 'bias'):
                hf[f'{h}{hname}.{t}'] = sd[f'{b}{oname}.{t}']
        hf[h + 'layer_scale1.lambda1'] = sd[b + 'ls1.gamma']
        hf[h + 'layer_scale2.lambda1'] = sd[b + 'ls2.gamma']
    return hf


def dinov2_reference(sd, x):
    """DINOv2's ``forward_features`` (official code), written out: returns
    the final-norm tokens ``[CLS; registers; patches]``."""
    B = x.shape[0]
    t = (
        F.conv2d(
            x,
            sd['patch_embed.proj.weight'],
            sd['patch_embed.proj.bias'],
            stride=PATCH,
        )
        .flatten(2)
        .transpose(1, 2)
    )
    t = torch.cat([sd['cls_token'].expand(B, -1, -1), t], 1) + sd['pos_embed']
    if 'register_tokens' in sd:  # after the position embedding
        t = torch.cat(
            [t[:, :1], sd['register_tokens'].expand(B, -1, -1), t[:, 1:]], 1
        )
    T, hd = t.shape[1], D // HEADS
    for i in range(LAYERS):
        b = f'blocks.{i}.'
        h = F.layer_norm(
            t, (D,), sd[b + 'norm1.weight'], sd[b + 'norm1.bias'], 1e-6
        )
        q, k, v = (
            F.linear(h, sd[b + 'attn.qkv.weight'], sd[b + 'attn.qkv.bias'])
            .reshape(B, T, 3, HEADS, hd)
            .permute(2, 0, 3, 1, 4)
        )
        a = ((q @ k.transpose(-2, -1)) * hd**-0.5).softmax(-1) @ v
        a = F.linear(
            a.transpose(1, 2).reshape(B, T, D),
            sd[b + 'attn.proj.weight'],
            sd[b + 'attn.proj.bias'],
        )
        t = t + sd[b + 'ls1.gamma'] * a
        h = F.layer_norm(
            t, (D,), sd[b + 'norm2.weight'], sd[b + 'norm2.bias'], 1e-6
        )
        m = F.linear(
            F.gelu(
                F.linear(h, sd[b + 'mlp.fc1.weight'], sd[b + 'mlp.fc1.bias'])
            ),
            sd[b + 'mlp.fc2.weight'],
            sd[b + 'mlp.fc2.bias'],
        )
        t = t + sd[b + 'ls2.gamma'] * m
    return F.layer_norm(t, (D,), sd['norm.weight'], sd['norm.bias'], 1e-6)


ARCH = dict(
    embed_dims=D, num_layers=LAYERS, num_heads=HEADS, feedforward_channels=FFN
)


@pytest.mark.parametrize('layout', ['official', 'huggingface'])
@pytest.mark.parametrize('num_registers', [0, 4])
def test_no_prompt_forward_equals_written_out_dinov2(
    tmp_path, layout, num_registers
):
    sd = random_official(num_registers)
    path = str(tmp_path / f'dinov2_{layout}.pth')
    torch.save(sd if layout == 'official' else official_to_hf(sd), path)
    model = PromptedViT(
        arch=ARCH,
        img_size=PATCH * GRID,
        patch_size=PATCH,
        layer_scale_init_value=1e-5,
        prompt_method='linear',
        num_register_tokens=num_registers,
        out_type='raw',
        pretrained=path,
    )
    model.eval()
    x = torch.randn(2, 3, PATCH * GRID, PATCH * GRID)
    with torch.no_grad():
        (ours,) = model(x)
        ref = dinov2_reference(sd, x)
    assert ours.shape == ref.shape == (2, 1 + num_registers + GRID**2, D)
    assert (ours - ref).abs().max() < 1e-5


def test_registers_file_into_model_without_registers_is_an_error(tmp_path):
    path = str(tmp_path / 'reg4.pth')
    torch.save(random_official(4), path)
    with pytest.raises(Exception, match='register'):
        PromptedViT(
            arch=ARCH,
            img_size=PATCH * GRID,
            patch_size=PATCH,
            layer_scale_init_value=1e-5,
            prompt_method='linear',
            pretrained=path,
        )


@pytest.mark.parametrize(
    'arch,width,depth',
    [
        ('dinov2-small', 384, 12),
        ('dinov2-base', 768, 12),
        ('dinov2-large', 1024, 24),
    ],
)
def test_dinov2_arch_defaults(arch, width, depth):
    model = PromptedViT(arch=arch, img_size=518, prompt_method='linear')
    assert model.patch_embed.projection.kernel_size == (14, 14)
    assert model.pos_embed.shape == (1, 1 + 37 * 37, width)
    assert len(model.layers) == depth
    gamma = model.layers[0].attn.gamma1.weight
    assert gamma.shape == (width,) and torch.allclose(
        gamma, torch.tensor(1e-5)
    )

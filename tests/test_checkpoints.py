"""Pretrained-file loading (official key layouts), converters, reloads."""

import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT

from mmpretrain.models import VisionTransformer

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)
D, L, FF = 32, 2, 64


def official_vit_state_dict(num_patches=16, seed=0):
    """Tensors under the exact timm-style names of MAE / MoCo v3 files."""
    g = torch.Generator().manual_seed(seed)

    def t(*shape):
        return torch.randn(*shape, generator=g)

    sd = {
        'cls_token': t(1, 1, D),
        'pos_embed': t(1, 1 + num_patches, D),
        'patch_embed.proj.weight': t(D, 3, 8, 8),
        'patch_embed.proj.bias': t(D),
        'norm.weight': t(D),
        'norm.bias': t(D),
    }
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
                b + 'norm2.weight': t(D),
                b + 'norm2.bias': t(D),
                b + 'mlp.fc1.weight': t(FF, D),
                b + 'mlp.fc1.bias': t(FF),
                b + 'mlp.fc2.weight': t(D, FF),
                b + 'mlp.fc2.bias': t(D),
            }
        )
    return sd


TIMM_TO_OURS = {
    'patch_embed.proj.': 'patch_embed.projection.',
    'norm1.': 'ln1.',
    'norm2.': 'ln2.',
    'mlp.fc1.': 'ffn.layers.0.0.',
    'mlp.fc2.': 'ffn.layers.1.',
    'blocks.': 'layers.',
}


def ours_name(timm_name):
    if timm_name.startswith('norm.'):
        return 'ln1.' + timm_name[5:]
    for a, b in TIMM_TO_OURS.items():
        timm_name = timm_name.replace(a, b)
    return timm_name


def write_official(path, layout, sd):
    if layout == 'mae':
        ckpt = {'model': sd}
    elif layout == 'mocov3':
        ckpt = {
            'state_dict': {
                **{'module.' + k: v for k, v in sd.items()},
                'module.head.weight': torch.zeros(10, D),
                'module.head.bias': torch.zeros(10),
            },
            'epoch': 90,
            'best_acc1': 76.7,
        }
    else:  # MoCo v3 pretraining checkpoint
        ckpt = {
            'state_dict': {
                **{'module.base_encoder.' + k: v for k, v in sd.items()},
                **{
                    'module.momentum_encoder.' + k: v + 1
                    for k, v in sd.items()
                },
                'module.base_encoder.head.0.weight': torch.zeros(4, D),
                'module.predictor.0.weight': torch.zeros(4, 4),
            },
            'epoch': 300,
        }
    torch.save(ckpt, path)


def build(path=None, **kwargs):
    kw = dict(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='lspt',
        num_prompts=2,
        prompt_dropout=0.0,
    )
    kw.update(kwargs)
    return PromptedViT(pretrained=path, **kw).eval()


@pytest.mark.parametrize('layout', ['mae', 'mocov3', 'mocov3_pretrain'])
def test_official_layout_loads_every_backbone_tensor(tmp_path, layout):
    sd = official_vit_state_dict()
    path = str(tmp_path / f'{layout}.pth')
    write_official(path, layout, sd)
    vit = build(path, save_trainable_only=False)  # the state dict: all
    ours = vit.state_dict()
    backbone_keys = {k for k in ours if not k.startswith('prompt_method.')}
    assert backbone_keys == {ours_name(k) for k in sd}  # nothing missing
    for k, v in sd.items():
        assert torch.equal(ours[ours_name(k)], v), k


@pytest.mark.parametrize(
    'layout,script',
    [
        ('mae', 'mae2mmpretrain.py'),
        ('mocov3', 'mocov32mmpretrain.py'),
        ('mocov3_pretrain', 'mocov32mmpretrain.py'),
    ],
)
def test_converter_tools_write_mmpretrain_checkpoints(
    tmp_path, layout, script
):
    sd = official_vit_state_dict(seed=3)
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'out' / 'dst.pth')
    write_official(src, layout, sd)
    subprocess.run(
        [sys.executable, f'tools/model_converters/{script}', src, dst],
        check=True,
        capture_output=True,
    )
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert set(converted) == {'backbone.' + ours_name(k) for k in sd}
    # upstream mmpretrain loads it with its own Pretrained init ...
    upstream = VisionTransformer(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        out_type='raw',
        init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.'),
    )
    upstream.init_weights()
    upstream.eval()
    # ... and so does PromptedViT, to identical outputs with prompts off
    ours = build(dst, prompt_method='linear', out_type='raw')
    x = torch.randn(2, 3, 32, 32)
    assert (ours(x)[0] - upstream(x)[0]).abs().max() < 1e-5


def test_converter_rejects_wrong_source(tmp_path):
    src = str(tmp_path / 'mae.pth')
    write_official(src, 'mae', official_vit_state_dict())
    proc = subprocess.run(
        [
            sys.executable,
            'tools/model_converters/mocov32mmpretrain.py',
            src,
            str(tmp_path / 'x.pth'),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and 'not a mocov3 checkpoint' in proc.stderr


def test_pos_embed_resized_for_larger_input(tmp_path):
    path = str(tmp_path / 'mae.pth')
    write_official(path, 'mae', official_vit_state_dict(num_patches=16))
    vit = build(path, img_size=64)  # 8x8 patches from a 4x4 table
    assert vit.pos_embed.shape == (1, 65, D)
    assert vit(torch.randn(1, 3, 64, 64))[0].shape == (1, D)


def test_missing_backbone_key_is_an_error_naming_it(tmp_path):
    sd = official_vit_state_dict()
    del sd['blocks.1.mlp.fc2.weight']
    path = str(tmp_path / 'broken.pth')
    write_official(path, 'mae', sd)
    with pytest.raises(KeyError, match=r'layers\.1\.ffn\.layers\.1\.weight'):
        build(path)


def test_missing_file_names_path_and_download(tmp_path):
    path = str(tmp_path / 'mae_pretrain_vit_base.pth')
    with pytest.raises(FileNotFoundError) as err:
        build(path)
    assert path in str(err.value)
    assert 'https://dl.fbaipublicfiles.com/mae/pretrain/' in str(err.value)


def test_unknown_layout_and_truncated_file_are_clear_errors(tmp_path):
    odd = str(tmp_path / 'odd.pth')
    torch.save({'model': {'encoder.weight': torch.zeros(2)}}, odd)
    with pytest.raises(ValueError, match='odd.pth'):
        build(odd)
    good = str(tmp_path / 'good.pth')
    write_official(good, 'mae', official_vit_state_dict())
    cut = str(tmp_path / 'cut.pth')
    with open(good, 'rb') as f, open(cut, 'wb') as g:
        g.write(f.read()[:2000])
    with pytest.raises(RuntimeError, match='cut.pth'):
        build(cut)


def test_init_weights_keeps_pretrained_backbone(tmp_path):
    path = str(tmp_path / 'mae.pth')
    sd = official_vit_state_dict()
    write_official(path, 'mae', sd)
    vit = build(path)
    vit.init_weights()  # the runner calls this before training
    assert torch.equal(
        vit.layers[0].ffn.layers[0][0].weight, sd['blocks.0.mlp.fc1.weight']
    )


def test_trained_checkpoint_reloads_to_identical_outputs(tmp_path):
    vit = build()
    with torch.no_grad():
        vit.prompt_method.prompts.add_(1.0)
    torch.save(vit.state_dict(), tmp_path / 'trained.pth')
    fresh = build()
    fresh.load_state_dict(torch.load(tmp_path / 'trained.pth'))
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(vit(x)[0], fresh(x)[0])


def test_trainable_only_checkpoint_takes_backbone_from_pretrained(tmp_path):
    path = str(tmp_path / 'mae.pth')
    write_official(path, 'mae', official_vit_state_dict())
    vit = build(path, save_trainable_only=True)
    with torch.no_grad():
        vit.prompt_method.prompts.add_(1.0)
    saved = vit.state_dict()
    assert saved and all(k.startswith('prompt_method.') for k in saved)
    x = torch.randn(2, 3, 32, 32)
    again = build(path, save_trainable_only=True)
    again.load_state_dict(saved, strict=True)
    assert torch.equal(vit(x)[0], again(x)[0])
    no_backbone = build(None, save_trainable_only=True)  # random ViT
    with pytest.raises(RuntimeError, match='pretrained'):
        no_backbone.load_state_dict(saved)


def test_trainable_only_is_the_default_when_the_vit_is_refillable(tmp_path):
    """Saved state dicts leave the frozen ViT out exactly when it comes
    from a `pretrained` file; a random frozen ViT, a trained ViT (full
    fine-tuning) and save_trainable_only=False save everything."""
    path = str(tmp_path / 'mae.pth')
    write_official(path, 'mae', official_vit_state_dict())
    vit_keys = {ours_name(k) for k in official_vit_state_dict()}

    def saved(**kw):
        return set(build(**kw).state_dict())

    frozen = saved(path=path)
    assert frozen == {
        'prompt_method.prompts',
        'prompt_method.lstm.weight_ih',
        'prompt_method.lstm.weight_hh',
        'prompt_method.lstm.bias_ih',
        'prompt_method.lstm.bias_hh',
    }
    assert vit_keys <= saved()  # random frozen ViT: cannot be refilled
    assert vit_keys <= saved(path=path, save_trainable_only=False)
    assert vit_keys <= saved(path=path, prompt_method='full')
    # bias tuning: the trained biases stay, the frozen weights go
    assert saved(path=path, prompt_method='bias') == {
        k for k in vit_keys if k.endswith('.bias')
    }


def test_runner_checkpoint_loads_on_torch_with_weights_only_default(tmp_path):
    """A runner checkpoint pickles mmengine objects; compat lets mmengine's
    loader read it on torch >= 2.6 (test.py, --resume, load_from)."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner import load_checkpoint

    vit = build()
    path = str(tmp_path / 'iter_10.pth')
    history = HistoryBuffer()
    history.update(1.0)
    torch.save(
        {'state_dict': vit.state_dict(), 'message_hub': {'loss': history}},
        path,
    )
    from lspt_mm.models.checkpoint import _torch_version

    if _torch_version() >= (2, 6):  # weights_only=True by default
        with pytest.raises(Exception):
            torch.load(path)  # what mmengine would hit without the fix
    fresh = build()
    load_checkpoint(fresh, path, map_location='cpu', strict=True)
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(fresh(x)[0], vit(x)[0])


def test_test_tool_needs_no_pretrained_file_for_a_full_checkpoint(tmp_path):
    import importlib.util

    from mmengine.config import Config

    spec = importlib.util.spec_from_file_location('test_tool', 'tools/test.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    vit = build()
    full = str(tmp_path / 'full.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v for k, v in vit.state_dict().items()
            }
        },
        full,
    )
    trainable = str(tmp_path / 'trainable.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.prompt_method.prompts': vit.prompt_method.prompts
            }
        },
        trainable,
    )
    for ckpt, expected in ((full, None), (trainable, 'absent/mae.pth')):
        cfg = Config(
            dict(
                model=dict(
                    backbone=dict(
                        type='PromptedViT', pretrained='absent/mae.pth'
                    )
                )
            )
        )
        tool.skip_pretrained_if_checkpoint_has_backbone(cfg, ckpt)
        assert cfg.model.backbone.pretrained == expected

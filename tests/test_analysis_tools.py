"""Attention-map and prompt–patch similarity tools on tiny backbones: the
files they write, their sizes and value ranges."""

import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import lspt_mm  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(ROOT, 'tools', 'analysis_tools')
sys.path.insert(0, TOOLS)

import prompt_patch_similarity  # noqa: E402
import visualize_attention  # noqa: E402

LAYERS, SIZE, PATCH = 3, 32, 8

CONFIG = """
custom_imports = dict(imports=['lspt_mm'], allow_failed_imports=False)
default_scope = 'mmpretrain'
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(
        type='PromptedViT',
        arch=dict(embed_dims=32, num_layers={layers}, num_heads=2,
                  feedforward_channels=64),
        img_size={size}, patch_size={patch}, prompt_method='{method}',
        num_prompts={num_prompts}, out_type='avg_token'),
    head=dict(type='LinearClsHead', num_classes=5, in_channels=32,
              loss=dict(type='CrossEntropyLoss')))
"""

SEG_CONFIG = """
custom_imports = dict(imports=['lspt_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(type='SegDataPreProcessor',
                           mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='mmpretrain.PromptedViT',
        arch=dict(embed_dims=32, num_layers=4, num_heads=2,
                  feedforward_channels=64),
        img_size=48, patch_size=8, prompt_method='gapt', num_prompts=3,
        out_type='featmap', out_indices=[0, 1, 2, 3]),
    neck=dict(type='Feature2Pyramid', embed_dim=32, rescales=[4, 2, 1, 0.5],
              norm_cfg=norm_cfg),
    decode_head=dict(type='UPerHead', in_channels=[32] * 4,
                     in_index=[0, 1, 2, 3], channels=16, num_classes=4,
                     norm_cfg=norm_cfg),
    train_cfg=dict(), test_cfg=dict(mode='whole'))
"""


def write_config(tmp_path, method='lspt', num_prompts=3, name=None):
    path = tmp_path / f'{name or method}.py'
    path.write_text(
        CONFIG.format(
            layers=LAYERS,
            size=SIZE,
            patch=PATCH,
            method=method,
            num_prompts=num_prompts,
        )
    )
    return str(path)


def write_image(path, size=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path
    )
    return str(path)


def check_attention_files(png, npz, layers, grid, num_prompts, image_hw):
    img = Image.open(png)
    assert img.format == 'PNG' and img.mode in ('RGB', 'RGBA')
    # 100 dpi, cell 1.6 in per map: (1.6·L + 0.6) x (1.6·2 + 0.6) inches
    assert img.size == (round(100 * (1.6 * layers + 0.6)), 380)
    pixels = np.asarray(img.convert('RGB'))
    assert pixels.std() > 5  # something was drawn
    d = np.load(npz)
    assert d['image'].shape == (*image_hw, 3) and d['image'].dtype == np.uint8
    for key in ('cls_to_patch', 'prompt_to_patch'):
        assert d[key].shape == (layers, *grid)
    for key in ('cls_mass', 'prompt_mass', 'patch_mass'):
        assert d[key].shape == (layers, 3)
    assert np.allclose(d['patch_mass'].sum(1), 1, atol=1e-5)
    # patches take from prompts exactly when there are prompts
    assert ((d['patch_mass'][:, 1] > 0) == bool(num_prompts)).all()
    cls = d['cls_to_patch']
    assert ((cls >= 0) & (cls <= 1)).all()
    assert np.allclose(d['cls_mass'].sum(1), 1, atol=1e-5)
    assert np.allclose(cls.sum((1, 2)), d['cls_mass'][:, 2], atol=1e-5)
    if num_prompts:
        pm = d['prompt_to_patch']
        assert ((pm >= 0) & (pm <= 1)).all()
        assert np.allclose(d['prompt_mass'].sum(1), 1, atol=1e-5)
        # mean over prompts of each prompt's patch mass
        assert np.allclose(pm.sum((1, 2)), d['prompt_mass'][:, 2], atol=1e-5)
        assert (d['prompt_mass'][:, 1] > 0).all()
    else:
        assert np.isnan(d['prompt_to_patch']).all()
    return d


@pytest.mark.parametrize(
    'method,num_prompts', [('lspt', 3), ('gapt', 2), ('none', 0)]
)
def test_visualize_attention_random_init(tmp_path, method, num_prompts):
    cfg = write_config(tmp_path, method, max(num_prompts, 1))
    img = write_image(tmp_path / 'cat.png')
    png, npz = visualize_attention.main(
        [cfg, 'none', '--img', img, '--out-dir', str(tmp_path / 'out')]
    )
    assert png == str(tmp_path / 'out' / 'attention_cat.png')
    check_attention_files(
        png, npz, LAYERS, (SIZE // PATCH,) * 2, num_prompts, (SIZE, SIZE)
    )


def test_visualize_attention_checkpoint_is_used(tmp_path):
    """A saved checkpoint is loaded: its maps match the model's own
    recorded attention, and differ from another random init."""
    from lspt_mm.analysis.tokens import load_model, normalise

    cfg = write_config(tmp_path, 'vpt_deep', 4)
    torch.manual_seed(123)
    model, _ = load_model(cfg)
    with torch.no_grad():
        for p in model.backbone.layers.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), ckpt)
    img = write_image(tmp_path / 'dog.jpg', size=(64, 64), seed=1)
    png, npz = visualize_attention.main(
        [
            cfg,
            ckpt,
            '--img',
            img,
            '--out-dir',
            str(tmp_path),
            '--cfg-options',
            'model.backbone.prompt_dropout=0.0',
        ]
    )
    d = check_attention_files(png, npz, LAYERS, (4, 4), 4, (SIZE, SIZE))
    x = normalise(model, d['image'][None])
    with model.backbone.record_attention() as maps:
        model.backbone(x)
    want = torch.stack([m[0].mean(0)[0, 5:] for m in maps]).reshape(
        LAYERS, 4, 4
    )
    assert np.allclose(d['cls_to_patch'], want.numpy(), atol=1e-5)
    # random init (no checkpoint) gives other maps
    _, npz2 = visualize_attention.main(
        [cfg, 'none', '--img', img, '--out-dir', str(tmp_path / 'b')]
    )
    assert not np.allclose(np.load(npz2)['cls_to_patch'], d['cls_to_patch'])


def test_visualize_attention_seg_config(tmp_path):
    """mmseg EncoderDecoder config, GaPT (temperature path)."""
    cfg = tmp_path / 'seg.py'
    cfg.write_text(SEG_CONFIG)
    img = write_image(tmp_path / 'street.png', size=(30, 50))
    png, npz = visualize_attention.main(
        [str(cfg), 'none', '--img', img, '--out-dir', str(tmp_path)]
    )
    check_attention_files(png, npz, 4, (6, 6), 3, (48, 48))


def test_prompt_patch_similarity(tmp_path):
    cfgs = [write_config(tmp_path, m, 3) for m in ('vpt_deep', 'gapt', 'lspt')]
    seg = tmp_path / 'seg.py'
    seg.write_text(SEG_CONFIG)
    img_dir = tmp_path / 'imgs'
    img_dir.mkdir()
    for i in range(3):
        write_image(img_dir / f'{i}.png', seed=i)
    out = str(tmp_path / 'sim' / 'similarity.png')
    args = []
    for c in cfgs:
        args += [c, 'none']
    args += [str(seg), 'none']
    png, js = prompt_patch_similarity.main(
        args
        + [
            '--img',
            str(img_dir),
            '--batch',
            '2',
            '--out',
            out,
            '--labels',
            'VPT',
            'GaPT',
            'LSPT',
            'GaPT-seg',
        ]
    )
    img = Image.open(png)
    assert img.format == 'PNG' and img.size == (600, 400)
    assert np.asarray(img.convert('L')).std() > 5
    data = json.load(open(js))
    assert len(data['images']) == 3
    assert list(data['models']) == ['VPT', 'GaPT', 'LSPT', 'GaPT-seg']
    for label, r in data['models'].items():
        L = 4 if label == 'GaPT-seg' else LAYERS
        assert r['blocks'] == list(range(1, L + 1))
        assert len(r['mean_cosine']) == L and len(r['std_cosine']) == L
        per = np.array(r['per_image'])
        assert per.shape == (3, L)
        assert (np.abs(per) <= 1 + 1e-6).all()
        assert np.allclose(per.mean(0), r['mean_cosine'], atol=1e-6)
        assert (np.array(r['std_cosine']) >= 0).all()
    assert data['models']['LSPT']['method'] == 'lspt'


def test_prompt_patch_cosine_matches_written_out():
    """One value per block = mean over (prompt, patch) pairs of the block
    output tokens; GaPT's temperature path is captured too."""
    from lspt_mm.analysis.tokens import prompt_patch_cosine
    from lspt_mm.models import PromptedViT

    torch.manual_seed(0)
    vit = PromptedViT(
        arch=dict(
            embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64
        ),
        img_size=16,
        patch_size=8,
        prompt_method='gapt',
        num_prompts=2,
        out_type='raw',
        out_indices=[0, 1, 2],
        final_norm=False,
    ).eval()
    with torch.no_grad():
        vit.prompt_method.temperatures.fill_(0.5)
    x = torch.randn(2, 3, 16, 16)
    sims = prompt_patch_cosine(vit, x)
    assert sims.shape == (2, 3)
    outs = vit(x)  # raw tokens after each block (same as block outputs)
    for k, tokens in enumerate(outs):
        p = torch.nn.functional.normalize(tokens[:, 1:3], dim=-1)
        q = torch.nn.functional.normalize(tokens[:, 3:], dim=-1)
        want = (p @ q.transpose(1, 2)).mean((1, 2))
        assert torch.allclose(torch.from_numpy(sims[:, k]), want, atol=1e-5)


def test_similarity_rejects_prompt_free_backbone(tmp_path):
    cfg = write_config(tmp_path, 'none', 1)
    img = write_image(tmp_path / 'a.png')
    with pytest.raises(ValueError, match='no prompt tokens'):
        prompt_patch_similarity.main(
            [cfg, 'none', '--img', img, '--out', str(tmp_path / 'x.png')]
        )


def test_tools_run_as_scripts(tmp_path):
    cfg = write_config(tmp_path, 'lspt', 2)
    img = write_image(tmp_path / 'b.png')
    out = subprocess.run(
        [
            sys.executable,
            osp.join(TOOLS, 'visualize_attention.py'),
            cfg,
            'none',
            '--img',
            img,
            '--out-dir',
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert osp.getsize(tmp_path / 'attention_b.png') > 1000

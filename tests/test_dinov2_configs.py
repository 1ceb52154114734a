"""DINOv2 configs: what they promise (patch 14, native 518 crops, the
official weight file) and that the model they describe runs."""

import os.path as osp

import torch

import lspt_mm  # noqa: F401

from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'segmentation')


def test_dinov2_ade20k_config_uses_native_518_crops():
    cfg = Config.fromfile(
        osp.join(SEG, 'lspt-dinov2-base_upernet_8xb2-160k_ade20k-518x518.py')
    )
    b = cfg.model.backbone
    assert b.arch == 'dinov2-base' and b.patch_size == 14
    assert b.img_size == 518 and 518 % 14 == 0
    assert b.prompt_method == 'lspt' and b.num_prompts == 100
    assert b.pretrained == 'checkpoints/dinov2_vitb14_pretrain.pth'
    crop = [
        t
        for t in cfg.train_dataloader.dataset.pipeline
        if t.type == 'RandomCrop'
    ][0]
    assert tuple(crop.crop_size) == (518, 518)
    assert tuple(cfg.model.data_preprocessor.size) == (518, 518)
    assert cfg.model.data_preprocessor.test_cfg.size_divisor == 14
    assert tuple(cfg.model.test_cfg.crop_size) == (518, 518)

    # the same model, narrowed, runs a loss step on a 518 crop
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    b.update(
        arch=dict(
            embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64
        ),
        pretrained=None,
        out_indices=[0, 1, 2, 3],
        num_prompts=2,
    )
    cfg.model.neck.update(embed_dim=32, norm_cfg=dict(type='BN'))
    cfg.model.decode_head.update(
        in_channels=[32] * 4, channels=16, norm_cfg=dict(type='BN')
    )
    cfg.model.auxiliary_head.update(
        in_channels=32, channels=8, norm_cfg=dict(type='BN')
    )
    model = MODELS.build(cfg.model)
    feats = model.extract_feat(torch.randn(1, 3, 518, 518))
    assert [tuple(f.shape[-2:]) for f in feats] == [
        (148, 148),
        (74, 74),
        (37, 37),
        (18, 18),
    ]

# Quick-start demo (CPU, a few minutes, no downloads): the main ADE20K
# config with a tiny ViT and small images, trained on the synthetic dataset of
# tools/dataset_converters/make_synthetic_ade20k.py (ADE20K layout, 150-class
# label space, 9 classes present). Same components as the real recipe:
# PromptedViT (LSPT, frozen) -> Feature2Pyramid -> UPerHead + FCN aux, the
# checked ADE20K dataset and pipeline, AdamW, warm-up + poly, slide inference.
# What differs, and why:
#   - a 4-block, 64-wide ViT with 8x8 patches on 64x64 crops, randomly
#     initialised and frozen (no pretrained file is downloaded here: only the
#     prompts, the LSTM prompt coder, the neck and the heads learn);
#   - BN instead of SyncBN (single CPU process), batch 4, no workers;
#   - lr 1e-3 with 30 warm-up iterations: 300 iterations instead of 160k.
# Run: python tools/demo_ade20k.py   (or tools/train.py / tools/test.py)
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']

data_root = 'data/synthetic_ade/ADEChallengeData2016'
crop_size = (64, 64)
scale = (256, 64)  # the real config's (2048, 512), scaled by 1/8
norm_cfg = dict(type='BN', requires_grad=True)
embed_dims = 64
max_iters = 300

data_preprocessor = dict(size=crop_size, test_cfg=dict(size_divisor=8))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch=dict(
            _delete_=True,  # a dict replacing the base's arch='base'
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=4,
            feedforward_channels=4 * embed_dims,
        ),
        img_size=crop_size,
        patch_size=8,
        out_indices=[0, 1, 2, 3],
        num_prompts=4,
        pretrained=None,
    ),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[embed_dims] * 4, channels=64, norm_cfg=norm_cfg
    ),
    auxiliary_head=dict(
        in_channels=embed_dims, channels=32, norm_cfg=norm_cfg
    ),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(43, 43)),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=scale,
        ratio_range=(0.5, 2.0),
        keep_ratio=True,
    ),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline),
)
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=30),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=30,
        end=max_iters,
        by_epoch=False,
    ),
]
train_cfg = dict(max_iters=max_iters, val_interval=100)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=100, max_keep_ckpts=3, save_best=None),
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)

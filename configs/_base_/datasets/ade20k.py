# ADE20K (SceneParsing, ADEChallengeData2016), 150 classes, 512x512 crops.
# Same pipeline as mmseg::_base_/datasets/ade20k.py (mmseg's loader names:
# mmseg's inference_model and MMSegInferencer find them by type), with the
# checked dataset of lspt_mm.datasets: a missing data root says where the
# data must be and how to get it; its loaders are the checked ones, so an
# unreadable image or a label PNG whose size differs from its image is
# reported by file name (dataset on_error='skip': log a warning and skip the
# sample).
# (custom_imports for lspt_mm: in _base_/models/upernet_prompted_vit.py)

dataset_type = 'CheckedADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    # labels 0..150 on disk; 0 ("other") becomes 255 = ignored
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(
        type='RandomResize',
        scale=(2048, 512),
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
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # labels are loaded after Resize: metrics use the original resolution
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
img_ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
            ],
            [dict(type='LoadAnnotations', reduce_zero_label=True)],
            [dict(type='PackSegInputs')],
        ],
    ),
]
train_dataloader = dict(
    batch_size=2,  # x 8 GPUs = 16
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/training', seg_map_path='annotations/training'
        ),
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
        data_prefix=dict(
            img_path='images/validation', seg_map_path='annotations/validation'
        ),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

# mmseg's IoUMetric; the 150-row per-class table goes to the log file, the
# console gets the classes that occur (best / worst few)
val_evaluator = dict(type='ConciseIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

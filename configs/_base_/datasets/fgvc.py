# FGVC (CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs, Stanford Cars):
# the official folder + VPT-style train/val/test lists (see
# tools/dataset_converters/prepare_fgvc_splits.py).
# Protocol (method.md, VPT's transforms): train: resize the short side to
# 256, random crop 224, horizontal flip; val/test: resize the short side to
# 256, center crop 224. Batch 64. Train on train, validate on val, test on
# test. The tuning protocol (tools/run_benchmark.py, lspt_mm/tuning) instead
# scores grid points on val and trains the chosen one on trainval.
# None: from the task's recipe (lspt_mm.recipes.apply_task: the
# dataset `name`, its folder under `data_root`, the class count, the training
# batch size and the batch its lr is given at).
dataset_type = 'FGVC'
data_root = 'data/fgvc'  # holds CUB_200_2011/, nabirds/, OxfordFlower/, ...
data_preprocessor = dict(
    num_classes=None,
    # ImageNet mean / std (MAE, MoCo v3, DINOv2), on RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=None,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        name=None,
        data_root=None,
        split='train',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        name=None,
        data_root=None,
        split='val',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        name=None,
        data_root=None,
        split='test',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1,))
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=None)

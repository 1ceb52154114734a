# VTAB-1k, image-folder release (data/vtab-1k/<task>/, lists
# train800.txt / val200.txt / train800val200.txt / test.txt).
# Protocol (method.md): train on train800val200, test on test, plain resize
# to 224x224 (bicubic, as NOAH's loader), no augmentation; batch 128.
# None: from the task's recipe (lspt_mm.recipes.apply_task: the
# dataset's `task`, `data_root`, the class count, the training batch size
# and the batch its lr is given at).
dataset_type = 'VTAB1k'
data_root = 'data/vtab-1k'
data_preprocessor = dict(
    num_classes=None,
    # ImageNet mean / std (MAE, MoCo v3, DINOv2), on RGB
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), interpolation='bicubic'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=None,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        task=None,
        data_root=None,
        split='train800val200',
        pipeline=train_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
test_dataloader = dict(
    batch_size=128,
    num_workers=4,
    persistent_workers=True,
    dataset=dict(
        type=dataset_type,
        task=None,
        data_root=None,
        split='test',
        pipeline=test_pipeline,
    ),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1,))
test_cfg = dict()
# No validation in the protocol run (val200 is part of the training set).
# Tuning (VPT's protocol: train on train800, score val200, then train the
# chosen setting on train800val200) is done by tools/run_benchmark.py
# (lspt_mm/tuning), which sets these splits per run.
val_dataloader = None
val_evaluator = None
val_cfg = None
auto_scale_lr = dict(base_batch_size=None)

# Quick-start demo (CPU, about a minute, no downloads): the LSPT + MAE CUB
# config with a tiny ViT and small images, trained on the synthetic dataset of
# tools/dataset_converters/make_synthetic_cls.py (the official CUB-200-2011
# layout with 6 classes, the class decides the colour; split lists written by
# prepare_fgvc_splits.py as for the real data). Same components as the real
# recipe: PromptedViT (LSPT, frozen) -> mean of prompt and patch tokens ->
# final norm -> linear head, the FGVC dataset and pipeline, SGD with warm-up
# and cosine, validation on the val split, testing on the test split.
# What differs, and why:
#   - a 4-block, 64-wide ViT with 8x8 patches on 32x32 crops, randomly
#     initialised and frozen (no pretrained file is downloaded here: only the
#     prompts, the LSTM prompt coder and the head learn), 4 prompts;
#   - 6 classes instead of 200 (num_classes overrides CUB's count);
#   - batch 16, no workers, 10 epochs with 1 warm-up epoch instead of 100/10.
# The CUB recipe's other values (lr, weight decay, the batch its lr is given
# at) come from the recipe table, as for the real config (task='cub').
# Run: python tools/demo_classification.py   (or tools/train.py / test.py)
_base_ = ['./lspt_vit-b16-mae_fgvc.py']

task = 'cub'
data_root = 'data/synthetic_fgvc'  # holds CUB_200_2011/
num_classes = 6
size = 32
embed_dims = 64
max_epochs = 10

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # a dict replacing the base's arch='base'
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=4,
            feedforward_channels=4 * embed_dims,
        ),
        img_size=size,
        patch_size=8,
        num_prompts=4,
        pretrained=None,
    ),
    head=dict(num_classes=num_classes, in_channels=embed_dims),
)
data_preprocessor = dict(num_classes=num_classes)

# VPT's FGVC transforms, scaled from 256 -> 224 to 36 -> 32
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short', interpolation='bilinear'),
    dict(type='RandomCrop', crop_size=size),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short', interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=size),
    dict(type='PackInputs'),
]
loader = dict(batch_size=16, num_workers=0, persistent_workers=False)
train_dataloader = dict(
    **loader, dataset=dict(num_classes=num_classes, pipeline=train_pipeline)
)
val_dataloader = dict(
    **loader, dataset=dict(num_classes=num_classes, pipeline=test_pipeline)
)
test_dataloader = dict(
    **loader, dataset=dict(num_classes=num_classes, pipeline=test_pipeline)
)

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=0.0,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=max_epochs)
)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, deterministic=True)

# complete for this config's data root and model now (see the benchmark
# config): what Config.fromfile gives is what runs
from lspt_mm.recipes import complete_config  # noqa: E402

globals().update(complete_config(_base_, globals()))

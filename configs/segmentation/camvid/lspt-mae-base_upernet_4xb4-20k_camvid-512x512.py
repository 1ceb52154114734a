# Full-size GPU setting (not run here): LSPT, 100 prompts (GaPT's ADE20K
# setting), frozen MAE ViT-B/16, UPerNet (768 channels, SyncBN), CamVid
# upscaled x2 (720x960, jitter 0.5..2) with 512x512 crops, batch 16
# (4 GPUs x 4), AdamW lr 1e-4, 1500 warm-up iterations then poly decay,
# 20k iterations; slide inference on 720x960. Base of this setting: the
# other methods are thin children (<method>-mae-base_upernet_4xb4-20k_...).
#   bash tools/dist_train.sh configs/segmentation/camvid/<this file> 4
# Weights: checkpoints/mae_pretrain_vit_base.pth (README, Pretrained weights)
_base_ = [
    '../../_base_/models/upernet_prompted_vit.py',
    '../../_base_/datasets/camvid.py',
    '../../_base_/seg_runtime.py',
    '../../_base_/schedules/schedule_160k.py',
]
data_root = 'data/camvid'  # the one line to change for a copy elsewhere
crop_size = (512, 512)
num_classes = 11
max_iters = 20000
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        prompt_method='lspt',
        num_prompts=100,
        pretrained='checkpoints/mae_pretrain_vit_base.pth',
    ),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)),
)
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500
    ),
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=1.0,
        begin=1500,
        end=max_iters,
        by_epoch=False,
    ),
]
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = dict(dataset=dict(data_root=data_root))
train_cfg = dict(max_iters=max_iters, val_interval=2000)
default_hooks = dict(checkpoint=dict(interval=2000))

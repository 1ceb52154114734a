# LSPT (long-term spatial prompt tuning) on a frozen MAE ViT-B/16, UPerNet,
# ADE20K 512x512, 160k iterations, batch 16 (8 GPUs x 2). Only the prompts,
# the shared LSTM prompt coder, the neck and the heads train.
# Weights: checkpoints/mae_pretrain_vit_base.pth
#   (https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth)
_base_ = [
    '../_base_/models/upernet_prompted_vit.py',
    '../_base_/datasets/ade20k.py',
    '../_base_/seg_runtime.py',
    '../_base_/schedules/schedule_160k.py',
]
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(
        prompt_method='lspt',
        num_prompts=100,
        pretrained='checkpoints/mae_pretrain_vit_base.pth',
    ),
)

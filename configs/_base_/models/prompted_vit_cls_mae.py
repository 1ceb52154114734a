# MAE ViT-B/16 (method.md, GaPT/VPT protocol): mean of the last block's
# prompt and patch tokens, then the final norm, then the linear head.
_base_ = './prompted_vit_cls.py'
model = dict(
    backbone=dict(
        out_type='avg_token',
        pretrained='checkpoints/mae_pretrain_vit_base.pth'))

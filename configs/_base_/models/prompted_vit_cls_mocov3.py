# MoCo v3 ViT-B/16 (method.md): final-norm CLS token, then the linear head.
_base_ = './prompted_vit_cls.py'
model = dict(
    backbone=dict(
        out_type='cls_token',
        pretrained='checkpoints/linear-vit-b-300ep.pth.tar'))

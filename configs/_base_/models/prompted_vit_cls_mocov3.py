# MoCo v3 ViT-B/16 (method.md): final-norm CLS token, then the linear head.
# None: from the task's recipe (lspt_mm.recipes.apply_task).
_base_ = './prompted_vit_cls.py'
model = dict(
    backbone=dict(
        num_prompts=None,
        out_type='cls_token',
        pretrained='checkpoints/linear-vit-b-300ep.pth.tar',
    ),
    head=dict(num_classes=None),
)

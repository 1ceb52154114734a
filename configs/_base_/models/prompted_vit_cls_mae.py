# MAE ViT-B/16 (method.md, GaPT/VPT protocol): mean of the last block's
# prompt and patch tokens, then the final norm, then the linear head.
# None: from the task's recipe (lspt_mm.recipes.apply_task).
_base_ = './prompted_vit_cls.py'
model = dict(
    backbone=dict(
        num_prompts=None,
        out_type='avg_token',
        pretrained='checkpoints/mae_pretrain_vit_base.pth',
    ),
    head=dict(num_classes=None),
)

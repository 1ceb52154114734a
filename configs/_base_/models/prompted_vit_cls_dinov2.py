# DINOv2 ViT-B/14: patch 14, LayerScale; 224 px inputs are 16x16 patches
# (the 37x37 position table of the 518 px release is resized on load).
# Readout: the final-norm CLS token, the token DINOv2's image-level
# objective trains and its linear evaluation reads.
# Weights: checkpoints/dinov2_vitb14_pretrain.pth from
#   https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth
# (the `_reg4_` file works too with num_register_tokens=4).
# None: from the task's recipe (lspt_mm.recipes.apply_task).
_base_ = './prompted_vit_cls.py'
model = dict(
    backbone=dict(
        arch='dinov2-base',
        img_size=224,
        patch_size=14,
        num_prompts=None,
        out_type='cls_token',
        pretrained='checkpoints/dinov2_vitb14_pretrain.pth',
    ),
    head=dict(num_classes=None),
)

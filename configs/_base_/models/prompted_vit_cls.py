# Frozen ViT-B/16 + prompt method + linear head (classification).
# Backbone-specific parts (output token, weights) are set by
# prompted_vit_cls_mae.py / prompted_vit_cls_mocov3.py.
model = dict(
    # mmpretrain's ImageClassifier that refuses a checkpoint that does not
    # fit it, whoever loads it (get_model, inferencers, the runner), and
    # names its task for inference_model (lspt_mm/models/task_models.py)
    type='PromptedImageClassifier',
    backbone=dict(
        type='PromptedViT',
        arch='base',
        img_size=224,
        patch_size=16,
        # a name of the method table (lspt_mm/models/methods.py: linear, full,
        # ..., lspt) or a registered PromptMethod type; options: prompt_cfg
        prompt_method='lspt',
        num_prompts=10,
        prompt_dropout=0.1,
        out_type='avg_token',
        pretrained=None,
    ),
    neck=None,
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        topk=(1,),
    ),
)

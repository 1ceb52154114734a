# EncoderDecoder: frozen self-supervised ViT-B/16 with prompts (PromptedViT,
# LSPT by default) -> Feature2Pyramid (one 1/16 map per chosen block turned
# into 1/4, 1/8, 1/16, 1/32) -> UPerHead, plus an FCN auxiliary head on the
# 1/16 level. Same layout as mmseg's MAE ADE20K config
# (mmseg::_base_/models/upernet_mae.py), with the backbone swapped.
custom_imports = dict(
    imports=['lspt_mm'],  # registers the backbone, datasets and hooks
    allow_failed_imports=False,
)

norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # ImageNet statistics (MAE, MoCo v3)
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    # test time: pad to a multiple of the patch size (removed again from the
    # predictions), for images whose short side ends below the crop size
    # (very wide images, TTA scales < 1): the ViT needs whole patches
    test_cfg=dict(size_divisor=16),
)
model = dict(
    # mmseg's EncoderDecoder that refuses a checkpoint that does not fit it
    # (lspt_mm/models/task_models.py), whoever loads it (init_model, the
    # inferencer, the runner)
    type='PromptedEncoderDecoder',
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        type='mmpretrain.PromptedViT',
        arch='base',
        img_size=512,
        patch_size=16,
        out_indices=[3, 5, 7, 11],  # blocks 4, 6, 8, 12
        out_type='featmap',  # patch tokens as maps; CLS and prompts dropped
        final_norm=False,  # as mmseg's MAE/BEiT: raw block outputs
        drop_path_rate=0.0,  # frozen blocks run in eval mode anyway
        prompt_method='lspt',
        num_prompts=100,  # the ADE20K setting of the GaPT paper
        prompt_dropout=0.1,
        pretrained='checkpoints/mae_pretrain_vit_base.pth',
    ),
    neck=dict(
        type='Feature2Pyramid',
        embed_dim=768,
        rescales=[4, 2, 1, 0.5],
        norm_cfg=norm_cfg,
    ),
    decode_head=dict(
        type='UPerHead',
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=768,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0
        ),
    ),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=768,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4
        ),
    ),
    train_cfg=dict(),
    # sliding 512x512 windows, stride 341 (2/3 overlap), as mmseg's MAE
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
)

# LSPT with mmseg's SETR-PUP head (SETRUPHead: 4 conv + 2x upsampling
# stages on the last block's map, 3 auxiliary PUP heads on blocks 4/6/8,
# LN), the decoder of the only published prompt-tuning ADE20K numbers
# (GaPT's table, after VPT): 100 prompts, frozen MAE ViT-B/16, 512x512,
# batch 16 (8 GPUs x 2), 160k iterations, lr 1e-3. Optimiser as mmseg's
# SETR recipe (configs/setr/setr_vit-l_pup_8xb1-160k_ade20k-512x512.py):
# SGD momentum 0.9, no weight decay, poly decay, decode and auxiliary heads
# at 10x the lr (paramwise_cfg.module_lr_mult). Other prompt methods:
# vpt-deep- / gapt-mae-base_setr-pup_... (thin children), or
#   --cfg-options model.backbone.prompt_method=vpt_shallow
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
norm_cfg = dict(type='SyncBN', requires_grad=True)
pup_norm = dict(type='LN', eps=1e-6, requires_grad=True)
model = dict(
    backbone=dict(prompt_method='lspt', num_prompts=100),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type='SETRUPHead',
        in_channels=768,
        channels=256,
        in_index=3,
        num_classes=150,
        dropout_ratio=0,
        norm_cfg=norm_cfg,
        num_convs=4,
        up_scale=2,
        kernel_size=3,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0
        ),
    ),
    auxiliary_head=[
        dict(
            type='SETRUPHead',
            in_channels=768,
            channels=256,
            in_index=i,
            num_classes=150,
            dropout_ratio=0,
            norm_cfg=norm_cfg,
            num_convs=2,
            up_scale=4,
            kernel_size=3,
            align_corners=False,
            loss_decode=dict(
                type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4
            ),
        )
        for i in (0, 1, 2)
    ],
)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=0.0),
    constructor='PromptTuningOptimWrapperConstructor',
    paramwise_cfg=dict(
        module_lr_mult=dict(decode_head=10.0, auxiliary_head=10.0)
    ),
)
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=160000,
        by_epoch=False,
    )
]

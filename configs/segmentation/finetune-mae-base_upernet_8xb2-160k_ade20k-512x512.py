# Baseline: full fine-tuning of MAE ViT-B/16 with UPerNet, MAE's ADE20K
# protocol: AdamW lr 8e-5 (wd 0.05), layer-wise lr decay 0.8, drop path 0.1,
# 160k iterations, batch 16. Layer ids come from the backbone's
# get_layer_depth (patch/pos embedding = 0, block i = i + 1, everything else,
# neck and heads included, = the top), via SegLayerDecayOptimWrapperConstructor
# (mmseg's LayerDecayOptimizerConstructor only knows its own BEiT/MAE/ConvNeXt
# classes).
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='full', drop_path_rate=0.1))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=8e-5, betas=(0.9, 0.999), weight_decay=0.05
    ),
    constructor='SegLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.8,
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'pos_embed': dict(decay_mult=0.0),
            'cls_token': dict(decay_mult=0.0),
        },
    ),
)

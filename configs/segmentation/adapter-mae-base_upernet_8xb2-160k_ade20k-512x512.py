# Baseline: bottleneck adapters (VPT's "Adapter" row; Pfeiffer form as in
# VPT's src/models/vit_adapter/adapter_block.py, reduction 8: D -> 96 -> D
# after every block's MLP) on the frozen MAE ViT-B/16, with the UPerNet
# neck and heads; the rest is the LSPT recipe (method table:
# lspt_mm/models/methods.py; init: lspt_mm/models/baselines.py).
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(prompt_method='adapter', prompt_cfg=dict(reduction=8))
)

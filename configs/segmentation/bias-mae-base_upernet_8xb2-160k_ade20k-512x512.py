# Baseline: bias tuning (BitFit; VPT's "Bias" row, code: tinytl-bias) of
# the frozen MAE ViT-B/16: every bias of the ViT trains, with the UPerNet
# neck and heads; the rest is the LSPT recipe (method table:
# lspt_mm/models/methods.py).
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='bias'))

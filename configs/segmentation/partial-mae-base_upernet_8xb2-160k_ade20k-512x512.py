# Baseline: partial-1 (VPT's "Partial-1" row): the last block of the MAE
# ViT-B/16 trains (no final norm here: final_norm=False for UPerNet), with
# the UPerNet neck and heads; the rest is the LSPT recipe. More blocks:
# prompt_cfg=dict(k=2) (method table: lspt_mm/models/methods.py).
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='partial', prompt_cfg=dict(k=1)))

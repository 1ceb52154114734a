# Baseline: frozen MAE ViT-B/16 without prompts; only neck and heads train
# ("linear"/head-only probe for segmentation).
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='linear'))

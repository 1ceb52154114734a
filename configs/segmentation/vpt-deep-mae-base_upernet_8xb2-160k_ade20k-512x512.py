# Baseline: VPT-deep, 100 new prompts per block, frozen MAE ViT-B/16.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='vpt_deep', num_prompts=100))

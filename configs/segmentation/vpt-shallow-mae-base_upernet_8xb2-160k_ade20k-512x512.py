# Baseline: VPT-shallow, 100 prompts inserted once, frozen MAE ViT-B/16.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='vpt_shallow', num_prompts=100))

# CVPT (Huang et al., ICCV 2025): 100 prompts per block read by every token
# through the block's frozen, weight-initialised cross-attention (after the
# self-attention, CVPT's insert=3), frozen MAE ViT-B/16, UPerNet.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='cvpt', num_prompts=100))

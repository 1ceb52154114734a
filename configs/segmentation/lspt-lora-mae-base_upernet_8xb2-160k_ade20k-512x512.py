# LSPT composed with LoRA (rank 16, alpha 16, dropout 0.1 on every qkv,
# mmpretrain's LoRALinear) in one backbone, frozen MAE ViT-B/16, UPerNet.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='lspt_lora'))

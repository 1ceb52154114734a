# LSPT composed with bias tuning (DA-VPT+'s prompts + bias recipe, on LSPT):
# prompts, the LSTM and every bias of the frozen MAE ViT-B/16 train; UPerNet.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='lspt_bias'))

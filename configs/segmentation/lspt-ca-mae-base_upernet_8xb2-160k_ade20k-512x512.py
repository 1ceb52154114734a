# LSPT-CA (this project's extension, docs/lspt_ca.md): LSPT's LSTM-coded
# prompts read by every token through the block's frozen cross-attention,
# zero-initialised per-block scales; frozen MAE ViT-B/16, UPerNet.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='lspt_ca'))

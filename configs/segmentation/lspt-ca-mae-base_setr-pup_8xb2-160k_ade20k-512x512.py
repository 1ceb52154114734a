# LSPT-CA (docs/lspt_ca.md), 100 prompts, with the SETR-PUP head.
_base_ = ['./lspt-mae-base_setr-pup_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='lspt_ca'))

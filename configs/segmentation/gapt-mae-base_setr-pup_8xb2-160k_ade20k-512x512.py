# GaPT, 100 prompts, gate init 10, with the SETR-PUP head (GaPT's ADE20K
# setting).
_base_ = ['./lspt-mae-base_setr-pup_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(prompt_method='gapt', prompt_cfg=dict(gate_init=10.0))
)

# Baseline: GaPT (gated prompts, per-block attention temperature), 100
# prompts, gate init 10 (the GaPT paper's segmentation setting), frozen MAE.
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(
        prompt_method='gapt', num_prompts=100, prompt_cfg=dict(gate_init=10.0)
    )
)

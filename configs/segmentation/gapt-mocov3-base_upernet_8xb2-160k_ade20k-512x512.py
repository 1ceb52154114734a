# Baseline: GaPT, 100 prompts, gate init 10, frozen MoCo v3 ViT-B/16.
_base_ = ['./lspt-mocov3-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(
        prompt_method='gapt', num_prompts=100, prompt_cfg=dict(gate_init=10.0)
    )
)

# SPT-shallow (published recipe): as spt-deep_vit-b16-mocov3_vtab1k.py with
# VPT-shallow and 100 prompts, started from patch embeddings (the official
# shallow variant samples them at random).
_base_ = ['./spt-deep_vit-b16-mocov3_vtab1k.py']
method = 'vpt_shallow'
model = dict(backbone=dict(num_prompts=100))

# complete for the method's settings now (see the benchmark config)
from lspt_mm.recipes import complete_config  # noqa: E402

globals().update(complete_config(_base_, globals()))

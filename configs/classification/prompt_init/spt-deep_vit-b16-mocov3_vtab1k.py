# SPT-deep (published recipe) on a frozen MoCo v3 ViT-B/16, one VTAB-1k task:
# VPT-deep with 20 prompts per block started from the tokens entering each
# block (prompt_init, lspt_mm/models/prompt_init.py; the official README's
# example uses 'random'; 'spt_mean' | 'spt_max' | 'spt_kmeans' by
# --cfg-options model.backbone.prompt_init=...), trained with SPT's AdamW
# recipe (configs/_base_/schedules/cls_spt_adamw-cosine_100e.py). The task
# is a setting, as in the benchmark config this extends:
#   python tools/train.py \
#       configs/classification/prompt_init/spt-deep_vit-b16-mocov3_vtab1k.py \
#       --cfg-options task=dtd [data_root=...]
# The task's row of the recipe table still gives the class count and data;
# lr, weight decay, prompts and batch are SPT's (kept, and listed in the
# log line). Prompt dropout 0: SPT's prompted ViTs have none.
_base_ = [
    '../lspt_vit-b16-mocov3_vtab1k.py',
    '../../_base_/schedules/cls_spt_adamw-cosine_100e.py',
]
method = 'vpt_deep'
model = dict(
    backbone=dict(num_prompts=20, prompt_dropout=0.0, prompt_init='spt_random')
)
optim_wrapper = _base_.spt_optim_wrapper_mocov3
param_scheduler = _base_.spt_param_scheduler
custom_hooks = _base_.custom_hooks + [_base_.spt_ema_hook]
train_dataloader = dict(batch_size=_base_.spt_batch_size)
auto_scale_lr = dict(base_batch_size=_base_.spt_batch_size)

# complete for the method's settings now (see the benchmark config)
from lspt_mm.recipes import complete_config  # noqa: E402

globals().update(complete_config(_base_, globals()))

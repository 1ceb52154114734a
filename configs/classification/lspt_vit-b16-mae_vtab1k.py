# LSPT on a frozen MAE ViT-B/16, one VTAB-1k task; the task and the
# method (any of lspt_mm/models/methods.py) are settings:
#   python tools/train.py \
#       configs/classification/lspt_vit-b16-mae_vtab1k.py \
#       --cfg-options task=dtd [method=gapt] [data_root=...]
# (data_root: the vtab-1k folder).
# The class count, dataset, data root, lr, weight decay, prompts, gate init
# and batch are the task's row of the recipe table
# (lspt_mm/recipes.py: GaPT's Table 5),
# resolved when the config is loaded (the last line:
# lspt_mm.recipes.complete_config; the row is recorded in
# `task_recipe`); task= / method= given later (--cfg-options,
# Config.merge_from_dict) re-resolve where a runner or model is built
# (tools/, mmengine's Runner.from_cfg, lspt_mm.apis). What a child config
# or an option sets is kept (and logged). Tuned rows:
# benchmark.recipes=recipes.json (tools/run_benchmark.py --write-recipes).
_base_ = [
    '../_base_/models/prompted_vit_cls_mae.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/cls_sgd-cosine_100e.py',
    '../_base_/cls_runtime.py',
]
benchmark = dict(name='vtab1k', backbone='mae', recipes=None)
task = 'caltech101'  # default; or cifar, dtd, ... (19 VTAB-1k tasks)
method = None  # None: the backbone's (LSPT); e.g. gapt, vpt_deep, linear

# complete for `task` now: what Config.fromfile gives is what runs
from lspt_mm.recipes import complete_config  # noqa: E402

globals().update(complete_config(_base_, globals()))

# LSPT on a frozen MAE ViT-B/16, one VTAB-1k task; the task and the
# method (any of lspt_mm/models/methods.py) are settings:
#   python tools/train.py \
#       configs/classification/lspt_vit-b16-mae_vtab1k.py \
#       --cfg-options task=dtd [method=gapt] [data_root=...]
# (data_root: the vtab-1k folder).
# Every value the bases leave None (class count, dataset, data root, lr,
# weight decay, prompts, gate init, batch) is the task's row of the recipe
# table (lspt_mm/datasets/benchmarks.py: GaPT's Table 5),
# filled by lspt_mm.datasets.benchmarks.apply_task (tools/train.py,
# tools/test.py, tools/run_benchmark.py), which logs the row it used; what a
# child config or --cfg-options sets is kept. Tuned rows:
# benchmark.recipes=recipes.json (tools/run_benchmark.py --write-recipes).
_base_ = [
    '../_base_/models/prompted_vit_cls_mae.py',
    '../_base_/datasets/vtab1k.py',
    '../_base_/schedules/cls_sgd-cosine_100e.py',
    '../_base_/cls_runtime.py',
]
benchmark = dict(name='vtab1k', backbone='mae', recipes=None)
task = None  # caltech101 | cifar | dtd | ... (the 19 VTAB-1k tasks)
method = None  # None: the backbone's (LSPT); e.g. gapt, vpt_deep, linear

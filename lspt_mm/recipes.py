"""The experiment recipes and the config completion that applies them.

- The per-task hyper-parameter table (:data:`TASK_HPARAMS`: GaPT's Table 5,
  the one place these numbers live), the lr of methods it cannot give
  (:data:`METHOD_LR`), the published search grids (:data:`PUBLISHED_GRIDS`)
  and tuned tables written by the protocol (:func:`read_recipe_table`).
- :func:`apply_task` / :func:`complete_config`: a benchmark config
  (``configs/classification/lspt_vit-*_{fgvc,vtab1k}.py``, the task a
  setting: ``--cfg-options task=cub``) filled from its task's row. What a
  method takes from a recipe besides lr, batch and ``N_p`` its component
  declares (``PromptMethod.recipe_options``, e.g. GaPT's ``gate_init``).

Dataset facts (tasks, class counts) live in
:mod:`lspt_mm.datasets.benchmarks`; methods in :mod:`lspt_mm.models.methods`.
"""

import copy
import json
import os.path as osp
import types

from lspt_mm.datasets.benchmarks import (
    BENCHMARKS,
    FGVC_DATASETS,
    num_classes_of,
)
from lspt_mm.models.methods import METHODS, get_method, method_of_backbone
from lspt_mm.utils import leaf_dataset_cfgs

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

# the pretrained backbones the recipe table has rows for
BACKBONES = {
    'mae': dict(title='MAE ViT-B/16'),
    'mocov3': dict(title='MoCo v3 ViT-B/16'),
    'dinov2': dict(title='DINOv2 ViT-B/14'),
}


# --------------------------------------------------------------- hparams
# THE per-task hyper-parameter table: (backbone, benchmark, task) -> recipe.
#
# Every number is GaPT's published selection (Yoo et al., "Improving Visual
# Prompt Tuning for Self-supervised Vision Transformers", ICML 2023,
# Table 5; shared/docs/recipes.md): ViT-B/16, SGD momentum 0.9, weight decay
# 0, cosine schedule, 10 warm-up epochs of 100. ``lr`` is the raw SGD
# learning rate at ``batch_size`` (GaPT's run.sh passes it straight to SGD;
# no batch scaling; its README example `bash run.sh cub mae_vitb16 64 0.1 100
# 5` is the CUB / MAE row read this way). ``gate_init`` g: GaPT's gate
# logits start at -g. FGVC: 100 prompts, batch 64. VTAB-1k: batch 128
# (MoCo v3 Pets and Resisc45: 64).
#
# GaPT selected these for GaPT. Used for another method (LSPT, VPT, the
# LSPT ablations, a linear probe) they are this project's choice of a
# starting point, not a tuned value: ``hparams_of`` says so in ``source``.
# Tune with the protocol (tools/run_benchmark.py, lspt_mm/tuning) and give
# the recipe file it writes to the configs (``benchmark.recipes=FILE``).
#
# DINOv2 ViT-B/14: GaPT published no rows. Its rows are GaPT's MoCo v3 rows
# (the other backbone read out from its final-norm CLS token, as DINOv2's
# configs are): this project's choice of a starting point, not tuned values.
GAPT_TABLE5 = 'GaPT Table 5'
TABLE5_METHOD = 'gapt'  # the method GaPT's Table 5 was tuned for
DINOV2_FROM_MOCOV3 = (
    "this project's choice: GaPT Table 5's MoCo v3 row (GaPT published no "
    'DINOv2 rows; MoCo v3 is the other CLS-token backbone), untuned'
)
RECIPE_KEYS = (
    'num_prompts',
    'lr',
    'gate_init',
    'batch_size',
    'weight_decay',
    'source',
)


def _gapt(num_prompts, lr, gate_init, batch_size):
    return dict(
        num_prompts=num_prompts,
        lr=lr,
        gate_init=float(gate_init),
        batch_size=batch_size,
        weight_decay=0.0,
        source=GAPT_TABLE5,
    )


TASK_HPARAMS = {
    # FGVC, batch 64, 100 prompts: lr / gate init
    ('mae', 'fgvc', 'cub'): _gapt(100, 0.1, 5, 64),
    ('mae', 'fgvc', 'oxford_flowers'): _gapt(100, 0.1, 15, 64),
    ('mae', 'fgvc', 'stanford_cars'): _gapt(100, 0.25, 5, 64),
    ('mae', 'fgvc', 'stanford_dogs'): _gapt(100, 0.5, 15, 64),
    ('mae', 'fgvc', 'nabirds'): _gapt(100, 0.5, 5, 64),
    ('mocov3', 'fgvc', 'cub'): _gapt(100, 1.0, 5, 64),
    ('mocov3', 'fgvc', 'oxford_flowers'): _gapt(100, 1.0, 10, 64),
    ('mocov3', 'fgvc', 'stanford_cars'): _gapt(100, 0.5, 5, 64),
    ('mocov3', 'fgvc', 'stanford_dogs'): _gapt(100, 0.5, 10, 64),
    ('mocov3', 'fgvc', 'nabirds'): _gapt(100, 1.0, 5, 64),
    # VTAB-1k, MAE, batch 128: prompts / lr / gate init
    ('mae', 'vtab1k', 'caltech101'): _gapt(1, 0.5, 5, 128),
    ('mae', 'vtab1k', 'cifar'): _gapt(1, 0.25, 5, 128),
    ('mae', 'vtab1k', 'clevr_dist'): _gapt(1, 0.1, 15, 128),
    ('mae', 'vtab1k', 'clevr_count'): _gapt(1, 0.05, 15, 128),
    ('mae', 'vtab1k', 'diabetic_retinopathy'): _gapt(5, 0.05, 10, 128),
    ('mae', 'vtab1k', 'dmlab'): _gapt(1, 0.1, 5, 128),
    ('mae', 'vtab1k', 'dsprites_ori'): _gapt(1, 0.05, 5, 128),
    ('mae', 'vtab1k', 'dsprites_loc'): _gapt(1, 0.1, 5, 128),
    ('mae', 'vtab1k', 'dtd'): _gapt(1, 0.25, 1, 128),
    ('mae', 'vtab1k', 'eurosat'): _gapt(5, 0.1, 1, 128),
    ('mae', 'vtab1k', 'kitti'): _gapt(5, 0.1, 7, 128),
    ('mae', 'vtab1k', 'oxford_flowers102'): _gapt(1, 0.25, 5, 128),
    ('mae', 'vtab1k', 'oxford_iiit_pet'): _gapt(1, 0.5, 10, 128),
    ('mae', 'vtab1k', 'patch_camelyon'): _gapt(1, 0.05, 5, 128),
    ('mae', 'vtab1k', 'resisc45'): _gapt(10, 0.25, 5, 128),
    ('mae', 'vtab1k', 'smallnorb_azi'): _gapt(1, 0.1, 20, 128),
    ('mae', 'vtab1k', 'smallnorb_ele'): _gapt(1, 0.05, 10, 128),
    ('mae', 'vtab1k', 'sun397'): _gapt(1, 0.5, 10, 128),
    ('mae', 'vtab1k', 'svhn'): _gapt(1, 0.1, 10, 128),
    # VTAB-1k, MoCo v3, batch 128 (Pets, Resisc45: 64)
    ('mocov3', 'vtab1k', 'caltech101'): _gapt(10, 2.5, 4, 128),
    ('mocov3', 'vtab1k', 'cifar'): _gapt(10, 1.0, 15, 128),
    ('mocov3', 'vtab1k', 'clevr_dist'): _gapt(5, 1.0, 10, 128),
    ('mocov3', 'vtab1k', 'clevr_count'): _gapt(5, 0.5, 5, 128),
    ('mocov3', 'vtab1k', 'diabetic_retinopathy'): _gapt(5, 0.5, 5, 128),
    ('mocov3', 'vtab1k', 'dmlab'): _gapt(1, 1.0, 5, 128),
    ('mocov3', 'vtab1k', 'dsprites_ori'): _gapt(5, 0.5, 5, 128),
    ('mocov3', 'vtab1k', 'dsprites_loc'): _gapt(5, 0.5, 5, 128),
    ('mocov3', 'vtab1k', 'dtd'): _gapt(10, 1.0, 5, 128),
    ('mocov3', 'vtab1k', 'eurosat'): _gapt(10, 1.0, 5, 128),
    ('mocov3', 'vtab1k', 'kitti'): _gapt(5, 1.0, 5, 128),
    ('mocov3', 'vtab1k', 'oxford_flowers102'): _gapt(5, 1.0, 7, 128),
    ('mocov3', 'vtab1k', 'oxford_iiit_pet'): _gapt(100, 1.0, 1, 64),
    ('mocov3', 'vtab1k', 'patch_camelyon'): _gapt(1, 1.0, 10, 128),
    ('mocov3', 'vtab1k', 'resisc45'): _gapt(100, 1.0, 7, 64),
    ('mocov3', 'vtab1k', 'smallnorb_azi'): _gapt(10, 0.5, 3, 128),
    ('mocov3', 'vtab1k', 'smallnorb_ele'): _gapt(5, 0.5, 4, 128),
    ('mocov3', 'vtab1k', 'sun397'): _gapt(1, 1.0, 4, 128),
    ('mocov3', 'vtab1k', 'svhn'): _gapt(5, 1.0, 10, 128),
}
TASK_HPARAMS.update(
    {
        ('dinov2',) + key[1:]: dict(row, source=DINOV2_FROM_MOCOV3)
        for key, row in list(TASK_HPARAMS.items())
        if key[0] == 'mocov3'
    }
)

# Methods whose learning rate cannot come from GaPT's prompt-tuning table.
METHOD_LR = {
    # full fine-tuning with SGD: no published per-task value (VPT tunes it
    # on its lr grid); this project's choice, to be tuned with the protocol
    'full': (
        0.01,
        "this project's choice (untuned; VPT tunes full "
        'fine-tuning on its lr grid: use the tuning protocol)',
    ),
}

# Search grids published with the baselines (shared/docs/recipes.md).
# ``lr_scale``: VPT's tune scripts search a *base* lr scaled by batch / 256;
# GaPT passes its lr to SGD unscaled.
PUBLISHED_GRIDS = {
    'gapt': dict(
        lr=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        weight_decay=(0.0,),
        lr_scale=None,
        source='GaPT (Yoo et al. 2023): lr grid, weight decay 0',
    ),
    'vpt': dict(
        lr=(50.0, 25.0, 10.0, 5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05),
        weight_decay=(0.01, 0.001, 0.0001, 0.0),
        lr_scale='batch/256',
        source='VPT (Jia et al. 2022) tune scripts: base lr x '
        'batch/256, weight decay grid',
    ),
    'vpt-prompts': dict(
        num_prompts=(1, 5, 10, 50, 100, 200),
        source='VPT (Jia et al. 2022): prompt length grid',
    ),
}


def published_grid(name, batch_size):
    """The axes of the published grid ``name`` at ``batch_size``:
    ``{axis: tuple of values}`` (lr already scaled where the grid says)."""
    if name not in PUBLISHED_GRIDS:
        raise KeyError(
            f'unknown published grid {name!r}; known: '
            f'{sorted(PUBLISHED_GRIDS)}'
        )
    spec = PUBLISHED_GRIDS[name]
    axes = {
        k: tuple(v)
        for k, v in spec.items()
        if k in ('lr', 'weight_decay', 'num_prompts')
    }
    if spec.get('lr_scale') == 'batch/256':
        axes['lr'] = tuple(v * batch_size / 256.0 for v in axes['lr'])
    return axes


def _recipe_options(spec):
    """The recipe keys a method's component takes as options (none for a
    method outside the table)."""
    return spec.component_class.recipe_options if spec else ()


def read_recipe_table(path, method=None):
    """A recipe table written by the tuning protocol (JSON; see
    ``lspt_mm.engine.protocol.write_recipe_table``) as
    ``{(backbone, benchmark, task): recipe}``, each recipe with the keys of
    :data:`TASK_HPARAMS` it sets and its ``source`` (run id and date).
    ``method``: refuse a table tuned for another method."""

    with open(path) as f:
        table = json.load(f)
    if not isinstance(table, dict) or 'rows' not in table:
        raise ValueError(
            f'{path}: not a recipe table (no "rows"); write one '
            'with tools/run_benchmark.py --write-recipes'
        )
    if (
        method is not None
        and table.get('method') is not None
        and str(table['method']).replace('-', '_')
        != str(method).replace('-', '_')
    ):
        raise ValueError(
            f'{path}: recipes tuned for method '
            f'{table.get("method")!r}, not {method!r}'
        )
    out = {}
    for i, row in enumerate(table['rows']):
        missing = [
            k for k in ('backbone', 'benchmark', 'task') if row.get(k) is None
        ]
        if missing:
            raise ValueError(
                f'{path}: row {i} ({row.get("task")!r}) has no '
                f'{missing}: it cannot key the benchmark table'
            )
        key = (row['backbone'], row['benchmark'], row['task'])
        out[key] = {k: row[k] for k in RECIPE_KEYS if k in row}
    return out


def hparams_of(backbone, benchmark, task, method='lspt', recipes=None):
    """The recipe of one run: ``num_prompts``, ``lr``, ``gate_init``,
    ``batch_size``, ``weight_decay`` and where they come from (``source``).

    ``method`` (a name of the method table, ``lspt_mm/models/methods.py``)
    only changes the provenance note, and the lr of :data:`METHOD_LR`.
    ``recipes``: a table from :func:`read_recipe_table` whose rows replace
    the matching entries (e.g. this project's own tuned values)."""
    num_classes_of(benchmark, task)  # validates the task name
    method = str(method).replace('-', '_')
    key = (backbone, benchmark, task)
    if key not in TASK_HPARAMS:
        raise KeyError(
            f'no hyper-parameters for backbone={backbone!r}, '
            f'benchmark={benchmark!r}, task={task!r}; known '
            f'backbones: {sorted({k[0] for k in TASK_HPARAMS})}'
        )
    hp = dict(TASK_HPARAMS[key])
    if recipes and key in recipes:
        hp.update(recipes[key])
    elif method != TABLE5_METHOD and hp['source'] == GAPT_TABLE5:
        hp['source'] = (
            f"{GAPT_TABLE5} (GaPT's selection; used for {method} "
            "as this project's starting point, not tuned for it)"
        )
    if method in METHOD_LR and not (recipes and key in recipes):
        hp['lr'], lr_source = METHOD_LR[method]
        hp['source'] = f'lr: {lr_source}; batch size: {hp["source"]}'
    return hp


# ----------------------------------------------------- configs from the table
class TaskError(ValueError):
    """A benchmark config whose task cannot be resolved."""


def is_benchmark_config(cfg):
    """Whether ``cfg`` is a benchmark config: it names its benchmark and
    backbone (``benchmark = dict(name='fgvc', backbone='mae', ...)``) and
    takes the task as the setting ``task``."""
    spec = cfg.get('benchmark', None)
    return isinstance(spec, dict) and 'name' in spec and 'backbone' in spec


def _inner_vit(backbone):
    """The PromptedViT config (a wrapper's ``module``, e.g. LoRA's)."""
    return backbone['module'] if 'module' in backbone else backbone


def _set_method(cfg, method):
    """Make ``cfg.model.backbone`` train ``method`` (a method-table name;
    :meth:`MethodSpec.apply`) unless it already does; the config's own
    ``prompt_cfg`` options are kept. Returns the table name."""
    try:
        spec = get_method(method)
    except KeyError as err:
        raise TaskError(f'method={method!r}: {err.args[0]}') from None
    backbone = cfg.model.backbone
    if method_of_backbone(backbone) == spec.name:
        return spec.name
    vit = _inner_vit(backbone)
    if vit.get('prompt') is not None:
        raise TaskError(
            f'method={method!r} and model.backbone.prompt='
            f'{vit["prompt"]!r} both choose the method: keep one'
        )
    options = vit.get('prompt_cfg')
    new = spec.apply(
        vit.to_dict() if hasattr(vit, 'to_dict') else vit,
        scope=cfg.get('default_scope', 'mmpretrain'),
    )
    if options:
        _inner_vit(new)['prompt_cfg'] = dict(options)
    cfg.model.backbone = ConfigDict(new)
    return spec.name


def task_recipe(cfg):
    """The recipe a benchmark config's ``task`` resolves to (see
    :func:`apply_task`), without changing ``cfg``: ``dict(backbone,
    benchmark, task, method, num_classes, num_prompts, lr, gate_init,
    batch_size, weight_decay, source)``."""
    if not is_benchmark_config(cfg):
        raise TaskError(
            'not a benchmark config (no `benchmark = dict(name='
            '..., backbone=...)`)'
        )
    spec = cfg.benchmark
    benchmark, backbone = spec['name'], spec['backbone']
    filename = getattr(cfg, 'filename', None)  # a ConfigDict has none
    where = osp.basename(filename) if filename else 'the config'
    if benchmark not in BENCHMARKS:
        raise TaskError(
            f'{where}: benchmark.name={benchmark!r} is unknown; '
            f'known: {sorted(BENCHMARKS)}'
        )
    known = BENCHMARKS[benchmark]['tasks']
    task = cfg.get('task', None)
    if task is None:
        raise TaskError(
            f'{where} trains one {BENCHMARKS[benchmark]["title"]} task: set '
            f'it with --cfg-options task=NAME (one of {", ".join(known)})'
        )
    if task not in known:
        raise TaskError(
            f'{where}: task={task!r} is not a '
            f'{BENCHMARKS[benchmark]["title"]} task; known: '
            f'{", ".join(known)}'
        )
    if (backbone, benchmark, task) not in TASK_HPARAMS:
        raise TaskError(
            f'{where}: benchmark.backbone={backbone!r} has no '
            'rows in the recipe table; known: '
            f'{sorted({k[0] for k in TASK_HPARAMS})}'
        )
    method = cfg.get('method', None)
    if method is None:
        method = method_of_backbone(cfg.model.backbone)
    method = str(method).replace('-', '_')
    recipes = None
    if spec.get('recipes'):
        recipes = read_recipe_table(spec['recipes'], method)
    hp = hparams_of(backbone, benchmark, task, method, recipes)
    return dict(
        backbone=backbone,
        benchmark=benchmark,
        task=task,
        method=method,
        num_classes=num_classes_of(benchmark, task),
        **hp,
    )


def _targets(cfg, recipe, root):
    """Where ``recipe`` puts its values in ``cfg``: ``(container, key,
    value, label)``; ``root``: the ``data_root`` the dataset roots derive
    from. A method's own recipe options (its component's
    ``recipe_options``, e.g. GaPT's ``gate_init``) go to its ``prompt_cfg``
    (left out when the config has none)."""
    spec = METHODS.get(recipe['method'])
    out = []
    vit = _inner_vit(cfg.model.backbone)
    uses_prompts = spec.uses_prompts if spec else 'num_prompts' in vit
    if uses_prompts:
        out.append((vit, 'num_prompts', recipe['num_prompts'], 'num_prompts'))
    if vit.get('prompt_cfg', None) is not None:
        for option in _recipe_options(spec):
            out.append((vit['prompt_cfg'], option, recipe[option], option))
    n = recipe['num_classes']
    if cfg.model.get('head', None) is not None:
        out.append(
            (cfg.model.head, 'num_classes', n, 'model.head.num_classes')
        )
    for pre in (
        cfg.get('data_preprocessor', None),
        cfg.model.get('data_preprocessor', None),
    ):
        if pre is not None and 'num_classes' in pre:
            out.append(
                (pre, 'num_classes', n, 'data_preprocessor.num_classes')
            )
    task, benchmark = recipe['task'], recipe['benchmark']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader, None) is None:
            continue
        for ds in leaf_dataset_cfgs(cfg[loader]['dataset']):
            if benchmark == 'fgvc':
                out.append((ds, 'name', task, f'{loader}.dataset.name'))
                path = (
                    None
                    if root is None
                    else osp.join(root, FGVC_DATASETS[task]['folder'])
                )
            else:
                out.append((ds, 'task', task, f'{loader}.dataset.task'))
                path = root
            if path is not None:
                out.append(
                    (ds, 'data_root', path, f'{loader}.dataset.data_root')
                )
    optimizer = cfg.optim_wrapper.optimizer
    out.append((optimizer, 'lr', recipe['lr'], 'lr'))
    out.append(
        (optimizer, 'weight_decay', recipe['weight_decay'], 'weight_decay')
    )
    batch = recipe['batch_size']
    out.append(
        (
            cfg.train_dataloader,
            'batch_size',
            batch,
            'train_dataloader.batch_size',
        )
    )
    if cfg.get('auto_scale_lr', None) is not None:
        out.append(
            (
                cfg.auto_scale_lr,
                'base_batch_size',
                batch,
                'auto_scale_lr.base_batch_size',
            )
        )
    return out


def apply_task(cfg, log=True):
    """Resolve a benchmark config (:func:`is_benchmark_config`) for its
    ``task`` and ``method`` from the recipe table; other configs are left
    alone. Idempotent.

    The settings a benchmark config reads: ``task`` (a task name of its
    benchmark), ``method`` (a name of the method table; None: the
    backbone's own), ``data_root`` (VTAB-1k: the ``vtab-1k`` folder;
    FGVC: the folder holding the dataset folders) and ``benchmark.recipes``
    (a tuned recipe table written by the protocol; its rows replace
    :data:`TASK_HPARAMS`'). The task's row gives the class count (head,
    data preprocessor), the datasets' task / name and data root, lr and
    weight decay, ``N_p``, GaPT's gate init, the training batch size and
    ``auto_scale_lr.base_batch_size`` (the lr is the one at the recipe's
    batch).

    A value is replaced when it is None or when it is the value of the
    row recorded in ``cfg.task_recipe`` (the previous resolution: the
    benchmark configs resolve their default task when they are loaded,
    :func:`complete_config`), so ``task=`` / ``method=`` given later
    (``--cfg-options``, ``Config.merge_from_dict``) re-resolve. Any other
    value was set by the config, a child config or an option: it is kept,
    and listed in the log line and in ``cfg.task_recipe['kept']``.

    ``tools/train.py``, ``tools/test.py``, the tuning protocol, mmengine's
    ``Runner.from_cfg`` (:mod:`lspt_mm.engine.from_cfg`) and
    :mod:`lspt_mm.apis` call it after the options are merged. The row used
    is logged (``log``) and recorded in ``cfg.task_recipe``.

    Returns:
        dict | None: the recipe (:func:`task_recipe`), or None for a
        config that is not a benchmark config.
    """
    if not is_benchmark_config(cfg):
        return None
    recipe = task_recipe(cfg)
    if cfg.get('method', None) is not None:
        _set_method(cfg, recipe['method'])
    root = cfg.get('data_root', None)
    recorded = cfg.get('task_recipe', None)
    previous = {}
    if recorded:
        previous = {
            label: value
            for _, _, value, label in _targets(
                cfg, recorded, recorded.get('data_root', None)
            )
        }
    vit = _inner_vit(cfg.model.backbone)
    if _recipe_options(METHODS.get(recipe['method'])):
        if vit.get('prompt_cfg', None) is None:
            vit['prompt_cfg'] = dict()
    kept = []
    for where, key, value, label in _targets(cfg, recipe, root):
        current = where.get(key, None)
        if current is None or (
            label in previous and current == previous[label]
        ):
            where[key] = value
        elif current != value:
            kept.append(f'{label}={current!r} (recipe: {value!r})')
    vit = _inner_vit(cfg.model.backbone)
    if vit.get('num_prompts', 0) is None:  # a method without prompts
        vit.pop('num_prompts')
    cfg.task_recipe = dict(recipe, data_root=root, kept=kept)
    if log:
        print_log(describe_recipe(recipe, kept), logger='current')
    return recipe


# the top-level keys apply_task may change
_RESOLVED_KEYS = (
    'model',
    'data_preprocessor',
    'train_dataloader',
    'val_dataloader',
    'test_dataloader',
    'optim_wrapper',
    'auto_scale_lr',
    'task_recipe',
)


def complete_config(base, namespace):
    """Resolve a benchmark config while it is being loaded, so that the
    loaded config is complete (what ``Config.fromfile`` gives is what
    runs). A benchmark config (and a child that changes its task, method,
    data root or model) ends with::

        from lspt_mm.recipes import complete_config
        globals().update(complete_config(_base_, globals()))

    ``base``: the merged base configs (mmengine's ``_base_``);
    ``namespace``: the config file's own variables. They are merged as
    mmengine merges them, resolved by :func:`apply_task` (quietly), and
    the top-level keys it may change are returned, whole
    (``_delete_=True``: they replace the bases' values)."""
    own = {
        k: copy.deepcopy(v)
        for k, v in namespace.items()
        if not k.startswith('__')
        and k != '_base_'
        and not isinstance(v, (types.ModuleType, types.FunctionType, type))
    }
    merged = Config._merge_a_into_b(own, copy.deepcopy(ConfigDict(base)))
    cfg = Config(merged)
    apply_task(cfg, log=False)
    out = {}
    for key in _RESOLVED_KEYS:
        if key in cfg and isinstance(cfg[key], dict):
            value = cfg[key].to_dict()
            if key in base:  # replace, not merge into, the bases' value
                value['_delete_'] = True
            out[key] = value
    return out


def describe_recipe(recipe, kept=()):
    """One line: the task, the row of the recipe table, its values and
    source, and what the config kept instead."""
    spec = METHODS.get(recipe['method'])
    values = [
        f'lr {recipe["lr"]!r}',
        f'weight decay {recipe["weight_decay"]!r}',
        f'batch {recipe["batch_size"]}',
    ]
    if spec is None or spec.uses_prompts:
        values.insert(0, f'{recipe["num_prompts"]} prompts')
    for option in _recipe_options(spec):
        values.append(f'{option.replace("_", " ")} {recipe[option]!r}')
    key = (recipe['backbone'], recipe['benchmark'], recipe['task'])
    line = (
        f'task {recipe["task"]!r} ({recipe["num_classes"]} classes), '
        f'{BACKBONES.get(recipe["backbone"], {}).get("title", "")}, '
        f'{spec.title if spec else recipe["method"]}: recipe row {key} '
        f'({", ".join(values)}); source: {recipe["source"]}'
    )
    if kept:
        line += '; kept from the config / --cfg-options: ' + ', '.join(kept)
    return line

"""The classification benchmarks: tasks, class counts, groups and the
per-task hyper-parameter table (the one place these numbers live).

Used by the dataset classes (class-count checks), by
``tools/misc/generate_cls_configs.py`` (configs) and by
``tools/run_benchmark.py`` (task lists, group means).
"""

# --------------------------------------------------------------- VTAB-1k
# Task folder names and class counts as in the widely shared image-folder
# release of VTAB-1k (NOAH / SSF / ...: ``vtab-1k/<task>/images/...`` plus
# ``train800.txt``, ``val200.txt``, ``train800val200.txt``, ``test.txt``).
VTAB_GROUPS = {
    'Natural': ('caltech101', 'cifar', 'dtd', 'oxford_flowers102',
                'oxford_iiit_pet', 'svhn', 'sun397'),
    'Specialized': ('patch_camelyon', 'eurosat', 'resisc45',
                    'diabetic_retinopathy'),
    'Structured': ('clevr_count', 'clevr_dist', 'dmlab', 'kitti',
                   'dsprites_loc', 'dsprites_ori', 'smallnorb_azi',
                   'smallnorb_ele'),
}
VTAB_NUM_CLASSES = {
    'caltech101': 102, 'cifar': 100, 'dtd': 47, 'oxford_flowers102': 102,
    'oxford_iiit_pet': 37, 'svhn': 10, 'sun397': 397,
    'patch_camelyon': 2, 'eurosat': 10, 'resisc45': 45,
    'diabetic_retinopathy': 5,
    'clevr_count': 8, 'clevr_dist': 6, 'dmlab': 6, 'kitti': 4,
    'dsprites_loc': 16, 'dsprites_ori': 16, 'smallnorb_azi': 18,
    'smallnorb_ele': 9,
}
VTAB_TASKS = tuple(t for group in VTAB_GROUPS.values() for t in group)
VTAB_SPLITS = ('train800', 'val200', 'train800val200', 'test')

# --------------------------------------------------------------- FGVC
# name -> class count, VPT's image folder (what the split lists' paths are
# relative to) and the folder name the official archive extracts to.
FGVC_DATASETS = {
    'cub': dict(num_classes=200, img_dir='images',
                folder='CUB_200_2011', title='CUB-200-2011'),
    'nabirds': dict(num_classes=555, img_dir='images', folder='nabirds',
                    title='NABirds'),
    'oxford_flowers': dict(num_classes=102, img_dir='',
                           folder='OxfordFlower', title='Oxford Flowers'),
    'stanford_dogs': dict(num_classes=120, img_dir='Images',
                          folder='Stanford-dogs', title='Stanford Dogs'),
    'stanford_cars': dict(num_classes=196, img_dir='',
                          folder='Stanford-cars', title='Stanford Cars'),
}
FGVC_TASKS = tuple(FGVC_DATASETS)
FGVC_SPLITS = ('train', 'val', 'trainval', 'test')

BENCHMARKS = {
    'vtab1k': dict(tasks=VTAB_TASKS, groups=VTAB_GROUPS),
    'fgvc': dict(tasks=FGVC_TASKS, groups={'FGVC': FGVC_TASKS}),
}


def num_classes_of(benchmark, task):
    """Class count of ``task`` in ``benchmark`` ('vtab1k' or 'fgvc')."""
    table = VTAB_NUM_CLASSES if benchmark == 'vtab1k' else {
        k: v['num_classes']
        for k, v in FGVC_DATASETS.items()
    }
    if task not in table:
        raise KeyError(f'unknown {benchmark} task {task!r}; known: '
                       f'{sorted(table)}')
    return table[task]


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
# Tune with the protocol (tools/run_benchmark.py, lspt_mm/tuning)
# and pass the recipe file it writes to the config generator (``--recipes``).
GAPT_TABLE5 = 'GaPT Table 5'
RECIPE_KEYS = ('num_prompts', 'lr', 'gate_init', 'batch_size',
               'weight_decay', 'source')


def _gapt(num_prompts, lr, gate_init, batch_size):
    return dict(num_prompts=num_prompts, lr=lr, gate_init=float(gate_init),
                batch_size=batch_size, weight_decay=0., source=GAPT_TABLE5)


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

# Methods whose learning rate cannot come from GaPT's prompt-tuning table.
METHOD_LR = {
    # full fine-tuning with SGD: no published per-task value (VPT tunes it
    # on its lr grid); this project's choice, to be tuned with the protocol
    'full': (0.01, "this project's choice (untuned; VPT tunes full "
             'fine-tuning on its lr grid: use the tuning protocol)'),
}

# Search grids published with the baselines (shared/docs/recipes.md).
# ``lr_scale``: VPT's tune scripts search a *base* lr scaled by batch / 256;
# GaPT passes its lr to SGD unscaled.
PUBLISHED_GRIDS = {
    'gapt': dict(lr=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
                 weight_decay=(0., ), lr_scale=None,
                 source='GaPT (Yoo et al. 2023): lr grid, weight decay 0'),
    'vpt': dict(lr=(50., 25., 10., 5., 2.5, 1., 0.5, 0.25, 0.1, 0.05),
                weight_decay=(0.01, 0.001, 0.0001, 0.),
                lr_scale='batch/256',
                source="VPT (Jia et al. 2022) tune scripts: base lr x "
                'batch/256, weight decay grid'),
    'vpt-prompts': dict(num_prompts=(1, 5, 10, 50, 100, 200),
                        source='VPT (Jia et al. 2022): prompt length grid'),
}


def published_grid(name, batch_size):
    """The axes of the published grid ``name`` at ``batch_size``:
    ``{axis: tuple of values}`` (lr already scaled where the grid says)."""
    if name not in PUBLISHED_GRIDS:
        raise KeyError(f'unknown published grid {name!r}; known: '
                       f'{sorted(PUBLISHED_GRIDS)}')
    spec = PUBLISHED_GRIDS[name]
    axes = {k: tuple(v) for k, v in spec.items()
            if k in ('lr', 'weight_decay', 'num_prompts')}
    if spec.get('lr_scale') == 'batch/256':
        axes['lr'] = tuple(v * batch_size / 256. for v in axes['lr'])
    return axes


def read_recipe_table(path, method=None):
    """A recipe table written by the tuning protocol (JSON; see
    ``lspt_mm.engine.protocol.write_recipe_table``) as
    ``{(backbone, benchmark, task): recipe}``, each recipe with the keys of
    :data:`TASK_HPARAMS` it sets and its ``source`` (run id and date).
    ``method``: refuse a table tuned for another method."""
    import json
    with open(path) as f:
        table = json.load(f)
    if not isinstance(table, dict) or 'rows' not in table:
        raise ValueError(f'{path}: not a recipe table (no "rows"); write one '
                         'with tools/run_benchmark.py --write-recipes')
    if method is not None and table.get('method') not in (None, method):
        raise ValueError(f'{path}: recipes tuned for method '
                         f'{table.get("method")!r}, not {method!r}')
    out = {}
    for i, row in enumerate(table['rows']):
        missing = [k for k in ('backbone', 'benchmark', 'task')
                   if row.get(k) is None]
        if missing:
            raise ValueError(f'{path}: row {i} ({row.get("task")!r}) has no '
                             f'{missing}: it cannot key the benchmark table')
        key = (row['backbone'], row['benchmark'], row['task'])
        out[key] = {k: row[k] for k in RECIPE_KEYS if k in row}
    return out


def hparams_of(backbone, benchmark, task, method='lspt', recipes=None):
    """The recipe of one run: ``num_prompts``, ``lr``, ``gate_init``,
    ``batch_size``, ``weight_decay`` and where they come from (``source``).

    ``method`` (config-generator spelling: 'lspt', 'vpt-deep', 'full', ...)
    only changes the provenance note, and the lr of :data:`METHOD_LR`.
    ``recipes``: a table from :func:`read_recipe_table` whose rows replace
    the matching entries (e.g. this project's own tuned values)."""
    num_classes_of(benchmark, task)  # validates the task name
    key = (backbone, benchmark, task)
    if key not in TASK_HPARAMS:
        raise KeyError(f'no hyper-parameters for backbone={backbone!r}, '
                       f'benchmark={benchmark!r}, task={task!r}; known '
                       f'backbones: {sorted({k[0] for k in TASK_HPARAMS})}')
    hp = dict(TASK_HPARAMS[key])
    if recipes and key in recipes:
        hp.update(recipes[key])
    elif method != 'gapt' and hp['source'] == GAPT_TABLE5:
        hp['source'] = (f"{GAPT_TABLE5} (GaPT's selection; used for {method} "
                        "as this project's starting point, not tuned for it)")
    if method in METHOD_LR and not (recipes and key in recipes):
        hp['lr'], lr_source = METHOD_LR[method]
        hp['source'] = f'lr: {lr_source}; batch size: {GAPT_TABLE5}'
    return hp

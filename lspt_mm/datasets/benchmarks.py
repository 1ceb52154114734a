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
# Per-task prompt counts and learning rates.
#
# PROVENANCE: GaPT's per-task table (Yoo et al., ICML 2023, appendix) could
# not be consulted while writing this file. The defaults below are
# PLACEHOLDERS (marked by HPARAM_SOURCE) to be replaced with GaPT's numbers
# once confirmed; the one per-task entry that is sourced says where from; the protocol around them
# (SGD momentum 0.9, weight decay 0, cosine, 10 warm-up epochs of 100,
# batch 64 FGVC / 128 VTAB, prompt dropout 0.1) is method.md's.
#
# ``lr`` is the SGD learning rate at the protocol batch size (no scaling is
# applied by the configs). ``gate_init`` is GaPT's (method.md: 5..15 for
# classification).
HPARAM_SOURCE = 'placeholder (not GaPT\'s table; confirm before reporting)'
DEFAULT_HPARAMS = {
    # (backbone, benchmark) -> defaults for every task
    ('mae', 'fgvc'): dict(num_prompts=10, lr=0.1, gate_init=10.),
    ('mae', 'vtab1k'): dict(num_prompts=10, lr=0.1, gate_init=10.),
    ('mocov3', 'fgvc'): dict(num_prompts=10, lr=0.1, gate_init=10.),
    ('mocov3', 'vtab1k'): dict(num_prompts=10, lr=0.1, gate_init=10.),
}
# (backbone, benchmark, task) -> overrides of DEFAULT_HPARAMS, each with its
# source. Add GaPT's per-task numbers here as they are confirmed.
TASK_HPARAMS = {
    # GaPT's official README example: `bash run.sh cub mae_vitb16 64 0.1 100 5`
    # (batch 64, lr 0.1, 100 prompts, gate init 5).
    ('mae', 'fgvc', 'cub'): dict(num_prompts=100, lr=0.1, gate_init=5.,
                                 source="GaPT's README example"),
}
# Methods whose learning rate is not the prompt-tuning one (placeholders).
METHOD_LR = {
    'full': 0.01,  # full fine-tuning with SGD: placeholder
}


def hparams_of(backbone, benchmark, task, method='lspt'):
    """Default ``num_prompts``, ``lr`` and ``gate_init`` of a run, and the
    ``source`` of those numbers."""
    if (backbone, benchmark) not in DEFAULT_HPARAMS:
        raise KeyError(f'no hyper-parameters for backbone={backbone!r}, '
                       f'benchmark={benchmark!r}; known: '
                       f'{sorted(DEFAULT_HPARAMS)}')
    num_classes_of(benchmark, task)  # validates the task name
    hp = dict(DEFAULT_HPARAMS[(backbone, benchmark)], source=HPARAM_SOURCE)
    hp.update(TASK_HPARAMS.get((backbone, benchmark, task), {}))
    if method in METHOD_LR:
        hp['lr'] = METHOD_LR[method]
    return hp

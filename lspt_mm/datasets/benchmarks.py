"""The classification benchmarks as datasets: VTAB-1k's and FGVC's tasks,
class counts, groups and split names (the one place these facts live).

Used by the dataset classes (class-count checks), by the recipes
(:mod:`lspt_mm.recipes`: which task a config trains) and by
``tools/run_benchmark.py`` (task lists, group means).
"""

# --------------------------------------------------------------- VTAB-1k
# Task folder names and class counts as in the widely shared image-folder
# release of VTAB-1k (NOAH / SSF / ...: ``vtab-1k/<task>/images/...`` plus
# ``train800.txt``, ``val200.txt``, ``train800val200.txt``, ``test.txt``).
VTAB_GROUPS = {
    'Natural': (
        'caltech101',
        'cifar',
        'dtd',
        'oxford_flowers102',
        'oxford_iiit_pet',
        'svhn',
        'sun397',
    ),
    'Specialized': (
        'patch_camelyon',
        'eurosat',
        'resisc45',
        'diabetic_retinopathy',
    ),
    'Structured': (
        'clevr_count',
        'clevr_dist',
        'dmlab',
        'kitti',
        'dsprites_loc',
        'dsprites_ori',
        'smallnorb_azi',
        'smallnorb_ele',
    ),
}
VTAB_NUM_CLASSES = {
    'caltech101': 102,
    'cifar': 100,
    'dtd': 47,
    'oxford_flowers102': 102,
    'oxford_iiit_pet': 37,
    'svhn': 10,
    'sun397': 397,
    'patch_camelyon': 2,
    'eurosat': 10,
    'resisc45': 45,
    'diabetic_retinopathy': 5,
    'clevr_count': 8,
    'clevr_dist': 6,
    'dmlab': 6,
    'kitti': 4,
    'dsprites_loc': 16,
    'dsprites_ori': 16,
    'smallnorb_azi': 18,
    'smallnorb_ele': 9,
}
VTAB_TASKS = tuple(t for group in VTAB_GROUPS.values() for t in group)
VTAB_SPLITS = ('train800', 'val200', 'train800val200', 'test')

# --------------------------------------------------------------- FGVC
# name -> class count, VPT's image folder (what the split lists' paths are
# relative to) and the folder name the official archive extracts to.
FGVC_DATASETS = {
    'cub': dict(
        num_classes=200,
        img_dir='images',
        folder='CUB_200_2011',
        title='CUB-200-2011',
    ),
    'nabirds': dict(
        num_classes=555, img_dir='images', folder='nabirds', title='NABirds'
    ),
    'oxford_flowers': dict(
        num_classes=102,
        img_dir='',
        folder='OxfordFlower',
        title='Oxford Flowers',
    ),
    'stanford_dogs': dict(
        num_classes=120,
        img_dir='Images',
        folder='Stanford-dogs',
        title='Stanford Dogs',
    ),
    'stanford_cars': dict(
        num_classes=196,
        img_dir='',
        folder='Stanford-cars',
        title='Stanford Cars',
    ),
}
FGVC_TASKS = tuple(FGVC_DATASETS)
FGVC_SPLITS = ('train', 'val', 'trainval', 'test')

BENCHMARKS = {
    'vtab1k': dict(tasks=VTAB_TASKS, groups=VTAB_GROUPS, title='VTAB-1k'),
    'fgvc': dict(tasks=FGVC_TASKS, groups={'FGVC': FGVC_TASKS}, title='FGVC'),
}


def num_classes_of(benchmark, task):
    """Class count of ``task`` in ``benchmark`` ('vtab1k' or 'fgvc')."""
    table = (
        VTAB_NUM_CLASSES
        if benchmark == 'vtab1k'
        else {k: v['num_classes'] for k, v in FGVC_DATASETS.items()}
    )
    if task not in table:
        raise KeyError(
            f'unknown {benchmark} task {task!r}; known: {sorted(table)}'
        )
    return table[task]

"""The per-task recipe table against GaPT's published Table 5 (issue 8.4),
and the benchmark configs resolved from it (one config per backbone and
benchmark; the task is a setting).

``TABLE5`` below is GaPT's Table 5 as printed in shared/docs/recipes.md
(rows copied as text, parsed here), an independent copy of what
``lspt_mm/recipes.py`` encodes as a Python dict; the class
counts below are the datasets' published ones, written out here too.
"""

import glob
import json
import os.path as osp
import subprocess
import sys

import pytest

import lspt_mm  # noqa: F401
from lspt_mm.datasets.benchmarks import FGVC_TASKS, VTAB_TASKS
from lspt_mm.recipes import (
    METHOD_LR,
    TASK_HPARAMS,
    TaskError,
    apply_task,
    hparams_of,
    published_grid,
    read_recipe_table,
)

from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS = osp.join(REPO, 'configs', 'classification')
CONFIGS = {
    (b, bench): osp.join(CLS, f'lspt_vit-b{p}-{b}_{bench}.py')
    for b, p in (('mae', 16), ('mocov3', 16), ('dinov2', 14))
    for bench in ('fgvc', 'vtab1k')
}

FGVC_TEXT = """
| CUB-200-2011 | 0.1 / 5 | 1 / 5 |
| Oxford Flowers | 0.1 / 15 | 1 / 10 |
| Stanford Cars | 0.25 / 5 | 0.5 / 5 |
| Stanford Dogs | 0.5 / 15 | 0.5 / 10 |
| NABirds | 0.5 / 5 | 1 / 5 |
"""
FGVC_NAMES = {
    'CUB-200-2011': 'cub',
    'Oxford Flowers': 'oxford_flowers',
    'Stanford Cars': 'stanford_cars',
    'Stanford Dogs': 'stanford_dogs',
    'NABirds': 'nabirds',
}
VTAB_TEXT = """
| caltech101 | 1 / 0.5 / 5 | 10 / 2.5 / 4 |
| cifar (CIFAR-100) | 1 / 0.25 / 5 | 10 / 1 / 15 |
| clevr_dist | 1 / 0.1 / 15 | 5 / 1 / 10 |
| clevr_count | 1 / 0.05 / 15 | 5 / 0.5 / 5 |
| diabetic_retinopathy | 5 / 0.05 / 10 | 5 / 0.5 / 5 |
| dmlab | 1 / 0.1 / 5 | 1 / 1 / 5 |
| dsprites_ori | 1 / 0.05 / 5 | 5 / 0.5 / 5 |
| dsprites_loc | 1 / 0.1 / 5 | 5 / 0.5 / 5 |
| dtd | 1 / 0.25 / 1 | 10 / 1 / 5 |
| eurosat | 5 / 0.1 / 1 | 10 / 1 / 5 |
| kitti | 5 / 0.1 / 7 | 5 / 1 / 5 |
| oxford_flowers102 | 1 / 0.25 / 5 | 5 / 1 / 7 |
| oxford_iiit_pet | 1 / 0.5 / 10 | 100 / 1 / 1 |
| patch_camelyon | 1 / 0.05 / 5 | 1 / 1 / 10 |
| resisc45 | 10 / 0.25 / 5 | 100 / 1 / 7 |
| smallnorb_azi | 1 / 0.1 / 20 | 10 / 0.5 / 3 |
| smallnorb_ele | 1 / 0.05 / 10 | 5 / 0.5 / 4 |
| sun397 | 1 / 0.5 / 10 | 1 / 1 / 4 |
| svhn | 1 / 0.1 / 10 | 5 / 1 / 10 |
"""


def table5():
    """``{(backbone, benchmark, task): (num_prompts, lr, gate, batch)}``."""
    out = {}
    for line in FGVC_TEXT.strip().splitlines():
        name, mae, moco = [c.strip() for c in line.strip('|').split('|')]
        for backbone, cell in (('mae', mae), ('mocov3', moco)):
            lr, gate = cell.split(' / ')
            out[(backbone, 'fgvc', FGVC_NAMES[name])] = (
                100,
                float(lr),
                float(gate),
                64,
            )
    for line in VTAB_TEXT.strip().splitlines():
        name, mae, moco = [c.strip() for c in line.strip('|').split('|')]
        task = name.split(' ')[0]
        for backbone, cell in (('mae', mae), ('mocov3', moco)):
            n_p, lr, gate = cell.split(' / ')
            batch = (
                64
                if backbone == 'mocov3'
                and task in ('oxford_iiit_pet', 'resisc45')
                else 128
            )
            out[(backbone, 'vtab1k', task)] = (
                int(n_p),
                float(lr),
                float(gate),
                batch,
            )
    return out


# published class counts (VTAB-1k: Zhai et al. 2019; FGVC: the datasets)
NUM_CLASSES = dict(
    cub=200,
    nabirds=555,
    oxford_flowers=102,
    stanford_dogs=120,
    stanford_cars=196,
    caltech101=102,
    cifar=100,
    dtd=47,
    oxford_flowers102=102,
    oxford_iiit_pet=37,
    svhn=10,
    sun397=397,
    patch_camelyon=2,
    eurosat=10,
    resisc45=45,
    diabetic_retinopathy=5,
    clevr_count=8,
    clevr_dist=6,
    dmlab=6,
    kitti=4,
    dsprites_loc=16,
    dsprites_ori=16,
    smallnorb_azi=18,
    smallnorb_ele=9,
)
FGVC_FOLDERS = dict(
    cub='CUB_200_2011',
    nabirds='nabirds',
    oxford_flowers='OxfordFlower',
    stanford_dogs='Stanford-dogs',
    stanford_cars='Stanford-cars',
)


def resolved(backbone, benchmark, task, **options):
    """The benchmark config of (backbone, benchmark) with ``task`` set as
    ``--cfg-options`` would, resolved (apply_task)."""
    cfg = Config.fromfile(CONFIGS[(backbone, benchmark)])
    cfg.merge_from_dict(dict(task=task, **options))
    recipe = apply_task(cfg, log=False)
    return cfg, recipe


def test_table_is_gapt_table5():
    expected = table5()
    assert len(expected) == 2 * (len(FGVC_TASKS) + len(VTAB_TASKS)) == 48
    gapt = {k: v for k, v in TASK_HPARAMS.items() if k[0] != 'dinov2'}
    assert set(gapt) == set(expected)
    for key, (n_p, lr, gate, batch) in expected.items():
        row = TASK_HPARAMS[key]
        assert (
            row['num_prompts'],
            row['lr'],
            row['gate_init'],
            row['batch_size'],
            row['weight_decay'],
        ) == (n_p, lr, gate, batch, 0.0), key
        assert row['source'] == 'GaPT Table 5', key


def test_dinov2_rows_are_mocov3_rows_marked_as_this_projects_choice():
    expected = table5()
    dino = {k[1:]: v for k, v in TASK_HPARAMS.items() if k[0] == 'dinov2'}
    assert set(dino) == {k[1:] for k in expected if k[0] == 'mocov3'}
    for (benchmark, task), row in dino.items():
        n_p, lr, gate, batch = expected[('mocov3', benchmark, task)]
        assert (
            row['num_prompts'],
            row['lr'],
            row['gate_init'],
            row['batch_size'],
        ) == (n_p, lr, gate, batch)
        assert row['source'].startswith("this project's choice")
        assert 'MoCo v3' in row['source'] and 'no DINOv2' in row['source']


@pytest.mark.parametrize(
    'key',
    sorted(table5())
    + sorted(('dinov2',) + k[1:] for k in table5() if k[0] == 'mocov3'),
)
def test_resolved_config_follows_table5(key):
    """``--cfg-options task=<task>`` on the benchmark config gives the
    published row, the class count and the data of that task."""
    backbone, benchmark, task = key
    row = key if backbone != 'dinov2' else ('mocov3',) + key[1:]
    n_p, lr, _, batch = table5()[row]
    cfg, recipe = resolved(backbone, benchmark, task)
    assert cfg.model.backbone.prompt_method == 'lspt'
    assert cfg.model.backbone.num_prompts == n_p
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.0
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.auto_scale_lr.base_batch_size == batch  # lr is at `batch`
    n = NUM_CLASSES[task]
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == n
    loaders = [cfg.train_dataloader, cfg.test_dataloader]
    if benchmark == 'fgvc':
        loaders.append(cfg.val_dataloader)
        for loader in loaders:
            assert loader.dataset.name == task
            assert (
                loader.dataset.data_root == 'data/fgvc/' + FGVC_FOLDERS[task]
            )
    else:
        for loader in loaders:
            assert loader.dataset.task == task
            assert loader.dataset.data_root == 'data/vtab-1k'
    assert cfg.task_recipe['task'] == task and cfg.task_recipe['kept'] == []
    if backbone == 'dinov2':
        assert recipe['source'].startswith("this project's choice")
    else:
        assert recipe['source'] == (
            "GaPT Table 5 (GaPT's selection; used for lspt as this "
            "project's starting point, not tuned for it)"
        )


def test_benchmark_configs_are_the_only_ones():
    """One config per (backbone, benchmark), each naming its own, plus the
    demo and the real-weights configs; the DINOv2 ones read the CLS token
    of a patch-14 ViT-B at 224 px with the official file."""
    names = sorted(osp.basename(p) for p in glob.glob(osp.join(CLS, '*.py')))
    assert names == sorted(
        [osp.basename(p) for p in CONFIGS.values()]
        + ['lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py']
    )
    for (backbone, benchmark), path in CONFIGS.items():
        cfg = Config.fromfile(path)
        assert cfg.benchmark == dict(
            name=benchmark, backbone=backbone, recipes=None
        )
        # complete when loaded, for a default task (issue 18)
        default = 'cub' if benchmark == 'fgvc' else 'caltech101'
        assert cfg.task == cfg.task_recipe['task'] == default
        assert cfg.method is None and cfg.task_recipe['kept'] == []
    for benchmark in ('fgvc', 'vtab1k'):
        b = Config.fromfile(CONFIGS[('dinov2', benchmark)]).model.backbone
        assert (b.arch, b.patch_size, b.img_size, b.out_type) == (
            'dinov2-base',
            14,
            224,
            'cls_token',
        )
        assert b.pretrained == 'checkpoints/dinov2_vitb14_pretrain.pth'
    text = (
        open(CONFIGS[('dinov2', 'fgvc')]).read()
        + open(
            osp.join(
                REPO,
                'configs',
                '_base_',
                'models',
                'prompted_vit_cls_dinov2.py',
            )
        ).read()
    )
    assert (
        'https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/'
        'dinov2_vitb14_pretrain.pth' in text
    )


def test_missing_or_unknown_task_lists_the_tasks():
    cfg = Config.fromfile(CONFIGS[('mae', 'fgvc')])
    cfg.task = None
    with pytest.raises(
        TaskError,
        match='set it with --cfg-options task='
        'NAME.*cub, nabirds, oxford_flowers, stanford_dogs, '
        'stanford_cars',
    ):
        apply_task(cfg)
    with pytest.raises(
        TaskError, match="task='cifar' is not a FGVC task; known: cub, nabirds"
    ):
        resolved('mae', 'fgvc', 'cifar')
    with pytest.raises(TaskError, match="method='vpt'.*unknown method"):
        resolved('mae', 'fgvc', 'cub', method='vpt')
    # configs that are no benchmark config are left alone
    other = Config(dict(model=dict(backbone=dict(type='PromptedViT'))))
    assert apply_task(other) is None and 'task_recipe' not in other


def test_settings_kept_and_resolving_twice_is_stable():
    """What the config or --cfg-options set is kept (and said); a resolved
    copy (the work dir's dumped config) resolves to itself, and to another
    task with the values that were set kept."""
    cfg, recipe = resolved(
        'mae',
        'vtab1k',
        'dtd',
        **{
            'optim_wrapper.optimizer.lr': 0.3,
            'model.backbone.num_prompts': 7,
            'data_root': '/data/vtab',
        },
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.3 and recipe['lr'] == 0.25
    assert cfg.model.backbone.num_prompts == 7
    assert cfg.train_dataloader.dataset.data_root == '/data/vtab'
    assert cfg.task_recipe['kept'] == [
        'num_prompts=7 (recipe: 1)',
        'lr=0.3 (recipe: 0.25)',
    ]
    again = Config.fromstring(cfg.pretty_text, '.py')
    apply_task(again, log=False)
    assert again.to_dict() == cfg.to_dict()
    again.task = 'cifar'
    apply_task(again, log=False)
    assert again.model.head.num_classes == 100  # cifar's row
    assert again.train_dataloader.dataset.task == 'cifar'
    assert again.optim_wrapper.optimizer.lr == 0.3  # set: kept
    assert again.model.backbone.num_prompts == 7
    assert again.train_dataloader.dataset.data_root == '/data/vtab'
    assert again.task_recipe['kept'] == [
        'num_prompts=7 (recipe: 1)',
        'lr=0.3 (recipe: 0.25)',
    ]


@pytest.mark.parametrize(
    'method', ['gapt', 'vpt-deep', 'linear', 'full', 'lora']
)
def test_method_is_a_setting(method):
    """``method=...`` on the benchmark config: the method table's backbone
    settings (a wrapper for LoRA), the task's prompts where the method has
    prompts, GaPT's gate init, and the provenance of the numbers."""
    from lspt_mm.models.methods import get_method

    spec = get_method(method)
    cfg, recipe = resolved('mocov3', 'vtab1k', 'resisc45', method=method)
    b = cfg.model.backbone
    vit = b.module if spec.wrapper else b
    if spec.wrapper:
        assert b.type == spec.wrapper['type'] and vit.save_trainable_only
    assert vit.prompt_method == ('linear' if spec.wrapper else spec.name)
    assert ('num_prompts' in vit) == spec.uses_prompts
    if spec.uses_prompts:
        assert vit.num_prompts == 100  # GaPT Table 5, MoCo v3 Resisc45
    assert 'freeze_backbone' not in vit  # the method table says it
    assert cfg.train_dataloader.batch_size == 64
    if method == 'gapt':
        assert vit.prompt_cfg == dict(gate_init=7.0)
        assert recipe['source'] == 'GaPT Table 5'  # GaPT's own numbers
    elif method == 'full':
        assert cfg.optim_wrapper.optimizer.lr == METHOD_LR['full'][0]
        assert "lr: this project's choice" in recipe['source']
    else:
        assert cfg.optim_wrapper.optimizer.lr == 1.0
        assert (
            f"used for {spec.name} as this project's starting point"
            in recipe['source']
        )
    assert 'prompt_cfg' not in vit or method == 'gapt'


def test_gate_init_option_survives_a_method_switch():
    cfg, _ = resolved(
        'mae',
        'fgvc',
        'cub',
        method='gapt',
        **{'model.backbone.prompt_cfg.gate_init': 3.0},
    )
    assert cfg.model.backbone.prompt_cfg == dict(gate_init=3.0)
    assert cfg.task_recipe['kept'] == ['gate_init=3.0 (recipe: 5.0)']


def test_hparams_provenance():
    hp = hparams_of('mae', 'fgvc', 'cub', 'full')
    assert hp['lr'] == METHOD_LR['full'][0]
    assert "this project's choice" in hp['source']
    assert (
        "used for vpt_deep as this project's starting point"
        in hparams_of('mae', 'vtab1k', 'dtd', 'vpt-deep')['source']
    )
    with pytest.raises(KeyError, match="backbone='dino'"):
        hparams_of('dino', 'vtab1k', 'dtd')


def test_train_tool_names_the_recipe_row_it_used(tmp_path):
    """``tools/train.py <benchmark config> --cfg-options task=cub`` logs the
    row and the work dir's config records it (it stops at the missing data,
    after the runner is built); with the task unset (task=None) it stops
    with the list of tasks."""
    config = CONFIGS[('mae', 'fgvc')]
    out = subprocess.run(
        [
            sys.executable,
            'tools/train.py',
            config,
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'task=cub',
            'model.backbone.pretrained=None',
            f'data_root={tmp_path}/none',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    text = out.stdout + out.stderr
    assert (
        "task 'cub' (200 classes), MAE ViT-B/16, LSPT: recipe row "
        "('mae', 'fgvc', 'cub') (100 prompts, lr 0.1, weight decay 0.0, "
        'batch 64); source: GaPT Table 5' in text
    ), text[-3000:]
    assert out.returncode != 0 and 'CUB_200_2011' in text
    dumped = open(osp.join(str(tmp_path), osp.basename(config))).read()
    assert "task = 'cub'" in dumped and 'task_recipe = dict(' in dumped
    out = subprocess.run(
        [
            sys.executable,
            'tools/train.py',
            config,
            '--cfg-options',
            'task=None',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        'error: lspt_vit-b16-mae_fgvc.py trains one FGVC task: set it with '
        '--cfg-options task=NAME (one of cub, nabirds, oxford_flowers, '
        'stanford_dogs, stanford_cars)'
    )


def test_published_grids():
    assert published_grid('gapt', 64) == dict(
        lr=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0), weight_decay=(0.0,)
    )
    vpt = published_grid('vpt', 128)  # base lr x 128 / 256
    assert vpt['lr'][0] == 25.0 and vpt['lr'][-1] == 0.025
    assert vpt['weight_decay'] == (0.01, 0.001, 0.0001, 0.0)
    with pytest.raises(KeyError, match='known'):
        published_grid('noah', 64)


def test_recipe_table_file_overrides_and_is_method_bound(tmp_path):
    path = tmp_path / 'recipes.json'
    path.write_text(
        json.dumps(
            dict(
                method='lspt',
                run_id='r1',
                rows=[
                    dict(
                        backbone='mae',
                        benchmark='vtab1k',
                        task='dtd',
                        lr=0.5,
                        weight_decay=0.001,
                        num_prompts=10,
                        batch_size=128,
                        source='tuned: run r1',
                    )
                ],
            )
        )
    )
    recipes = read_recipe_table(str(path), 'lspt')
    hp = hparams_of('mae', 'vtab1k', 'dtd', 'lspt', recipes)
    assert (hp['lr'], hp['weight_decay'], hp['num_prompts']) == (
        0.5,
        0.001,
        10,
    )
    assert hp['source'] == 'tuned: run r1'
    # the config reads it: benchmark.recipes=<file>
    cfg, recipe = resolved(
        'mae', 'vtab1k', 'dtd', **{'benchmark.recipes': str(path)}
    )
    opt = cfg.optim_wrapper.optimizer
    assert (opt.lr, opt.weight_decay) == (0.5, 0.001)
    assert cfg.model.backbone.num_prompts == 10
    assert recipe['source'] == 'tuned: run r1'
    # other tasks keep GaPT's row
    assert (
        resolved('mae', 'vtab1k', 'cifar', **{'benchmark.recipes': str(path)})[
            1
        ]['lr']
        == 0.25
    )
    with pytest.raises(ValueError, match="tuned for method 'lspt'"):
        read_recipe_table(str(path), 'gapt')
    with pytest.raises(ValueError, match="tuned for method 'lspt'"):
        resolved(
            'mae',
            'vtab1k',
            'dtd',
            method='gapt',
            **{'benchmark.recipes': str(path)},
        )

"""Classification data: FGVC split preparation from every official layout,
the VTAB-1k / FGVC dataset classes and their errors, the configs and the
benchmark summary. No training here (see test_classification_e2e.py)."""

import json
import os
import os.path as osp
import shutil
import sys

import numpy as np
import pytest

import lspt_mm  # noqa: F401  (compat first)
import lspt_mm.datasets  # noqa: F401
from lspt_mm.datasets import FGVC, DataFileError, VTAB1k
from lspt_mm.datasets.benchmarks import (
    FGVC_DATASETS,
    VTAB_GROUPS,
    VTAB_NUM_CLASSES,
)
from lspt_mm.recipes import hparams_of

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))
sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import prepare_fgvc_splits as prep  # noqa: E402
import run_benchmark as rb  # noqa: E402

from lspt_mm.datasets.synthetic import (  # noqa: E402
    FGVC_MAKERS,
    PALETTE,
    make_cars,
    make_vtab,
    write_json,
)


def colour_class(path):
    """The synthetic class an image was drawn for (nearest palette colour
    of its mean, brightness-normalised)."""
    from PIL import Image

    mean = np.asarray(Image.open(path).convert('RGB'), dtype=np.float32).mean(
        (0, 1)
    )
    pal = PALETTE / np.linalg.norm(PALETTE, axis=1, keepdims=True)
    return int(np.argmax(pal @ (mean / np.linalg.norm(mean))))


@pytest.fixture(scope='module')
def fgvc_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('fgvc')
    roots = {}
    for name, make in FGVC_MAKERS.items():
        roots[name] = str(base / FGVC_DATASETS[name]['folder'])
        make(roots[name])
    roots['cars_devkit'] = str(base / 'cars_devkit')
    make_cars(roots['cars_devkit'], layout='devkit')
    return roots


# ------------------------------------------------------------ benchmarks
def test_benchmark_tables():
    assert sum(len(t) for t in VTAB_GROUPS.values()) == 19
    assert VTAB_NUM_CLASSES == {
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
    assert {k: v['num_classes'] for k, v in FGVC_DATASETS.items()} == {
        'cub': 200,
        'nabirds': 555,
        'oxford_flowers': 102,
        'stanford_dogs': 120,
        'stanford_cars': 196,
    }
    with pytest.raises(KeyError, match='cifar10'):
        hparams_of('mae', 'vtab1k', 'cifar10')


# ------------------------------------------------------------ FGVC splits
@pytest.mark.parametrize('name', list(FGVC_MAKERS) + ['cars_devkit'])
def test_prepare_splits_and_load(fgvc_roots, name):
    root = fgvc_roots[name]
    ds_name = 'stanford_cars' if name == 'cars_devkit' else name
    assert prep.main([ds_name, root]) == 0
    for split in ('train', 'val', 'test'):
        assert osp.isfile(osp.join(root, f'{split}.json'))
    sizes = {}
    for split in ('train', 'val', 'trainval', 'test'):
        ds = FGVC(root, ds_name, split=split, num_classes=4)
        sizes[split] = len(ds)
        assert len(ds.CLASSES) == 4
        # every label is the class the image was drawn for
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            assert info['gt_label'] == colour_class(info['img_path']), info
    assert sizes['trainval'] == sizes['train'] + sizes['val']
    if ds_name == 'oxford_flowers':  # official train / val / test
        assert (sizes['train'], sizes['val'], sizes['test']) == (32, 12, 24)
    else:  # 90/10 of the official 64 train images; official test
        assert (sizes['train'], sizes['val'], sizes['test']) == (58, 6, 24)


def test_split_is_seeded(fgvc_roots):
    root = fgvc_roots['cub']
    a = prep.make_splits('cub', root, seed=0)
    assert a == prep.make_splits('cub', root, seed=0)
    b = prep.make_splits('cub', root, seed=1)
    assert a['test'] == b['test'] and a['val'] != b['val']
    assert sorted(a['train'] + a['val']) == sorted(b['train'] + b['val'])
    labels = {lb for s in a.values() for _, lb in s}
    assert labels == {0, 1, 2, 3}  # 0-based from CUB's 1-based class ids


def test_text_lists(fgvc_roots, tmp_path):
    root = fgvc_roots['stanford_dogs']
    out = tmp_path / 'lists'
    out.mkdir()
    prep.main(
        ['stanford_dogs', root, '--format', 'txt', '--out-dir', str(out)]
    )
    line = (out / 'train.txt').read_text().splitlines()[0]
    assert line.startswith('n020') and line.rsplit(' ', 1)[1].isdigit()
    ds = FGVC(
        root,
        'stanford_dogs',
        split='test',
        num_classes=4,
        ann_file=str(out / 'test.txt'),
    )
    assert len(ds) == 24


def test_vpt_json_label_values(fgvc_roots, tmp_path):
    """VPT's loader maps label values to 0..C-1 in sorted order: 1-based or
    sparse (NABirds) ids load as 0-based; all splits share one mapping."""
    src = fgvc_roots['nabirds']
    root = tmp_path / 'nabirds'
    shutil.copytree(src, root)
    splits = prep.make_splits('nabirds', src)
    sparse = [295, 302, 1010, 700]  # label i -> a sparse id
    for split, samples in splits.items():
        write_json(
            root / f'{split}.json', {p: sparse[lb] for p, lb in samples}
        )
    ds = FGVC(str(root), 'nabirds', split='test', num_classes=4)
    order = sorted(sparse)
    for (path, lb), i in zip(splits['test'], range(len(ds))):
        assert ds.get_data_info(i)['gt_label'] == order.index(sparse[lb])


# ------------------------------------------------------------ FGVC errors
def test_fgvc_errors(fgvc_roots, tmp_path):
    root = fgvc_roots['cub']
    prep.main(['cub', root])
    with pytest.raises(FileNotFoundError, match='no_such_dir'):
        FGVC(str(tmp_path / 'no_such_dir'), 'cub', num_classes=4)
    # wrong class count (the real CUB has 200 classes)
    with pytest.raises(ValueError, match='4 distinct labels.*200 classes'):
        FGVC(root, 'cub', split='train')
    with pytest.raises(KeyError, match='unknown FGVC dataset'):
        FGVC(root, 'cub2011', num_classes=4)
    # missing list
    empty = tmp_path / 'CUB_200_2011'
    (empty / 'images').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'train\.json.*prepare_fgvc'):
        FGVC(str(empty), 'cub', num_classes=4)
    with pytest.raises(FileNotFoundError, match='other.json'):
        FGVC(root, 'cub', ann_file='other.json', num_classes=4)
    # a listed image that does not exist
    bad = tmp_path / 'bad'
    shutil.copytree(root, bad)
    with open(bad / 'test.json') as f:
        mapping = json.load(f)
    missing = next(iter(mapping))
    os.remove(bad / 'images' / missing)
    with pytest.raises(FileNotFoundError, match=missing.split('/')[-1]):
        FGVC(str(bad), 'cub', split='test', num_classes=4)
    with pytest.raises(FileNotFoundError, match='image_class_labels'):
        os.remove(bad / 'image_class_labels.txt')
        prep.make_splits('cub', str(bad))


# ------------------------------------------------------------ VTAB-1k
@pytest.fixture(scope='module')
def vtab_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vtab') / 'vtab-1k')
    make_vtab(root, 'kitti', num_classes=4)
    return root


def test_vtab_splits(vtab_root):
    sizes = {
        s: len(VTAB1k(vtab_root, 'kitti', split=s))
        for s in ('train800', 'val200', 'train800val200', 'test')
    }
    assert sizes == dict(train800=40, val200=12, train800val200=52, test=24)
    ds = VTAB1k(vtab_root, 'kitti')  # the protocol's training split
    assert ds.split == 'train800val200' and len(ds.CLASSES) == 4
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['gt_label'] == colour_class(info['img_path'])


def test_vtab_errors(vtab_root, tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        VTAB1k(str(tmp_path / 'nowhere'), 'kitti')
    with pytest.raises(FileNotFoundError, match="task folder of 'dtd'"):
        VTAB1k(vtab_root, 'dtd')
    with pytest.raises(KeyError, match='unknown VTAB-1k task'):
        VTAB1k(vtab_root, 'kitty')
    with pytest.raises(ValueError, match='split must be one of'):
        VTAB1k(vtab_root, 'kitti', split='train')
    root = tmp_path / 'vtab-1k'
    shutil.copytree(vtab_root, root)
    task = root / 'kitti'
    os.remove(task / 'val200.txt')
    with pytest.raises(FileNotFoundError, match=r'val200\.txt'):
        VTAB1k(str(root), 'kitti', split='val200')
    # label outside the task's class count (kitti has 4 classes)
    lines = (task / 'test.txt').read_text().splitlines()
    (task / 'test.txt').write_text(
        '\n'.join(lines[:-1] + [lines[-1].rsplit(' ', 1)[0] + ' 4']) + '\n'
    )
    with pytest.raises(
        DataFileError,
        match=r'test\.txt: 1 of 24 labels are '
        r"outside \[0, 4\) for VTAB-1k task 'kitti'.*"
        r'values 4\. First: .*test\.txt:24',
    ):
        VTAB1k(str(root), 'kitti', split='test')
    # a listed image that does not exist
    rel = (task / 'train800.txt').read_text().split()[0]
    os.remove(task / rel)
    with pytest.raises(FileNotFoundError, match=rel.split('/')[-1]):
        VTAB1k(str(root), 'kitti', split='train800')
    (task / 'train800.txt').write_text('images/a.jpg\n')
    with pytest.raises(ValueError, match=r'train800\.txt:1'):
        VTAB1k(str(root), 'kitti', split='train800')


def _grab_warnings():
    from mmengine.logging import MMLogger

    records = []

    class Grab:
        level = 30

        def handle(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    logger.handlers.append(Grab())
    return records, lambda: logger.handlers.pop()


def test_vtab_out_of_range_labels_named_or_skipped(vtab_root, tmp_path):
    """Labels outside [0, C): DataFileError naming the list, every value and
    the first lines; on_error='skip' leaves exactly those samples out."""
    root = tmp_path / 'vtab-1k'
    shutil.copytree(vtab_root, root)
    path = root / 'kitti' / 'train800.txt'
    lines = path.read_text().splitlines()
    bad = {3: 199, 7: -1, 11: 4}  # line index -> label
    for i, label in bad.items():
        lines[i] = f'{lines[i].rsplit(" ", 1)[0]} {label}'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DataFileError) as err:
        VTAB1k(str(root), 'kitti', split='train800')
    msg = str(err.value)
    assert f'{path}: 3 of 40 labels' in msg and 'values -1, 4, 199' in msg
    assert f'{path}:4 (' in msg and f'{path}:8 (' in msg, msg
    assert "on_error='skip'" in msg
    records, remove = _grab_warnings()
    try:
        ds = VTAB1k(str(root), 'kitti', split='train800', on_error='skip')
    finally:
        remove()
    assert len(ds) == 37
    kept = {ds.get_data_info(i)['img_path'] for i in range(len(ds))}
    for i in bad:
        assert str(root / 'kitti' / lines[i].split()[0]) not in kept
    assert any(
        'values -1, 4, 199' in r and 'skipping these 3' in r for r in records
    ), records
    with pytest.raises(ValueError, match='on_error'):
        VTAB1k(str(root), 'kitti', on_error='ignore')


def test_fgvc_out_of_range_labels_named_or_skipped(fgvc_roots, tmp_path):
    """FGVC maps label values to 0..C-1; a value beyond an otherwise
    complete 0..C-1 (or 1..C) range is named, not mapped onto a class."""
    src = fgvc_roots['cub']
    prep.main(['cub', src])
    for base in (0, 1):
        root = tmp_path / f'cub{base}'
        shutil.copytree(src, root)
        for split in ('train', 'val', 'test'):
            with open(root / f'{split}.json') as f:
                mapping = {k: v + base for k, v in json.load(f).items()}
            if split == 'test':
                wrong = sorted(mapping)[5]
                mapping[wrong] = 199
            write_json(root / f'{split}.json', mapping)
        for split in ('train', 'test'):  # the mapping spans all lists
            with pytest.raises(DataFileError) as err:
                FGVC(str(root), 'cub', split=split, num_classes=4)
            msg = str(err.value)
            assert (
                f'{root / "test.json"}: 1 of 24 labels are outside '
                f'[{base}, {base + 4})' in msg
            ), msg
            assert f'entry {wrong!r}' in msg and 'values 199' in msg
        ds = FGVC(
            str(root), 'cub', split='test', num_classes=4, on_error='skip'
        )
        assert len(ds) == 23
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            assert not info['img_path'].endswith(wrong)
            assert info['gt_label'] == colour_class(info['img_path'])
    # sparse ids (as NABirds'), one too many: which one is wrong cannot be
    # told, so the count error stays (also with on_error='skip')
    sparse = {1: 295, 2: 302, 3: 1010, 4: 700, 199: 199}
    for split in ('train', 'val', 'test'):
        with open(root / f'{split}.json') as f:
            mapping = json.load(f)
        write_json(
            root / f'{split}.json', {k: sparse[v] for k, v in mapping.items()}
        )
    with pytest.raises(
        DataFileError,
        match=r'5 distinct labels.*4 classes'
        r'.*199, 295, 302, 700, 1010',
    ):
        FGVC(str(root), 'cub', split='test', num_classes=4, on_error='skip')


# ------------------------------------------------------------ configs
def resolved_config(backbone, benchmark, task, **options):
    """The benchmark config with ``task`` (and options) as --cfg-options
    would set them, resolved from the recipe table."""
    from lspt_mm.recipes import apply_task

    from mmengine.config import Config

    cfg = Config.fromfile(rb.benchmark_config(backbone, benchmark))
    cfg.merge_from_dict(dict(task=task, **options))
    apply_task(cfg, log=False)
    return cfg


@pytest.mark.parametrize(
    'backbone,benchmark,task',
    [
        ('mae', 'fgvc', 'cub'),
        ('mocov3', 'fgvc', 'nabirds'),
        ('mae', 'vtab1k', 'sun397'),
        ('mocov3', 'vtab1k', 'kitti'),
        ('dinov2', 'fgvc', 'stanford_dogs'),
        ('dinov2', 'vtab1k', 'dtd'),
    ],
)
def test_config_content(backbone, benchmark, task):
    cfg = resolved_config(backbone, benchmark, task)
    n = (
        VTAB_NUM_CLASSES[task]
        if benchmark == 'vtab1k'
        else FGVC_DATASETS[task]['num_classes']
    )
    assert cfg.model.head.num_classes == n
    assert cfg.data_preprocessor.num_classes == n
    bb = cfg.model.backbone
    # the method table says what trains: no freeze_backbone written
    assert (bb.type, bb.prompt_method, bb.get('freeze_backbone')) == (
        'PromptedViT',
        'lspt',
        None,
    )
    assert bb.prompt_dropout == 0.1
    assert (
        bb.num_prompts == hparams_of(backbone, benchmark, task)['num_prompts']
    )
    assert (
        bb.out_type
        == {'mae': 'avg_token', 'mocov3': 'cls_token', 'dinov2': 'cls_token'}[
            backbone
        ]
    )
    assert bb.pretrained.startswith('checkpoints/')
    assert bb.get('save_trainable_only') is None  # PromptedViT's default
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.momentum, opt.weight_decay) == ('SGD', 0.9, 0.0)
    assert cfg.train_cfg.max_epochs == 100
    warm, cos = cfg.param_scheduler
    assert (warm.type, warm.end, cos.type, cos.begin, cos.end) == (
        'LinearLR',
        10,
        'CosineAnnealingLR',
        10,
        100,
    )
    assert 'lspt_mm' in cfg.custom_imports.imports  # registers datasets
    train = cfg.train_dataloader
    if benchmark == 'vtab1k':
        assert train.batch_size == 128 and train.dataset.task == task
        assert train.dataset.split == 'train800val200'
        assert cfg.test_dataloader.dataset.split == 'test'
        assert cfg.val_dataloader is None
        assert [t['type'] for t in train.dataset.pipeline] == [
            'LoadImageFromFile',
            'Resize',
            'PackInputs',
        ]
        assert train.dataset.pipeline[1]['scale'] == (224, 224)
    else:
        assert train.batch_size == 64 and train.dataset.name == task
        assert (
            train.dataset.split,
            cfg.val_dataloader.dataset.split,
            cfg.test_dataloader.dataset.split,
        ) == ('train', 'val', 'test')
        assert [t['type'] for t in train.dataset.pipeline] == [
            'LoadImageFromFile',
            'ResizeEdge',
            'RandomCrop',
            'RandomFlip',
            'PackInputs',
        ]
        assert [t['type'] for t in cfg.test_dataloader.dataset.pipeline] == [
            'LoadImageFromFile',
            'ResizeEdge',
            'CenterCrop',
            'PackInputs',
        ]


def _methods():
    from lspt_mm.models.methods import METHODS

    return list(METHODS)


@pytest.mark.parametrize('method', _methods())
def test_method_setting_gives_the_method_tables_backbone(method):
    """``method=<name>`` on a benchmark config: the backbone settings of
    the method table (the wrapper's own for LoRA), and GaPT's gate init of
    the task (GaPT Table 5: DTD, MAE: gate init 1)."""
    from lspt_mm.models.methods import METHODS

    spec = METHODS[method]
    bb = resolved_config('mae', 'vtab1k', 'dtd', method=method).model.backbone
    expected = dict(spec.wrapper) if spec.wrapper else spec.backbone_options()
    for key, value in expected.items():
        assert bb[key] == value, key
    assert 'freeze_backbone' not in bb.get('module', bb)  # the table's
    if method == 'gapt':
        assert bb.prompt_cfg == dict(gate_init=1.0)


# summaries of benchmark runs: tests/test_protocol.py

"""FashionMNISTSubset on tiny IDX files written in exactly the official
format (gzip, big-endian header, magic 2051 / 2049), and the real-weights
config."""

import gzip
import os.path as osp
import struct

import numpy as np
import pytest

import lspt_mm  # noqa: F401
from lspt_mm.datasets import DataFileError
from lspt_mm.datasets.fashion_mnist import (
    DEBIAN_DIR,
    FILES,
    FashionMNISTSubset,
    read_idx,
)

from mmpretrain.registry import DATASETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(
    REPO,
    'configs',
    'classification',
    'realweights',
    'lspt_dinov2-s14-imgfocus_1xb32-fmnist-112px.py',
)


def write_idx(path, array, magic):
    """The IDX layout of the official files: >i4 magic, >i4 per dimension,
    then the uint8 values; gzip-compressed."""
    header = struct.pack('>i', magic) + struct.pack(
        f'>{array.ndim}i', *array.shape
    )
    with gzip.open(path, 'wb') as f:
        f.write(header + array.astype(np.uint8).tobytes())


def make_fmnist(root, per_class_train=8, per_class_test=3, seed=0):
    """Images whose every pixel encodes (label, index in the file), so each
    sample can be traced back to its source row."""
    rng = np.random.default_rng(seed)
    out = {}
    for part, per_class in (
        ('train', per_class_train),
        ('test', per_class_test),
    ):
        labels = rng.permutation(np.repeat(np.arange(10), per_class))
        images = np.zeros((len(labels), 28, 28), np.uint8)
        images[:, :, 0] = labels[:, None]  # first column: the label
        images[:, :, 1] = np.arange(len(labels))[:, None] % 256  # the index
        images[:, :, 2:] = rng.integers(0, 256, (len(labels), 28, 26))
        img_name, lbl_name = FILES[part]
        write_idx(osp.join(root, img_name), images, 2051)
        write_idx(osp.join(root, lbl_name), labels, 2049)
        out[part] = (images, labels)
    return out


@pytest.fixture
def fmnist(tmp_path):
    root = str(tmp_path / 'fashion-mnist')
    import os

    os.makedirs(root)
    return root, make_fmnist(root)


def build(root, split, **kwargs):
    return FashionMNISTSubset(
        data_root=root,
        split=split,
        train_per_class=kwargs.pop('train', 3),
        val_per_class=kwargs.pop('val', 2),
        test_per_class=kwargs.pop('test', 2),
        **kwargs,
    )


def sources(ds):
    return [ds.get_data_info(i)['source_idx'] for i in range(len(ds))]


def test_read_idx_round_trip(fmnist):
    root, data = fmnist
    images = read_idx(osp.join(root, FILES['train'][0]), 2051)
    labels = read_idx(osp.join(root, FILES['train'][1]), 2049)
    assert np.array_equal(images, data['train'][0])
    assert np.array_equal(labels, data['train'][1])


def test_splits_balanced_disjoint_and_traceable(fmnist):
    root, data = fmnist
    sets = {s: build(root, s) for s in FashionMNISTSubset.SPLITS}
    sizes = {s: len(ds) for s, ds in sets.items()}
    assert sizes == dict(train=30, val=20, trainval=50, test=20)
    train, val = set(sources(sets['train'])), set(sources(sets['val']))
    assert not train & val
    assert set(sources(sets['trainval'])) == train | val
    for split, ds in sets.items():
        images, labels = data['test' if split == 'test' else 'train']
        per_class = np.bincount(
            [ds.get_data_info(i)['gt_label'] for i in range(len(ds))],
            minlength=10,
        )
        assert (per_class == per_class[0]).all()  # class-balanced
        for i in range(len(ds)):
            info = ds.get_data_info(i)
            src = info['source_idx']
            assert info['gt_label'] == labels[src]
            # grey -> 3 identical channels, pixel for pixel the source
            assert info['img'].shape == (28, 28, 3)
            for c in range(3):
                assert np.array_equal(info['img'][..., c], images[src])


def test_subset_is_fixed_by_its_seed(fmnist):
    root, _ = fmnist
    assert sources(build(root, 'train')) == sources(build(root, 'train'))
    assert sources(build(root, 'train')) != sources(
        build(root, 'train', subset_seed=1)
    )
    # the training images do not depend on the val size
    assert sources(build(root, 'train', val=5)) == sources(
        build(root, 'train')
    )
    assert len(build(root, 'test', test=None)) == 30  # whole test set


def test_too_large_subset_names_the_class(fmnist):
    root, _ = fmnist
    with pytest.raises(ValueError, match=r'class \d+ .*8 images, 9 needed'):
        build(root, 'train', train=7, val=2)


def test_missing_files_name_them_and_the_sources(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        build(str(tmp_path), 'train')
    msg = str(err.value)
    for name in FILES['train']:
        assert name in msg
    assert 'apt-get install dataset-fashion-mnist' in msg and DEBIAN_DIR in msg
    assert 'fashion-mnist.s3-website' in msg


def test_wrong_magic_and_truncation_are_errors(fmnist):
    root, data = fmnist
    images, labels = data['train']
    # labels written where the images belong: magic 2049, not 2051
    write_idx(osp.join(root, FILES['train'][0]), labels, 2049)
    with pytest.raises(
        DataFileError, match='magic number 2049, expected 2051'
    ):
        build(root, 'train')
    path = osp.join(root, FILES['train'][0])
    write_idx(path, images, 2051)
    with gzip.open(path, 'rb') as f:
        raw = f.read()
    with gzip.open(path, 'wb') as f:
        f.write(raw[:-100])
    with pytest.raises(DataFileError, match='truncated'):
        build(root, 'train')
    write_idx(path, images, 2051)
    bad = labels.copy()
    bad[3] = 12  # an 11th class
    write_idx(osp.join(root, FILES['train'][1]), bad, 2049)
    with pytest.raises(
        DataFileError, match=r'labels outside \[0, 10\): \[12\]'
    ):
        build(root, 'train')


def test_pipeline_gives_three_channel_112px(fmnist):
    from mmengine.registry import init_default_scope

    init_default_scope('mmpretrain')  # transforms from mmpretrain's registry
    root, _ = fmnist
    ds = DATASETS.build(
        dict(
            type='FashionMNISTSubset',
            data_root=root,
            split='val',
            train_per_class=3,
            val_per_class=2,
            pipeline=[
                dict(type='Resize', scale=(112, 112), interpolation='bicubic'),
                dict(type='PackInputs'),
            ],
        )
    )
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, 112, 112)
    assert (
        sample['data_samples'].gt_label.item()
        == ds.get_data_info(0)['gt_label']
    )


def test_realweights_config_builds_on_local_files(fmnist):
    """The committed config: its datasets read a data_root of the four
    files, its model is DINOv2-S/14 at 112 px with a 10-class head."""
    import torch

    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    root, _ = fmnist
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmpretrain')
    assert cfg.train_dataloader.dataset.data_root == DEBIAN_DIR
    loaders = {}
    for name in ('train', 'val', 'test'):
        ds_cfg = cfg[f'{name}_dataloader'].dataset
        ds_cfg.update(
            data_root=root,
            train_per_class=3,
            val_per_class=2,
            test_per_class=2,
        )
        loaders[name] = DATASETS.build(ds_cfg)
        assert loaders[name].split == name
    cfg.model.backbone.pretrained = None  # no converted file needed here
    model = MODELS.build(
        dict(
            cfg.model,
            data_preprocessor=dict(
                type='ClsDataPreprocessor', **cfg.data_preprocessor
            ),
        )
    )
    assert model.backbone.patch_resolution == (8, 8)
    assert model.backbone.embed_dims == 384
    batch = model.data_preprocessor(
        pseudo_collate([loaders['train'][i] for i in range(2)]), False
    )
    model.eval()
    with torch.no_grad():
        scores = model(batch['inputs'], batch['data_samples'], mode='predict')
    assert scores[0].pred_score.shape == (10,)

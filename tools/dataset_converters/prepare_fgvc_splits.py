#!/usr/bin/env python
"""Write VPT-style split lists (train / val / test) for an FGVC dataset from
its official folder.

    python tools/dataset_converters/prepare_fgvc_splits.py cub data/fgvc/CUB_200_2011
    python tools/dataset_converters/prepare_fgvc_splits.py nabirds data/fgvc/nabirds
    python tools/dataset_converters/prepare_fgvc_splits.py oxford_flowers data/fgvc/OxfordFlower
    python tools/dataset_converters/prepare_fgvc_splits.py stanford_dogs data/fgvc/Stanford-dogs
    python tools/dataset_converters/prepare_fgvc_splits.py stanford_cars data/fgvc/Stanford-cars

Writes ``train.json``, ``val.json``, ``test.json`` into the dataset folder
(``--format txt``: ``train.txt`` ... with lines "relative/path label"):
image paths relative to VPT's image folder for the dataset, labels 0-based
(the official class ids in sorted order). Test is the official test set.
Train / val: the official ones for Oxford Flowers; for the others, which
have no official val set, a fixed-seed random 90/10 split of the official
train set (``--seed``, ``--val-fraction``), as VPT did. These are NOT VPT's
exact files (their random split is not reproducible from the official
data); if you have VPT's JSON files, copy them into the folder instead.

Official files read:
  cub             images.txt, image_class_labels.txt, train_test_split.txt
  nabirds         images.txt, image_class_labels.txt, train_test_split.txt
  oxford_flowers  imagelabels.mat, setid.mat, jpg/
  stanford_dogs   train_list.mat, test_list.mat (from lists.tar), Images/
  stanford_cars   cars_annos.mat + car_ims/, or devkit/cars_train_annos.mat
                  + devkit/cars_test_annos_withlabels.mat + cars_train/
                  + cars_test/
"""  # noqa: E501

import argparse
import json
import os.path as osp
import random
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from lspt_mm.datasets.benchmarks import FGVC_DATASETS  # noqa: E402


def _need(path):
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path!r} does not exist (an official file '
            'of this dataset is expected there)'
        )
    return path


def _read_pairs(path):
    """``id value`` lines of the CUB / NABirds metadata files."""
    pairs = {}
    with open(_need(path)) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f'{path}:{lineno}: expected "id value"')
            pairs[parts[0]] = parts[1].strip()
    return pairs


def _loadmat(path):
    from scipy.io import loadmat

    return loadmat(_need(path), squeeze_me=True)


def _as_list(x):
    """A squeezed MATLAB array / cell array / scalar as a Python list."""
    import numpy as np

    if isinstance(x, np.ndarray):
        return [
            v.item() if isinstance(v, np.generic) else v
            for v in x.ravel().tolist()
        ]
    return [x]


def cub_like(root):
    """CUB-200-2011 and NABirds: paths relative to images/."""
    images = _read_pairs(osp.join(root, 'images.txt'))
    labels = _read_pairs(osp.join(root, 'image_class_labels.txt'))
    is_train = _read_pairs(osp.join(root, 'train_test_split.txt'))
    if not images.keys() == labels.keys() == is_train.keys():
        raise ValueError(
            f'{root}: images.txt, image_class_labels.txt and '
            'train_test_split.txt list different image ids'
        )
    train, test = [], []
    for key, path in images.items():
        (train if is_train[key] == '1' else test).append(
            (path, int(labels[key]))
        )
    return train, None, test


def oxford_flowers(root):
    """Official train / val / test; paths relative to the root (jpg/...)."""
    labels = _as_list(_loadmat(osp.join(root, 'imagelabels.mat'))['labels'])
    setid = _loadmat(osp.join(root, 'setid.mat'))

    def split(key):
        return [
            (f'jpg/image_{i:05d}.jpg', int(labels[i - 1]))
            for i in _as_list(setid[key])
        ]

    return split('trnid'), split('valid'), split('tstid')


def stanford_dogs(root):
    """Official train / test lists; paths relative to Images/."""

    def split(name):
        mat = _loadmat(osp.join(root, f'{name}_list.mat'))
        files = [str(f) for f in _as_list(mat['file_list'])]
        labels = [int(x) for x in _as_list(mat['labels'])]
        return list(zip(files, labels))

    return split('train'), None, split('test')


def stanford_cars(root):
    """Paths relative to the root (car_ims/... or cars_train/...)."""
    combined = osp.join(root, 'cars_annos.mat')
    if osp.isfile(combined):
        ann = _loadmat(combined)['annotations']
        paths = [str(p) for p in _as_list(ann['relative_im_path'])]
        classes = [int(c) for c in _as_list(ann['class'])]
        tests = [int(t) for t in _as_list(ann['test'])]
        train = [(p, c) for p, c, t in zip(paths, classes, tests) if not t]
        test = [(p, c) for p, c, t in zip(paths, classes, tests) if t]
        return train, None, test

    def split(mat_name, folder):
        ann = _loadmat(osp.join(root, 'devkit', mat_name))['annotations']
        return [
            (f'{folder}/{f}', int(c))
            for f, c in zip(_as_list(ann['fname']), _as_list(ann['class']))
        ]

    if not osp.isfile(osp.join(root, 'devkit', 'cars_train_annos.mat')):
        raise FileNotFoundError(
            f'{root}: found neither cars_annos.mat (with car_ims/) nor '
            'devkit/cars_train_annos.mat (with cars_train/, cars_test/ and '
            'devkit/cars_test_annos_withlabels.mat)'
        )
    return (
        split('cars_train_annos.mat', 'cars_train'),
        None,
        split('cars_test_annos_withlabels.mat', 'cars_test'),
    )


READERS = {
    'cub': cub_like,
    'nabirds': cub_like,
    'oxford_flowers': oxford_flowers,
    'stanford_dogs': stanford_dogs,
    'stanford_cars': stanford_cars,
}


def make_splits(name, root, seed=0, val_fraction=0.1):
    """Returns ``{'train': [...], 'val': [...], 'test': [...]}`` of
    ``(path relative to the image folder, 0-based label)``."""
    if name not in READERS:
        raise KeyError(
            f'unknown FGVC dataset {name!r}; known: {sorted(READERS)}'
        )
    if not osp.isdir(root):
        raise FileNotFoundError(f'dataset folder {root!r} does not exist')
    train, val, test = READERS[name](root)
    if val is None:  # fixed-seed random split of the official train set
        train = sorted(train)
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        num_val = int(round(len(train) * val_fraction))
        val_idx = set(order[:num_val])
        val = [s for i, s in enumerate(train) if i in val_idx]
        train = [s for i, s in enumerate(train) if i not in val_idx]
    values = sorted({label for _, label in train + val + test})
    to_index = {v: i for i, v in enumerate(values)}
    return {
        split: [(path, to_index[label]) for path, label in samples]
        for split, samples in (('train', train), ('val', val), ('test', test))
    }


def write_splits(splits, out_dir, fmt='json'):
    paths = []
    for split, samples in splits.items():
        path = osp.join(out_dir, f'{split}.{fmt}')
        with open(path, 'w') as f:
            if fmt == 'json':
                json.dump({p: label for p, label in samples}, f, indent=0)
            else:
                f.writelines(f'{p} {label}\n' for p, label in samples)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Write train/val/test split lists for an FGVC dataset'
    )
    parser.add_argument('name', choices=sorted(READERS))
    parser.add_argument('root', help='the official dataset folder')
    parser.add_argument('--out-dir', help='default: the dataset folder')
    parser.add_argument('--format', choices=['json', 'txt'], default='json')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--val-fraction', type=float, default=0.1)
    args = parser.parse_args(argv)
    splits = make_splits(args.name, args.root, args.seed, args.val_fraction)
    num_classes = len({label for s in splits.values() for _, label in s})
    expected = FGVC_DATASETS[args.name]['num_classes']
    if num_classes != expected:
        print(
            f'warning: found {num_classes} classes, {args.name} has '
            f'{expected}',
            file=sys.stderr,
        )
    paths = write_splits(splits, args.out_dir or args.root, args.format)
    for path, (split, samples) in zip(paths, splits.items()):
        print(f'{path}: {len(samples)} images ({split})')
    return 0


if __name__ == '__main__':
    sys.exit(main())

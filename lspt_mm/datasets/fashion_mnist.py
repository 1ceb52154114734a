"""Fashion-MNIST from the four official IDX ``.gz`` files, as a fixed,
seeded, class-balanced subset (real images that install offline)."""

import gzip
import os.path as osp
import struct

import numpy as np

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .errors import DataFileError

FILES = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
CLASSES = (
    'T-shirt/top',
    'Trouser',
    'Pullover',
    'Dress',
    'Coat',
    'Sandal',
    'Shirt',
    'Sneaker',
    'Bag',
    'Ankle boot',
)
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: 0x0803 uint8 3-d, 0x0801 1-d
DEBIAN_DIR = '/usr/share/datasets/fashion-mnist'
SOURCES = (
    f'Debian / Ubuntu: apt-get install dataset-fashion-mnist (puts them in '
    f'{DEBIAN_DIR}), or download them from '
    'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/ '
    '(github.com/zalandoresearch/fashion-mnist)'
)


def read_idx(path, magic):
    """An IDX file (gzip or not) as a uint8 array; ``magic`` is 2051 for
    images (N, 28, 28) and 2049 for labels (N,)."""
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as err:  # bad gzip stream, truncated file
        raise DataFileError(
            f'Cannot read IDX file {path!r}: {err}. Get the '
            f'file again ({SOURCES}).'
        ) from err
    if len(data) < 8:
        raise DataFileError(f'{path!r} is too short for an IDX file')
    found = struct.unpack('>i', data[:4])[0]
    if found != magic:
        kind = 'images' if magic == IMAGES_MAGIC else 'labels'
        raise DataFileError(
            f'{path!r}: IDX magic number {found}, expected '
            f'{magic} (uint8 {kind}). Not the right file?'
        )
    ndim = magic & 0xFF
    dims = struct.unpack(f'>{ndim}i', data[4 : 4 + 4 * ndim])
    array = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise DataFileError(
            f'{path!r}: header says {dims} = {np.prod(dims)} '
            f'values, the file holds {array.size}; the file '
            'is truncated or corrupt.'
        )
    return array.reshape(dims)


def find_files(data_root, part):
    """Paths of the images / labels files of ``part`` ('train' / 'test') in
    ``data_root`` (``.gz``, or already decompressed)."""
    paths, absent = [], []
    for name in FILES[part]:
        for candidate in (name, name[: -len('.gz')]):
            if osp.isfile(osp.join(data_root, candidate)):
                paths.append(osp.join(data_root, candidate))
                break
        else:
            absent.append(name)
    if absent:
        raise FileNotFoundError(
            f'Fashion-MNIST: {absent} not found in data_root={data_root!r}. '
            f'The folder must hold the four official files '
            f'{[n for names in FILES.values() for n in names]}. {SOURCES}.'
        )
    return paths


def load_part(data_root, part):
    """``(images (N, 28, 28) uint8, labels (N,) int64)`` of the official
    training ('train') or test ('test') set."""
    images_path, labels_path = find_files(data_root, part)
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DataFileError(
            f'{images_path!r} holds {len(images)} images but '
            f'{labels_path!r} {len(labels)} labels'
        )
    bad = sorted(set(np.unique(labels).tolist()) - set(range(len(CLASSES))))
    if bad:
        raise DataFileError(
            f'{labels_path!r}: labels outside [0, {len(CLASSES)}): {bad}'
        )
    return images, labels


def balanced_indices(labels, counts, seed, what):
    """Per class, a seeded permutation of its indices cut into consecutive
    blocks of ``counts`` (e.g. (train, val)): disjoint, class-balanced,
    each block independent of the sizes of the blocks after it."""
    blocks = [[] for _ in counts]
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(labels == c)
        need = sum(counts)
        if len(idx) < need:
            raise ValueError(
                f'Fashion-MNIST {what}: class {c} ({CLASSES[c]}) has '
                f'{len(idx)} images, {need} needed '
                f'({" + ".join(map(str, counts))} per class); lower the '
                'per-class sizes.'
            )
        idx = np.random.default_rng([seed, c]).permutation(idx)
        start = 0
        for block, n in zip(blocks, counts):
            block.extend(idx[start : start + n].tolist())
            start += n
    return [np.sort(np.asarray(b, dtype=np.int64)) for b in blocks]


@DATASETS.register_module()
class FashionMNISTSubset(BaseDataset):
    """A fixed, seeded, class-balanced subset of Fashion-MNIST.

    ``data_root`` holds the four official files (``.gz`` or decompressed)::

        train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
        t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz

    Splits: ``train`` (``train_per_class`` images per class) and ``val``
    (``val_per_class``) are drawn, disjoint, from the official training set;
    ``trainval`` is their union; ``test`` takes ``test_per_class`` images per
    class from the official test set (``None``: all 10,000). The draw depends
    only on ``subset_seed`` (not on the run's seed), so every method and
    seed sees the same images. Images are the 28x28 grey digits repeated to
    three channels (``img``, uint8 HxWx3) for mmpretrain's transforms.

    Args:
        data_root (str): folder of the four files (Debian's
            ``dataset-fashion-mnist`` installs them in
            ``/usr/share/datasets/fashion-mnist``).
        split (str): ``train``, ``val``, ``trainval`` or ``test``.
        train_per_class (int): Defaults to 100.
        val_per_class (int): Defaults to 20.
        test_per_class (int, optional): Defaults to 100.
        subset_seed (int): Defaults to 0.
    """

    METAINFO = dict(classes=CLASSES)
    SPLITS = ('train', 'val', 'trainval', 'test')

    def __init__(
        self,
        data_root,
        split='train',
        train_per_class=100,
        val_per_class=20,
        test_per_class=100,
        subset_seed=0,
        **kwargs,
    ):
        if split not in self.SPLITS:
            raise ValueError(
                f'Fashion-MNIST split must be one of '
                f'{self.SPLITS}, got {split!r}'
            )
        for name, value in (
            ('train_per_class', train_per_class),
            ('val_per_class', val_per_class),
            ('test_per_class', test_per_class),
        ):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f'{name} must be an int >= 0, got {value!r}')
        self.split = split
        self.train_per_class = train_per_class
        self.val_per_class = val_per_class or 0
        self.test_per_class = test_per_class
        self.subset_seed = subset_seed
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def load_data_list(self):
        part = 'test' if self.split == 'test' else 'train'
        images, labels = load_part(self.data_root, part)
        if self.split == 'test':
            if self.test_per_class is None:
                chosen = np.arange(len(labels))
            else:
                chosen = balanced_indices(
                    labels,
                    (self.test_per_class,),
                    self.subset_seed + 1,
                    'test',
                )[0]
        else:
            train, val = balanced_indices(
                labels,
                (self.train_per_class, self.val_per_class),
                self.subset_seed,
                'train/val',
            )
            chosen = dict(
                train=train,
                val=val,
                trainval=np.sort(np.concatenate([train, val])),
            )[self.split]
        # grey images stay 28x28 here (3x less memory); see get_data_info
        return [
            dict(img=images[i], gt_label=int(labels[i]), source_idx=int(i))
            for i in chosen
        ]

    def get_data_info(self, idx):
        info = super().get_data_info(idx)
        img = np.repeat(info['img'][..., None], 3, axis=2)  # grey -> 3 ch.
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
        return info

    def extra_repr(self):
        return [
            f'Split: \t{self.split}',
            f'Data root: \t{self.data_root}',
            f'Per class: \ttrain {self.train_per_class}, val '
            f'{self.val_per_class}, test {self.test_per_class}',
            f'Subset seed: \t{self.subset_seed}',
        ]

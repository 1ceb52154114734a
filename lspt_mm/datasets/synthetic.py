"""Tiny synthetic classification data in the real on-disk layouts of the
FGVC archives (CUB-200-2011, NABirds, Oxford Flowers, Stanford Dogs,
Stanford Cars) and of the VTAB-1k image-folder release.

The task is learnable: the class decides the colour of the image (plus
per-image noise and brightness jitter), so a model that sees the right
labels beats chance by far, and one that gets shuffled labels does not.
With ``textured=True`` classes come in pairs that share a colour and differ
only in the orientation of stripes (horizontal for even labels, vertical
for odd ones, random period and phase), so colour alone is not enough.
Used by the classification quick start (``tools/demo_classification.py``,
``tools/dataset_converters/make_synthetic_cls.py``) and the tests.
Deterministic for a given seed.
"""

import json
import os
import os.path as osp

import numpy as np
from PIL import Image

PALETTE = np.array(
    [
        (220, 40, 40),
        (40, 200, 40),
        (40, 60, 220),
        (230, 210, 40),
        (200, 40, 200),
        (40, 200, 210),
        (240, 140, 30),
        (120, 120, 120),
    ],
    dtype=np.float32,
)


def save_image(path, label, rng, size=(40, 48), textured=False):
    """A noisy image of class ``label``'s colour (h x w = size); with
    ``textured``, the colour of ``label // 2`` and stripes whose orientation
    is ``label``'s parity."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    index = label // 2 if textured else label
    colour = PALETTE[index % len(PALETTE)] * rng.uniform(0.7, 1.1)
    img = colour + rng.normal(0, 30, size=(*size, 3))
    if textured:
        yy, xx = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
        coord = yy if label % 2 == 0 else xx
        stripes = np.sign(
            np.sin(
                2 * np.pi * coord / rng.uniform(5, 8)
                + rng.uniform(0, 2 * np.pi)
            )
        )
        img = img + 45 * stripes[..., None]
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        path, quality=95
    )


def _labels(num_classes, per_class, rng):
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    return labels.tolist()


# ------------------------------------------------------------------ VTAB-1k
def make_vtab(root, task, num_classes=4, sizes=None, seed=0, textured=False):
    """``root/<task>/images/<split>/<i>.jpg`` and the four lists
    (``train800``/``val200``/``train800val200``/``test``) with
    "images/... label" lines, 0-based labels. ``sizes``: images per class
    of train800 / val200 / test."""
    rng = np.random.default_rng(seed)
    sizes = sizes or dict(train800=10, val200=3, test=6)
    task_dir = osp.join(root, task)
    lines = {}
    for split, per_class in sizes.items():
        lines[split] = []
        for i, label in enumerate(_labels(num_classes, per_class, rng)):
            rel = f'images/{split}/{i:04d}.jpg'
            save_image(osp.join(task_dir, rel), label, rng, textured=textured)
            lines[split].append(f'{rel} {label}\n')
    lines['train800val200'] = lines['train800'] + lines['val200']
    for split, split_lines in lines.items():
        with open(osp.join(task_dir, f'{split}.txt'), 'w') as f:
            f.writelines(split_lines)
    return task_dir


# --------------------------------------------------------------- FGVC
def make_cub(
    root,
    num_classes=4,
    per_class=16,
    test_per_class=6,
    seed=0,
    class_ids=None,
    nabirds=False,
    textured=False,
):
    """CUB_200_2011 layout (``nabirds=True``: NABirds', with UUID image ids
    and sparse class ids): images/<class folder>/<file>.jpg, images.txt,
    image_class_labels.txt, train_test_split.txt, classes.txt."""
    rng = np.random.default_rng(seed)
    class_ids = class_ids or (
        [295 + 7 * i for i in range(num_classes)]
        if nabirds
        else list(range(1, num_classes + 1))
    )
    images, labels, split = [], [], []
    n = 0
    for c, cid in enumerate(class_ids):
        folder = f'{cid:04d}' if nabirds else f'{cid:03d}.Bird_{cid}'
        for k in range(per_class + test_per_class):
            n += 1
            key = f'{n:08x}{"0" * 24}' if nabirds else str(n)
            rel = f'{folder}/img_{cid}_{k:03d}.jpg'
            save_image(
                osp.join(root, 'images', rel), c, rng, textured=textured
            )
            images.append(f'{key} {rel}\n')
            labels.append(f'{key} {cid}\n')
            split.append(f'{key} {int(k < per_class)}\n')
    for name, lines in (
        ('images.txt', images),
        ('image_class_labels.txt', labels),
        ('train_test_split.txt', split),
    ):
        with open(osp.join(root, name), 'w') as f:
            f.writelines(lines)
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.writelines(f'{cid} Bird {cid}\n' for cid in class_ids)
    return root


def make_flowers(
    root, num_classes=4, per_split=(8, 3, 6), seed=0, textured=False
):
    """Oxford Flowers: jpg/image_%05d.jpg, imagelabels.mat, setid.mat."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    labels, ids = [], {'trnid': [], 'valid': [], 'tstid': []}
    for key, per_class in zip(ids, per_split):
        for label in _labels(num_classes, per_class, rng):
            labels.append(label + 1)
            ids[key].append(len(labels))
            save_image(
                osp.join(root, 'jpg', f'image_{len(labels):05d}.jpg'),
                label,
                rng,
                textured=textured,
            )
    savemat(
        osp.join(root, 'imagelabels.mat'),
        {'labels': np.array([labels], dtype=np.uint8)},
    )
    savemat(
        osp.join(root, 'setid.mat'),
        {k: np.array([v], dtype=np.uint16) for k, v in ids.items()},
    )
    return root


def make_dogs(
    root, num_classes=4, per_class=16, test_per_class=6, seed=0, textured=False
):
    """Stanford Dogs: Images/<wnid>-<Name>/<wnid>_<k>.jpg, train_list.mat,
    test_list.mat (file_list / annotation_list cells, 1-based labels)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    lists = {'train': [], 'test': []}
    for c in range(num_classes):
        wnid = f'n020{85620 + c}'
        for k in range(per_class + test_per_class):
            rel = f'{wnid}-Dog_{c}/{wnid}_{k}.jpg'
            save_image(
                osp.join(root, 'Images', rel), c, rng, textured=textured
            )
            lists['train' if k < per_class else 'test'].append((rel, c + 1))
    for split, items in lists.items():
        files = np.empty((len(items), 1), dtype=object)
        anns = np.empty((len(items), 1), dtype=object)
        for i, (rel, _) in enumerate(items):
            files[i, 0] = np.array([rel])
            anns[i, 0] = np.array([rel[:-4]])
        savemat(
            osp.join(root, f'{split}_list.mat'),
            {
                'file_list': files,
                'annotation_list': anns,
                'labels': np.array([[c] for _, c in items], dtype=np.uint8),
            },
        )
    return root


def make_cars(
    root,
    num_classes=4,
    per_class=16,
    test_per_class=6,
    seed=0,
    layout='annos',
    textured=False,
):
    """Stanford Cars: ``annos`` layout car_ims/ + cars_annos.mat (struct
    array relative_im_path / class / test), or ``devkit`` layout
    cars_train/, cars_test/, devkit/cars_train_annos.mat and
    devkit/cars_test_annos_withlabels.mat (struct arrays fname / class)."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    records = {'train': [], 'test': []}
    for c in range(num_classes):
        for k in range(per_class + test_per_class):
            records['train' if k < per_class else 'test'].append(c)
    if layout == 'annos':
        rows = []
        for split, classes in records.items():
            for c in classes:
                rel = f'car_ims/{len(rows) + 1:06d}.jpg'
                save_image(osp.join(root, rel), c, rng, textured=textured)
                rows.append((rel, 0, 0, 10, 10, c + 1, int(split == 'test')))
        dtype = [
            (n, 'O')
            for n in (
                'relative_im_path',
                'bbox_x1',
                'bbox_y1',
                'bbox_x2',
                'bbox_y2',
                'class',
                'test',
            )
        ]
        savemat(
            osp.join(root, 'cars_annos.mat'),
            {'annotations': np.array([rows], dtype=dtype)},
        )
        return root
    os.makedirs(osp.join(root, 'devkit'), exist_ok=True)
    for split, mat in (
        ('train', 'cars_train_annos.mat'),
        ('test', 'cars_test_annos_withlabels.mat'),
    ):
        rows = []
        for i, c in enumerate(records[split]):
            fname = f'{i + 1:05d}.jpg'
            save_image(
                osp.join(root, f'cars_{split}', fname),
                c,
                rng,
                textured=textured,
            )
            rows.append((0, 0, 10, 10, c + 1, fname))
        dtype = [
            (n, 'O')
            for n in (
                'bbox_x1',
                'bbox_y1',
                'bbox_x2',
                'bbox_y2',
                'class',
                'fname',
            )
        ]
        savemat(
            osp.join(root, 'devkit', mat),
            {'annotations': np.array([rows], dtype=dtype)},
        )
    return root


FGVC_MAKERS = {
    'cub': make_cub,
    'nabirds': lambda root, **kw: make_cub(root, nabirds=True, **kw),
    'oxford_flowers': make_flowers,
    'stanford_dogs': make_dogs,
    'stanford_cars': make_cars,
}


def write_json(path, mapping):
    with open(path, 'w') as f:
        json.dump(mapping, f)

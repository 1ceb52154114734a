"""Tiny synthetic classification data in the real on-disk layouts of the
FGVC archives and of the VTAB-1k image-folder release.

The task is learnable: the class decides the colour of the image (plus
per-image noise and brightness jitter), so a model that sees the right
labels beats chance by far, and one that gets shuffled labels does not.
"""
import json
import os
import os.path as osp

import numpy as np
from PIL import Image

PALETTE = np.array([
    (220, 40, 40), (40, 200, 40), (40, 60, 220), (230, 210, 40),
    (200, 40, 200), (40, 200, 210), (240, 140, 30), (120, 120, 120),
], dtype=np.float32)


def save_image(path, label, rng, size=(40, 48)):
    """A noisy image of class ``label``'s colour (h x w = size)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    colour = PALETTE[label % len(PALETTE)] * rng.uniform(0.7, 1.1)
    img = colour + rng.normal(0, 30, size=(*size, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
        path, quality=95)


def _labels(num_classes, per_class, rng):
    labels = np.repeat(np.arange(num_classes), per_class)
    rng.shuffle(labels)
    return labels.tolist()


# ------------------------------------------------------------------ VTAB-1k
def make_vtab(root, task, num_classes=4, sizes=None, seed=0):
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
            save_image(osp.join(task_dir, rel), label, rng)
            lines[split].append(f'{rel} {label}\n')
    lines['train800val200'] = lines['train800'] + lines['val200']
    for split, split_lines in lines.items():
        with open(osp.join(task_dir, f'{split}.txt'), 'w') as f:
            f.writelines(split_lines)
    return task_dir


# --------------------------------------------------------------- FGVC
def make_cub(root, num_classes=4, per_class=16, test_per_class=6, seed=0,
             class_ids=None, nabirds=False):
    """CUB_200_2011 layout (``nabirds=True``: NABirds', with UUID image ids
    and sparse class ids): images/<class folder>/<file>.jpg, images.txt,
    image_class_labels.txt, train_test_split.txt, classes.txt."""
    rng = np.random.default_rng(seed)
    class_ids = class_ids or (
        [295 + 7 * i for i in range(num_classes)] if nabirds else
        list(range(1, num_classes + 1)))
    images, labels, split = [], [], []
    n = 0
    for c, cid in enumerate(class_ids):
        folder = f'{cid:04d}' if nabirds else f'{cid:03d}.Bird_{cid}'
        for k in range(per_class + test_per_class):
            n += 1
            key = f'{n:08x}{"0" * 24}' if nabirds else str(n)
            rel = f'{folder}/img_{cid}_{k:03d}.jpg'
            save_image(osp.join(root, 'images', rel), c, rng)
            images.append(f'{key} {rel}\n')
            labels.append(f'{key} {cid}\n')
            split.append(f'{key} {int(k < per_class)}\n')
    for name, lines in (('images.txt', images),
                        ('image_class_labels.txt', labels),
                        ('train_test_split.txt', split)):
        with open(osp.join(root, name), 'w') as f:
            f.writelines(lines)
    with open(osp.join(root, 'classes.txt'), 'w') as f:
        f.writelines(f'{cid} Bird {cid}\n' for cid in class_ids)
    return root


def make_flowers(root, num_classes=4, per_split=(8, 3, 6), seed=0):
    """Oxford Flowers: jpg/image_%05d.jpg, imagelabels.mat, setid.mat."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    labels, ids = [], {'trnid': [], 'valid': [], 'tstid': []}
    for key, per_class in zip(ids, per_split):
        for label in _labels(num_classes, per_class, rng):
            labels.append(label + 1)
            ids[key].append(len(labels))
            save_image(osp.join(root, 'jpg', f'image_{len(labels):05d}.jpg'),
                       label, rng)
    savemat(osp.join(root, 'imagelabels.mat'),
            {'labels': np.array([labels], dtype=np.uint8)})
    savemat(osp.join(root, 'setid.mat'),
            {k: np.array([v], dtype=np.uint16) for k, v in ids.items()})
    return root


def make_dogs(root, num_classes=4, per_class=16, test_per_class=6, seed=0):
    """Stanford Dogs: Images/<wnid>-<Name>/<wnid>_<k>.jpg, train_list.mat,
    test_list.mat (file_list / annotation_list cells, 1-based labels)."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    lists = {'train': [], 'test': []}
    for c in range(num_classes):
        wnid = f'n020{85620 + c}'
        for k in range(per_class + test_per_class):
            rel = f'{wnid}-Dog_{c}/{wnid}_{k}.jpg'
            save_image(osp.join(root, 'Images', rel), c, rng)
            lists['train' if k < per_class else 'test'].append((rel, c + 1))
    for split, items in lists.items():
        files = np.empty((len(items), 1), dtype=object)
        anns = np.empty((len(items), 1), dtype=object)
        for i, (rel, _) in enumerate(items):
            files[i, 0] = np.array([rel])
            anns[i, 0] = np.array([rel[:-4]])
        savemat(osp.join(root, f'{split}_list.mat'), {
            'file_list': files, 'annotation_list': anns,
            'labels': np.array([[c] for _, c in items], dtype=np.uint8)})
    return root


def make_cars(root, num_classes=4, per_class=16, test_per_class=6, seed=0,
              layout='annos'):
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
                save_image(osp.join(root, rel), c, rng)
                rows.append((rel, 0, 0, 10, 10, c + 1, int(split == 'test')))
        dtype = [(n, 'O') for n in ('relative_im_path', 'bbox_x1',
                                    'bbox_y1', 'bbox_x2', 'bbox_y2',
                                    'class', 'test')]
        savemat(osp.join(root, 'cars_annos.mat'),
                {'annotations': np.array([rows], dtype=dtype)})
        return root
    os.makedirs(osp.join(root, 'devkit'), exist_ok=True)
    for split, mat in (('train', 'cars_train_annos.mat'),
                       ('test', 'cars_test_annos_withlabels.mat')):
        rows = []
        for i, c in enumerate(records[split]):
            fname = f'{i + 1:05d}.jpg'
            save_image(osp.join(root, f'cars_{split}', fname), c, rng)
            rows.append((0, 0, 10, 10, c + 1, fname))
        dtype = [(n, 'O') for n in ('bbox_x1', 'bbox_y1', 'bbox_x2',
                                    'bbox_y2', 'class', 'fname')]
        savemat(osp.join(root, 'devkit', mat),
                {'annotations': np.array([rows], dtype=dtype)})
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


# ----------------------------------------------------------- tiny overrides
def tiny_cfg_options(benchmark, epochs=4, size=32, num_classes=None,
                     batch_size=16, lr=None):
    """``--cfg-options`` that shrink a classification config to a tiny,
    randomly initialised ViT on ``size`` px inputs, CPU-friendly loaders and
    an ``epochs``-long schedule (1 warm-up epoch, then cosine)."""
    opts = {
        # _delete_: replace the base's arch='base' by this dict
        'model.backbone.arch': dict(_delete_=True, embed_dims=32,
                                    num_layers=2, num_heads=2,
                                    feedforward_channels=64),
        'model.backbone.img_size': size,
        'model.backbone.patch_size': 8,
        'model.backbone.pretrained': None,
        'model.head.in_channels': 32,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'param_scheduler.0.end': 1,
        'param_scheduler.1.begin': 1,
        'param_scheduler.1.end': epochs,
        'param_scheduler.1.T_max': epochs - 1,
        'default_hooks.checkpoint.interval': epochs,
        'default_hooks.logger.interval': 5,
    }
    loaders = ['train_dataloader', 'test_dataloader']
    if benchmark == 'fgvc':
        loaders.append('val_dataloader')
    for loader in loaders:
        opts[f'{loader}.batch_size'] = batch_size
        opts[f'{loader}.num_workers'] = 0
        opts[f'{loader}.persistent_workers'] = False
        pipe = f'{loader}.dataset.pipeline'
        if benchmark == 'fgvc':
            opts[f'{pipe}.1.scale'] = size + size // 8
            opts[f'{pipe}.2.crop_size'] = size
        else:
            opts[f'{pipe}.1.scale'] = (size, size)
    if num_classes is not None:
        opts['model.head.num_classes'] = num_classes
        opts['data_preprocessor.num_classes'] = num_classes
        for loader in loaders:
            opts[f'{loader}.dataset.num_classes'] = num_classes
    if lr is not None:
        opts['optim_wrapper.optimizer.lr'] = lr
    return opts


def as_cli(opts):
    """The ``--cfg-options`` command-line words for ``opts`` (dict values
    become one ``key.sub=value`` word per entry)."""
    def fmt(v):
        if isinstance(v, tuple):
            return '(' + ','.join(fmt(x) for x in v) + ')'
        return str(v)

    words = []
    for k, v in opts.items():
        if isinstance(v, dict):
            words += as_cli({f'{k}.{sub}': x for sub, x in v.items()})
        else:
            words.append(f'{k}={fmt(v)}')
    return words

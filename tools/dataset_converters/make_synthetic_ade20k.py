"""Write a small synthetic dataset in the exact ADE20K on-disk layout.

    python tools/dataset_converters/make_synthetic_ade20k.py [OUT_DIR]
        [--num-train 200] [--num-val 40] [--min-size 80] [--max-size 128]
        [--seed 0]

creates ``OUT_DIR/ADEChallengeData2016/{images,annotations}/{training,
validation}`` with ``ADE_train_00000001.jpg`` / ``.png`` pairs like the real
data: RGB JPEGs and single-channel PNG label maps of the same size, values
0..150, 0 = "other" (ignored by ``reduce_zero_label``).

The scenes are learnable: a background split at a random horizon into two
"stuff" classes, then 1-3 objects (ellipse, rectangle, triangle) of "thing"
classes. Every class has its own colour *and* texture (stripes, checks, dots,
gradients), jittered per instance, with pixel noise and JPEG compression on
top; two pairs of classes share a colour and differ only in texture. About a
tenth of the images carry a grey blob labelled 0 (ignored). Deterministic for
a given seed.
"""

import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image

# ADE20K class id (1-based, as on disk) -> (RGB colour, texture)
CLASSES = {
    3: ('sky', (110, 160, 230), 'gradient'),
    4: ('floor', (150, 110, 70), 'hstripes'),
    10: ('grass', (70, 160, 60), 'noise'),
    7: ('road', (110, 110, 110), 'plain'),
    13: ('person', (220, 60, 60), 'plain'),
    21: ('car', (220, 60, 60), 'checker'),  # colour of person, other texture
    20: ('chair', (240, 200, 40), 'vstripes'),
    16: ('table', (240, 200, 40), 'dots'),  # colour of chair, other texture
    23: ('painting', (60, 200, 200), 'diagonal'),
}
STUFF = (3, 4, 10, 7)
THINGS = (13, 21, 20, 16, 23)


def _texture(kind, h, w, rng):
    """A (h, w) pattern in [-1, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(5, 8)
    phase = rng.uniform(0, 2 * np.pi)
    if kind == 'plain':
        return np.zeros((h, w), np.float32)
    if kind == 'hstripes':
        return np.sign(np.sin(2 * np.pi * yy / period + phase))
    if kind == 'vstripes':
        return np.sign(np.sin(2 * np.pi * xx / period + phase))
    if kind == 'diagonal':
        return np.sign(np.sin(2 * np.pi * (xx + yy) / period + phase))
    if kind == 'checker':
        return np.sign(
            np.sin(2 * np.pi * xx / period + phase)
            * np.sin(2 * np.pi * yy / period + phase)
        )
    if kind == 'dots':
        d = np.sin(2 * np.pi * xx / period + phase) * np.sin(
            2 * np.pi * yy / period + phase
        )
        return np.where(d > 0.5, 1.0, -0.3).astype(np.float32)
    if kind == 'gradient':
        return (yy / max(h - 1, 1)) * 2 - 1
    if kind == 'noise':
        return rng.uniform(-1, 1, (h, w)).astype(np.float32)
    raise ValueError(kind)


def _paint(img, mask, cls, rng):
    _, colour, kind = CLASSES[cls]
    h, w = mask.shape
    colour = np.array(colour, np.float32) + rng.uniform(-20, 20, 3)
    pattern = _texture(kind, h, w, rng)[..., None]
    region = colour + 45.0 * pattern
    img[mask] = region[mask]


def _shape_mask(kind, h, w, rng):
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    ry, rx = rng.uniform(0.12, 0.3) * h, rng.uniform(0.12, 0.3) * w
    if kind == 'ellipse':
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    if kind == 'rectangle':
        return (abs(yy - cy) <= ry) & (abs(xx - cx) <= rx)
    # triangle, apex up
    top, bottom = cy - ry, cy + ry
    t = np.clip((yy - top) / max(bottom - top, 1), 0, 1)
    return (yy >= top) & (yy <= bottom) & (abs(xx - cx) <= t * rx)


def make_sample(rng, min_size=80, max_size=128):
    """One (image HxWx3 uint8 RGB, label HxW uint8) pair."""
    h, w = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    img = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    upper, lower = rng.choice(STUFF, 2, replace=False)
    horizon = int(rng.uniform(0.3, 0.7) * h)
    top = np.zeros((h, w), bool)
    top[:horizon] = True
    for cls, mask in ((upper, top), (lower, ~top)):
        _paint(img, mask, cls, rng)
        label[mask] = cls
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.choice(THINGS))
        mask = _shape_mask(
            rng.choice(['ellipse', 'rectangle', 'triangle']), h, w, rng
        )
        _paint(img, mask, cls, rng)
        label[mask] = cls
    if rng.uniform() < 0.1:  # an "other" region: ignored in training/eval
        mask = _shape_mask('ellipse', h, w, rng)
        img[mask] = rng.uniform(90, 170)
        label[mask] = 0
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_synthetic_ade20k(
    out_dir='data/synthetic_ade',
    num_train=200,
    num_val=40,
    min_size=80,
    max_size=128,
    seed=0,
):
    """Write the dataset; returns the ``data_root``
    (``out_dir/ADEChallengeData2016``). Existing files are overwritten."""
    data_root = osp.join(out_dir, 'ADEChallengeData2016')
    rng = np.random.default_rng(seed)
    for split, prefix, count in (
        ('training', 'ADE_train', num_train),
        ('validation', 'ADE_val', num_val),
    ):
        img_dir = osp.join(data_root, 'images', split)
        ann_dir = osp.join(data_root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(1, count + 1):
            img, label = make_sample(rng, min_size, max_size)
            name = f'{prefix}_{i:08d}'
            Image.fromarray(img).save(
                osp.join(img_dir, name + '.jpg'), quality=90
            )
            Image.fromarray(label, mode='L').save(
                osp.join(ann_dir, name + '.png')
            )
    return data_root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', nargs='?', default='data/synthetic_ade')
    parser.add_argument('--num-train', type=int, default=200)
    parser.add_argument('--num-val', type=int, default=40)
    parser.add_argument('--min-size', type=int, default=80)
    parser.add_argument('--max-size', type=int, default=128)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    root = make_synthetic_ade20k(
        args.out_dir,
        args.num_train,
        args.num_val,
        args.min_size,
        args.max_size,
        args.seed,
    )
    print(
        f'wrote {args.num_train} training and {args.num_val} validation '
        f'samples to {root}'
    )


if __name__ == '__main__':
    main()

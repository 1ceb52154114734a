"""Write a small synthetic classification dataset in a real on-disk layout.

    python tools/dataset_converters/make_synthetic_cls.py OUT_DIR
        [--layout fgvc] [--dataset cub] [--num-classes 6] [--per-class 40]
        [--test-per-class 10] [--seed 0] [--splits]
    python tools/dataset_converters/make_synthetic_cls.py OUT_DIR
        --layout vtab [--task synthetic] [--num-classes 6] ...

``--layout fgvc`` writes the official archive layout of an FGVC dataset into
``OUT_DIR/<its folder>`` (CUB: ``CUB_200_2011/images/<class>/*.jpg``,
``images.txt``, ``image_class_labels.txt``, ``train_test_split.txt``; see
``lspt_mm.datasets.synthetic`` for the others); ``--splits`` then writes
the VPT-style split lists with ``prepare_fgvc_splits.py``, as for the real
data. ``--layout vtab`` writes ``OUT_DIR/<task>/images/...`` and the four
lists of the VTAB-1k image-folder release. Classes come in pairs that share
a colour and differ in the orientation of stripes (``--plain``: the colour
alone decides the class); 8 colours, so at most 16 classes (8 plain) are
told apart. Deterministic for a given seed.
"""

import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from lspt_mm.datasets.benchmarks import FGVC_DATASETS  # noqa: E402
from lspt_mm.datasets.synthetic import FGVC_MAKERS, make_vtab  # noqa: E402


def make_synthetic_cls(
    out_dir,
    layout='fgvc',
    dataset='cub',
    task=None,
    num_classes=6,
    per_class=40,
    test_per_class=10,
    seed=0,
    splits=False,
    textured=True,
):
    """Writes the dataset; returns its folder (the FGVC dataset folder, or
    the VTAB-1k root holding the task folder)."""
    if layout == 'vtab':
        task = task or 'synthetic'
        make_vtab(
            out_dir,
            task,
            num_classes=num_classes,
            seed=seed,
            textured=textured,
            sizes=dict(
                train800=per_class,
                val200=max(1, per_class // 4),
                test=test_per_class,
            ),
        )
        return out_dir
    root = osp.join(out_dir, FGVC_DATASETS[dataset]['folder'])
    if dataset == 'oxford_flowers':
        FGVC_MAKERS[dataset](
            root,
            num_classes=num_classes,
            seed=seed,
            textured=textured,
            per_split=(per_class, max(1, per_class // 4), test_per_class),
        )
    else:
        FGVC_MAKERS[dataset](
            root,
            num_classes=num_classes,
            per_class=per_class,
            test_per_class=test_per_class,
            seed=seed,
            textured=textured,
        )
    if splits:
        sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
        import prepare_fgvc_splits

        prepare_fgvc_splits.main([dataset, root])
    return root


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out_dir', nargs='?', default='data/synthetic_fgvc')
    parser.add_argument('--layout', choices=['fgvc', 'vtab'], default='fgvc')
    parser.add_argument(
        '--dataset',
        choices=sorted(FGVC_MAKERS),
        default='cub',
        help='FGVC layout to write',
    )
    parser.add_argument(
        '--task',
        default=None,
        help='VTAB-1k task folder name (default: synthetic)',
    )
    parser.add_argument('--num-classes', type=int, default=6)
    parser.add_argument(
        '--per-class', type=int, default=40, help='training images per class'
    )
    parser.add_argument('--test-per-class', type=int, default=10)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--splits',
        action='store_true',
        help='FGVC: also write the split lists',
    )
    parser.add_argument(
        '--plain',
        action='store_true',
        help='no stripes: the colour alone is the class',
    )
    args = parser.parse_args(argv)
    root = make_synthetic_cls(
        args.out_dir,
        args.layout,
        args.dataset,
        args.task,
        args.num_classes,
        args.per_class,
        args.test_per_class,
        args.seed,
        args.splits,
        textured=not args.plain,
    )
    print(
        f'wrote a synthetic {args.layout} dataset with '
        f'{args.num_classes} classes to {root}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())

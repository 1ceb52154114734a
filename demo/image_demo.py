"""Predict one image with a config and a checkpoint (segmentation or
classification, as the config's scope says), as mmseg's
``demo/image_demo.py``:

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--out-file OUT]
                              [--device cpu] [--opacity 0.5]
                              [--cfg-options task=dtd ...]

Prints one line on the prediction; ``--out-file`` saves it drawn on the
image. Thin over :mod:`lspt_mm.apis` (mmseg's ``init_model`` /
``inference_model`` / ``show_result_pyplot``, mmpretrain's ``get_model`` /
``inference_model``).
"""

import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import lspt_mm  # noqa: E402,F401  (compat fixes before any mm import)
from lspt_mm import apis  # noqa: E402

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Predict one image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out-file', default=None, help='where to save the drawn prediction'
    )
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--opacity',
        type=float,
        default=0.5,
        help='segmentation: opacity of the painted map',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value',
    )
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.img):
        raise SystemExit(f'error: image {args.img!r} not found')
    from lspt_mm.models.checkpoint_policy import CheckpointMismatchError

    try:
        model = apis.init_model(
            args.config, args.checkpoint, args.device, args.cfg_options
        )
    except CheckpointMismatchError as err:
        raise SystemExit(f'error: {args.checkpoint}: {err}') from None
    result = apis.inference(model, args.img)
    print(f'{args.img}: {apis.describe(model, result)}', flush=True)
    if args.out_file:
        apis.save_visualization(
            model, args.img, result, args.out_file, args.opacity
        )
        print(f'saved {args.out_file}', flush=True)
    return result


if __name__ == '__main__':
    main()

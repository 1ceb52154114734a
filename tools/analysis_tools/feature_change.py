"""How far each tuned model moves the backbone features a dense head reads,
against the frozen ViT: ``‖f − f₀‖ / ‖f₀‖`` at every output map, on test
images at a fixed size (``lspt_mm.analysis.tokens.feature_change``).

    python tools/analysis_tools/feature_change.py \
        --reference configs/segmentation/camvid/linear-...py \
        --runs "LSPT=CONFIG:CKPT" "LoRA=CONFIG:CKPT" \
        --images data/camvid/test --max-images 20 --size 168 224
"""

import argparse
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
import lspt_mm  # noqa: E402,F401
from lspt_mm.analysis.tokens import (  # noqa: E402
    feature_change,
    list_images,
    load_image,
    load_model,
    normalise,
)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--reference', required=True, help='config of the frozen ViT'
    )
    p.add_argument(
        '--runs', nargs='+', required=True, help='LABEL=CONFIG:CHECKPOINT'
    )
    p.add_argument('--images', nargs='+', required=True)
    p.add_argument('--max-images', type=int, default=20)
    p.add_argument('--size', type=int, nargs=2, default=(168, 224))
    p.add_argument('--cfg-options', nargs='*', default=[], help='LABEL:k=v')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    files = list_images(args.images, args.max_images)
    reference, _ = load_model(args.reference)
    x = normalise(reference, [load_image(f, args.size) for f in files])
    print(f'{len(files)} images at {args.size[0]}x{args.size[1]}')
    print('| run | ' + ' | '.join('map %d' % i for i in range(4)) + ' |')
    for run in args.runs:
        label, spec = run.split('=', 1)
        config, ckpt = spec.rsplit(':', 1)
        opts = {
            k: DictAction._parse_int_float_bool(v)
            for k, v in (
                o.split(':', 1)[1].split('=', 1)
                for o in args.cfg_options
                if o.startswith(label + ':')
            )
        }
        model, _ = load_model(config, ckpt, cfg_options=opts or None)
        change = feature_change(model, reference, x)
        print(f'| {label} | ' + ' | '.join(f'{c:.2f}' for c in change) + ' |')


if __name__ == '__main__':
    main()

"""Mean cosine similarity between prompt tokens and patch tokens, per block.

For each model (one or more CONFIG CHECKPOINT pairs, e.g. VPT-deep, GaPT and
LSPT) the output tokens of every block are captured; the cosine similarity
of every (prompt, patch) pair is averaged per image, then over the images.
Plots one line per model over blocks 1..L to ``--out`` (PNG) and writes the
numbers next to it (same name, ``.json``: per model ``blocks``,
``mean_cosine``, ``std_cosine`` over images, ``per_image``, and
``scales``: per block l < L the mean norms of the output prompts, the patch
tokens, their mean and the prompts passed on, and the largest |entry| of
those (``lspt_mm.analysis.tokens.prompt_token_scales``), also printed).

Example::

    python tools/analysis_tools/prompt_patch_similarity.py \\
        vpt.py vpt.pth lspt.py lspt.pth --labels VPT LSPT \\
        --img data/demo/ --max-images 8 --out work_dirs/similarity.png
"""

import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)

import lspt_mm  # noqa: E402,F401  (compat fixes before mm libraries)


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument(
        'models',
        nargs='+',
        metavar='CONFIG CHECKPOINT',
        help="pairs of config and checkpoint ('none': initial weights)",
    )
    p.add_argument(
        '--img', nargs='+', required=True, help='image files and/or folders'
    )
    p.add_argument('--max-images', type=int, default=16)
    p.add_argument('--batch', type=int, default=4)
    p.add_argument('--labels', nargs='+', help='one per model')
    p.add_argument('--out', required=True, help='PNG path')
    p.add_argument('--device', default='cpu')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='applied to every config',
    )
    args = p.parse_args(argv)
    if len(args.models) % 2:
        p.error('models must be CONFIG CHECKPOINT pairs')
    pairs = list(zip(args.models[::2], args.models[1::2]))
    if args.labels and len(args.labels) != len(pairs):
        p.error(f'{len(args.labels)} labels for {len(pairs)} models')
    args.pairs = pairs
    return args


def similarity_per_block(
    config, checkpoint, images, batch=4, device='cpu', cfg_options=None
):
    """Array (num_images, L) of mean prompt–patch cosine similarity."""
    import numpy as np

    from lspt_mm.analysis.tokens import (
        backbone_input_size,
        find_backbone,
        load_image,
        load_model,
        normalise,
        prompt_patch_cosine,
        prompt_token_scales,
    )

    model, _ = load_model(config, checkpoint, cfg_options, device)
    backbone = find_backbone(model)
    size = backbone_input_size(backbone)
    sims, scales, sizes = [], [], []
    for i in range(0, len(images), batch):
        arr = np.stack([load_image(p, size) for p in images[i : i + batch]])
        x = normalise(model, arr).to(device)
        sims.append(prompt_patch_cosine(backbone, x))
        scales.append(prompt_token_scales(backbone, x))
        sizes.append(len(arr))
    scales = np.stack(scales)
    # norms: mean over images (batch means weighted); |entry|: the largest
    means = np.average(scales[..., :-1], axis=0, weights=sizes)
    scales = np.concatenate([means, scales[..., -1:].max(0)], axis=-1)
    return np.concatenate(sims), backbone, scales


def plot(results, path):
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for label, r in results.items():
        ax.errorbar(
            r['blocks'],
            r['mean_cosine'],
            yerr=r['std_cosine'],
            marker='o',
            ms=3,
            capsize=2,
            label=label,
        )
    ax.set_xlabel('block')
    ax.set_ylabel('mean cosine(prompt, patch)')
    ax.set_title('prompt–patch similarity per block')
    ax.axhline(0, color='grey', lw=0.5)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    from lspt_mm.analysis.tokens import SCALE_COLUMNS, list_images
    from lspt_mm.engine.runner_utils import exit_on_checkpoint_error

    args = parse_args(argv)
    images = list_images(args.img, args.max_images)
    results = {}
    for i, (config, ckpt) in enumerate(args.pairs):
        with exit_on_checkpoint_error():  # a checkpoint must fit its config
            sims, backbone, scales = similarity_per_block(
                config, ckpt, images, args.batch, args.device, args.cfg_options
            )
        label = (
            args.labels[i]
            if args.labels
            else f'{osp.splitext(osp.basename(config))[0]} '
            f'({backbone.prompt_method.method_name})'
        )
        results[label] = dict(
            config=config,
            checkpoint=ckpt,
            method=backbone.prompt_method.method_name,
            num_prompts=backbone.num_prompts,
            blocks=list(range(1, sims.shape[1] + 1)),
            mean_cosine=sims.mean(0).tolist(),
            std_cosine=sims.std(0).tolist(),
            per_image=sims.tolist(),
            scales={
                name: scales[:, j].tolist()
                for j, name in enumerate(SCALE_COLUMNS)
            },
        )
        print(
            f'{label}: after block l, mean norm of output prompts / '
            'patch tokens / patch mean / prompts passed on, max |entry|'
        )
        for block, row in enumerate(scales, 1):
            print(f'  {block:2d}  ' + '  '.join(f'{v:7.2f}' for v in row))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    plot(results, args.out)
    out_json = osp.splitext(args.out)[0] + '.json'
    with open(out_json, 'w') as f:
        json.dump(dict(images=images, models=results), f, indent=1)
    print(f'wrote {args.out} and {out_json}')
    return args.out, out_json


if __name__ == '__main__':
    main()

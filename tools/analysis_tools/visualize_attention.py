"""Per-block attention maps of one image, drawn over the image.

A grid with one column per block (1..L) and two rows: the CLS token's
attention to the patches, and the mean attention of the prompt tokens to
the patches (heads averaged), each upsampled and overlaid on the image. It
shows whether a prompt method keeps spatial attention in late blocks (the
"forgetting" figures of the LSPT paper): compare VPT, GaPT and LSPT configs
on the same image.

Writes ``DIR/attention_<image>.png`` and ``DIR/attention_<image>.npz``
(``cls_to_patch`` and ``prompt_to_patch``: (L, h, w) attention weights;
``cls_mass``, ``prompt_mass`` and ``patch_mass``: (L, 3) attention mass of
the CLS / prompt / patch rows on [CLS, prompts, patches], rows summing to 1;
``image``: the resized RGB input).

Several models (CONFIG CHECKPOINT pairs) on one image give one figure with
two rows per model (one for a model without prompts), e.g. selected blocks
of a linear probe, VPT-deep, GaPT and LSPT; the ``.npz`` is then written per
model (``attention_<image>_<label>.npz``).

Example::

    python tools/analysis_tools/visualize_attention.py CONFIG CKPT \\
        --img demo.jpg --out-dir work_dirs/attention
    python tools/analysis_tools/visualize_attention.py vpt.py vpt.pth \\
        lspt.py lspt.pth --labels VPT-deep LSPT --blocks 3 6 9 12 \\
        --img demo.jpg --out-dir work_dirs/attention
"""

import argparse
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
        help='pairs of mmpretrain / mmseg config and checkpoint '
        "file ('none': the model's initial weights)",
    )
    p.add_argument(
        '--labels', nargs='+', help='one per model (default: the method names)'
    )
    p.add_argument(
        '--blocks',
        type=int,
        nargs='+',
        help='1-based blocks to draw (default: all)',
    )
    p.add_argument('--img', required=True, help='image file')
    p.add_argument('--out-dir', required=True)
    p.add_argument(
        '--img-size',
        type=int,
        nargs='+',
        help='resize the image to this (default: the backbone img_size)',
    )
    p.add_argument(
        '--alpha', type=float, default=0.55, help='heat-map opacity'
    )
    p.add_argument(
        '--cell',
        type=float,
        default=1.6,
        help='inches per map; the PNG is 100 dpi',
    )
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = p.parse_args(argv)
    if len(args.models) % 2:
        p.error('models: give CONFIG CHECKPOINT pairs')
    n = len(args.models) // 2
    if args.labels and len(args.labels) != n:
        p.error(f'--labels: {len(args.labels)} labels for {n} models')
    return args


def summary_rows(summary, label=''):
    """``[(row label, (L, h, w) maps)]`` of one model: CLS→patch, and the
    mean prompt→patch row when the model has prompts."""
    import numpy as np

    prefix = f'{label}\n' if label else ''
    rows = [(prefix + 'CLS → patches', summary['cls_to_patch'])]
    if np.isfinite(summary['prompt_to_patch']).all() or not label:
        rows.append((prefix + 'prompts → patches', summary['prompt_to_patch']))
    return rows


def draw_grid(
    image, rows, path, alpha=0.55, cell=1.6, title=None, blocks=None
):
    """``rows`` (label, (L, h, w) maps) × one column per block (1-based
    ``blocks``, default all); each map bilinearly upsampled to the image and
    min-max scaled per map."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    import torch.nn.functional as F

    L = rows[0][1].shape[0]
    blocks = blocks or list(range(1, L + 1))
    bad = [b for b in blocks if not 1 <= b <= L]
    if bad:
        raise ValueError(f'--blocks {bad}: the model has blocks 1..{L}')
    H, W = image.shape[:2]
    margin = 0.9 if any('\n' in label for label, _ in rows) else 0.6
    fig, axes = plt.subplots(
        len(rows),
        len(blocks),
        figsize=(cell * len(blocks) + margin, cell * len(rows) + 0.6),
        dpi=100,
        squeeze=False,
    )
    for r, (label, maps) in enumerate(rows):
        for c, block in enumerate(blocks):
            k = block - 1
            ax = axes[r][c]
            ax.imshow(image)
            m = maps[k]
            if np.isfinite(m).all():
                up = F.interpolate(
                    torch.from_numpy(m)[None, None].float(),
                    size=(H, W),
                    mode='bilinear',
                    align_corners=False,
                )[0, 0].numpy()
                up = (up - up.min()) / max(float(up.max() - up.min()), 1e-12)
                ax.imshow(up, cmap='jet', alpha=alpha, vmin=0, vmax=1)
            else:
                ax.text(
                    0.5,
                    0.5,
                    'no prompts',
                    ha='center',
                    va='center',
                    transform=ax.transAxes,
                    color='white',
                    bbox=dict(facecolor='black', alpha=0.6),
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f'block {block}', fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(
        left=margin / (cell * len(blocks) + margin),
        right=0.99,
        bottom=0.02,
        top=1 - 0.5 / (cell * len(rows) + 0.6),
        wspace=0.04,
        hspace=0.06,
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    import numpy as np

    from lspt_mm.analysis.tokens import (
        attention_summary,
        backbone_input_size,
        find_backbone,
        load_image,
        load_model,
        normalise,
    )
    from lspt_mm.engine.runner_utils import exit_on_checkpoint_error

    args = parse_args(argv)
    pairs = list(zip(args.models[::2], args.models[1::2]))
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.img))[0]
    rows, npzs, image = [], [], None
    for i, (config, checkpoint) in enumerate(pairs):
        with exit_on_checkpoint_error():  # the checkpoint must fit the config
            model, cfg = load_model(
                config, checkpoint, args.cfg_options, args.device
            )
        backbone = find_backbone(model)
        if image is None:  # one input for every model
            size = tuple(
                args.img_size * 2
                if args.img_size and len(args.img_size) == 1
                else args.img_size or backbone_input_size(backbone)
            )
            image = load_image(args.img, size)
        x = normalise(model, image[None]).to(args.device)
        summary = attention_summary(backbone, x)
        method = backbone.prompt_method.method_name
        if len(pairs) == 1:
            rows = summary_rows(summary)
            title = (
                f'{osp.basename(config)} — {method}, '
                f'{backbone.num_prompts} prompts'
            )
            npz = osp.join(args.out_dir, f'attention_{stem}.npz')
        else:
            label = args.labels[i] if args.labels else method
            rows += summary_rows(summary, label)
            title = None
            npz = osp.join(
                args.out_dir,
                f'attention_{stem}_'
                f'{label.replace(" ", "_").replace("/", "_")}.npz',
            )
        np.savez(npz, image=image, **summary)
        npzs.append(npz)
        del model
    png = osp.join(args.out_dir, f'attention_{stem}.png')
    draw_grid(image, rows, png, args.alpha, args.cell, title, args.blocks)
    print(f'wrote {png} and {", ".join(npzs)}')
    return png, npzs[0] if len(npzs) == 1 else npzs


if __name__ == '__main__':
    main()

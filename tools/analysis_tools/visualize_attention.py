"""Per-block attention maps of one image, drawn over the image.

A grid with one column per block (1..L) and two rows: the CLS token's
attention to the patches, and the mean attention of the prompt tokens to
the patches (heads averaged), each upsampled and overlaid on the image. It
shows whether a prompt method keeps spatial attention in late blocks (the
"forgetting" figures of the LSPT paper): compare VPT, GaPT and LSPT configs
on the same image.

Writes ``DIR/attention_<image>.png`` and ``DIR/attention_<image>.npz``
(``cls_to_patch`` and ``prompt_to_patch``: (L, h, w) attention weights;
``cls_mass`` and ``prompt_mass``: (L, 3) attention mass on [CLS, prompts,
patches], rows summing to 1; ``image``: the resized RGB input).

Example::

    python tools/analysis_tools/visualize_attention.py CONFIG CKPT \\
        --img demo.jpg --out-dir work_dirs/attention
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))

import lspt_mm  # noqa: E402,F401  (compat fixes before mm libraries)


def parse_args(argv=None):
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('config', help='mmpretrain or mmseg config')
    p.add_argument('checkpoint', help="checkpoint file, or 'none' for the "
                   "model's initial weights")
    p.add_argument('--img', required=True, help='image file')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--img-size', type=int, nargs='+',
                   help='resize the image to this (default: the backbone '
                   'img_size)')
    p.add_argument('--alpha', type=float, default=0.55,
                   help='heat-map opacity')
    p.add_argument('--cell', type=float, default=1.6,
                   help='inches per map; the PNG is 100 dpi')
    p.add_argument('--device', default='cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def draw_grid(image, summary, path, alpha=0.55, cell=1.6, title=None):
    """Rows [CLS→patch, mean prompt→patch] × one column per block; each map
    bilinearly upsampled to the image and min-max scaled per map."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    import torch
    import torch.nn.functional as F

    rows = [('CLS → patches', summary['cls_to_patch']),
            ('prompts → patches', summary['prompt_to_patch'])]
    L = rows[0][1].shape[0]
    H, W = image.shape[:2]
    fig, axes = plt.subplots(
        len(rows), L, figsize=(cell * L + 0.6, cell * len(rows) + 0.6),
        dpi=100, squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for l in range(L):
            ax = axes[r][l]
            ax.imshow(image)
            m = maps[l]
            if np.isfinite(m).all():
                up = F.interpolate(torch.from_numpy(m)[None, None].float(),
                                   size=(H, W), mode='bilinear',
                                   align_corners=False)[0, 0].numpy()
                up = (up - up.min()) / max(float(up.max() - up.min()), 1e-12)
                ax.imshow(up, cmap='jet', alpha=alpha, vmin=0, vmax=1)
            else:
                ax.text(0.5, 0.5, 'no prompts', ha='center', va='center',
                        transform=ax.transAxes, color='white',
                        bbox=dict(facecolor='black', alpha=0.6))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f'block {l + 1}', fontsize=8)
            if l == 0:
                ax.set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=0.86,
                        wspace=0.04, hspace=0.06)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    import numpy as np

    from lspt_mm.analysis.tokens import (attention_summary, backbone_input_size,
                                         find_backbone, load_image, load_model,
                                         normalise)
    from lspt_mm.engine.runner_utils import exit_on_checkpoint_error
    args = parse_args(argv)
    with exit_on_checkpoint_error():  # the checkpoint must fit the config
        model, cfg = load_model(args.config, args.checkpoint,
                                args.cfg_options, args.device)
    backbone = find_backbone(model)
    size = tuple(args.img_size * 2 if args.img_size and len(args.img_size) ==
                 1 else args.img_size or backbone_input_size(backbone))
    image = load_image(args.img, size)
    x = normalise(model, image[None]).to(args.device)
    summary = attention_summary(backbone, x)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.splitext(osp.basename(args.img))[0]
    png = osp.join(args.out_dir, f'attention_{stem}.png')
    npz = osp.join(args.out_dir, f'attention_{stem}.npz')
    method = backbone.prompt_method.method_name
    title = (f'{osp.basename(args.config)} — {method}, '
             f'{backbone.num_prompts} prompts')
    draw_grid(image, summary, png, args.alpha, args.cell, title)
    np.savez(npz, image=image, **summary)
    print(f'wrote {png} and {npz}')
    return png, npz


if __name__ == '__main__':
    main()

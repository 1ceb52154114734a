#!/usr/bin/env python
"""Every method on one dataset with one frozen pretrained backbone, through
the tuning protocol (lr grid on val, then seeds on test): docs/real_weights.md's
real-weights table. Library: ``lspt_mm/tuning/methods_table.py``.

    # the docs/real_weights.md table (CPU, ~1.5 h on 2 cores: two shards in parallel)
    python tools/analysis_tools/methods_table.py --shard 0/2 --threads 1 &
    python tools/analysis_tools/methods_table.py --shard 1/2 --threads 1
    python tools/analysis_tools/methods_table.py --phase final --shard 0/2 &
    ...   # then:  --summarize-only
    # full size on a GPU: more images, 224 px, more epochs
    python tools/analysis_tools/methods_table.py --device cuda \\
        --per-class 1000 200 1000 --img-size 224 --epochs 30 \\
        --work-dir work_dirs/methods_table_full
    # another backbone file (MAE / MoCo v3 / DINOv2 official or HF files)
    python tools/analysis_tools/methods_table.py \\
        --weights checkpoints/dinov2_vitb14_pretrain.pth --arch dinov2-base

Rerunning the same command resumes (finished runs are skipped).
"""

import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(
    'configs',
    'classification',
    'realweights',
    'lspt_dinov2-s14-imgfocus_1xb32-fmnist-112px.py',
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        '--config',
        default=CONFIG,
        help='classification config '
        '(default: the Fashion-MNIST DINOv2-S/14 one)',
    )
    p.add_argument(
        '--methods',
        nargs='+',
        help='names of the method table '
        '(default: the linear probe and every prompt method)',
    )
    p.add_argument(
        '--lr',
        nargs='+',
        type=float,
        default=[0.003, 0.01, 0.03],
        help='lr grid (on val)',
    )
    p.add_argument(
        '--method-lr',
        nargs='+',
        default=[],
        metavar='METHOD=LR',
        help='a fixed lr (no tuning) for these methods, e.g. '
        'the ones an earlier table chose',
    )
    p.add_argument(
        '--prompt-inits',
        nargs='+',
        default=[None],
        help='prompt initialisations of each prompt method '
        '(lspt_mm/models/prompt_init.py PROMPT_INITS), e.g. '
        'uniform spt_kmeans vipamin',
    )
    p.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    p.add_argument(
        '--per-class',
        nargs=3,
        type=int,
        default=[40, 20, 100],
        metavar=('TRAIN', 'VAL', 'TEST'),
        help='images per class in train / val / test',
    )
    p.add_argument('--img-size', type=int, default=84)
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--num-prompts', type=int, default=10)
    p.add_argument('--weights', help="backbone file (default: the config's)")
    p.add_argument('--arch', help="backbone arch (default: the config's)")
    p.add_argument(
        '--data-root',
        help='folder of the four Fashion-MNIST '
        ".gz files (default: the config's)",
    )
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument('--work-dir', default='work_dirs/methods_table')
    p.add_argument('--phase', default='all', choices=['all', 'tune', 'final'])
    p.add_argument('--shard', default='0/1', help='i/n: every n-th run')
    p.add_argument('--summarize-only', action='store_true')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cpu':  # before torch is imported
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    sys.path.insert(0, REPO)
    import torch

    import lspt_mm  # noqa: F401  (compat fixes before any mm import)
    from lspt_mm.tuning import (
        Protocol,
        ProtocolError,
        parse_shard,
        write_summary,
    )
    from lspt_mm.tuning.methods_table import (
        PROMPT_TABLE_METHODS,
        method_tasks,
        size_options,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        methods = args.methods or PROMPT_TABLE_METHODS
        fixed = {}
        for item in args.method_lr:
            method, sep, lr = item.partition('=')
            if not sep:
                raise ProtocolError(f'--method-lr {item!r}: write METHOD=LR')
            fixed[method] = dict(lr=[float(lr)])
        tasks = method_tasks(
            args.config,
            methods,
            dict(lr=args.lr),
            prompt_inits=args.prompt_inits,
            method_grids=fixed,
        )
        for task in tasks:
            task.data_root = args.data_root
        options = size_options(
            img_size=args.img_size,
            epochs=args.epochs,
            per_class=dict(zip(('train', 'val', 'test'), args.per_class)),
            weights=args.weights,
            arch=args.arch,
            num_prompts=args.num_prompts,
        )
        protocol = Protocol(
            tasks, args.work_dir, seeds=args.seeds, cfg_options=options
        )
        if not args.summarize_only:
            protocol.run(args.phase, parse_shard(args.shard))
        title = (
            f'{osp.basename(args.config)}: {args.per_class} images per '
            f'class (train/val/test), {args.img_size} px, '
            f'{args.epochs} epochs, {args.num_prompts} prompts'
        )
        _, text = write_summary(protocol, title)
        print(text)
    except ProtocolError as e:
        sys.exit(f'methods_table: {e}')


if __name__ == '__main__':
    main()

"""Train a model with an lspt_mm config (mmsegmentation or mmpretrain).

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
                          [--cfg-options k=v ...] [--launcher pytorch]

Library-agnostic: the config's ``default_scope`` (mmseg, mmpretrain) decides
which registries build it; the runner is mmengine's ``Runner`` (or the
``RUNNERS`` entry named by ``runner_type``).
"""

import argparse
import logging
import os
import os.path as osp
import sys

# lspt_mm must come before any mm import: it installs the compat fixes.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
import lspt_mm  # noqa: E402,F401
from lspt_mm.engine.runner_utils import (  # noqa: E402
    CfgOptionsAction,
    apply_common_args,
    build_runner,
    close_distributed,
    exit_on_checkpoint_error,
)

from mmengine.config import Config  # noqa: E402
from mmengine.logging import print_log  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='the dir to save logs and models '
        '(default: ./work_dirs/<config name>)',
    )
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='without a value: resume from the latest checkpoint in the work '
        'dir (its `last_checkpoint` file); with a path: resume from it',
    )
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision: AmpOptimWrapper '
        '(fp16 with loss scaling) on a GPU / NPU / MLU; on '
        'CPU bf16 autocast (AutocastOptimWrapper)',
    )
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by actual / base batch size',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings in the config, key=value (e.g. '
        'train_cfg.max_iters=1000 "model.backbone.num_prompts=50")',
    )
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        help='job launcher',
    )
    # torch.distributed.launch passes --local-rank (torch >= 2.0)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def _amp_device_available():
    from mmengine.device import (
        is_cuda_available,
        is_mlu_available,
        is_npu_available,
    )

    return is_cuda_available() or is_npu_available() or is_mlu_available()


def merge_args(cfg, args):
    """Apply the command-line arguments to ``cfg`` (returned)."""
    cfg = apply_common_args(cfg, args)

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper in ('AmpOptimWrapper', 'AutocastOptimWrapper'):
            print_log(
                'AMP training is already enabled in the config.',
                logger='current',
                level=logging.WARNING,
            )
        elif wrapper != 'OptimWrapper':
            raise ValueError(
                '--amp works with optim_wrapper type '
                f'OptimWrapper, but the config has {wrapper}.'
            )
        elif _amp_device_available():
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
        else:  # mmengine's AmpOptimWrapper refuses to start on CPU
            cfg.optim_wrapper.type = 'AutocastOptimWrapper'
            cfg.optim_wrapper.setdefault('dtype', 'bfloat16')
            print_log(
                '--amp without a GPU: bf16 autocast on CPU '
                "(AutocastOptimWrapper, dtype='bfloat16', no loss "
                'scaling)',
                logger='current',
            )

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(
                f'--resume {args.resume}: no such checkpoint file'
            )
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg:
            raise ValueError(
                '--auto-scale-lr needs `auto_scale_lr = '
                'dict(base_batch_size=...)` in the config'
            )
        cfg.auto_scale_lr.enable = True

    # The config names its checkpoint hook (this project's runtimes:
    # AtomicCheckpointHook); a plain one is used as it is, and said so.
    ckpt_hook = cfg.get('default_hooks', {}).get('checkpoint', None)
    if ckpt_hook is not None and ckpt_hook.get('type') in (
        'CheckpointHook',
        'mmengine.CheckpointHook',
    ):
        print_log(
            "default_hooks.checkpoint is mmengine's CheckpointHook: a "
            'save interrupted by a kill can leave a partial checkpoint '
            "or an empty last_checkpoint; type='AtomicCheckpointHook' "
            '(same arguments) writes them atomically.',
            logger='current',
            level=logging.WARNING,
        )
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    if (
        cfg.optim_wrapper.get('type') == 'AmpOptimWrapper'
        and not _amp_device_available()
    ):
        raise SystemExit(
            "The config's optim_wrapper is mmengine's AmpOptimWrapper, "
            'which needs a CUDA, NPU or MLU device; this machine has none. '
            'For bf16 autocast on CPU set optim_wrapper.type='
            "'AutocastOptimWrapper' (or give --amp with a plain "
            'OptimWrapper); or train in float32.'
        )
    with exit_on_checkpoint_error():  # load_from / --resume that does not fit
        runner = build_runner(cfg)
        runner.train()
        del runner  # freed by close_distributed, before the group goes
    close_distributed()


if __name__ == '__main__':
    main()

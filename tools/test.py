"""Test (and evaluate) a checkpoint with an lspt_mm config (mmsegmentation or
mmpretrain).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out PATH]
                         [--show] [--show-dir DIR] [--tta]
                         [--cfg-options k=v ...] [--launcher pytorch]

``--out``: for segmentation configs (``default_scope='mmseg'``) the directory
where prediction PNGs are written (as mmseg's test.py); for other libraries a
pickle file with the raw predictions (as mmpretrain's test.py). The metrics
are printed at the end (segmentation: per-class IoU/Acc table, then aAcc,
mIoU, mAcc) and written as JSON to ``<work_dir>/<timestamp>/<timestamp>.json``.
"""

import argparse
import json
import os
import os.path as osp
import sys
from copy import deepcopy

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
from lspt_mm.models import checkpoint_policy  # noqa: E402

from mmengine.config import Config, ConfigDict  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='where the metrics JSON and logs '
        'go (default: ./work_dirs/<config name>)',
    )
    parser.add_argument(
        '--out',
        help='segmentation: directory for prediction PNGs; '
        'classification: pickle file for the predictions',
    )
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window'
    )
    parser.add_argument(
        '--show-dir', help='directory where painted predictions are saved'
    )
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='seconds each shown image stays up',
    )
    parser.add_argument(
        '--interval', type=int, default=1, help='visualize every N-th sample'
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation from the config's "
        '`tta_model` and `tta_pipeline`',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override settings in the config, key=value',
    )
    parser.add_argument(
        '--launcher',
        default='none',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        help='job launcher',
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def is_segmentation(cfg):
    return cfg.get('default_scope', None) == 'mmseg'


def enable_visualization(cfg, args):
    hooks = cfg.get('default_hooks', {})
    if 'visualization' not in hooks:
        raise RuntimeError(
            '--show/--show-dir need a visualization hook in the config: '
            "default_hooks.visualization=dict(type='SegVisualizationHook') "
            "(mmseg) or dict(type='VisualizationHook') (mmpretrain)"
        )
    hook = hooks['visualization']
    if 'Seg' in str(hook.get('type', '')) or is_segmentation(cfg):
        # mmseg's SegVisualizationHook: draw, and save via the visualizer
        hook['draw'] = True
        hook['interval'] = args.interval
        if args.show:
            hook['show'] = True
            hook['wait_time'] = args.wait_time
        if args.show_dir:
            cfg.visualizer['save_dir'] = args.show_dir
    else:
        # mmpretrain's VisualizationHook
        hook['enable'] = True
        hook['show'] = args.show
        hook['wait_time'] = args.wait_time
        hook['out_dir'] = args.show_dir
        hook['interval'] = args.interval
    return cfg


def enable_tta(cfg):
    if 'tta_model' in cfg and 'tta_pipeline' in cfg:
        pass
    elif is_segmentation(cfg):
        raise ValueError(
            '--tta needs `tta_model` and `tta_pipeline` in the '
            'config (see configs/_base_/datasets/ade20k.py)'
        )
    else:  # mmpretrain's default: flip TTA, averaged scores
        cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
        if 'tta_pipeline' not in cfg:
            test_pipeline = cfg.test_dataloader.dataset.pipeline
            cfg.tta_pipeline = deepcopy(test_pipeline)
            cfg.tta_pipeline[-1] = dict(
                type='TestTimeAug',
                transforms=[
                    [
                        dict(type='RandomFlip', prob=1.0),
                        dict(type='RandomFlip', prob=0.0),
                    ],
                    [test_pipeline[-1]],
                ],
            )
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def skip_pretrained_if_checkpoint_has_backbone(cfg, checkpoint):
    """A checkpoint holding every backbone weight needs no pretrained file
    (:mod:`lspt_mm.models.checkpoint_policy` decides)."""
    return checkpoint_policy.skip_pretrained_if_checkpoint_has_backbone(
        cfg, checkpoint
    )


def merge_args(cfg, args):
    """Apply the command-line arguments to ``cfg`` (returned)."""
    cfg = apply_common_args(cfg, args)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint {args.checkpoint!r} not found')
    cfg.load_from = args.checkpoint
    cfg.resume = False
    skip_pretrained_if_checkpoint_has_backbone(cfg, args.checkpoint)
    if args.show or args.show_dir:
        cfg = enable_visualization(cfg, args)
    if args.tta:
        cfg = enable_tta(cfg)
    if args.out is not None and is_segmentation(cfg):
        evaluator = cfg.test_evaluator
        for metric in (
            evaluator if isinstance(evaluator, list) else [evaluator]
        ):
            metric['output_dir'] = args.out
            metric['keep_results'] = True
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    with exit_on_checkpoint_error():
        cfg = merge_args(cfg, args)
        runner = build_runner(cfg)
        if args.out is not None and not is_segmentation(cfg):
            from mmengine.evaluator import DumpResults

            runner.test_evaluator.metrics.append(
                DumpResults(out_file_path=args.out)
            )
        # the checkpoint is checked against the model before it is loaded
        # (CheckpointPolicyHook): a mismatch stops here with one message
        metrics = runner.test()
        rank = runner.rank
        del runner  # freed by close_distributed, before the group goes
    close_distributed()
    if rank == 0:
        print(
            'Test metrics: '
            + json.dumps(
                {
                    k: (float(v) if hasattr(v, '__float__') else v)
                    for k, v in metrics.items()
                },
                sort_keys=True,
            ),
            flush=True,
        )
    return metrics


if __name__ == '__main__':
    main()

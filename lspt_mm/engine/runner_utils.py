"""What tools/train.py and tools/test.py share: applying the common
command-line options, building the runner, closing distributed runs."""
import os.path as osp

import torch
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def apply_common_args(cfg, args):
    """``--launcher``, ``--cfg-options`` and ``--work-dir`` (default
    ``./work_dirs/<config stem>``, as OpenMMLab's tools)."""
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg):
    """mmengine's ``Runner``, or the ``RUNNERS`` entry named by
    ``runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def close_distributed():
    """Destroy the process group of a finished distributed run: a gloo group
    alive at interpreter exit can abort the process (SIGABRT) after the work
    is done."""
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()

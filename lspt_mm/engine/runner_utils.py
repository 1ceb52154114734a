"""What tools/train.py and tools/test.py share: applying the common
command-line options, building the runner (mmengine's ``from_cfg``: what the
config says, nothing added), stopping on a checkpoint that does not fit,
closing distributed runs."""

import contextlib
import gc
import os.path as osp

import torch

from lspt_mm.models.checkpoint import (
    NotACheckpointError,
    UntrustedCheckpointError,
)
from lspt_mm.models.checkpoint_digest import CheckpointCorruptError
from lspt_mm.models.checkpoint_policy import CheckpointMismatchError
from lspt_mm.recipes import TaskError, apply_task

from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .run_errors import RunStoppedError


class CfgOptionsAction(DictAction):
    """mmengine's ``DictAction`` for ``--cfg-options key=value ...``, but a
    plain value keeps its spaces (``'data_root=/data/my set'``: mmengine's
    removes every space of every value, so such a path is silently another
    one), and a word that is no ``key=value`` (an unquoted value with
    spaces) is named with how to pass it. Lists, tuples and comma
    separated values parse as mmengine parses them."""

    def __call__(self, parser, namespace, values, option_string=None):
        options = dict(getattr(namespace, self.dest, None) or {})
        for kv in values or []:
            if '=' not in kv:
                parser.error(
                    f'{option_string} {kv!r} is not key=value; a value with '
                    "spaces must be quoted as one word: --cfg-options 'data_"
                    "root=/data/my set'"
                )
            key, val = kv.split('=', 1)
            plain = val.strip()
            if plain[:1] in '[(' or ',' in plain:
                options[key] = self._parse_iterable(val)
            else:
                options[key] = self._parse_int_float_bool(plain.strip('\'"'))
        setattr(namespace, self.dest, options)


def apply_common_args(cfg, args):
    """``--launcher``, ``--cfg-options``, the task of a benchmark config
    (:func:`lspt_mm.recipes.apply_task`: its recipe fills what
    the config and the options leave None) and ``--work-dir`` (default
    ``./work_dirs/<config stem>``, as OpenMMLab's tools, plus
    ``_<task>`` / ``_<method>`` when ``--cfg-options`` set them)."""

    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    try:  # Runner.from_cfg resolves it again (unchanged) and logs the row
        recipe = apply_task(cfg, log=False)
    except TaskError as err:
        raise SystemExit(f'error: {err}') from None
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        stem = osp.splitext(osp.basename(args.config))[0]
        for key in ('task', 'method'):  # one config, many runs
            if recipe is not None and key in (args.cfg_options or {}):
                stem += f'_{recipe[key]}'
        cfg.work_dir = osp.join('./work_dirs', stem)
    return cfg


@contextlib.contextmanager
def exit_on_checkpoint_error():
    """Turn a checkpoint that does not fit, is not a checkpoint, or would
    need a full unpickle into one short message and exit status 1."""

    try:
        yield
    except (
        CheckpointMismatchError,
        CheckpointCorruptError,
        NotACheckpointError,
        UntrustedCheckpointError,
        RunStoppedError,
    ) as err:
        raise SystemExit(f'error: {err}') from None


def compile_options(cfg):
    """``torch.compile`` options of mmengine's ``compile`` config key:
    None when it is absent, None or False; ``{}`` for True; the dict."""
    value = cfg.get('compile', None)
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, dict):
        return dict(value)
    raise ValueError(
        f'config key compile={value!r}: give True, False or a '
        'dict of torch.compile options (e.g. dict(backend='
        "'inductor', mode='max-autotune'))"
    )


def compile_model(runner, options):
    """``torch.compile`` the runner's model (``nn.Module.compile``, inside
    a DDP wrapper if any) with ``options``: every call of the model, the
    training forward (its backward is compiled with it) and the val / test
    forward, runs compiled; one graph per mode (loss, predict) and
    train / eval state, compiled at first use.

    This replaces mmengine's own use of the key (``Runner.train`` compiles
    ``model.train_step``), which is switched off on this runner: in torch
    2.13 dynamo cannot trace the optimiser step of configs whose optimiser
    constructor gives ``ConfigDict`` parameter groups (``paramwise_cfg``,
    all segmentation configs here: ``InternalTorchDynamoError``), and
    mmengine leaves val / test uncompiled. The data preprocessor, the
    optimiser step and the loop bookkeeping stay eager."""
    from mmengine.model import is_model_wrapper

    model = (
        runner.model.module if is_model_wrapper(runner.model) else runner.model
    )
    model.compile(**options)
    runner.cfg.compile = False  # mmengine's train_step compile: off
    print_log(
        f'compile: the model is compiled (torch.compile options '
        f'{options}); the first iteration of training and of testing '
        'compiles it (minutes for a ViT-B on CPU)',
        logger='current',
    )


def build_runner(cfg):
    """mmengine's ``Runner``, or the ``RUNNERS`` entry named by
    ``runner_type``, built by ``from_cfg`` exactly as for any launcher (the
    config holds the whole run, hooks included; ``from_cfg`` re-resolves a
    benchmark task: :mod:`lspt_mm.engine.from_cfg`); with ``compile`` set,
    its model compiled (:func:`compile_model`)."""
    options = compile_options(cfg)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    if options is not None:
        compile_model(runner, options)
    return runner


def close_distributed():
    """Destroy the process group of a finished distributed run: a gloo group
    alive at interpreter exit can abort the process (SIGABRT: "terminate
    called without an active exception") after the work is done.

    The caller drops its runner first. The runner is a reference cycle (its
    loops and hooks point back to it), so only the cyclic garbage collector
    frees it and the DDP model it holds, whose reducer keeps the gloo group
    (and its worker threads) alive past ``destroy_process_group``; left to
    itself that happens during interpreter shutdown, where tearing down the
    group's threads aborts the process. Here the ranks first wait for each
    other (none tears its group down while another still talks to it), then
    the runner is collected and the group destroyed while Python is alive.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        gc.collect()
        torch.distributed.destroy_process_group()
        gc.collect()

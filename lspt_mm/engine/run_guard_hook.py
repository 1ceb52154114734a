"""``RunGuardHook``: what every run needs whatever starts it
(``tools/train.py``, ``Runner.from_cfg``, mmseg's / mmpretrain's tools).

The runtime configs list it (``custom_hooks``), so it comes with the config
and not with our tools:

- **the work dir's lock** (:class:`~lspt_mm.engine.work_dir_lock.WorkDirLock`)
  from ``before_run`` to ``after_run``: a second run on a live work dir
  stops naming the first, also for a plain ``Runner.from_cfg(cfg).train()``
  (``ConciseRunner`` takes it earlier, while it is built; the lock is
  shared within a process);
- **``--resume`` without a file** (``resume=True``, no ``load_from``): the
  work dir's ``last_checkpoint`` must name a checkpoint that exists; an
  empty or unreadable pointer is named with what to do;
- **``--resume`` of a checkpoint that does not fit the schedule**: its
  iteration (epoch) past the config's ``max_iters`` (``max_epochs``) is an
  error (mmengine would train nothing and exit 0), and a config whose
  optimiser or lr schedule differs from the checkpoint's, which the resumed
  optimiser and scheduler states would silently override, is an error that
  names each setting and how to keep the new one.
"""

import os
import os.path as osp
import re

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .checkpoint_hook import read_pointer
from .run_errors import RunStoppedError
from .work_dir_lock import WorkDirLock

RESUMED_SETTINGS = ('optim_wrapper', 'param_scheduler')


class ResumeError(RunStoppedError):
    """A ``--resume`` that would not continue the run the user asked for."""


def pointer_problem(work_dir):
    """What is wrong with ``work_dir/last_checkpoint`` for a resume (None:
    nothing, or no pointer at all, which mmengine reports itself)."""
    pointer, target, error = read_pointer(work_dir)
    if error is not None:
        return f'{pointer} cannot be read as text ({error})'
    if target is None:
        return None
    if not target:
        return f'{pointer} is empty'
    if '\n' in target or '\x00' in target:
        return f'{pointer} holds no single file path'
    if not osp.isfile(target):
        return f'{pointer} names {target!r}, which does not exist'
    return None


def newest_checkpoint(work_dir):
    """The newest ``iter_N.pth`` / ``epoch_N.pth`` in ``work_dir`` (by N),
    or None."""
    best = None
    for name in os.listdir(work_dir):
        match = re.fullmatch(r'(iter|epoch)_(\d+)\.pth', name)
        if match and (best is None or int(match.group(2)) > best[0]):
            best = (int(match.group(2)), osp.join(work_dir, name))
    return best and best[1]


def _flat(value, prefix=''):
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f'{prefix}{k}.'))
        return out
    if isinstance(value, (list, tuple)):
        out = {}
        for i, v in enumerate(value):
            out.update(_flat(v, f'{prefix}{i}.'))
        return out
    return {prefix[:-1]: value}


def overridden_settings(saved_cfg, cfg):
    """``[(key, checkpoint's value, config's value)]`` of the optimiser and
    lr-schedule settings that differ between the config a checkpoint was
    saved with (``saved_cfg``) and ``cfg``."""
    diffs = []
    for name in RESUMED_SETTINGS:
        old = _flat(saved_cfg.get(name, None), name + '.')
        new = _flat(cfg.get(name, None), name + '.')
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                diffs.append((key, old.get(key), new.get(key)))
    return diffs


@HOOKS.register_module()
class RunGuardHook(Hook):
    """The work dir's lock and the ``--resume`` checks (module docstring)."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self._lock = None

    def before_run(self, runner):
        if is_main_process():
            self._lock = WorkDirLock(runner.work_dir)
            message = self._lock.acquire()
            if message:
                runner.logger.warning(message)
        if getattr(runner, '_resume', False) and runner._load_from is None:
            problem = pointer_problem(runner.work_dir)
            if problem:
                newest = newest_checkpoint(runner.work_dir)
                found = (
                    f'the newest checkpoint there is {newest}'
                    if newest
                    else 'there is no checkpoint file in the work dir'
                )
                raise ResumeError(
                    f'--resume: {problem}, so it names no checkpoint to '
                    f'resume; {found}. Give the checkpoint itself (--resume '
                    f'{newest or "<work_dir>/iter_N.pth"}) or write its path '
                    'into last_checkpoint.'
                )

    def after_run(self, runner):
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def after_load_checkpoint(self, runner, checkpoint):
        if not getattr(runner, '_resume', False):
            return
        meta = checkpoint.get('meta', {}) or {}
        loop = runner.train_loop
        source = _resumed_file(runner)
        for unit, limit in (('iter', 'max_iters'), ('epoch', 'max_epochs')):
            done, most = meta.get(unit), getattr(loop, limit, None)
            if loop.__class__.__name__.startswith('Epoch') != (
                unit == 'epoch'
            ):
                continue
            if done is not None and most is not None and done > most:
                raise ResumeError(
                    f'--resume {source}: the checkpoint is at {unit} {done}, '
                    f"past the config's train_cfg.{limit}={most}, so "
                    'nothing would be trained. Raise '
                    f'train_cfg.{limit} above {done} to train on, or test '
                    'the checkpoint with tools/test.py.'
                )
        if 'cfg' not in meta:
            return
        try:
            saved = Config.fromstring(meta['cfg'], file_format='.py')
        except Exception:  # a config we cannot parse: nothing to compare
            return
        diffs = overridden_settings(saved, runner.cfg)
        if diffs:
            lines = '; '.join(
                f'{k}: {old!r} in the checkpoint, {new!r} in the config'
                for k, old, new in diffs[:6]
            )
            more = f' (+{len(diffs) - 6} more)' if len(diffs) > 6 else ''
            raise ResumeError(
                f'--resume {source}: the resumed optimiser and lr-schedule '
                f'states would override the config: {lines}{more}. To train '
                'on with the new settings, start from its weights instead: '
                f'--cfg-options load_from={source} (without --resume; the '
                'schedule starts again); to resume exactly, use the settings '
                'the checkpoint was trained with.'
            )


def _resumed_file(runner):
    """The file a resume really reads: the given one, else the one
    ``last_checkpoint`` names."""
    if runner._load_from is not None:
        return str(runner._load_from)
    pointer, target, _ = read_pointer(runner.work_dir)
    return target or pointer

"""What the console shows, and what only the log file keeps.

mmengine's ``MMLogger`` has two handlers: the console (a ``StreamHandler``)
and, for a runner, ``<work_dir>/<timestamp>/<timestamp>.log`` (a
``FileHandler``); both take every record at ``log_level``. Their levels are
independent, so a block of bulky INFO records (the full config, the
environment, the hook order, per-parameter optimiser settings, a 150-row
per-class table) can go to the file alone by raising the console handler's
level around it: ``file_only``. Warnings and errors still reach the console.

``ConciseRunner`` (``runner_type='ConciseRunner'`` in the runtime configs)
is mmengine's ``Runner`` with the set-up dumps sent to the file only, so the
console shows progress, warnings and results. ``runner_type='Runner'``
restores mmengine's console.

``ConciseRunner`` also locks its work dir and gives every run a log folder
of its own (:mod:`lspt_mm.engine.work_dir_lock`).
"""

import contextlib
import logging

from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .work_dir_lock import WorkDirLock, WorkDirLockedError, claim_log_dir


def console_handlers(logger):
    """The handlers of ``logger`` that write to a terminal stream (not to a
    file)."""
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
    ]


@contextlib.contextmanager
def file_only(logger=None, below=logging.WARNING):
    """Within the block, records of ``logger`` (default: the current
    ``MMLogger``) below level ``below`` reach only its file handlers."""
    logger = logger or MMLogger.get_current_instance()
    handlers = console_handlers(logger)
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(max(h.level, below))
    try:
        yield logger
    finally:
        for h, level in zip(handlers, levels):
            h.setLevel(level)


@RUNNERS.register_module()
class ConciseRunner(Runner):
    """mmengine's ``Runner`` whose console leaves out the set-up dumps.

    The environment, the full config and the hook order (logged while the
    runner is built) and the per-parameter optimiser settings (logged when
    training starts) go to the log file only; the console gets one line
    saying where they are. Everything else is mmengine's (and the log file
    is mmengine's full log).
    """

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        if getattr(self, '_setup_quiet', None) is None:
            # until __init__ has finished (the dumps happen inside it)
            self._setup_quiet = file_only(logger)
            self._setup_quiet.__enter__()
        return logger

    def __init__(self, *args, **kwargs):
        self._setup_quiet = None
        self._work_dir_lock = None
        self._lock_message = None
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            self._release_work_dir()
            raise
        finally:
            if self._setup_quiet:
                self._setup_quiet.__exit__(None, None, None)
                self._setup_quiet = False
        if self._lock_message:
            self.logger.warning(self._lock_message)
        if self.logger.log_file:
            self.logger.info(
                'environment, config and hook order: in '
                f'{self.logger.log_file}'
            )

    def setup_env(self, env_cfg):
        """mmengine's, then (before mmengine creates the log folder) the
        work dir's lock (:class:`~lspt_mm.engine.work_dir_lock.WorkDirLock`:
        a second run on a live work dir stops naming the first) and a log
        folder of this run's own (:func:`~lspt_mm.engine.work_dir_lock.
        claim_log_dir`: ``<timestamp>_2`` when ``<timestamp>`` is taken).
        Rank 0 decides; the other ranks follow."""
        from mmengine.dist import broadcast_object_list

        super().setup_env(env_cfg)
        result = [self._timestamp, None, None]  # name, message, refusal
        if self.rank == 0:
            self._work_dir_lock = WorkDirLock(self._work_dir)
            try:
                result[1] = self._work_dir_lock.acquire()
                result[0] = claim_log_dir(self._work_dir, self._timestamp)
            except WorkDirLockedError as err:
                result[2] = str(err)
        if self.world_size > 1:
            broadcast_object_list(result)
        if result[2]:
            raise WorkDirLockedError(result[2])
        self._timestamp, self._lock_message = result[0], result[1]

    def _hold_work_dir(self):
        if self._work_dir_lock is not None:
            self._work_dir_lock.acquire()  # again, after a finished run

    def _release_work_dir(self):
        if getattr(self, '_work_dir_lock', None) is not None:
            self._work_dir_lock.release()

    def train(self):
        """mmengine's; the work dir's lock is released when it ends."""
        self._hold_work_dir()
        try:
            return super().train()
        finally:
            self._release_work_dir()

    def val(self):
        self._hold_work_dir()
        try:
            return super().val()
        finally:
            self._release_work_dir()

    def test(self):
        self._hold_work_dir()
        try:
            return super().test()
        finally:
            self._release_work_dir()

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's; its per-parameter settings go to the log file."""
        with file_only(self.logger):
            return super().build_optim_wrapper(optim_wrapper)

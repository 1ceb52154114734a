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
"""
import contextlib
import logging

from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner


def console_handlers(logger):
    """The handlers of ``logger`` that write to a terminal stream (not to a
    file)."""
    return [h for h in logger.handlers
            if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)]


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
        try:
            super().__init__(*args, **kwargs)
        finally:
            if self._setup_quiet:
                self._setup_quiet.__exit__(None, None, None)
                self._setup_quiet = False
        if self.logger.log_file:
            self.logger.info('environment, config and hook order: in '
                             f'{self.logger.log_file}')

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's; its per-parameter settings go to the log file."""
        with file_only(self.logger):
            return super().build_optim_wrapper(optim_wrapper)

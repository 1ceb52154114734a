"""Atomic checkpoint saving.

mmengine's ``CheckpointHook`` writes ``iter_N.pth`` straight to its final path
and then overwrites ``work_dir/last_checkpoint`` in place; a job killed during
either write leaves a truncated checkpoint under its final name, or an empty
``last_checkpoint`` (``--resume`` then silently starts from scratch).

``AtomicCheckpointHook`` (same arguments) writes every file to a temporary
name in the same directory, flushes it to disk and ``os.replace``-s it onto
the final name, so the final names only ever refer to complete files and
``last_checkpoint`` always names a complete checkpoint. Rotation
(``max_keep_ckpts``, a replaced best checkpoint) deletes the old files only
after the new one is durable and ``last_checkpoint`` names it, so a kill or
a full disk during a save never leaves the run without a checkpoint (a
failed save raises :class:`CheckpointSaveError` and deletes nothing). The
project's
runtime configs name it (``default_hooks.checkpoint.type``); a config that
names the plain ``CheckpointHook`` keeps it (``tools/train.py`` warns).
Files get the mode a plain ``open`` would give (``0o666`` less the umask:
group-readable with the usual umask 022), not ``mkstemp``'s private 0600.
A process killed between creating and renaming a temporary file leaves it
behind; the hook removes such stale ``.<name>.XXXXXXXX.tmp`` files from the
work dir and the checkpoint dir when training starts.

How, without patching mmengine: checkpoint files are written through
mmengine's file-backend registry: :class:`AtomicLocalBackend` (registered as
``backend='atomic_local'``) is the hook's default ``backend_args``, which
mmengine passes on to ``Runner.save_checkpoint``. The ``last_checkpoint``
pointer is written by mmengine with a plain ``open``, inside a private
method; its atomic replacement is a version-guarded copy in
:func:`lspt_mm.compat.save_checkpoint_with_step`.
"""

import contextlib
import copy
import difflib
import inspect
import logging
import os
import os.path as osp
import re
import tempfile

from lspt_mm import compat
from lspt_mm.models.checkpoint_digest import record_digest

from mmengine.dist import is_main_process
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from .run_errors import RunStoppedError


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that ``path`` is either the old file or
    the complete new one, never a partial file."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=directory
    )
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # as open() would, not 0600
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask():
    """The process umask (read from /proc where possible: setting it to
    read it is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# what atomic_write_bytes leaves when killed: `.<file>.<8 random>.tmp`
# (mkstemp's alphabet), for checkpoints and the `last_checkpoint` pointer
STALE_TMP = re.compile(r'^\.(.+\.pth|last_checkpoint)\.[a-z0-9_]{8}\.tmp$')


def remove_stale_temp_files(directory):
    """Delete the temporary files of interrupted atomic writes in
    ``directory``; returns their paths."""
    removed = []
    if not osp.isdir(directory):
        return removed
    for name in sorted(os.listdir(directory)):
        path = osp.join(directory, name)
        if STALE_TMP.match(name) and osp.isfile(path):
            with contextlib.suppress(OSError):
                os.remove(path)
                removed.append(path)
    return removed


def atomic_write_text(path, text, encoding='utf-8'):
    atomic_write_bytes(path, text.encode(encoding))


@register_backend('atomic_local')
class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` replaces the file
    atomically (:func:`atomic_write_bytes`); ``backend_args=dict(
    backend='atomic_local')`` selects it."""

    def put(self, obj, filepath):
        atomic_write_bytes(str(filepath), obj)


ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


def _refuse_unknown_options(options):
    """mmengine's ``CheckpointHook`` keeps options it does not know and
    hands them to ``Runner.save_checkpoint``, which takes none: a typo
    (``max_keep_ckpt``) trains until the first save and then fails, losing
    the run. Refuse them when the hook is built."""
    known = [
        n
        for n in inspect.signature(CheckpointHook.__init__).parameters
        if n not in ('self', 'kwargs')
    ]
    extra = [k for k in options if k not in known]
    if not extra:
        return
    hints = []
    for key in sorted(extra):
        close = difflib.get_close_matches(key, known, n=1)
        hints.append(key + (f' (did you mean {close[0]}?)' if close else ''))
    raise ValueError(
        f'default_hooks.checkpoint: unknown option(s) {", ".join(hints)}; '
        f"AtomicCheckpointHook (mmengine's CheckpointHook) takes "
        f'{", ".join(known)}'
    )


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoint files and ``last_checkpoint``
    pointer are written atomically (temporary file + ``os.replace``).

    Same arguments as ``CheckpointHook``; ``backend_args`` defaults to
    ``dict(backend='atomic_local')`` (:class:`AtomicLocalBackend`). With
    other ``backend_args`` or ``file_client_args`` the files are written by
    that backend (atomic only if it is); the pointer stays atomic.
    """

    def __init__(
        self, *args, file_client_args=None, backend_args=None, **kwargs
    ):
        _refuse_unknown_options(kwargs)
        if file_client_args is None and backend_args is None:
            backend_args = dict(ATOMIC_BACKEND_ARGS)
        elif (backend_args or {}).get('backend') != 'atomic_local':
            print_log(
                'AtomicCheckpointHook: checkpoint files are written '
                'by the given file_client_args / backend_args, not '
                "atomically (leave both out, or backend='atomic_local',"
                ' for atomic files)',
                logger='current',
                level=logging.WARNING,
            )
        super().__init__(
            *args,
            file_client_args=file_client_args,
            backend_args=backend_args,
            **kwargs,
        )

    def before_train(self, runner):
        super().before_train(runner)
        if not is_main_process():
            return
        for directory in {runner.work_dir, self.out_dir}:
            for path in remove_stale_temp_files(str(directory)):
                runner.logger.info(
                    f'removed {path}, left by a save that was interrupted'
                )

    def before_save_checkpoint(self, runner, checkpoint):
        """Record the digest of the tensors being saved
        (:mod:`lspt_mm.models.checkpoint_digest`): every later read checks
        the file still holds them. The hook runs last (priority VERY_LOW),
        after other hooks (e.g. EMA) have changed the state dict."""
        record_digest(checkpoint)

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._deferred_removals(runner):
            compat.save_checkpoint_with_step(
                self, runner, step, meta, write_pointer=atomic_write_text
            )

    def _save_best_checkpoint(self, runner, metrics):
        with self._deferred_removals(runner):
            super()._save_best_checkpoint(runner, metrics)

    @contextlib.contextmanager
    def _deferred_removals(self, runner):
        """Rotation (``max_keep_ckpts``, the previous best) deletes files
        only once the new checkpoint is complete and durable and
        ``last_checkpoint`` names it: mmengine's deletions inside the block
        are recorded and done at its end. If the save fails (a full disk),
        nothing is deleted, the hook's bookkeeping is restored and
        :class:`CheckpointSaveError` says what is still on disk."""
        real = self.file_backend
        removals = []
        saved = (
            copy.copy(getattr(self, 'keep_ckpt_ids', None)),
            self.last_ckpt,
            getattr(self, 'best_ckpt_path', None),
            dict(getattr(self, 'best_ckpt_path_dict', {}) or {}),
        )
        hub = runner.message_hub
        hub_saved = {
            k: hub.get_info(k) for k in ('keep_ckpt_ids', 'last_ckpt')
        }
        self.file_backend = _RecordRemovals(real, removals)
        try:
            yield
        except Exception as err:
            if saved[0] is not None:
                self.keep_ckpt_ids = saved[0]
            self.last_ckpt = saved[1]
            if saved[2] is not None:
                self.best_ckpt_path = saved[2]
            if saved[3]:
                self.best_ckpt_path_dict = saved[3]
            for key, value in hub_saved.items():
                if value is not None:
                    hub.update_info(key, value)
            if isinstance(err, OSError):
                raise CheckpointSaveError(
                    f'saving a checkpoint in {self.out_dir} failed: {err}. '
                    f'Nothing was deleted; {pointer_report(runner.work_dir)}'
                    '. Free space (or fix the folder) and continue with '
                    '--resume.'
                ) from err
            raise
        finally:
            self.file_backend = real
        for path in removals:
            with contextlib.suppress(OSError):
                if real.isfile(path):
                    real.remove(path)
                elif real.isdir(path):
                    real.rmtree(path)


def read_pointer(work_dir):
    """``(pointer, target, error)`` of ``work_dir/last_checkpoint``:
    ``target`` the path it names (stripped; None when the file does not
    exist or cannot be read), ``error`` why it cannot be read (or None)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    try:
        with open(pointer, encoding='utf-8') as f:
            return pointer, f.read().strip(), None
    except FileNotFoundError:
        return pointer, None, None
    except (OSError, UnicodeDecodeError) as err:
        return pointer, None, err


def pointer_report(work_dir):
    """What ``work_dir/last_checkpoint`` names now, read from the file
    itself (not from the run's memory, which a resumed run took from its
    checkpoint), and whether that file exists."""
    pointer, target, error = read_pointer(work_dir)
    if error is not None:
        return f'{pointer} cannot be read ({error})'
    if target is None:
        return f'there is no {pointer} (no checkpoint saved yet)'
    if not target:
        return f'{pointer} is empty'
    state = 'which exists' if osp.isfile(target) else 'which is MISSING'
    return f'{pointer} still names {target}, {state}'


class CheckpointSaveError(RunStoppedError):
    """A checkpoint could not be written (e.g. no space left on device);
    the previous checkpoints and ``last_checkpoint`` are untouched."""


class _RecordRemovals:
    """A file backend whose ``remove`` / ``rmtree`` only record the path
    (everything else is the wrapped backend's)."""

    def __init__(self, backend, removals):
        self._backend = backend
        self._removals = removals

    def remove(self, filepath):
        self._removals.append(filepath)

    def rmtree(self, dir_path):
        self._removals.append(dir_path)

    def __getattr__(self, name):
        return getattr(self._backend, name)

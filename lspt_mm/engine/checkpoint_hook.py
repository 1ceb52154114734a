"""Atomic checkpoint saving.

mmengine's ``CheckpointHook`` writes ``iter_N.pth`` straight to its final path
and then overwrites ``work_dir/last_checkpoint`` in place; a job killed during
either write leaves a truncated checkpoint under its final name, or an empty
``last_checkpoint`` (``--resume`` then silently starts from scratch).

``AtomicCheckpointHook`` (same arguments) writes every file to a temporary
name in the same directory, flushes it to disk and ``os.replace``-s it onto
the final name, so the final names only ever refer to complete files and
``last_checkpoint`` always names a complete checkpoint. ``tools/train.py``
uses it in place of the plain ``CheckpointHook``. Files get the mode a plain
``open`` would give (``0o666`` less the umask: group-readable with the usual
umask 022), not ``mkstemp``'s private 0600. A process killed between
creating and renaming a temporary file leaves it behind; the hook removes
such stale ``.<name>.XXXXXXXX.tmp`` files from the work dir and the
checkpoint dir when training starts.
"""
import contextlib
import os
import os.path as osp
import re
import tempfile

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS


def atomic_write_bytes(path, data):
    """Write ``data`` to ``path`` so that ``path`` is either the old file or
    the complete new one, never a partial file."""
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{osp.basename(path)}.',
                               suffix='.tmp', dir=directory)
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


@contextlib.contextmanager
def _atomic_local_puts():
    """Within the block, ``LocalBackend.put`` (what mmengine's
    ``save_checkpoint`` writes through) replaces files atomically."""
    original = LocalBackend.put

    def put(self, obj, filepath):
        atomic_write_bytes(str(filepath), obj)

    LocalBackend.put = put
    try:
        yield
    finally:
        LocalBackend.put = original


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoint files and ``last_checkpoint``
    pointer are written atomically (temporary file + ``os.replace``)."""

    def before_train(self, runner):
        super().before_train(runner)
        if not is_main_process():
            return
        for directory in {runner.work_dir, self.out_dir}:
            for path in remove_stale_temp_files(str(directory)):
                runner.logger.info(f'removed {path}, left by a save that '
                                   'was interrupted')

    def _save_checkpoint_with_step(self, runner, step, meta):
        # Same as mmengine 0.10.7's, with atomic writes.
        if self.max_keep_ckpts > 0:
            if len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step:
                pass
            else:
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    _step = self.keep_ckpt_ids.popleft()
                    if is_main_process():
                        ckpt_path = self.file_backend.join_path(
                            self.out_dir, self.filename_tmpl.format(_step))
                        if self.file_backend.isfile(ckpt_path):
                            self.file_backend.remove(ckpt_path)
                        elif self.file_backend.isdir(ckpt_path):
                            self.file_backend.rmtree(ckpt_path)
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids',
                                               list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', last_ckpt)
        with _atomic_local_puts():
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        # only now is the new file complete under its final name
        self.last_ckpt = last_ckpt
        if not is_main_process():
            return
        atomic_write_text(osp.join(runner.work_dir, 'last_checkpoint'),
                          self.last_ckpt)

    def _save_best_checkpoint(self, runner, metrics):
        with _atomic_local_puts():
            super()._save_best_checkpoint(runner, metrics)

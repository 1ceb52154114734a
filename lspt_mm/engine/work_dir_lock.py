"""One run per work dir, and a log folder of its own for every run.

mmengine names a run's log folder ``<work_dir>/<timestamp>/`` with a
one-second timestamp, and nothing stops a second run from writing
checkpoints and ``last_checkpoint`` into a work dir that a live run uses.

- :class:`WorkDirLock` holds ``<work_dir>/run.lock``: an OS lock
  (``flock``, released by the kernel when the process dies, even by
  ``kill -9``) plus a description of the holder (pid, host, start time,
  command). A second run on a live work dir stops with
  :class:`WorkDirLockedError` naming the holder; a lock file left by a
  process that is gone (it still names it) is taken over with a message.
- :func:`claim_log_dir` creates the log folder with ``os.mkdir`` (which
  fails if it exists), adding ``_2``, ``_3``, ... to the timestamp, so two
  runs that start in the same second never share a folder or a log file.

``ConciseRunner`` (the ``runner_type`` of every runtime config here) does
both before mmengine creates the log folder; the lock is released when
``train()`` / ``val()`` / ``test()`` returns (or the process ends).
"""

import contextlib
import datetime
import json
import os
import os.path as osp
import socket
import sys

from .run_errors import RunStoppedError

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: the pid check only)
    fcntl = None

LOCK_NAME = 'run.lock'


class WorkDirLockedError(RunStoppedError):
    """Another live run holds the work dir."""


class WorkDirUnwritableError(RunStoppedError):
    """The work dir cannot be written (a full disk, no permission)."""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OSError, ValueError, TypeError):
        return False
    return True


def describe_holder(info):
    """``pid 123 on host h, started 2026-..., command: ...``"""
    return (
        f'pid {info.get("pid")} on host {info.get("host")}, started '
        f'{info.get("start")}, command: {info.get("command")}'
    )


def this_process():
    return dict(
        pid=os.getpid(),
        host=socket.gethostname(),
        start=datetime.datetime.now()
        .astimezone()
        .isoformat(timespec='seconds'),
        command=' '.join([osp.basename(sys.executable)] + sys.argv),
    )


class WorkDirLock:
    """The lock of one work dir (see the module docstring).

    ``acquire()`` returns a message to log when a stale lock was taken
    over (else None) and raises :class:`WorkDirLockedError` when a live run
    holds it. Within one process, runners of the same work dir share the
    lock (counted), so building a second runner in the same script works.
    """

    _held = {}  # path -> [file object, count] of this process

    def __init__(self, work_dir):
        self.path = osp.join(osp.abspath(work_dir), LOCK_NAME)
        self.acquired = False

    def _read(self, f):
        f.seek(0)
        try:
            return json.loads(f.read() or 'null')
        except ValueError:
            return None

    def acquire(self):
        if self.acquired:
            return None
        held = self._held.get(self.path)
        if held is not None:
            held[1] += 1
            self.acquired = True
            return None
        work_dir = osp.dirname(self.path)
        f = None
        try:
            os.makedirs(work_dir, exist_ok=True)
            f = open(self.path, 'a+')
            previous = self._lock(f)
            me = this_process()
            f.seek(0)
            f.truncate()
            f.write(json.dumps(me))
            f.flush()
            os.fsync(f.fileno())
        except OSError as err:
            if f is not None:
                f.close()
            raise WorkDirUnwritableError(
                f'work dir {work_dir} cannot be written ({err}): the run '
                'needs it for its lock, log and checkpoints. Free space '
                'there (or fix its permissions), or give this run another '
                '--work-dir. Nothing was started.'
            ) from None
        except BaseException:
            if f is not None:
                f.close()
            raise
        self._held[self.path] = [f, 1]
        self.acquired = True
        if previous and previous.get('pid') != os.getpid():
            return (
                f'{self.path}: took over the lock of a run that is no '
                f'longer running ({describe_holder(previous)})'
            )
        return None

    def _lock(self, f):
        """Take the OS lock of ``f`` (else raise naming the holder);
        returns the previous holder's description, if the file has one."""
        previous = self._read(f)
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._refuse(self._read(f))
            return previous
        # no flock: a live pid on this host holds it
        if (
            previous
            and previous.get('host') == socket.gethostname()
            and previous.get('pid') != os.getpid()
            and _pid_alive(previous.get('pid'))
        ):
            self._refuse(previous)
        return previous

    def _refuse(self, holder):
        who = (
            describe_holder(holder) if holder else 'a process that is starting'
        )
        raise WorkDirLockedError(
            f'work dir {osp.dirname(self.path)} is in use by another run '
            f"({who}). Two runs in one work dir overwrite each other's "
            'checkpoints and last_checkpoint: wait for it to end, or give '
            f'this run another --work-dir. (The lock is {self.path}; it is '
            'released when that process ends, also if it is killed.)'
        )

    def release(self):
        if not self.acquired:
            return
        self.acquired = False
        held = self._held.get(self.path)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del self._held[self.path]
        f = held[0]
        with contextlib.suppress(OSError, ValueError):
            # keep the file (unlinking it races with a run opening it);
            # empty = free
            f.seek(0)
            f.truncate()
            f.flush()
        with contextlib.suppress(OSError, ValueError):
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        f.close()


def claim_log_dir(work_dir, timestamp):
    """Create ``work_dir/<timestamp>`` (or ``<timestamp>_2``, ``_3``, ...
    when taken) with ``os.mkdir``, which fails if the folder exists, so no
    two runs get the same folder; returns the name used."""
    os.makedirs(work_dir, exist_ok=True)
    name, n = timestamp, 1
    while True:
        try:
            os.mkdir(osp.join(work_dir, name))
            return name
        except FileExistsError:
            n += 1
            name = f'{timestamp}_{n}'

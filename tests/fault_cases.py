"""Shared by the issue-19 fault-case tests: a small synthetic CUB folder,
the classification demo config (C) with ``--cfg-options`` that point it at
that folder, and a child process that pauses at a chosen point so that a
test can kill it there with SIGKILL.

The child: ``python tests/fault_cases.py PAUSE MARKER -- TRAIN_ARGS...``
runs ``tools/train.py TRAIN_ARGS`` and, at the pause point, writes MARKER
and sleeps. PAUSE is ``save:<file name>`` (inside the atomic write of that
checkpoint, after the temporary file is complete, before it is renamed) or
``iter:<epoch>:<index>`` (before that training iteration, both 1-based).
"""

import os
import os.path as osp
import signal
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_C = osp.join(
    REPO,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)
NUM_CLASSES = 4


def make_small_cub(root):
    """4 classes x 8 images (6 train, 2 val each after the 90/10 split is
    drawn by prepare_fgvc_splits) + 2 test images per class; returns the
    data root that the demo config's ``data_root`` takes."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
    import prepare_fgvc_splits as prep

    from lspt_mm.datasets.synthetic import make_cub

    folder = osp.join(root, 'CUB_200_2011')
    make_cub(folder, num_classes=NUM_CLASSES, per_class=8, test_per_class=2)
    prep.main(['cub', folder])
    return str(root)


def demo_options(data_root, epochs, interval=1, max_keep=1, **extra):
    """``--cfg-options`` words for C on ``data_root``."""
    opts = {
        'data_root': data_root,
        'model.head.num_classes': NUM_CLASSES,
        'data_preprocessor.num_classes': NUM_CLASSES,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': epochs,
        'default_hooks.checkpoint.interval': interval,
        'default_hooks.checkpoint.max_keep_ckpts': max_keep,
        'default_hooks.logger.interval': 1,
        'param_scheduler.1.T_max': max(epochs - 1, 1),
        'param_scheduler.1.end': epochs,
    }
    for loader in ('train', 'val', 'test'):
        opts[f'{loader}_dataloader.dataset.num_classes'] = NUM_CLASSES
    opts.update(extra)
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def start_paused_child(pause, marker, train_args):
    """Start the child (see the module docstring); returns the Popen."""
    return subprocess.Popen(
        [
            sys.executable,
            osp.abspath(__file__),
            pause,
            marker,
            '--',
            *train_args,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_at_marker(proc, marker, timeout=120):
    """Wait for ``marker``, then SIGKILL ``proc``; returns its output."""
    start = time.time()
    while not osp.exists(marker):
        if proc.poll() is not None:
            raise AssertionError(
                'the child ended before its pause point:\n'
                + proc.stdout.read()
            )
        if time.time() - start > timeout:
            proc.kill()
            raise AssertionError('the child never reached its pause point')
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    out = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL
    return out


def _child(pause, marker, train_args):
    sys.path.insert(0, osp.join(REPO, 'tools'))
    import train  # tools/train.py (imports lspt_mm first)

    def stop_here():
        with open(marker, 'w') as f:
            f.write(str(os.getpid()))
        time.sleep(600)

    kind, _, where = pause.partition(':')
    if kind == 'save':
        real_replace = os.replace

        def slow_replace(src, dst, *args, **kwargs):
            if osp.basename(str(dst)) == where:
                assert osp.getsize(src) > 0
                stop_here()  # the temporary file is complete, not renamed
            return real_replace(src, dst, *args, **kwargs)

        os.replace = slow_replace
    elif kind == 'iter':
        from mmengine.runner import EpochBasedTrainLoop

        epoch, index = (int(x) for x in where.split(':'))
        real_run_iter = EpochBasedTrainLoop.run_iter

        def run_iter(self, idx, data_batch):
            if self._epoch + 1 == epoch and idx + 1 == index:
                stop_here()
            return real_run_iter(self, idx, data_batch)

        EpochBasedTrainLoop.run_iter = run_iter
    else:
        raise SystemExit(f'unknown pause {pause!r}')
    train.main(train_args)


if __name__ == '__main__':
    args = sys.argv[1:]
    sep = args.index('--')
    _child(args[0], args[1], args[sep + 1 :])

"""What the console shows vs. what the log file keeps (ConciseIoUMetric,
ConciseRunner's set-up dumps, the demo's untrained model), and how
checkpoints are left on disk (mode, stale temporary files of killed saves).
The end-to-end console of tools/train.py is checked in test_segmentation.py
(test_console_shows_progress_and_the_log_file_keeps_everything)."""

import io
import logging
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401  (compat first)
import lspt_mm.engine  # noqa: F401

from mmengine.logging import MMLogger

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture
def logger(tmp_path):
    """An MMLogger with a log file (as a runner's) whose console stream is
    captured."""
    log = MMLogger.get_instance(
        f'console_test_{tmp_path.name}', log_file=str(tmp_path / 'run.log')
    )
    console = [
        h for h in log.handlers if not isinstance(h, logging.FileHandler)
    ][0]
    stream = io.StringIO()
    old = console.setStream(stream)
    yield log, stream
    console.setStream(old)
    for h in log.handlers:
        h.flush()


def _seg_results(num_classes, present, n_images=3, seed=0):
    """Per-image (intersect, union, pred, label) areas of random maps whose
    ground truth uses the classes ``present`` and whose predictions are
    right on ~70% of pixels (else any class)."""
    from mmseg.evaluation import IoUMetric

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        label = torch.from_numpy(rng.choice(present, size=(32, 32)))
        pred = label.clone()
        wrong = torch.from_numpy(rng.random((32, 32)) < 0.3)
        pred[wrong] = torch.from_numpy(
            rng.integers(0, num_classes, size=int(wrong.sum()))
        )
        out.append(
            IoUMetric.intersect_and_union(
                pred, label, num_classes, ignore_index=255
            )
        )
    return out


@pytest.mark.parametrize('present', [[3, 4, 10, 7, 13], list(range(0, 60, 3))])
def test_concise_iou_metric_same_numbers_short_console(
    logger, tmp_path, present
):
    """Same metrics as mmseg's IoUMetric; the 150-row table goes to the log
    file only, the console shows the classes that occur (all of few, else
    the best and worst 5)."""
    from lspt_mm.engine import ConciseIoUMetric

    from mmseg.datasets import ADE20KDataset
    from mmseg.evaluation import IoUMetric

    log, console = logger
    classes = ADE20KDataset.METAINFO['classes']
    results = _seg_results(150, present)
    ref = IoUMetric(iou_metrics=['mIoU'])
    ref.dataset_meta = dict(classes=classes)
    metric = ConciseIoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=classes)
    file_handler = [
        h for h in log.handlers if isinstance(h, logging.FileHandler)
    ][0]
    file_handler.setLevel(logging.CRITICAL)  # the reference: not logged
    expected = ref.compute_metrics(list(results))
    file_handler.setLevel(logging.INFO)
    console.seek(0)
    console.truncate()
    assert metric.compute_metrics(list(results)) == expected
    text = console.getvalue()
    rows = [ln for ln in text.splitlines() if ln.startswith('| ')]
    file_handler.flush()
    logged = open(tmp_path / 'run.log').read()
    # the log file: mmseg's full table, one row per class
    assert 'per class results:' in logged
    assert sum(ln.startswith('| ') for ln in logged.splitlines()) >= 151
    assert 'nan' in logged  # classes that neither occur nor are predicted
    # the console: no nan rows, the classes that occur, sorted by IoU
    assert 'nan' not in text
    assert f'{len(present)} of 150 classes occur in the ground truth' in text
    assert str(tmp_path / 'run.log') in text
    names = [r.split('|')[1].strip() for r in rows[1:]]
    ious = [float(r.split('|')[2]) for r in rows[1:] if '...' not in r]
    assert ious == sorted(ious, reverse=True)
    if len(present) <= 10:
        assert sorted(names) == sorted(classes[i].strip() for i in present)
    else:
        assert len(names) == 11 and names[5] == '...'
        assert 'best and worst 5 by IoU' in text
    # predictions of classes that do not occur (random wrong pixels)
    assert 'predicted but absent from the ground truth' in text


def test_file_only_keeps_warnings_on_the_console(logger, tmp_path):
    from lspt_mm.engine import file_only

    log, console = logger
    with file_only(log):
        log.info('bulky dump')
        log.warning('something to act on')
    log.info('progress line')
    for h in log.handlers:
        h.flush()
    text = console.getvalue()
    assert 'bulky dump' not in text
    assert 'something to act on' in text and 'progress line' in text
    logged = open(tmp_path / 'run.log').read()
    for msg in ('bulky dump', 'something to act on', 'progress line'):
        assert msg in logged


def test_demo_untrained_model_init_report_goes_to_a_file(tmp_path):
    """The demo's untrained model is built and initialised in-process; its
    ~440-line per-parameter initialisation report (mmengine prints it to
    the console when the logger has no file) goes to a file."""
    config = osp.join(
        ROOT,
        'configs',
        'segmentation',
        'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
    )
    path = str(tmp_path / 'untrained.pth')
    code = (
        'import sys; sys.path.insert(0, "tools"); import demo; '
        f'demo.save_untrained({config!r}, {path!r}, {{}})'
    )
    proc = subprocess.run(
        [sys.executable, '-c', code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    printed = proc.stdout + proc.stderr
    assert proc.returncode == 0, printed[-3000:]
    assert 'backbone.pos_embed' not in printed
    assert len(printed.splitlines()) < 20, printed[-2000:]
    report = open(tmp_path / 'untrained_init.log').read()
    assert 'backbone.pos_embed' in report
    assert osp.isfile(path)


# ------------------------------------------------------------- checkpoints
class _Runner:
    """What AtomicCheckpointHook uses of a runner."""

    def __init__(self, work_dir):
        from mmengine.logging import MessageHub

        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f'ckpt_{work_dir}')
        self.logger = MMLogger.get_instance(f'ckpt_{work_dir}')
        self.iter = 0

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kw):
        from mmengine.runner.checkpoint import save_checkpoint

        save_checkpoint(
            {'meta': meta, 'state_dict': {'w': torch.ones(3)}},
            osp.join(out_dir, filename),  # as mmengine's Runner
            backend_args=kw.get('backend_args'),
        )


@pytest.mark.parametrize('umask', [0o022, 0o027])
def test_checkpoints_get_the_umask_mode(tmp_path, umask):
    """Saved like a plain open() would (0644 with umask 022: readable by
    the group), not mkstemp's 0600."""
    from lspt_mm.engine import AtomicCheckpointHook

    old = os.umask(umask)
    try:
        runner = _Runner(tmp_path)
        hook = AtomicCheckpointHook(interval=1, by_epoch=False)
        hook.before_train(runner)
        hook._save_checkpoint_with_step(runner, 1, dict(iter=1))
    finally:
        os.umask(old)
    for name in ('iter_1.pth', 'last_checkpoint'):
        mode = os.stat(tmp_path / name).st_mode & 0o777
        assert mode == 0o666 & ~umask, (name, oct(mode))


KILLED_SAVE = """
import os, sys, time
import lspt_mm  # noqa
import lspt_mm.engine.checkpoint_hook as ch
def stall(fd):
    print('writing', flush=True)
    time.sleep(60)
ch.os.fsync = stall
ch.atomic_write_bytes(sys.argv[1], b'x' * 1000)
"""


def test_stale_temp_file_of_a_killed_save_is_removed(tmp_path):
    """kill -9 between writing the temporary file and renaming it leaves
    `.iter_2.pth.XXXXXXXX.tmp`; the next run's checkpoint hook removes it
    (and only such files) before training."""
    from lspt_mm.engine import AtomicCheckpointHook

    proc = subprocess.Popen(
        [sys.executable, '-c', KILLED_SAVE, str(tmp_path / 'iter_2.pth')],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=ROOT),
    )
    try:
        assert proc.stdout.readline().strip() == 'writing'
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    left = [n for n in os.listdir(tmp_path) if n.endswith('.tmp')]
    assert len(left) == 1 and left[0].startswith('.iter_2.pth.'), left
    assert not osp.exists(tmp_path / 'iter_2.pth')
    keep = ['.notes.tmp', 'iter_1.pth', '.iter_1.pth.tmp']
    for name in keep:
        (tmp_path / name).write_text('user file')
    time.sleep(0.01)
    runner = _Runner(tmp_path)
    hook = AtomicCheckpointHook(interval=1, by_epoch=False)
    hook.before_train(runner)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)

"""Issue 19, cases 2, 3 and 5: a diverged run stops (or skips the step),
two runs cannot share a work dir (nor a log folder), and a head whose class
count is not the data's stops before the first iteration."""

import copy
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import pytest
import torch
import torch.nn as nn

import lspt_mm  # noqa: F401
from lspt_mm.engine import (
    ConciseRunner,
    HeadDataMismatchError,
    NonFiniteLossError,
    WorkDirLockedError,
)
from lspt_mm.engine.work_dir_lock import LOCK_NAME, claim_log_dir

from mmengine.model import BaseModel
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from fault_cases import DEMO_C, REPO, demo_options, make_small_cub  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools'))
import train  # noqa: E402  (tools/train.py)


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_small_cub(tmp_path_factory.mktemp('cub'))


# ------------------------------------------------ case 2: non-finite loss
class InfGrad(torch.autograd.Function):
    """Identity forward; an infinite gradient backward."""

    @staticmethod
    def forward(ctx, t):
        return t.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float('inf')


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def forward(self, x, y, kind=None, mode='loss'):
        out = (self.w * x).sum(1)
        if kind is not None and 'grad' in kind:
            out = InfGrad.apply(out)
        return dict(loss_fit=((out - y) ** 2).mean())


class Items(torch.utils.data.Dataset):
    """Item i: x = (1, i), y = 1; ``bad`` maps an index to 'loss' (a NaN
    input) or 'grad' (finite loss, infinite gradient)."""

    def __init__(self, n=6, bad=None, drop=()):
        self.ids = [i for i in range(n) if i not in drop]
        self.bad = bad or {}

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, k):
        i = self.ids[k]
        x = torch.tensor([1.0, i / 10])
        if self.bad.get(i) == 'loss':
            x[1] = float('nan')
        return dict(x=x, y=torch.tensor(1.0), kind=self.bad.get(i, 'ok'))


def toy_run(work_dir, data, hook):
    runner = Runner(
        model=Toy(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=data,
            batch_size=1,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(
                type='AtomicCheckpointHook', interval=2, by_epoch=False
            )
        ),
        custom_hooks=[hook],
        default_scope='mmengine',
        experiment_name=f'toy_{work_dir.name}_{time.time()}',
    )
    return runner


@pytest.mark.parametrize('kind', ['loss', 'grad'])
def test_non_finite_step_stops_the_run_before_it_is_applied(tmp_path, kind):
    runner = toy_run(
        tmp_path, Items(bad={3: kind}), dict(type='NonFiniteLossHook')
    )
    with pytest.raises(NonFiniteLossError) as exc:
        runner.train()
    msg = str(exc.value)
    # the iteration (1-based), the loss terms, the lr
    assert 'at iteration 4 (epoch 1)' in msg, msg
    assert ('loss_fit=nan' if kind == 'loss' else 'gradient of w') in msg
    assert 'lr=0.01' in msg
    assert 'iter_2.pth' in msg  # the last checkpoint, from before it
    assert torch.isfinite(runner.model.w).all()
    assert sorted(n for n in os.listdir(tmp_path) if n.endswith('.pth')) == [
        'iter_2.pth'
    ]
    # the parameters are those after iteration 3: the step was not applied
    ref = toy_run(tmp_path / 'ref', Items(n=3), dict(type='RNGStateHook'))
    ref.train()
    assert torch.equal(runner.model.w, ref.model.w)


def test_skip_mode_counts_and_skips_the_steps(tmp_path):
    runner = toy_run(
        tmp_path,
        Items(bad={1: 'loss', 4: 'grad'}),
        dict(type='NonFiniteLossHook', action='skip'),
    )
    runner.train()
    hook = [
        h for h in runner.hooks if type(h).__name__ == 'NonFiniteLossHook'
    ][0]
    assert hook.skipped == [2, 5]
    # as if the two samples were not there (plain SGD, constant lr)
    ref = toy_run(
        tmp_path / 'ref', Items(drop=(1, 4)), dict(type='RNGStateHook')
    )
    ref.train()
    assert torch.equal(runner.model.w, ref.model.w)
    # more skips than max_skips stop the run
    runner = toy_run(
        tmp_path / 'max',
        Items(bad={1: 'loss', 4: 'grad'}),
        dict(type='NonFiniteLossHook', action='skip', max_skips=1),
    )
    with pytest.raises(NonFiniteLossError, match='more than max_skips=1'):
        runner.train()


def test_diverged_demo_run_exits_with_status_1(data_root, tmp_path):
    """C with lr=1e30 (the issue's command): tools/train.py stops with one
    message and status 1; no checkpoint holds NaN."""
    work_dir = str(tmp_path / 'work')
    with pytest.raises(SystemExit) as exc:
        train.main(
            [
                DEMO_C,
                '--work-dir',
                work_dir,
                *demo_options(
                    data_root, epochs=2, **{'optim_wrapper.optimizer.lr': 1e30}
                ),
            ]
        )
    msg = exc.value.code
    assert isinstance(msg, str) and msg.startswith('error: Training stopped')
    assert 'at iteration' in msg and 'loss=' in msg and 'lr=' in msg
    assert 'no checkpoint was saved' in msg
    assert not [n for n in os.listdir(work_dir) if n.endswith('.pth')]


# ------------------------------------------------- case 3: shared work dir
HOLDER = """
import sys, time
from lspt_mm.engine.work_dir_lock import WorkDirLock
WorkDirLock(sys.argv[1]).acquire()
print('locked', flush=True)
time.sleep(600)
"""


_count = iter(range(10**6))


def runner_on(work_dir):
    return ConciseRunner(
        model=Toy(),
        work_dir=str(work_dir),
        default_scope='mmengine',
        experiment_name=f'lock_{os.getpid()}_{next(_count)}',
    )


def test_second_run_on_a_live_work_dir_is_refused(tmp_path):
    work_dir = tmp_path / 'work'
    holder = subprocess.Popen(
        [sys.executable, '-c', HOLDER, str(work_dir), 'holder-tag'],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(WorkDirLockedError) as exc:
            runner_on(work_dir)
        msg = str(exc.value)
        assert f'pid {holder.pid} on host {socket.gethostname()}' in msg
        assert 'holder-tag' in msg and 'started 20' in msg  # its command
        # refused before mmengine made a log folder
        assert os.listdir(work_dir) == [LOCK_NAME]
    finally:
        holder.kill()  # SIGKILL: the lock file still names it
        holder.wait()
    runner = runner_on(work_dir)  # a stale lock is taken over, and said
    with open(runner.logger.log_file) as f:
        log = f.read()
    assert 'took over the lock of a run that is no longer running' in log
    assert f'pid {holder.pid}' in log


def test_runs_started_in_the_same_second_get_their_own_log_folders(
    tmp_path, monkeypatch
):
    # two runners of this process (they share the lock), in one second
    now = time.time()
    monkeypatch.setattr(time, 'time', lambda: now)
    first = runner_on(tmp_path)
    second = runner_on(tmp_path)
    monkeypatch.undo()
    assert second.timestamp == first.timestamp + '_2'
    assert first.log_dir != second.log_dir
    assert first.logger.log_file != second.logger.log_file
    assert claim_log_dir(str(tmp_path), 'x') == 'x'
    assert claim_log_dir(str(tmp_path), 'x') == 'x_2'
    assert claim_log_dir(str(tmp_path), 'x') == 'x_3'


# ------------------------------------------- case 5: head and data disagree
@pytest.mark.parametrize('num_classes', [3, 10])
def test_head_that_does_not_fit_the_data_stops_before_training(
    data_root, tmp_path, num_classes, monkeypatch
):
    from mmengine.runner import EpochBasedTrainLoop

    ran = []
    monkeypatch.setattr(
        EpochBasedTrainLoop, 'run_iter', lambda *a: ran.append(1)
    )
    with pytest.raises(SystemExit) as exc:
        train.main(
            [
                DEMO_C,
                '--work-dir',
                str(tmp_path),
                *demo_options(
                    data_root,
                    epochs=2,
                    **{'model.head.num_classes': num_classes},
                ),
            ]
        )
    msg = exc.value.code
    assert f'model.head.num_classes={num_classes}' in msg, msg
    assert 'has 4 classes' in msg and 'train_dataloader' in msg
    assert 'data_preprocessor.num_classes' not in msg  # that one fits (4)
    assert not ran


def test_segmentation_heads_are_checked_against_the_classes():
    from lspt_mm.engine.head_check_hook import check_head_against_data

    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(
        osp.join(
            REPO,
            'configs',
            'segmentation',
            'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
        )
    )
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)

    class Data:
        metainfo = dict(
            classes=tuple(
                str(i) for i in range(model.decode_head.num_classes + 1)
            )
        )

    with pytest.raises(HeadDataMismatchError) as exc:
        check_head_against_data(model, Data(), 'train_dataloader')
    msg = str(exc.value)
    assert 'model.decode_head.num_classes=' in msg
    assert 'model.auxiliary_head.num_classes=' in msg
    Data.metainfo = dict(classes=Data.metainfo['classes'][:-1])
    check_head_against_data(copy.deepcopy(model), Data(), 'train_dataloader')

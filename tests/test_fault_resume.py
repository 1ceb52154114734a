"""Issue 19, case 4: classification ``--resume`` is exact. A run of the
classification demo config (C; random crop and flip drawn from numpy's
global state in the main process) killed with SIGKILL in epoch 5 of 6 and
resumed ends with an ``epoch_6.pth`` equal, tensor for tensor, to the
uninterrupted run's."""

import os.path as osp
import sys

import torch

import lspt_mm  # noqa: F401
from lspt_mm.models.checkpoint import read_checkpoint

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from fault_cases import (  # noqa: E402
    DEMO_C,
    REPO,
    demo_options,
    kill_at_marker,
    make_small_cub,
    start_paused_child,
)

sys.path.insert(0, osp.join(REPO, 'tools'))
import train  # noqa: E402  (tools/train.py)


def test_sigkill_in_epoch_5_then_resume_gives_the_uninterrupted_weights(
    tmp_path,
):
    data_root = make_small_cub(tmp_path / 'cub')
    # one iteration per epoch (24 training images): quick
    opts = demo_options(
        data_root, epochs=6, **{'train_dataloader.batch_size': 24}
    )
    killed = str(tmp_path / 'killed')
    marker = str(tmp_path / 'in_epoch_5')
    # the run to kill starts first (a separate process), the uninterrupted
    # one trains here meanwhile
    child = start_paused_child(
        'iter:5:1', marker, [DEMO_C, '--work-dir', killed, *opts]
    )
    full = str(tmp_path / 'full')
    train.main([DEMO_C, '--work-dir', full, *opts])
    kill_at_marker(child, marker)  # in epoch 5, before its iteration
    with open(osp.join(killed, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == 'epoch_4.pth'
    train.main([DEMO_C, '--work-dir', killed, '--resume', *opts])
    a = read_checkpoint(osp.join(full, 'epoch_6.pth'))['state_dict']
    b = read_checkpoint(osp.join(killed, 'epoch_6.pth'))['state_dict']
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

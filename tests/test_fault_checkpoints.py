"""Issue 19, cases 1 and 7: checkpoint rotation never leaves a run without
a checkpoint (a real SIGKILL during a save, a full disk), and a plain pickle
file is refused like other unsafe checkpoints.

Case 1: classification keeps one checkpoint (``max_keep_ckpts=1``); the old
order deleted ``epoch_2.pth`` before writing ``epoch_3.pth``, so a kill or
ENOSPC during that write left ``last_checkpoint`` naming a deleted file.
"""

import errno
import os
import os.path as osp
import pickle
import sys

import pytest
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


def load_test_tool():
    """tools/test.py (``test`` is also the name of a stdlib package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'lspt_test_tool', osp.join(REPO, 'tools', 'test.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_small_cub(tmp_path_factory.mktemp('cub'))


def pointer(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def assert_resumes_to_epoch_3(work_dir, data_root):
    """``last_checkpoint`` names a complete ``epoch_2.pth``, and
    ``--resume`` trains on to ``epoch_3.pth``."""
    ckpt = pointer(work_dir)
    assert osp.basename(ckpt) == 'epoch_2.pth' and osp.isfile(ckpt)
    assert read_checkpoint(ckpt)['meta']['epoch'] == 2
    train.main(
        [
            DEMO_C,
            '--work-dir',
            work_dir,
            '--resume',
            *demo_options(data_root, epochs=3),
        ]
    )
    assert osp.basename(pointer(work_dir)) == 'epoch_3.pth'
    assert read_checkpoint(pointer(work_dir))['meta']['epoch'] == 3
    # rotation (max_keep_ckpts=1) still deletes the older file afterwards
    assert not osp.exists(osp.join(work_dir, 'epoch_2.pth'))


def test_sigkill_during_a_save_keeps_the_previous_checkpoint(
    data_root, tmp_path
):
    work_dir = str(tmp_path / 'work')
    marker = str(tmp_path / 'saving')
    child = start_paused_child(
        'save:epoch_3.pth',
        marker,
        [DEMO_C, '--work-dir', work_dir, *demo_options(data_root, epochs=3)],
    )
    kill_at_marker(child, marker)  # while .epoch_3.pth.XXXX.tmp exists
    names = os.listdir(work_dir)
    assert any(n.startswith('.epoch_3.pth.') for n in names), names
    assert 'epoch_3.pth' not in names
    assert_resumes_to_epoch_3(work_dir, data_root)
    # the temporary file of the killed save was cleaned up
    assert not any(n.startswith('.epoch_3.pth.') for n in os.listdir(work_dir))


def test_full_disk_during_a_save_deletes_nothing(
    data_root, tmp_path, monkeypatch
):
    from lspt_mm.engine import checkpoint_hook

    real = checkpoint_hook.atomic_write_bytes

    def no_space(path, data):
        if osp.basename(path) == 'epoch_3.pth':
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(path, data)

    work_dir = str(tmp_path / 'work')
    monkeypatch.setattr(checkpoint_hook, 'atomic_write_bytes', no_space)
    with pytest.raises(SystemExit) as exc:  # tools/train.py: status 1
        train.main(
            [
                DEMO_C,
                '--work-dir',
                work_dir,
                *demo_options(data_root, epochs=3),
            ]
        )
    msg = str(exc.value.code)
    assert 'No space left on device' in msg and 'Nothing was deleted' in msg
    assert osp.join(work_dir, 'epoch_2.pth') in msg
    monkeypatch.setattr(checkpoint_hook, 'atomic_write_bytes', real)
    assert_resumes_to_epoch_3(work_dir, data_root)


def test_plain_pickle_checkpoint_is_refused_by_test_tool(data_root, tmp_path):
    path = str(tmp_path / 'model.pth')
    with open(path, 'wb') as f:  # protocol 4 (default) and 2 alike
        pickle.dump({'state_dict': {'w': [1.0, 2.0]}}, f)
    with pytest.raises(SystemExit) as exc:
        load_test_tool().main(
            [
                DEMO_C,
                path,
                '--work-dir',
                str(tmp_path / 'w'),
                *demo_options(data_root, epochs=1),
            ]
        )
    msg = exc.value.code
    assert isinstance(msg, str)  # printed alone, exit status 1
    assert path in msg and 'plain pickle file' in msg
    assert 'Refusing to load' in msg
    # a legacy (non-zip) torch.save file is still read
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(
        {'w': torch.ones(2)}, legacy, _use_new_zipfile_serialization=False
    )
    assert torch.equal(read_checkpoint(legacy)['w'], torch.ones(2))

"""Issue 28, nothing silent part three: 13 fault cases (docs/faults.md,
sections 9-13). Each case is a clear error naming the file, key or option,
before any work is spent, or the right behaviour."""

import argparse
import errno
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import cv2
import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.datasets.errors import DataFileError
from lspt_mm.engine.checkpoint_hook import pointer_report
from lspt_mm.engine.runner_utils import CfgOptionsAction
from lspt_mm.engine.work_dir_lock import (
    WorkDirLock,
    WorkDirLockedError,
    WorkDirUnwritableError,
)
from lspt_mm.models.checkpoint import NotACheckpointError, read_checkpoint
from lspt_mm.models.checkpoint_digest import (
    DIGEST_KEY,
    CheckpointCorruptError,
    tensor_digest,
)

from mmengine.config import Config

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from fault_cases import DEMO_C, REPO, demo_options, make_small_cub  # noqa: E402
from test_camvid import make_camvid  # noqa: E402
from test_fault_checkpoints import load_test_tool  # noqa: E402

sys.path.insert(0, osp.join(REPO, 'tools'))
import train  # noqa: E402  (tools/train.py)


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """The classification demo trained 2 epochs: (data_root, work_dir)."""
    root = tmp_path_factory.mktemp('p3')
    data = make_small_cub(root / 'cub')
    work = str(root / 'work')
    train.main([DEMO_C, '--work-dir', work, *demo_options(data, epochs=2)])
    return data, work


def demo_config(data, epochs=2):
    """The demo config with the options of :func:`demo_options` merged, as
    a user's script would (``Config.merge_from_dict``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    cfg = Config.fromfile(DEMO_C)
    opts = parser.parse_args(demo_options(data, epochs)).cfg_options
    cfg.merge_from_dict(opts)
    return cfg


def ckpt(work):
    return osp.join(work, 'epoch_2.pth')


def overwrite_tensor_bytes(src, dst, n=64):
    """``dst``: ``src`` with ``n`` bytes inside its largest tensor record
    overwritten (the zip's records are not checked by torch)."""
    shutil.copy(src, dst)
    with zipfile.ZipFile(dst) as z:
        info = max(
            (i for i in z.infolist() if '/data/' in i.filename),
            key=lambda i: i.file_size,
        )
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    with open(dst, 'r+b') as f:
        f.seek(start + info.file_size // 2)
        f.write(b'\x7f' * n)
    return dst


def truncated(src, dst):
    shutil.copy(src, dst)
    with open(dst, 'r+b') as f:
        f.truncate(osp.getsize(src) // 2)
    return dst


# ------------------------------------------------- 1, 2: bytes, truncation
def test_saved_checkpoints_carry_a_digest_plain_torch_still_loads(run):
    _, work = run
    raw = torch.load(ckpt(work), map_location='cpu', weights_only=False)
    digest = raw['meta'][DIGEST_KEY]
    assert digest['tensors'] == tensor_digest(raw['state_dict'])
    assert read_checkpoint(ckpt(work))['meta']['epoch'] == 2


def test_changed_bytes_are_refused_at_every_door(run, tmp_path, capsys):
    data, work = run
    bad = overwrite_tensor_bytes(ckpt(work), str(tmp_path / 'bad.pth'))
    with pytest.raises(CheckpointCorruptError, match='bad.pth'):
        read_checkpoint(bad)
    # tools/test.py: one line, exit status 1, no metric
    with pytest.raises(SystemExit) as exit_:
        load_test_tool().main(
            [DEMO_C, bad, '--work-dir', str(tmp_path / 't')]
            + demo_options(data, epochs=2)
        )
    assert 'is corrupt' in str(exit_.value) and 'bad.pth' in str(exit_.value)
    # load_from and --resume of train.py
    opts = demo_options(data, epochs=3)
    for how in ([], ['--resume', bad]):
        extra = [] if how else [f'load_from={bad}']
        with pytest.raises(SystemExit, match='is corrupt'):
            train.main(
                [DEMO_C, '--work-dir', str(tmp_path / 'w'), *how]
                + opts
                + extra
            )
    # mmpretrain's get_model / inferencer door
    from mmpretrain import get_model

    cfg = demo_config(data)
    with pytest.raises(CheckpointCorruptError, match='bad.pth'):
        get_model(cfg, pretrained=bad)
    # a file without a digest (a published or hand-made one) loads
    torch.save({'state_dict': {'w': torch.ones(3)}}, tmp_path / 'plain.pth')
    assert read_checkpoint(str(tmp_path / 'plain.pth'))['state_dict']


def test_mmseg_init_model_refuses_changed_bytes(tmp_path):
    from lspt_mm.models.checkpoint_digest import record_digest

    from mmseg.apis import init_model

    seg = osp.join(
        REPO,
        'configs',
        'segmentation',
        'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
    )
    model = init_model(seg, device='cpu')
    checkpoint = record_digest(
        {'meta': {}, 'state_dict': dict(model.state_dict())}
    )
    good = str(tmp_path / 'seg.pth')
    torch.save(checkpoint, good)
    init_model(seg, good, device='cpu')  # the intact file loads
    bad = overwrite_tensor_bytes(good, str(tmp_path / 'seg_bad.pth'))
    with pytest.raises(CheckpointCorruptError, match='seg_bad.pth'):
        init_model(seg, bad, device='cpu')


def test_truncated_checkpoint_names_the_file(run, tmp_path):
    data, work = run
    cut = truncated(ckpt(work), str(tmp_path / 'cut.pth'))
    with pytest.raises(NotACheckpointError, match='cut.pth.*incomplete'):
        read_checkpoint(cut)
    with pytest.raises(SystemExit, match='cut.pth.*incomplete'):
        load_test_tool().main(
            [DEMO_C, cut, '--work-dir', str(tmp_path / 't')]
            + demo_options(data, epochs=2)
        )
    with pytest.raises(SystemExit, match='cut.pth.*incomplete'):
        train.main(
            [DEMO_C, '--work-dir', str(tmp_path / 'w'), '--resume', cut]
            + demo_options(data, epochs=3)
        )


# ----------------------------------------------------- 3-6: resume
def resume(work, data, tmp_path, **extra):
    target = str(tmp_path / 'resumed')
    shutil.copytree(work, target, ignore=shutil.ignore_patterns('run.lock'))
    with open(osp.join(target, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(target, 'epoch_2.pth'))
    args = [DEMO_C, '--work-dir', target, '--resume']
    train.main(args + demo_options(data, **extra))
    return target


def test_resume_past_the_schedule_is_an_error(run, tmp_path):
    data, work = run
    with pytest.raises(SystemExit) as exit_:
        resume(work, data, tmp_path, epochs=2, **{'train_cfg.max_epochs': 1})
    msg = str(exit_.value)
    assert 'epoch 2' in msg and 'train_cfg.max_epochs=1' in msg


def test_resume_with_another_lr_names_the_overridden_setting(run, tmp_path):
    data, work = run
    extra = {'optim_wrapper.optimizer.lr': 0.5}
    with pytest.raises(SystemExit) as exit_:
        resume(work, data, tmp_path, epochs=2, **extra)
    msg = str(exit_.value)
    assert 'optim_wrapper.optimizer.lr' in msg and '0.5 in the config' in msg
    assert 'load_from=' in msg  # how to keep the new one


@pytest.mark.parametrize(
    'content,what',
    [(b'', 'is empty'), (b'\xff\xfe\x00x', 'cannot be read as text')],
)
def test_bad_last_checkpoint_pointer_is_named(run, tmp_path, content, what):
    data, work = run
    target = str(tmp_path / 'w')
    shutil.copytree(work, target, ignore=shutil.ignore_patterns('run.lock'))
    with open(osp.join(target, 'last_checkpoint'), 'wb') as f:
        f.write(content)
    with pytest.raises(SystemExit) as exit_:
        train.main(
            [DEMO_C, '--work-dir', target, '--resume']
            + demo_options(data, epochs=3)
        )
    msg = str(exit_.value)
    assert 'last_checkpoint' in msg and what in msg
    assert osp.join(target, 'epoch_2.pth') in msg  # what to resume instead


def test_save_failure_report_reads_the_real_pointer(tmp_path):
    work = tmp_path / 'w'
    work.mkdir()
    assert 'no checkpoint saved yet' in pointer_report(str(work))
    (work / 'epoch_4.pth').write_bytes(b'x')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_4.pth'))
    assert pointer_report(str(work)).endswith('epoch_4.pth, which exists')
    (work / 'last_checkpoint').write_text(str(tmp_path / 'old/epoch_9.pth'))
    assert 'epoch_9.pth, which is MISSING' in pointer_report(str(work))


# ------------------------------------------------- 7-10: runs, work dirs
HOLDER = """
import sys, time
from lspt_mm.engine.work_dir_lock import WorkDirLock
WorkDirLock(sys.argv[1]).acquire()
print('locked', flush=True)
time.sleep(600)
"""


def test_lock_holds_through_runner_from_cfg(run, tmp_path):
    from mmengine.runner import Runner

    data, _ = run
    work = str(tmp_path / 'w')
    holder = subprocess.Popen(
        [sys.executable, '-c', HOLDER, work],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout.readline().strip() == 'locked'
        cfg = demo_config(data, epochs=2)
        cfg.work_dir = work
        runner = Runner.from_cfg(cfg)  # mmengine's plain Runner
        with pytest.raises(WorkDirLockedError, match='in use by another run'):
            runner.train()
        assert not any(n.endswith('.pth') for n in os.listdir(work))
    finally:
        holder.kill()
        holder.wait()


def test_full_disk_at_start_names_the_work_dir(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(os, 'fsync', full)
    work = str(tmp_path / 'w')
    with pytest.raises(WorkDirUnwritableError) as err:
        WorkDirLock(work).acquire()
    assert work in str(err.value) and 'No space left' in str(err.value)


def test_typo_in_a_hook_option_is_refused_when_the_runner_is_built(
    run, tmp_path
):
    data, _ = run
    with pytest.raises(ValueError) as err:
        train.main(
            [DEMO_C, '--work-dir', str(tmp_path / 'w')]
            + demo_options(data, epochs=1)
            + ['default_hooks.checkpoint.max_keep_ckpt=1']
        )
    msg = str(err.value)
    assert 'default_hooks.checkpoint' in msg and 'max_keep_ckpt ' in msg
    assert 'did you mean max_keep_ckpts?' in msg
    assert not osp.exists(osp.join(tmp_path, 'w', 'epoch_1.pth'))


def test_cfg_options_keep_spaces_in_paths():
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    args = parser.parse_args(
        [
            '--cfg-options',
            'data_root=/data/my set',
            'lr=0.1',
            'ids=[1, 2]',
            'flag=True',
        ]
    )
    assert args.cfg_options == {
        'data_root': '/data/my set',
        'lr': 0.1,
        'ids': [1, 2],
        'flag': True,
    }
    with pytest.raises(SystemExit):  # an unquoted path with spaces
        parser.parse_args(['--cfg-options', 'data_root=/data/my', 'set'])


# ------------------------------------------------------- 11-13: data
def camvid_dataset(root, split='train'):
    from mmengine.registry import DefaultScope
    from mmseg.registry import DATASETS

    with DefaultScope.overwrite_default_scope('mmseg'):
        return _build(DATASETS, root, split)


def _build(DATASETS, root, split):
    return DATASETS.build(
        dict(
            type='CamVidDataset',
            data_root=str(root),
            split=split,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', reduce_zero_label=False),
            ],
        )
    )


def test_dangling_symlink_is_named_when_the_dataset_is_built(tmp_path):
    root = make_camvid(tmp_path / 'camvid')
    link = root / 'train' / 'f9.png'
    os.symlink(root / 'train' / 'gone.png', link)
    (root / 'trainannot' / 'f9.png').write_bytes(
        (root / 'trainannot' / 'f0.png').read_bytes()
    )
    with pytest.raises(DataFileError) as err:
        camvid_dataset(root)
    assert str(link) in str(err.value) and 'gone.png' in str(err.value)


def test_one_pixel_image_and_label_are_accepted(tmp_path):
    root = make_camvid(tmp_path / 'camvid', counts=(1, 1, 1), size=(1, 1))
    sample = camvid_dataset(root)[0]
    assert sample['gt_seg_map'].shape == (1, 1)
    assert sample['img'].shape[:2] == (1, 1)


def test_zero_byte_jpeg_says_empty_file(tmp_path):
    from mmseg.registry import TRANSFORMS

    path = tmp_path / 'a.jpg'
    path.write_bytes(b'')
    load = TRANSFORMS.build(dict(type='mmseg.CheckedLoadImageFromFile'))
    with pytest.raises(DataFileError, match=r'a\.jpg.*empty file \(0 bytes\)'):
        load(dict(img_path=str(path)))


def test_camvid_label_fault_points_to_the_camvid_checker(tmp_path):
    root = make_camvid(tmp_path / 'camvid', counts=(1, 1, 1))
    bad = np.full((42, 56), 13, np.uint8)
    cv2.imwrite(str(root / 'trainannot' / 'f0.png'), bad)
    with pytest.raises(DataFileError) as err:
        camvid_dataset(root)[0]
    msg = str(err.value)
    assert f'tools/dataset_converters/camvid.py check {root}' in msg
    assert 'lspt_mm.datasets.ade20k' not in msg


def test_torch_file_named_safetensors_says_what_it_is(tmp_path):
    from lspt_mm.models.checkpoint import load_vit_weights

    path = tmp_path / 'model.safetensors'
    torch.save({'w': torch.zeros(2)}, path)
    with pytest.raises(NotACheckpointError) as err:
        load_vit_weights(str(path))
    msg = str(err.value)
    assert 'model.safetensors' in msg and 'PyTorch checkpoint' in msg
    assert 'Rename it to .pth' in msg

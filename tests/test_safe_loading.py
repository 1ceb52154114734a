"""Loading a file never runs its code by surprise: official weights and
runner checkpoints load through torch's weights_only unpickler plus an
allow-list of what mmengine writes; anything else needs
LSPT_MM_TRUST_CHECKPOINTS=1. Every loading path is tried with a file whose
unpickling would create a marker file."""

import datetime
import os
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm import compat
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint import (
    TRUST_ENV,
    NotACheckpointError,
    UntrustedCheckpointError,
    read_checkpoint,
    safe_load,
)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


class _Marker:
    """Unpickling this creates ``path`` (stands for any code in a file)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _vit(**kwargs):
    return PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='lspt',
        num_prompts=2,
        **kwargs,
    )


@pytest.fixture
def malicious(tmp_path, monkeypatch):
    """A runner-style checkpoint of a real model with one booby-trapped
    entry; returns ``(path, marker)``."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'code_ran'
    path = str(tmp_path / 'downloaded.pth')
    torch.save(
        {
            'meta': {'note': _Marker(marker)},
            'state_dict': {
                'backbone.' + k: v for k, v in _vit().state_dict().items()
            },
        },
        path,
    )
    return path, marker


def test_read_checkpoint_does_not_run_code(malicious):
    """Before: read_checkpoint fell back to a full unpickle."""
    path, marker = malicious
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    assert not marker.exists()
    msg = str(err.value)
    assert path in msg and 'os.makedirs' in msg and TRUST_ENV in msg
    with pytest.raises(UntrustedCheckpointError):
        _vit(pretrained=path)  # the backbone's `pretrained`
    assert not marker.exists()


def test_mmengine_loaders_do_not_run_code(malicious):
    """load_from, --resume and init_cfg=Pretrained read through mmengine's
    checkpoint module (before: patched to weights_only=False)."""
    from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

    path, marker = malicious
    with pytest.raises(UntrustedCheckpointError):
        _load_checkpoint(path, map_location='cpu')
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint(_vit(), path, map_location='cpu')
    from mmengine.model.weight_init import PretrainedInit

    with pytest.raises(UntrustedCheckpointError):
        PretrainedInit(checkpoint=path)(torch.nn.Linear(2, 2))
    assert not marker.exists()


def test_trust_variable_allows_a_full_load(malicious, monkeypatch):
    path, marker = malicious
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.warns(UserWarning, match='fully unpickling'):
        ckpt = safe_load(path)
    assert marker.exists()  # the user asked for it
    assert 'backbone.prompt_method.prompts' in ckpt['state_dict']


def test_test_tool_and_resume_do_not_run_code(malicious, tmp_path):
    """tools/test.py (checkpoint read before and by the runner) and
    --resume, in subprocesses as a user runs them, on data that exists (so
    the runner gets as far as the checkpoint)."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_ade20k import make_synthetic_ade20k

    root = make_synthetic_ade20k(
        str(tmp_path / 'ade'), num_train=2, num_val=1, min_size=64, max_size=64
    )
    path, marker = malicious
    demo = osp.join(
        ROOT,
        'configs',
        'segmentation',
        'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
    )
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    env.pop(TRUST_ENV, None)
    data = [
        f'{s}_dataloader.dataset.data_root={root}'
        for s in ('train', 'val', 'test')
    ]
    for args in (
        ['tools/test.py', demo, path],
        ['tools/train.py', demo, '--resume', path],
    ):
        proc = subprocess.run(
            [sys.executable]
            + args
            + ['--work-dir', str(tmp_path / 'w'), '--cfg-options']
            + data,
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert f"error: Refusing to unpickle '{path}'" in proc.stderr
        assert TRUST_ENV in proc.stderr
        assert not marker.exists()


def _message_hub_state():
    """The parts of a runner checkpoint that are not tensors, as mmengine
    0.10 writes them: HistoryBuffer (numpy arrays, its statistics methods
    pickled as getattr(HistoryBuffer, name)), numpy scalars."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance('test_safe_loading')
    for value in (3.5, 2.25):
        hub.update_scalar('train/loss', value)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('best_score', np.float32(0.75))
    return hub.state_dict()


def test_runner_checkpoint_loads_without_full_unpickle(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    state = {
        'meta': {'epoch': 1, 'iter': 4, 'seed': 0},
        'state_dict': _vit().state_dict(),
        'message_hub': _message_hub_state(),
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]},
        'rng_state': {'torch': torch.get_rng_state()},
    }
    path = str(tmp_path / 'iter_4.pth')
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError):  # plain weights_only refuses
        torch.load(path, weights_only=True)
    ours = safe_load(path)
    full = torch.load(path, weights_only=False)
    loss, ref = (
        c['message_hub']['log_scalars']['train/loss'] for c in (ours, full)
    )
    assert np.array_equal(loss.data[0], ref.data[0]) and loss.mean() == 2.875
    assert loss.statistics('current') == 2.25
    info = ours['message_hub']['runtime_info']
    assert info['eta'] == 12.5 and type(info['eta']) is np.float64
    assert type(info['best_score']) is np.float32
    assert ours['state_dict']._metadata == full['state_dict']._metadata
    for k, v in full['state_dict'].items():
        assert torch.equal(ours['state_dict'][k], v)


@pytest.mark.parametrize('name', ['__init__', 'update', '__class__'])
def test_getattr_is_not_a_way_around_the_allow_list(tmp_path, name):
    """HistoryBuffer needs getattr(HistoryBuffer, 'mean'); nothing else may
    be fetched by attribute."""
    from mmengine.logging import HistoryBuffer

    class Fetch:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, name))

    path = str(tmp_path / 'fetch.pth')
    torch.save({'x': Fetch()}, path)
    with pytest.raises(UntrustedCheckpointError, match=f"'{name}'"):
        safe_load(path)


def test_other_objects_need_the_trust_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    path = str(tmp_path / 'dated.pth')
    torch.save({'date': datetime.date(2024, 1, 2)}, path)
    with pytest.raises(UntrustedCheckpointError, match='datetime.date'):
        safe_load(path)
    monkeypatch.setenv(TRUST_ENV, 'yes')
    with pytest.warns(UserWarning):
        assert safe_load(path)['date'] == datetime.date(2024, 1, 2)


@pytest.mark.parametrize(
    'content',
    [
        b'hello world\n',
        b'version https://git-lfs.github.com/spec/v1\noid sha256:0\n',
        b'<html>404</html>',
        b'',
    ],
)
def test_text_file_is_not_a_pytorch_checkpoint(tmp_path, content):
    """Before: 'Cannot read checkpoint ...: 101' (KeyError from the
    unpickler) or a full unpickle attempt."""
    path = tmp_path / 'weights.pth'
    path.write_bytes(content)
    with pytest.raises(
        NotACheckpointError, match='is not a PyTorch checkpoint'
    ):
        read_checkpoint(str(path))
    with pytest.raises(NotACheckpointError):
        _vit(pretrained=str(path))


def test_legacy_format_and_plain_weights_load(tmp_path):
    sd = _vit().state_dict()
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'model': sd}, legacy, _use_new_zipfile_serialization=False)
    loaded = read_checkpoint(legacy)['model']
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())


def test_compat_patch_is_scoped_and_version_guarded(monkeypatch):
    import mmengine
    import mmengine.runner.checkpoint as ckpt

    assert isinstance(ckpt.torch, compat._TorchWithSafeLoad)
    assert ckpt.torch.save is torch.save  # everything but load is torch's
    assert ckpt.load_url is compat._safe_load_url
    assert torch.load is not ckpt.torch.load  # torch itself is untouched
    assert 'safe_load' in compat.APPLIED
    # another mmengine line is left alone, and says so once
    monkeypatch.setattr(ckpt, 'torch', torch)
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    compat.ensure_safe_checkpoint_loading()
    assert ckpt.torch is torch and 'safe_load_skipped' in compat.APPLIED
    monkeypatch.setattr(
        compat,
        'APPLIED',
        [a for a in compat.APPLIED if a != 'safe_load_skipped'],
    )

"""What older torch versions lack is guarded where it is used (issue 29,
item 2), tested here by taking the API away on this torch:

- ``torch.serialization.safe_globals`` (torch >= 2.5) and its
  ``(object, name)`` entries (torch >= 2.6): without them checkpoints are
  read by lspt_mm's restricted unpickler, which stays as safe as torch's
  ``weights_only`` loader (the booby-trapped files of
  tests/test_safe_loading.py run no code) and loads what it loads;
- ``torch.compiler.is_compiling`` (torch >= 2.3; ``torch.compiler`` itself
  is absent in 2.0): LSPT's forward falls back to ``torch._dynamo``'s;
- ``torch.utils.flop_counter`` (torch >= 2.1): the FLOP counter says which
  torch it needs.
"""

import datetime
import os
import pickle

import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm import compat
from lspt_mm.models import PromptedViT
from lspt_mm.models import checkpoint as ckpt_mod
from lspt_mm.models.checkpoint import (
    TRUST_ENV,
    UntrustedCheckpointError,
    native_allow_list,
    read_checkpoint,
    safe_load,
    safe_load_url,
)
from lspt_mm.models.safe_unpickler import restricted_pickle_module

ARCH = dict(embed_dims=32, num_layers=2, num_heads=2, feedforward_channels=64)


def _vit(**kwargs):
    return PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='lspt',
        num_prompts=2,
        **kwargs,
    )


class _Marker:
    """Unpickling this creates ``path`` (stands for any code in a file)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def _user_allowed_globals_2_5():
    """torch 2.5.1's ``_get_user_allowed_globals``: every entry's
    ``__module__`` (a tuple entry raises AttributeError)."""
    rc = {}
    for f in torch.serialization.get_safe_globals():
        module, name = f.__module__, f.__name__
        rc[f'{module}.{name}'] = f
    return rc


@pytest.fixture(params=['torch 2.0-2.4', 'torch 2.5'])
def old_torch(request, monkeypatch):
    """This torch with its allow-list API made as an older one's:
    no ``safe_globals`` (2.0 - 2.4), or 2.5's, which takes no
    ``(object, name)`` entries."""
    monkeypatch.delenv(TRUST_ENV, raising=False)
    if request.param == 'torch 2.0-2.4':
        monkeypatch.delattr(torch.serialization, 'safe_globals', raising=False)
    else:
        monkeypatch.setattr(
            torch._weights_only_unpickler,
            '_get_user_allowed_globals',
            _user_allowed_globals_2_5,
            raising=False,
        )
    calls = []
    real = ckpt_mod._note_restricted_unpickler
    monkeypatch.setattr(
        ckpt_mod,
        '_note_restricted_unpickler',
        lambda: calls.append(1) or real(),
    )
    assert not native_allow_list()
    yield calls
    assert calls, 'the restricted unpickler was not used'


def test_this_torch_uses_its_own_weights_only_loader():
    assert native_allow_list() == (
        ckpt_mod._torch_version() >= ckpt_mod.NATIVE_ALLOW_LIST_TORCH
    )


def test_torch_2_5_style_allow_list_fails_as_reported(monkeypatch):
    """The 2.5.1 failure of the issue ("'tuple' object has no attribute
    '__module__'") is what our allow-list did to torch 2.5."""
    if not hasattr(torch.serialization, 'safe_globals'):
        pytest.skip(f'torch {torch.__version__} has no safe_globals')
    monkeypatch.setattr(
        torch._weights_only_unpickler,
        '_get_user_allowed_globals',
        _user_allowed_globals_2_5,
    )
    with torch.serialization.safe_globals(
        ckpt_mod.runner_checkpoint_globals()
    ):
        with pytest.raises(AttributeError, match="'tuple' object has no"):
            torch._weights_only_unpickler._get_user_allowed_globals()


@pytest.fixture
def malicious(tmp_path):
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


@pytest.mark.parametrize('legacy', [False, True])
def test_old_torch_refuses_code(old_torch, malicious, tmp_path, legacy):
    path, marker = malicious
    if legacy:  # the pre-1.6 format goes through pickle_module.load too
        path = str(tmp_path / 'legacy.pth')
        torch.save(
            {'meta': _Marker(marker), 'state_dict': _vit().state_dict()},
            path,
            _use_new_zipfile_serialization=False,
        )
    with pytest.raises(UntrustedCheckpointError) as err:
        read_checkpoint(path)
    assert 'os.makedirs' in str(err.value) and TRUST_ENV in str(err.value)
    with pytest.raises(UntrustedCheckpointError):
        _vit(pretrained=path)
    from mmengine.runner.checkpoint import _load_checkpoint

    with pytest.raises(UntrustedCheckpointError):
        _load_checkpoint(path, map_location='cpu')
    assert not marker.exists()


def test_old_torch_loads_weights_and_runner_checkpoints(old_torch, tmp_path):
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance('test_torch_versions')
    for value in (3.5, 2.25):
        hub.update_scalar('train/loss', value)
    hub.update_info('eta', np.float64(12.5))
    sd = _vit().state_dict()
    state = {
        'meta': {'epoch': 1, 'seed': 0, 'when': b'bytes', 'ids': {1, 2}},
        'state_dict': sd,
        'message_hub': hub.state_dict(),
        'param': torch.nn.Parameter(torch.ones(2)),
        'rng_state': {'torch': torch.get_rng_state()},
    }
    path = str(tmp_path / 'iter_4.pth')
    torch.save(state, path)
    ours = safe_load(path)
    full = torch.load(path, weights_only=False)
    assert ours['meta'] == full['meta']
    assert ours['state_dict']._metadata == full['state_dict']._metadata
    assert all(torch.equal(ours['state_dict'][k], v) for k, v in sd.items())
    assert isinstance(ours['param'], torch.nn.Parameter)
    loss = ours['message_hub']['log_scalars']['train/loss']
    assert loss.mean() == 2.875 and loss.statistics('current') == 2.25
    eta = ours['message_hub']['runtime_info']['eta']
    assert eta == 12.5 and type(eta) is np.float64
    # a plain state dict, the legacy format, and the backbone's pretrained=
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'model': sd}, legacy, _use_new_zipfile_serialization=False)
    loaded = read_checkpoint(legacy)['model']
    assert all(torch.equal(loaded[k], v) for k, v in sd.items())
    plain = str(tmp_path / 'plain.pth')
    torch.save({k: v for k, v in sd.items() if 'prompt' not in k}, plain)
    vit = _vit(pretrained=plain)
    vit.init_weights()
    assert torch.equal(vit.cls_token, sd['cls_token'])


def test_old_torch_getattr_and_other_objects(old_torch, tmp_path, monkeypatch):
    from mmengine.logging import HistoryBuffer

    class Fetch:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__init__'))

    path = str(tmp_path / 'fetch.pth')
    torch.save({'x': Fetch()}, path)
    with pytest.raises(UntrustedCheckpointError, match="'__init__'"):
        safe_load(path)
    dated = str(tmp_path / 'dated.pth')
    torch.save({'date': datetime.date(2024, 1, 2)}, dated)
    with pytest.raises(UntrustedCheckpointError, match='datetime.date'):
        safe_load(dated)
    monkeypatch.setenv(TRUST_ENV, '1')
    with pytest.warns(UserWarning, match='fully unpickling'):
        assert safe_load(dated)['date'] == datetime.date(2024, 1, 2)


class _CallResult:
    """Pickles as ``getattr(HistoryBuffer, 'mean')``: an allowed call whose
    result is a function."""

    def __call__(self, *args):
        pass

    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (getattr, (HistoryBuffer, 'mean'))


class _CallsTheResult:
    def __reduce__(self):
        return (_CallResult(), (None,))


class _SetsStateOnAFunction:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer

        return (
            getattr,
            (HistoryBuffer, 'mean'),
            (None, {'__defaults__': (1,)}),
        )


@pytest.mark.parametrize('torch_version', ['this torch', 'old torch'])
@pytest.mark.parametrize('payload', [_CallsTheResult, _SetsStateOnAFunction])
def test_allowed_results_are_not_a_way_around(
    tmp_path, monkeypatch, payload, torch_version
):
    """Calling what an allowed call returned, or setting state on a
    function, is refused by torch's loader and by ours alike."""
    from mmengine.logging import HistoryBuffer

    monkeypatch.delenv(TRUST_ENV, raising=False)
    if torch_version == 'old torch':
        monkeypatch.delattr(torch.serialization, 'safe_globals', raising=False)
    path = str(tmp_path / 'evil.pth')
    torch.save({'x': payload()}, path)
    defaults = HistoryBuffer.mean.__defaults__
    with pytest.raises(pickle.UnpicklingError):
        safe_load(path)
    assert HistoryBuffer.mean.__defaults__ == defaults


def test_restricted_unpickler_imports_nothing():
    """A global of the file's choosing is refused before its module is
    imported (pickle's own find_class would import it)."""
    import sys

    module = restricted_pickle_module()
    assert module.loads(pickle.dumps({'a': [1, 2.0]}, protocol=2)) == {
        'a': [1, 2.0]
    }
    evil = b'\x80\x02cxml.dom.minidom\nparseString\nq\x00.'
    monkeypatch_free = sys.modules.pop('xml.dom.minidom', None)
    try:
        with pytest.raises(pickle.UnpicklingError, match='xml.dom.minidom'):
            module.loads(evil)
        assert 'xml.dom.minidom' not in sys.modules
    finally:
        if monkeypatch_free is not None:
            sys.modules['xml.dom.minidom'] = monkeypatch_free


def test_safe_load_url_on_old_torch(old_torch, tmp_path, monkeypatch):
    """mmengine's load_url (http(s)://, open-mmlab://) reads the download
    as files are read, on old torch too, and caches it where torch.hub
    does."""
    import shutil

    sd = {k: v for k, v in _vit().state_dict().items()}
    source = str(tmp_path / 'src.pth')
    torch.save(sd, source)
    downloads = []

    def download(url, dst, hash_prefix=None, progress=True):
        downloads.append(url)
        shutil.copy(source, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download)
    url = 'https://example.org/weights/vit-1234abcd.pth'
    for _ in range(2):
        got = safe_load_url(url, model_dir=str(tmp_path / 'hub'))
        assert all(torch.equal(got[k], v) for k, v in sd.items())
    assert downloads == [url]  # the second read is the cached copy
    assert os.path.isfile(tmp_path / 'hub' / 'vit-1234abcd.pth')
    marker = tmp_path / 'code_ran'
    torch.save({'x': _Marker(marker)}, source)
    with pytest.raises(UntrustedCheckpointError, match='os.makedirs'):
        safe_load_url(url + '?2', model_dir=str(tmp_path / 'hub2'))
    assert not marker.exists()


# ------------------------------------------------------- torch.compiler
def test_is_compiling_without_torch_compiler(monkeypatch):
    """torch 2.0 has no torch.compiler, 2.1 - 2.2 no
    torch.compiler.is_compiling: torch._dynamo's is used, or False when
    dynamo was never imported (nothing can be compiling then)."""
    import sys

    own = getattr(getattr(torch, 'compiler', None), 'is_compiling', None)
    if own is not None:  # torch >= 2.3
        assert compat.resolve_is_compiling() is own
    monkeypatch.delattr(torch, 'compiler', raising=False)
    fake = type(sys)('torch._dynamo')
    fake.is_compiling = lambda: 'dynamo says'
    monkeypatch.setitem(sys.modules, 'torch._dynamo', fake)
    assert compat.resolve_is_compiling()() == 'dynamo says'
    monkeypatch.delitem(sys.modules, 'torch._dynamo')
    assert compat.resolve_is_compiling()() is False


def test_lspt_forward_without_torch_compiler(monkeypatch):
    """As on torch 2.0 (no torch.compiler) before dynamo is imported."""
    import sys

    monkeypatch.delattr(torch, 'compiler', raising=False)
    monkeypatch.delitem(sys.modules, 'torch._dynamo', raising=False)
    monkeypatch.setattr(compat, 'is_compiling', compat.resolve_is_compiling())
    vit = _vit().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first = vit(x)[0]
        again = vit(x)[0]  # the cached input terms
    assert torch.equal(first, again)
    vit.train()
    vit(x)[0].sum().backward()
    assert vit.prompt_method.prompts.grad is not None


# -------------------------------------------------------- flop counter
def test_flop_counter_names_the_torch_it_needs(monkeypatch):
    import sys

    import lspt_mm.analysis.flops as flops

    monkeypatch.setitem(sys.modules, 'torch.utils.flop_counter', None)
    monkeypatch.setattr(torch, '__version__', '2.0.1')
    with pytest.raises(ImportError, match=r'torch >= 2\.1.*2\.0\.1'):
        flops.flop_counter()

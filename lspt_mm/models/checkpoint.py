"""Reading pretrained ViT weights: official MAE / MoCo v3 / DINOv2 files,
Hugging Face DINOv2 state dicts, timm-style state dicts and mmpretrain
checkpoints, converted to mmpretrain's ViT names."""

import os
import os.path as osp
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict

import torch

from .checkpoint_digest import CheckpointCorruptError, verify_digest

DOWNLOADS = {
    'MAE ViT-B/16': 'https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth',
    'MoCo v3 ViT-B/16': 'https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/'
    'linear-vit-b-300ep.pth.tar',
}
DOWNLOADS.update(
    {  # official DINOv2 backbones, with and without registers
        f'DINOv2 ViT-{size.upper()}/14{reg.replace("_", " ")}': f'https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{size}14/'
        f'dinov2_vit{size}14{reg}_pretrain.pth'
        for size in ('s', 'b', 'l')
        for reg in ('', '_reg4')
    }
)

# timm / MAE / MoCo v3 name -> mmpretrain VisionTransformer name
_TIMM_TO_MMPRETRAIN = [
    (r'^patch_embed\.proj\.', 'patch_embed.projection.'),
    (r'^blocks\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^blocks\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^blocks\.(\d+)\.attn\.', r'layers.\1.attn.'),
    (r'^blocks\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^blocks\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^norm\.', 'ln1.'),
    (r'^(cls_token|pos_embed)$', r'\1'),
]
# keys of the official files that are not part of the encoder
_DROPPED = re.compile(r'^(head\.|fc_norm\.|decoder|mask_token)')

# official DINOv2 (facebookresearch/dinov2 hub files): timm names plus
# LayerScale ``ls1/ls2.gamma`` and ``register_tokens`` (reg4 files)
_DINOV2_TO_MMPRETRAIN = [
    (r'^blocks\.(\d+)\.ls1\.gamma$', r'layers.\1.attn.gamma1.weight'),
    (r'^blocks\.(\d+)\.ls2\.gamma$', r'layers.\1.ffn.gamma2.weight'),
    (r'^register_tokens$', 'register_tokens'),
] + _TIMM_TO_MMPRETRAIN

# Hugging Face Dinov2Model / Dinov2WithRegistersModel (``dinov2.`` stripped);
# query / key / value are concatenated into ``qkv`` separately
_DINOV2_HF_TO_MMPRETRAIN = [
    (r'^embeddings\.cls_token$', 'cls_token'),
    (r'^embeddings\.position_embeddings$', 'pos_embed'),
    (r'^embeddings\.register_tokens$', 'register_tokens'),
    (
        r'^embeddings\.patch_embeddings\.projection\.',
        'patch_embed.projection.',
    ),
    (r'^encoder\.layer\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (
        r'^encoder\.layer\.(\d+)\.attention\.output\.dense\.',
        r'layers.\1.attn.proj.',
    ),
    (
        r'^encoder\.layer\.(\d+)\.layer_scale1\.lambda1$',
        r'layers.\1.attn.gamma1.weight',
    ),
    (r'^encoder\.layer\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^encoder\.layer\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^encoder\.layer\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (
        r'^encoder\.layer\.(\d+)\.layer_scale2\.lambda1$',
        r'layers.\1.ffn.gamma2.weight',
    ),
    (r'^layernorm\.', 'ln1.'),
]
_HF_QKV = re.compile(
    r'^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.'
    r'(weight|bias)$'
)
# parts of the published files that belong to no encoder, per layout (after
# the prefixes convert_state_dict strips); any other key a conversion leaves
# out is a foreign tensor (checkpoint_policy refuses the file)
_NON_ENCODER = {
    'timm': _DROPPED,
    'mocov3': _DROPPED,
    'dinov2': _DROPPED,
    # MoCo v3 pre-training: momentum encoder, predictor, projector head
    'mocov3_pretrain': re.compile(
        r'^module\.(momentum_encoder|predictor)\.|^(head\.|fc_norm\.)'
    ),
    # Hugging Face: the mask token, the classifier of *ForImageClassification
    'dinov2_hf': re.compile(
        r'^(dinov2\.)?embeddings\.mask_token$|'
        r'^classifier\.'
    ),
}
# DINOv2 ViT-g's SwiGLU feed-forward (official ``mlp.w12`` / ``mlp.w3``,
# Hugging Face ``mlp.weights_in`` / ``mlp.weights_out``)
_SWIGLU = re.compile(
    r'^(module\.)?(blocks\.\d+\.mlp\.(w12|w3|w1|w2)\.|'
    r'(dinov2\.)?encoder\.layer\.\d+\.mlp\.'
    r'(weights_in|weights_out|w12|w3)\.)'
)


def missing_file_message(path):
    links = '\n'.join(f'  {name}: {url}' for name, url in DOWNLOADS.items())
    return (
        f'Pretrained ViT weights not found: {path!r}. Download the '
        f"checkpoint and put it at that path (or set the backbone's "
        f'`pretrained` option to where it is):\n{links}\n'
        'See docs/backbone.md, "Pretrained weights".'
    )


# ------------------------------------------------------------ safe loading
TRUST_ENV = 'LSPT_MM_TRUST_CHECKPOINTS'
_TRUST_VALUES = ('1', 'true', 'yes', 'y')
_HISTORY_BUFFER_STATISTICS = ('min', 'max', 'current', 'mean')


class NotACheckpointError(RuntimeError):
    """The file is not a PyTorch checkpoint at all (text, HTML, ...)."""


class UntrustedCheckpointError(pickle.UnpicklingError):
    """The file pickles objects outside the allow-list (possibly code)."""


def _history_buffer_statistic(owner, name):
    """Stands in for ``builtins.getattr`` while unpickling.

    mmengine's ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')`` (protocol 2 has no other way to name
    a method). Allowing the real ``getattr`` would hand any attribute of any
    allowed object to the file; this returns only ``HistoryBuffer``'s
    registered statistics methods and refuses everything else.
    """
    from mmengine.logging import HistoryBuffer

    registered = dict(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and (
        name in _HISTORY_BUFFER_STATISTICS or name in registered
    ):
        value = getattr(HistoryBuffer, name, None) or registered.get(name)
        if callable(value):
            return value
    raise UntrustedCheckpointError(
        f'the file asks for getattr({getattr(owner, "__name__", owner)!r}, '
        f'{name!r}); only HistoryBuffer statistics methods are allowed'
    )


def runner_checkpoint_globals():
    """What torch's ``weights_only`` unpickler may build besides tensors:
    the globals mmengine 0.10 writes into a runner checkpoint.

    - ``mmengine.logging.HistoryBuffer`` (the message hub's log scalars),
      with ``builtins.getattr`` mapped to :func:`_history_buffer_statistic`;
    - numpy arrays, dtypes and scalars (inside ``HistoryBuffer``, and
      metrics such as ``eta`` or a best score): ``_reconstruct``,
      ``ndarray``, ``dtype`` and its per-type classes, ``scalar``, under
      numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names.

    ``collections.OrderedDict``, tensors and plain containers are allowed by
    torch itself. Returns a list for ``torch.serialization.safe_globals``.
    """
    import numpy as np

    from mmengine.logging import HistoryBuffer

    try:
        from numpy._core import multiarray  # numpy 2 (and a 1.26 alias)
    except ImportError:
        from numpy.core import multiarray
    allowed = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        (_history_buffer_statistic, 'builtins.getattr'),
    ]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed += [
            (multiarray._reconstruct, f'{module}._reconstruct'),
            (multiarray.scalar, f'{module}.scalar'),
        ]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name)
            for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


def trust_all_checkpoints():
    """Whether the user allowed full unpickling (``LSPT_MM_TRUST_CHECKPOINTS``
    set to 1 / true / yes)."""
    return os.environ.get(TRUST_ENV, '').strip().lower() in _TRUST_VALUES


# a legacy (non-zip) torch.save file starts with its magic number, pickled
# (the LONG1 opcode and its bytes; after a FRAME with protocol >= 4)
_LEGACY_TORCH_MAGIC = pickle.dumps(
    torch.serialization.MAGIC_NUMBER, protocol=2
)[2:-1]


def _file_kind(path):
    """``'zip'`` (torch >= 1.6 format), ``'pickle'`` (legacy torch),
    ``'plain_pickle'`` (``pickle.dump``, not ``torch.save``), ``'empty'`` or
    ``None`` (anything else)."""
    with open(path, 'rb') as f:
        head = f.read(32)
    if not head:
        return 'empty'
    if head.startswith(b'PK'):
        return 'zip'
    if head[0] == 0x80 and _LEGACY_TORCH_MAGIC in head:
        return 'pickle'
    if head[0] == 0x80:  # pickle protocol >= 2
        return 'plain_pickle'
    return None


def _not_a_checkpoint_message(source, path):
    with open(path, 'rb') as f:
        head = f.read(60)
    if not head:
        what = 'it is empty'
    else:
        text = head.decode('utf-8', 'replace').splitlines()[0][:60]
        what = f'it starts with {text!r}'
    return (
        f'{source!r} is not a PyTorch checkpoint: {what} (a text or '
        'HTML file, e.g. a Git LFS pointer or a download error page?). '
        'Download the checkpoint again.'
    )


_warned_trusted = set()

# torch's weights_only loader takes ``(object, 'module.name')`` entries of
# ``torch.serialization.safe_globals`` from this version on
NATIVE_ALLOW_LIST_TORCH = (2, 6)


def _torch_version():
    parts = torch.__version__.split('+')[0].split('.')[:2]
    return tuple(int(p) if p.isdigit() else 0 for p in parts)


def native_allow_list():
    """Whether torch's own ``weights_only`` loader can take
    :func:`runner_checkpoint_globals` (``torch.serialization.safe_globals``
    with ``(object, name)`` entries: torch >= 2.6). torch 2.5 has
    ``safe_globals`` but reads ``__module__`` of every entry, 2.4 only the
    process-wide ``add_safe_globals``, 2.0 - 2.3 neither; there
    :func:`safe_load` reads with :mod:`lspt_mm.models.safe_unpickler`."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        return False
    own = getattr(torch, '_weights_only_unpickler', None)
    user_allowed = getattr(own, '_get_user_allowed_globals', None)
    if user_allowed is None:  # a later torch: trust its version
        return _torch_version() >= NATIVE_ALLOW_LIST_TORCH
    probe = (_history_buffer_statistic, 'lspt_mm.allow_list_probe')
    try:
        with safe_globals([probe]):
            return user_allowed().get(probe[1]) is _history_buffer_statistic
    except (AttributeError, TypeError, ValueError):  # torch 2.5
        return False


def _note_restricted_unpickler():
    import logging

    from lspt_mm import compat

    compat._note(
        'restricted_unpickler',
        f'torch {torch.__version__} has no torch.serialization.safe_globals '
        'with (object, name) entries (torch >= 2.6): checkpoints are read '
        "with lspt_mm's restricted unpickler (the same allow-list: tensors, "
        'plain containers and the objects mmengine writes), never a full '
        'unpickle',
        level=logging.INFO,
    )


def _load_allow_listed(load, source):
    """``load(weights_only, pickle_module=None)`` with the allow-list
    (torch's ``weights_only`` loader plus :func:`runner_checkpoint_globals`,
    or on torch < 2.6 :func:`restricted_pickle_module` of the same); a file
    refused for its globals is loaded in full only when the user trusts all
    files."""
    from .safe_unpickler import RefusedGlobal, restricted_pickle_module

    try:
        if native_allow_list():
            with torch.serialization.safe_globals(runner_checkpoint_globals()):
                return load(True)
        _note_restricted_unpickler()
        return load(
            False, restricted_pickle_module(runner_checkpoint_globals())
        )
    except pickle.UnpicklingError as err:
        if isinstance(err, RefusedGlobal):
            what = err.what
        else:
            match = re.search(
                r'GLOBAL (\S+)|unrecognized function (\S+)|'
                r'(getattr\([^)]*\))',
                str(err),
            )
            if match is None:
                raise
            what = next(g for g in match.groups() if g)
        if trust_all_checkpoints():
            if source not in _warned_trusted:
                _warned_trusted.add(source)
                warnings.warn(
                    f'{TRUST_ENV}=1: fully unpickling {source!r}, which holds '
                    'objects outside the allow-list; this runs any code the '
                    'file contains.'
                )
            return load(False)
        raise UntrustedCheckpointError(
            f'Refusing to unpickle {source!r}: it holds {what}, which is not '
            'a tensor, a plain container or one of the objects mmengine '
            'writes into checkpoints, and unpickling it could run code from '
            'the file. If you trust this file (you made it, or its source), '
            f'set {TRUST_ENV}=1 to load it with full unpickling, or re-save '
            'its state dict as plain tensors.'
        ) from None


def safe_load(f, map_location='cpu', source=None, **kwargs):
    """``torch.load`` that never runs code from the file.

    Reads with ``weights_only=True`` plus :func:`runner_checkpoint_globals`,
    which covers official weight files, plain state dicts and mmengine
    runner checkpoints (``load_from``, ``--resume``). A file needing any
    other global stops with :class:`UntrustedCheckpointError` naming it;
    only with ``LSPT_MM_TRUST_CHECKPOINTS=1`` is such a file fully
    unpickled (which runs whatever code it holds). ``f`` is a path or a
    file object; ``source`` names it in messages.
    """
    kwargs.pop('weights_only', None)
    kwargs.pop('pickle_module', None)  # ours (or torch's weights_only one)
    is_path = isinstance(f, (str, os.PathLike))
    source = str(f) if source is None and is_path else (source or '<stream>')
    kind = _file_kind(f) if is_path else None
    if is_path and kind in (None, 'empty'):
        raise NotACheckpointError(_not_a_checkpoint_message(source, f))
    if kind == 'plain_pickle':
        raise UntrustedCheckpointError(
            f'Refusing to load {source!r}: it is a plain pickle file '
            '(pickle.dump), not a PyTorch checkpoint (torch.save). torch '
            'cannot read it, and unpickling it could run code from the file. '
            'If you trust it, unpickle it yourself and save its tensors with '
            'torch.save.'
        )

    def load(weights_only, pickle_module=None):
        if not is_path:
            f.seek(0)
        if pickle_module is not None:
            kwargs['pickle_module'] = pickle_module
        try:
            return torch.load(
                f,
                map_location=map_location,
                weights_only=weights_only,
                **kwargs,
            )
        finally:
            kwargs.pop('pickle_module', None)

    try:
        checkpoint = _load_allow_listed(load, source)
    except (RuntimeError, EOFError, zipfile.BadZipFile) as err:
        if not _is_truncation(err):
            raise
        detail = str(err).splitlines()[0].split('. This is')[0] or repr(err)
        raise NotACheckpointError(
            f'Cannot read checkpoint {source!r}: {detail}. The file is '
            'incomplete (truncated or damaged: an interrupted copy or '
            'download?). Copy it again, or use another checkpoint.'
        ) from None
    return verify_digest(checkpoint, source)


# what torch raises for a truncated or damaged file (not for a missing API)
_TRUNCATION = (
    'PytorchStreamReader failed',
    'failed finding central directory',
    'unexpected EOF',
    'Ran out of input',
    'invalid header or archive is corrupted',
)


def _is_truncation(err):
    return isinstance(err, (EOFError, zipfile.BadZipFile)) or any(
        s in str(err) for s in _TRUNCATION
    )


def _hub_cached_file(url, model_dir, progress, check_hash, file_name):
    """The local copy of ``url`` as ``torch.hub.load_state_dict_from_url``
    keeps it (``<hub dir>/checkpoints/<name>``, downloaded when absent,
    checked against the hash in its name with ``check_hash``; a legacy
    one-file ``.zip`` download is extracted next to it)."""
    from urllib.parse import urlparse

    hub = torch.hub
    if model_dir is None:
        model_dir = osp.join(hub.get_dir(), 'checkpoints')
    os.makedirs(model_dir, exist_ok=True)
    name = file_name or osp.basename(urlparse(url).path)
    cached = osp.join(model_dir, name)
    if not osp.exists(cached):
        prefix = None
        if check_hash:
            match = hub.HASH_REGEX.search(name)
            prefix = match.group(1) if match else None
        hub.download_url_to_file(url, cached, prefix, progress=progress)
    legacy_zip = getattr(hub, '_is_legacy_zip_format', None)
    if legacy_zip is not None and legacy_zip(cached):
        with zipfile.ZipFile(cached) as archive:
            members = archive.infolist()
            if len(members) != 1:
                raise RuntimeError(
                    f'{url!r} ({cached!r}) is a zip file with '
                    f'{len(members)} members; a legacy torch.hub download '
                    'holds exactly one checkpoint.'
                )
            archive.extractall(model_dir)
        cached = osp.join(model_dir, members[0].filename)
    return cached


def safe_load_url(
    url,
    model_dir=None,
    map_location=None,
    progress=True,
    check_hash=False,
    file_name=None,
):
    """``torch.hub.load_state_dict_from_url`` (download and cache in the
    same place) read as :func:`safe_load` reads files (torch's own default
    there is a full unpickle; its ``weights_only`` takes no
    ``pickle_module``, which torch < 2.6 needs)."""

    def load(weights_only, pickle_module=None):
        path = _hub_cached_file(
            url, model_dir, progress, check_hash, file_name
        )
        extra = (
            {} if pickle_module is None else {'pickle_module': pickle_module}
        )
        return torch.load(
            path, map_location=map_location, weights_only=weights_only, **extra
        )

    return _load_allow_listed(load, url)


def read_checkpoint(path):
    """Load a checkpoint file into a dict on CPU without running code from
    it (:func:`safe_load`): official weights, mmpretrain / runner
    checkpoints."""
    if not osp.isfile(path):
        raise FileNotFoundError(missing_file_message(path))
    try:
        return safe_load(path, map_location='cpu')
    except (
        NotACheckpointError,
        UntrustedCheckpointError,
        CheckpointCorruptError,
    ):
        raise
    except Exception as err:  # truncation is NotACheckpointError already
        raise RuntimeError(
            f'Cannot read checkpoint {path!r}: {type(err).__name__}: {err}'
        ) from err


def _unwrap(ckpt):
    for key in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def detect_format(state_dict):
    """Returns one of 'mocov3_pretrain', 'mocov3', 'dinov2', 'dinov2_hf',
    'timm', 'mmpretrain' (None if none fits)."""
    keys = list(state_dict)
    if any(k.startswith('module.base_encoder.') for k in keys):
        return 'mocov3_pretrain'
    if any(k.startswith('module.blocks.') for k in keys):
        return 'mocov3'
    if any(k.startswith('blocks.') for k in keys):
        # DINOv2 shares the timm block names; LayerScale / registers tell
        if 'register_tokens' in keys or any(
            re.match(r'^blocks\.\d+\.ls[12]\.gamma$', k) for k in keys
        ):
            return 'dinov2'
        return 'timm'
    if any(
        re.match(
            r'^(dinov2\.)?encoder\.layer\.\d+\.(layer_scale1|norm1|'
            r'mlp\.fc1)\.',
            k,
        )
        for k in keys
    ):
        return 'dinov2_hf'
    if any(re.match(r'^(backbone\.)?layers\.\d+\.', k) for k in keys):
        return 'mmpretrain'
    return None


def timm_to_mmpretrain(state_dict, rules=None):
    """Rename timm-style ViT keys (MAE, MoCo v3; official DINOv2 with
    ``rules=_DINOV2_TO_MMPRETRAIN``) to mmpretrain's.

    Returns ``(converted, dropped)``: ``dropped`` lists the keys that belong
    to no encoder part (heads, MAE decoder, DINOv2 ``mask_token``) and were
    left out.
    """
    converted, dropped = OrderedDict(), []
    for key, value in state_dict.items():
        if _DROPPED.match(key):
            dropped.append(key)
            continue
        for pattern, repl in rules or _TIMM_TO_MMPRETRAIN:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                converted[new_key] = value
                break
        else:
            dropped.append(key)
    return converted, dropped


def dinov2_hf_to_mmpretrain(state_dict, source=''):
    """Rename Hugging Face ``Dinov2Model`` / ``Dinov2WithRegistersModel``
    keys (with or without the ``dinov2.`` prefix of the classification
    model) to mmpretrain's.

    ``attention.attention.{query,key,value}`` (each (D, D) / (D,)) become
    one ``attn.qkv`` of shape (3D, D) / (3D,), concatenated in q, k, v order
    as mmpretrain splits it. Returns ``(converted, dropped)``;
    ``embeddings.mask_token`` and heads go to ``dropped``.
    """
    prefix = (
        'dinov2.' if any(k.startswith('dinov2.') for k in state_dict) else ''
    )
    converted, qkv, dropped = OrderedDict(), {}, []
    for full_key, value in state_dict.items():
        if not full_key.startswith(prefix):  # e.g. classifier.*
            dropped.append(full_key)
            continue
        key = full_key[len(prefix) :]
        match = _HF_QKV.match(key)
        if match:
            layer, part, kind = match.groups()
            qkv.setdefault((int(layer), kind), {})[part] = value
            continue
        for pattern, repl in _DINOV2_HF_TO_MMPRETRAIN:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                converted[new_key] = value
                break
        else:
            dropped.append(full_key)
    for (layer, kind), parts in sorted(qkv.items()):
        absent = [p for p in ('query', 'key', 'value') if p not in parts]
        if absent:
            names = [
                f'{prefix}encoder.layer.{layer}.attention.attention.{p}.{kind}'
                for p in absent
            ]
            raise KeyError(
                f'Hugging Face DINOv2 file {source!r} lacks {names}, needed '
                f'with the other projections for layers.{layer}.attn.qkv.'
                f'{kind}. The file is incomplete; export or download it '
                'again.'
            )
        converted[f'layers.{layer}.attn.qkv.{kind}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], dim=0
        )
    return converted, dropped


def convert_state_dict(state_dict, source=''):
    """Any supported layout -> ``(mmpretrain_state_dict, fmt, dropped)``."""
    fmt = detect_format(state_dict)
    if fmt is None:
        sample = ', '.join(list(state_dict)[:5])
        raise ValueError(
            f'Checkpoint {source!r} is not a ViT checkpoint this project '
            f'knows (official MAE, MoCo v3, DINOv2, Hugging Face DINOv2, '
            f'timm or mmpretrain layout); '
            f'first keys: {sample}'
        )
    swiglu = [k for k in state_dict if _SWIGLU.match(k)]
    if swiglu:
        raise ValueError(
            f'Checkpoint {source!r} ({fmt} layout) has a SwiGLU feed-forward '
            f'({swiglu[0]}, ...): a DINOv2 ViT-g/14 file. PromptedViT has '
            "the plain MLP feed-forward of mmpretrain's VisionTransformer, "
            'so ViT-g is not supported; use a ViT-S/B/L file '
            '(dinov2_vit{s,b,l}14[_reg4]_pretrain.pth or Hugging Face '
            'facebook/dinov2-{small,base,large}).'
        )
    dropped = []
    if fmt == 'mocov3_pretrain':
        prefix = 'module.base_encoder.'
        dropped = [k for k in state_dict if not k.startswith(prefix)]
        state_dict = {
            k[len(prefix) :]: v
            for k, v in state_dict.items()
            if k.startswith(prefix)
        }
    elif fmt == 'mocov3':
        state_dict = {
            k[len('module.') :] if k.startswith('module.') else k: v
            for k, v in state_dict.items()
        }
    if fmt == 'mmpretrain':
        if any(k.startswith('backbone.') for k in state_dict):
            dropped = [k for k in state_dict if not k.startswith('backbone.')]
            state_dict = {
                k[len('backbone.') :]: v
                for k, v in state_dict.items()
                if k.startswith('backbone.')
            }
        return OrderedDict(state_dict), fmt, dropped
    if fmt == 'dinov2_hf':
        converted, more = dinov2_hf_to_mmpretrain(state_dict, source)
        return converted, fmt, more
    converted, more = timm_to_mmpretrain(
        state_dict, _DINOV2_TO_MMPRETRAIN if fmt == 'dinov2' else None
    )
    return converted, fmt, dropped + more


def foreign_keys(dropped, fmt):
    """The keys of ``dropped`` (as :func:`convert_state_dict` returns them
    for layout ``fmt``) that are no known non-encoder part of such a file
    (head, decoder, mask token, MoCo's momentum encoder, ...): tensors of
    some other model that a conversion would silently ignore."""
    if fmt == 'mmpretrain':  # the other parts of a runner checkpoint
        return []
    known = _NON_ENCODER.get(fmt)
    return [k for k in dropped if known is None or not known.match(k)]


def read_safetensors(path):
    """Tensors of a ``.safetensors`` file (Hugging Face exports)."""
    if not osp.isfile(path):
        raise FileNotFoundError(missing_file_message(path))
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise ImportError(
            f'{path!r} is a .safetensors file; reading it needs the '
            '`safetensors` package: pip install safetensors (or save the '
            'state dict with torch.save as a .bin / .pth file).'
        ) from err
    try:
        return load_file(path, device='cpu')
    except Exception as err:  # safetensors' own errors name no file
        kind = _file_kind(path)
        what = {
            'zip': 'a PyTorch checkpoint (torch.save, zip format)',
            'pickle': 'a PyTorch checkpoint (torch.save, legacy format)',
            'plain_pickle': 'a plain pickle file',
            'empty': 'empty (0 bytes)',
        }.get(kind)
        if what is None:
            raise NotACheckpointError(
                f'{path!r} is not a readable .safetensors file ({err}); '
                'download it again.'
            ) from None
        hint = (
            ' Rename it to .pth (it is read safely as a torch file).'
            if kind in ('zip', 'pickle')
            else ' Download it again.'
        )
        raise NotACheckpointError(
            f'{path!r} is named .safetensors but is {what}, not a '
            f'safetensors file.{hint}'
        ) from None


def load_vit_weights(path):
    """Read ``path`` (``.safetensors`` or a torch file) and return
    ``(mmpretrain_state_dict, fmt, dropped)``."""
    if str(path).endswith('.safetensors'):
        ckpt = read_safetensors(path)
    else:
        ckpt = read_checkpoint(path)
    return convert_state_dict(_unwrap(ckpt), source=path)

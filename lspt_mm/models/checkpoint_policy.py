"""What a checkpoint must hold to be loaded into a model: decided here only.

Used by :class:`~lspt_mm.models.PromptedViT` (its state-dict hooks and
``pretrained`` loading), by the runner's ``load_from`` / ``--resume`` through
:class:`CheckpointPolicyHook`, by ``tools/test.py`` and by
:mod:`lspt_mm.analysis.tokens`.

Loading a checkpoint into a built model (test, ``load_from``, resume,
analysis): every parameter and persistent buffer of the model must be in the
checkpoint with the model's shape, and nothing may be left over, except

- the frozen ViT of a :class:`PromptedViT` when the checkpoint holds none of
  it (saved with ``save_trainable_only``): it is taken from the backbone's
  ``pretrained`` file, which must then have been loaded (else an error);
- ``pos_embed`` of another grid size (mmpretrain resizes it on load) and
  BatchNorm's ``num_batches_tracked`` counters.

Anything else stops with :class:`CheckpointMismatchError`, one message naming
the missing, unexpected and mis-shaped keys and what they suggest: every
PromptedViT records its setup (prompt method, ``N_p``, arch) in the state
dict's metadata when saved, and the message compares it with the config's.

Loading a ``pretrained`` file into a PromptedViT: every ViT tensor must be
found (a partly random backbone is an error) and every tensor of the file
must have a place in the backbone, except the parts of the published files
that belong to no encoder (heads, MAE's decoder, DINOv2's mask token, MoCo
v3's momentum encoder and predictor) and the file's final norm when the
backbone is built with ``final_norm=False`` (as every segmentation config
is; the load line says so). Prompt-method tensors are either absent (newly
initialised) or all present with this model's shapes.
"""

import re
from collections import OrderedDict

from mmengine.logging import MMLogger, print_log

from .checkpoint import _file_kind, foreign_keys, load_vit_weights, safe_load
from .methods import methods_saving
from .prompt_methods import PromptMethod

SETUP_KEY = 'lspt_mm'  # key of a PromptedViT's entry in state_dict._metadata
_REVISE_KEYS = ((r'^module\.', ''),)  # as mmengine's Runner.load_checkpoint


class CheckpointMismatchError(RuntimeError):
    """A checkpoint does not fit the model built from the config."""


# ----------------------------------------------------------- model structure
def unwrap_model(model):
    """The model inside DDP / TTA wrappers (their state dicts have no
    wrapper prefix)."""
    from mmengine.model import BaseTTAModel, is_model_wrapper

    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def model_tensors(model):
    """Every parameter and persistent buffer of ``model`` by state-dict name,
    whatever the state-dict hooks would leave out."""
    tensors = OrderedDict()
    for name, module in model.named_modules():
        prefix = name + '.' if name else ''
        for key, param in module._parameters.items():
            if param is not None:
                tensors[prefix + key] = param
        for key, buf in module._buffers.items():
            if (
                buf is not None
                and key not in module._non_persistent_buffers_set
            ):
                tensors[prefix + key] = buf
    return tensors


def prompted_backbones(model):
    """``(prefix, module)`` of every PromptedViT inside ``model``: the
    modules carrying a prompt-method component (``prompt_method``)."""
    return [
        (name + '.' if name else '', m)
        for name, m in model.named_modules()
        if isinstance(getattr(m, 'prompt_method', None), PromptMethod)
    ]


def frozen_backbone_tensors(vit):
    """The frozen ViT's tensors (empty when the backbone trains)."""
    if not vit.freeze_backbone:
        return OrderedDict()
    return OrderedDict(
        (k, v) for k, v in model_tensors(vit).items() if vit.is_frozen_key(k)
    )


# --------------------------------------------------------------- setups
def _arch_name(vit):
    settings = getattr(vit, 'arch_settings', None)
    names = [n for n, s in vit.arch_zoo.items() if s == settings]
    if names:
        return max(names, key=len)
    return {
        k: settings[k]
        for k in (
            'embed_dims',
            'num_layers',
            'num_heads',
            'feedforward_channels',
        )
    }


def backbone_setup(vit):
    """What a PromptedViT checkpoint was trained with: method, ``N_p``,
    arch, patch size, register tokens, and whether it was saved without its
    frozen ViT."""
    registers = getattr(vit, 'register_tokens', None)
    return dict(
        prompt_method=vit.prompt_method.method_name,
        num_prompts=int(vit.num_prompts),
        arch=_arch_name(vit),
        patch_size=int(vit.patch_size),
        num_register_tokens=0 if registers is None else registers.shape[1],
        freeze_backbone=bool(vit.freeze_backbone),
        trainable_only=bool(vit.save_trainable_only and vit.freeze_backbone),
    )


def recorded_setup(state_dict, prefix):
    """The setup a PromptedViT at ``prefix`` recorded when it was saved, or
    ``None`` (older checkpoints, plain weight files)."""
    metadata = getattr(state_dict, '_metadata', None) or {}
    name = prefix[:-1] if prefix.endswith('.') else prefix
    for key in (name, 'module.' + name if name else 'module'):
        entry = metadata.get(key)
        if isinstance(entry, dict) and isinstance(entry.get(SETUP_KEY), dict):
            return entry[SETUP_KEY]
    return None


def inferred_setup(state_dict, prefix):
    """Best guess of method and ``N_p`` from the tensors alone (for
    checkpoints saved before setups were recorded)."""
    head = prefix + 'prompt_method.'
    own = {
        k[len(head) :]: v for k, v in state_dict.items() if k.startswith(head)
    }
    if not any(k.startswith(prefix) for k in state_dict):
        return None
    prompts = own.get('prompts')
    candidates = methods_saving(own)
    return dict(
        prompt_method=' or '.join(candidates) or 'unknown',
        candidates=candidates,
        num_prompts=0 if prompts is None else int(prompts.shape[1]),
    )


def _describe(setup, keys=('prompt_method', 'num_prompts', 'arch')):
    return ', '.join(f'{k}={setup[k]!r}' for k in keys if k in setup)


# ---------------------------------------------------- PromptedViT hooks
def on_state_dict(vit, state_dict, prefix, local_metadata):
    """PromptedViT's state-dict hook: record its setup in the metadata;
    with ``save_trainable_only`` (frozen ViT) leave the ViT out."""
    local_metadata[SETUP_KEY] = backbone_setup(vit)
    if vit.save_trainable_only and vit.freeze_backbone:
        for key in list(state_dict):
            if key.startswith(prefix) and vit.is_frozen_key(
                key[len(prefix) :]
            ):
                del state_dict[key]
    return state_dict


def backbone_source(vit, state_dict, prefix, local_metadata=None):
    """Where the ViT at ``prefix`` gets its weights from when
    ``state_dict`` is loaded: ``'checkpoint'``, ``'pretrained'`` (the
    checkpoint has none of the frozen ViT, which came from ``pretrained`` at
    construction) or ``None`` (nothing in ``state_dict`` for it). A
    trainable-only checkpoint without a loaded ``pretrained`` is an
    error."""
    own = [k for k in state_dict if k.startswith(prefix)]
    if not own:
        # a trainable-only checkpoint of a method that trains no backbone
        # tensor (linear probe) holds nothing of it, but says so (in the
        # state dict's metadata; a load pre-hook gets it as local_metadata)
        setup = (local_metadata or {}).get(SETUP_KEY) or recorded_setup(
            state_dict, prefix
        )
        if not (vit.freeze_backbone and setup and setup.get('trainable_only')):
            return None
    elif not vit.freeze_backbone or any(
        vit.is_frozen_key(k[len(prefix) :]) for k in own
    ):
        return 'checkpoint'
    if vit.backbone_loaded:
        return 'pretrained'
    where = (
        'not set'
        if vit.pretrained is None
        else f'not loaded: {vit.pretrained!r}'
    )
    raise CheckpointMismatchError(
        'This checkpoint stores only the trainable prompt tensors; the '
        "frozen ViT must come from the backbone's `pretrained` file, which "
        f'is {where}. Set model.{prefix}pretrained to the weights it was '
        'trained from.'
    )


def fill_frozen_weights(vit, state_dict, prefix, local_metadata=None):
    """PromptedViT's load pre-hook: a checkpoint holding only trainable
    tensors gets the frozen ViT from ``pretrained`` (never a random one)."""
    if (
        backbone_source(vit, state_dict, prefix, local_metadata)
        == 'pretrained'
    ):
        for key, value in frozen_backbone_tensors(vit).items():
            state_dict[prefix + key] = value.detach()


# ------------------------------------------------------ runner checkpoints
def state_dict_of(checkpoint, revise_keys=_REVISE_KEYS):
    """The model weights of a loaded checkpoint, keys revised as mmengine's
    runner revises them (``module.`` stripped), metadata kept."""
    state_dict = (
        checkpoint.get('state_dict', checkpoint)
        if isinstance(checkpoint, dict)
        else checkpoint
    )
    if not isinstance(state_dict, dict):
        raise CheckpointMismatchError(
            f'The checkpoint holds a {type(state_dict).__name__}, not a '
            'state dict.'
        )
    metadata = getattr(state_dict, '_metadata', None)
    for pattern, repl in revise_keys:
        state_dict = OrderedDict(
            (re.sub(pattern, repl, k), v) for k, v in state_dict.items()
        )
    if metadata is not None:
        state_dict._metadata = metadata
    return state_dict


def _summarise(keys, limit=6):
    """``a.b.{w, bias}``-style short listing of state-dict keys."""
    groups = OrderedDict()
    for key in keys:
        parent, _, leaf = key.rpartition('.')
        groups.setdefault(parent, []).append(leaf)
    parts = [
        (f'{p}.{{{", ".join(ls)}}}' if len(ls) > 1 else f'{p}.{ls[0]}')
        if p
        else ', '.join(ls)
        for p, ls in groups.items()
    ]
    more = len(parts) - limit
    return '; '.join(parts[:limit]) + (
        f'; ... ({more} more)' if more > 0 else ''
    )


def _shape(t):
    return tuple(t.shape)


def _hints(model, state_dict, mismatched):
    hints = []
    for prefix, vit in prompted_backbones(model):
        ours = backbone_setup(vit)
        theirs = recorded_setup(state_dict, prefix)
        how = ''
        if theirs is None:
            theirs, how = (
                inferred_setup(state_dict, prefix),
                ' (inferred from its tensors)',
            )
        if not theirs:
            continue
        # an inferred method is a list of candidates
        same = {'prompt_method': theirs.get('candidates')}
        differ = [
            k
            for k in ('prompt_method', 'num_prompts', 'arch')
            if k in theirs and ours[k] not in (same.get(k) or [theirs[k]])
        ]
        if differ:
            keys = ['prompt_method', 'num_prompts'] + (
                ['arch'] if 'arch' in differ else []
            )
            where = f' for model.{prefix[:-1]}' if prefix else ''
            hints.append(
                f'This checkpoint was trained with {_describe(theirs, keys)}'
                f'{how}; the config says {_describe(ours, keys)}{where}.'
            )
    for key, theirs, ours in mismatched:
        if (
            key.endswith(('.weight', '.bias'))
            and len(theirs) == len(ours)
            and theirs[1:] == ours[1:]
            and not any(
                key.startswith(p) for p, _ in prompted_backbones(model)
            )
        ):
            layer = key.rsplit('.', 1)[0]
            hints.append(
                f'{layer} has {theirs[0]} outputs in the checkpoint '
                f'and {ours[0]} in the model: trained with '
                f'num_classes={theirs[0]}?'
            )
            break
    return hints


def check_state_dict(model, state_dict, source='the checkpoint'):
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` fits
    ``model`` under the rules of this module (see the module docstring).
    ``state_dict`` keys are as the model's (no ``module.`` prefix)."""
    model = unwrap_model(model)
    expected = model_tensors(model)
    supplied, resized = set(), set()
    for prefix, vit in prompted_backbones(model):
        if backbone_source(vit, state_dict, prefix) == 'pretrained':
            supplied.update(prefix + k for k in frozen_backbone_tensors(vit))
        resized.add(prefix + 'pos_embed')
    missing = [
        k
        for k in expected
        if k not in state_dict
        and k not in supplied
        and not k.endswith('num_batches_tracked')
    ]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, _shape(v), _shape(expected[k]))
        for k, v in state_dict.items()
        if k in expected
        and k not in resized
        and hasattr(v, 'shape')
        and _shape(v) != _shape(expected[k])
    ]
    if not (missing or unexpected or mismatched):
        return
    lines = [
        f'Checkpoint {source} does not match the model built from the config:'
    ]
    if missing:
        lines.append(f'  missing ({len(missing)}): {_summarise(missing)}')
    if unexpected:
        lines.append(
            f'  unexpected ({len(unexpected)}): {_summarise(unexpected)}'
        )
    for key, theirs, ours in mismatched[:4]:
        lines.append(
            f'  shape of {key}: {theirs} in the checkpoint, {ours} '
            'in the model'
        )
    if len(mismatched) > 4:
        lines.append(f'  ... and {len(mismatched) - 4} more shape mismatches')
    lines += _hints(model, state_dict, mismatched)
    lines.append(
        'Test or resume a checkpoint with the config it was trained '
        'with (or make the config match it).'
    )
    raise CheckpointMismatchError('\n'.join(lines))


def check_checkpoint(model, checkpoint, source='the checkpoint'):
    """:func:`check_state_dict` on a loaded checkpoint dict."""
    check_state_dict(model, state_dict_of(checkpoint), source)


def load_checkpoint(model, filename, map_location='cpu'):
    """Read ``filename`` without running code from it, check it against
    ``model`` and load it (strictly). Returns the checkpoint dict."""
    from mmengine.runner.checkpoint import (
        CheckpointLoader,
        _load_checkpoint_to_model,
    )

    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location)
    check_checkpoint(model, checkpoint, filename)
    return _load_checkpoint_to_model(
        unwrap_model(model), checkpoint, strict=True
    )


def checkpoint_holds_backbone(filename):
    """Whether the runner checkpoint ``filename`` holds the whole ViT of a
    ``model.backbone`` (so the config's ``pretrained`` file is not needed)."""
    # zip-format files are mapped, not read (legacy files cannot be)
    checkpoint = safe_load(
        filename, map_location='cpu', mmap=_file_kind(filename) == 'zip'
    )
    keys = state_dict_of(checkpoint)
    setup = recorded_setup(keys, 'backbone.')
    if setup is not None and 'trainable_only' in setup:
        # methods that train some ViT tensors (bias, partial-k) save those
        # in trainable-only checkpoints too
        return not setup['trainable_only']
    return any(k.startswith('backbone.layers.') for k in keys)


def skip_pretrained_if_checkpoint_has_backbone(cfg, checkpoint):
    """A checkpoint that holds every backbone weight needs no pretrained
    file: testing then works without it. A trainable-only checkpoint keeps
    ``pretrained`` (the frozen ViT comes from there). Returns whether
    ``cfg.model.backbone.pretrained`` was cleared."""
    backbone = cfg.get('model', {}).get('backbone', None)
    if not backbone or backbone.get('pretrained', None) is None:
        return False
    if not checkpoint_holds_backbone(checkpoint):
        return False
    print_log(
        f'{checkpoint} holds the whole backbone: not reading '
        f'pretrained={backbone.pretrained!r}',
        logger='current',
    )
    backbone.pretrained = None
    return True


# --------------------------------------------------------- pretrained files
FINAL_NORM = ('ln1.weight', 'ln1.bias')  # the encoder's final LayerNorm


def _depth(keys):
    """Number of ``layers.N`` blocks among mmpretrain-named ``keys``."""
    found = [
        int(m.group(1))
        for m in (re.match(r'^layers\.(\d+)\.', k) for k in keys)
        if m
    ]
    return max(found) + 1 if found else 0


def _is_layer_scale(key):
    return re.match(r'^layers\.\d+\.(attn\.gamma1|ffn\.gamma2)\.', key)


def _missing_advice(vit, missing, state_dict):
    """What a pretrained file lacking ``missing`` ViT tensors suggests."""
    advice = []
    depth = _depth(state_dict)
    if depth and depth < vit.num_layers:
        advice.append(
            f"the file has {depth} blocks, the config's arch "
            f"{vit.num_layers}: set the backbone's arch to the one "
            'it was trained with'
        )
    if 'register_tokens' in missing:
        advice.append(
            'the file has no register tokens: set '
            'num_register_tokens=0 (or use the _reg4 file)'
        )
    if any(_is_layer_scale(k) for k in missing) and not any(
        _is_layer_scale(k) for k in state_dict
    ):
        advice.append(
            'the file has no LayerScale (gamma1 / gamma2): a '
            'dinov2-* arch needs a DINOv2 file; for MAE / MoCo v3 '
            "files use arch='base' and layer_scale_init_value=0"
        )
    if set(missing) & set(FINAL_NORM) and not any(
        k.startswith('ln1.') for k in state_dict
    ):
        advice.append(
            "the file has no final norm: set the backbone's "
            'final_norm=False (raw block outputs)'
        )
    return '; '.join(advice) or ('the file is incomplete: download it again')


def _extra_advice(vit, extra, state_dict):
    """What ViT tensors the config's backbone lacks suggest."""
    advice, rest = [], set(extra)
    deeper = [
        k
        for k in extra
        if re.match(r'^layers\.(\d+)\.', k)
        and int(k.split('.')[1]) >= vit.num_layers
    ]
    if deeper:
        advice.append(
            f"the file has {_depth(extra)} blocks, the config's "
            f"arch {vit.num_layers}: set the backbone's arch "
            '(num_layers) to the one it was trained with'
        )
        rest -= set(deeper)
    if 'register_tokens' in rest:
        n = _shape(state_dict['register_tokens'])[1]
        advice.append(
            f'the file has {n} register tokens: set num_register_tokens={n}'
        )
        rest.discard('register_tokens')
    scale = [k for k in rest if _is_layer_scale(k)]
    if scale:
        advice.append(
            'the file has LayerScale (gamma1 / gamma2, a DINOv2 '
            'file): use a dinov2-* arch (layer_scale_init_value '
            '> 0)'
        )
        rest -= set(scale)
    if rest:
        advice.append(
            f'{_summarise(sorted(rest))} belong to no part of '
            'this ViT: the file is not a plain ViT of its layout'
        )
    return '; '.join(advice)


def unused_final_norm(vit, state_dict):
    """The final-norm tensors of a pretrained file that a backbone built with
    ``final_norm=False`` has no place for (the official MAE, MoCo v3 and
    DINOv2 files all hold their final LayerNorm)."""
    if getattr(vit, 'final_norm', True):
        return []
    return [k for k in FINAL_NORM if k in state_dict]


def load_pretrained(vit, path):
    """Load pretrained ViT weights (official MAE / MoCo v3 / DINOv2 files,
    timm-style, mmpretrain or runner checkpoints) into ``vit``.

    Every ViT tensor must be found (else ``KeyError``). The file's final
    norm is left unused when the backbone is built with ``final_norm=False``
    (and the load line says so); any other ViT tensor the backbone lacks,
    and any tensor of the file that belongs to no part of a ViT of its
    layout, is an error naming the likely cause. Prompt-method tensors are
    newly initialised when the file has none, loaded when it has exactly
    this model's (a runner checkpoint of the same setup), and otherwise an
    error: a partial set would leave part of the method random.
    """
    state_dict, fmt, dropped = load_vit_weights(path)
    foreign = foreign_keys(dropped, fmt)
    if foreign:
        raise CheckpointMismatchError(
            f'Pretrained file {path!r} ({fmt} layout) holds tensors that '
            f'belong to no part of a ViT of that layout: '
            f'{_summarise(foreign)}. Loading it would silently ignore '
            'them; it is not one of the files this project reads (official '
            'MAE, MoCo v3, DINOv2 ViT-S/B/L, Hugging Face DINOv2, timm or '
            'mmpretrain ViT checkpoints).'
        )
    unused = unused_final_norm(vit, state_dict)
    for key in unused:
        del state_dict[key]
    expected = model_tensors(vit)
    backbone = [k for k in expected if vit.is_backbone_key(k)]
    missing_backbone = [k for k in backbone if k not in state_dict]
    if missing_backbone:
        raise KeyError(
            f'Pretrained file {path!r} ({fmt} layout) lacks backbone '
            f'weights: {missing_backbone}; '
            f'{_missing_advice(vit, missing_backbone, state_dict)}. '
            'Refusing to train on a partly random backbone.'
        )
    method = [k for k in expected if not vit.is_backbone_key(k)]
    in_file = [k for k in state_dict if k.startswith('prompt_method.')]
    if in_file:
        missing = [k for k in method if k not in state_dict]
        unexpected = [k for k in in_file if k not in expected]
        mismatched = [
            k
            for k in in_file
            if k in expected and _shape(state_dict[k]) != _shape(expected[k])
        ]
        if missing or unexpected or mismatched:
            theirs = recorded_setup(state_dict, '') or inferred_setup(
                state_dict, ''
            )
            raise CheckpointMismatchError(
                f'Pretrained file {path!r} holds prompt-method tensors that '
                f'do not fit this backbone (missing: {missing}, unexpected: '
                f'{unexpected}, other shape: {mismatched}); it was trained '
                f'with {_describe(theirs)}, the config says '
                f'{_describe(backbone_setup(vit))}. Use a file with the ViT '
                'weights only (e.g. the official one), or load a trained '
                'checkpoint with load_from / tools/test.py.'
            )
    extra = [
        k for k in state_dict if vit.is_backbone_key(k) and k not in expected
    ]
    if extra:
        raise CheckpointMismatchError(
            f'Pretrained file {path!r} ({fmt} layout) has ViT tensors the '
            f"config's backbone lacks: {_summarise(extra)}; "
            f'{_extra_advice(vit, extra, state_dict)}.'
        )
    shapes = [
        k
        for k in backbone
        if k != 'pos_embed' and _shape(state_dict[k]) != _shape(expected[k])
    ]
    if shapes:
        raise CheckpointMismatchError(
            f'Pretrained file {path!r} ({fmt} layout) has other shapes than '
            f"the config's arch for {shapes[:4]} (e.g. {shapes[0]}: "
            f'{_shape(state_dict[shapes[0]])} vs '
            f"{_shape(expected[shapes[0]])}); set the backbone's arch / "
            'patch_size to the ones it was trained with.'
        )
    missing, unexpected = vit.load_state_dict(state_dict, strict=False)
    ignored = list(unexpected) + list(dropped)
    note = (
        '; final norm in the file, unused: final_norm=False '
        f'({", ".join(unused)})'
        if unused
        else ''
    )
    print_log(
        f'PromptedViT: loaded {len(state_dict)} tensors from {path} '
        f'({fmt} layout){note}; newly initialised (not in file): '
        f'{len(missing)} prompt-method tensors {missing}; '
        f'ignored keys in file ({len(ignored)}): '
        f'{_summarise(ignored) if ignored else "none"}',
        logger=MMLogger.get_current_instance(),
    )


__all__ = [
    'CheckpointMismatchError',
    'backbone_setup',
    'check_checkpoint',
    'check_state_dict',
    'load_checkpoint',
    'load_pretrained',
    'skip_pretrained_if_checkpoint_has_backbone',
]

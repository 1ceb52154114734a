"""Reading pretrained ViT weights: official MAE / MoCo v3 / DINOv2 files,
Hugging Face DINOv2 state dicts, timm-style state dicts and mmpretrain
checkpoints, converted to mmpretrain's ViT names."""
import os.path as osp
import pickle
import re
from collections import OrderedDict

import torch

DOWNLOADS = {
    'MAE ViT-B/16':
    'https://dl.fbaipublicfiles.com/mae/pretrain/mae_pretrain_vit_base.pth',
    'MoCo v3 ViT-B/16':
    'https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/'
    'linear-vit-b-300ep.pth.tar',
}
DOWNLOADS.update({  # official DINOv2 backbones, with and without registers
    f'DINOv2 ViT-{size.upper()}/14{reg.replace("_", " ")}':
    f'https://dl.fbaipublicfiles.com/dinov2/dinov2_vit{size}14/'
    f'dinov2_vit{size}14{reg}_pretrain.pth'
    for size in ('s', 'b', 'l') for reg in ('', '_reg4')})

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
    (r'^embeddings\.patch_embeddings\.projection\.',
     'patch_embed.projection.'),
    (r'^encoder\.layer\.(\d+)\.norm1\.', r'layers.\1.ln1.'),
    (r'^encoder\.layer\.(\d+)\.attention\.output\.dense\.',
     r'layers.\1.attn.proj.'),
    (r'^encoder\.layer\.(\d+)\.layer_scale1\.lambda1$',
     r'layers.\1.attn.gamma1.weight'),
    (r'^encoder\.layer\.(\d+)\.norm2\.', r'layers.\1.ln2.'),
    (r'^encoder\.layer\.(\d+)\.mlp\.fc1\.', r'layers.\1.ffn.layers.0.0.'),
    (r'^encoder\.layer\.(\d+)\.mlp\.fc2\.', r'layers.\1.ffn.layers.1.'),
    (r'^encoder\.layer\.(\d+)\.layer_scale2\.lambda1$',
     r'layers.\1.ffn.gamma2.weight'),
    (r'^layernorm\.', 'ln1.'),
]
_HF_QKV = re.compile(
    r'^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.'
    r'(weight|bias)$')


def missing_file_message(path):
    links = '\n'.join(f'  {name}: {url}' for name, url in DOWNLOADS.items())
    return (f'Pretrained ViT weights not found: {path!r}. Download the '
            f'checkpoint and put it at that path (or set the backbone\'s '
            f'`pretrained` option to where it is):\n{links}\n'
            'See README.md, "Pretrained weights".')


def read_checkpoint(path):
    """Load a checkpoint file into a dict on CPU.

    Plain weight files are read with ``weights_only=True``; a runner
    checkpoint (which pickles mmengine objects) falls back to a full load.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(missing_file_message(path))
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError:
        return torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # truncated or not a torch file
        raise RuntimeError(
            f'Cannot read checkpoint {path!r}: {err}. The file may be '
            'incomplete; download it again.') from err


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
                re.match(r'^blocks\.\d+\.ls[12]\.gamma$', k) for k in keys):
            return 'dinov2'
        return 'timm'
    if any(re.match(r'^(dinov2\.)?encoder\.layer\.\d+\.(layer_scale1|norm1|'
                    r'mlp\.fc1)\.', k) for k in keys):
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
    prefix = 'dinov2.' if any(k.startswith('dinov2.')
                              for k in state_dict) else ''
    converted, qkv, dropped = OrderedDict(), {}, []
    for full_key, value in state_dict.items():
        if not full_key.startswith(prefix):  # e.g. classifier.*
            dropped.append(full_key)
            continue
        key = full_key[len(prefix):]
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
            names = [f'{prefix}encoder.layer.{layer}.attention.attention.'
                     f'{p}.{kind}' for p in absent]
            raise KeyError(
                f'Hugging Face DINOv2 file {source!r} lacks {names}, needed '
                f'with the other projections for layers.{layer}.attn.qkv.'
                f'{kind}. The file is incomplete; export or download it '
                'again.')
        converted[f'layers.{layer}.attn.qkv.{kind}'] = torch.cat(
            [parts['query'], parts['key'], parts['value']], dim=0)
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
            f'first keys: {sample}')
    dropped = []
    if fmt == 'mocov3_pretrain':
        prefix = 'module.base_encoder.'
        dropped = [k for k in state_dict if not k.startswith(prefix)]
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items()
                      if k.startswith(prefix)}
    elif fmt == 'mocov3':
        state_dict = {k[len('module.'):] if k.startswith('module.') else k: v
                      for k, v in state_dict.items()}
    if fmt == 'mmpretrain':
        if any(k.startswith('backbone.') for k in state_dict):
            dropped = [k for k in state_dict if not k.startswith('backbone.')]
            state_dict = {k[len('backbone.'):]: v
                          for k, v in state_dict.items()
                          if k.startswith('backbone.')}
        return OrderedDict(state_dict), fmt, dropped
    if fmt == 'dinov2_hf':
        converted, more = dinov2_hf_to_mmpretrain(state_dict, source)
        return converted, fmt, more
    converted, more = timm_to_mmpretrain(
        state_dict, _DINOV2_TO_MMPRETRAIN if fmt == 'dinov2' else None)
    return converted, fmt, dropped + more


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
            'state dict with torch.save as a .bin / .pth file).') from err
    return load_file(path, device='cpu')


def load_vit_weights(path):
    """Read ``path`` (``.safetensors`` or a torch file) and return
    ``(mmpretrain_state_dict, fmt, dropped)``."""
    if str(path).endswith('.safetensors'):
        ckpt = read_safetensors(path)
    else:
        ckpt = read_checkpoint(path)
    return convert_state_dict(_unwrap(ckpt), source=path)

"""Reading pretrained ViT weights: official MAE / MoCo v3 files, timm-style
state dicts and mmpretrain checkpoints, converted to mmpretrain's ViT names."""
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
    """Returns one of 'mocov3_pretrain', 'mocov3', 'timm', 'mmpretrain'."""
    keys = list(state_dict)
    if any(k.startswith('module.base_encoder.') for k in keys):
        return 'mocov3_pretrain'
    if any(k.startswith('module.blocks.') for k in keys):
        return 'mocov3'
    if any(k.startswith('blocks.') for k in keys):
        return 'timm'
    if any(re.match(r'^(backbone\.)?layers\.\d+\.', k) for k in keys):
        return 'mmpretrain'
    return None


def timm_to_mmpretrain(state_dict):
    """Rename timm-style ViT keys (MAE, MoCo v3) to mmpretrain's.

    Returns ``(converted, dropped)``: ``dropped`` lists the keys that belong
    to no encoder part (heads, MAE decoder) and were left out.
    """
    converted, dropped = OrderedDict(), []
    for key, value in state_dict.items():
        if _DROPPED.match(key):
            dropped.append(key)
            continue
        for pattern, repl in _TIMM_TO_MMPRETRAIN:
            new_key, n = re.subn(pattern, repl, key)
            if n:
                converted[new_key] = value
                break
        else:
            dropped.append(key)
    return converted, dropped


def convert_state_dict(state_dict, source=''):
    """Any supported layout -> ``(mmpretrain_state_dict, fmt, dropped)``."""
    fmt = detect_format(state_dict)
    if fmt is None:
        sample = ', '.join(list(state_dict)[:5])
        raise ValueError(
            f'Checkpoint {source!r} is not a ViT checkpoint this project '
            f'knows (official MAE, MoCo v3, timm or mmpretrain layout); '
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
    converted, more = timm_to_mmpretrain(state_dict)
    return converted, fmt, dropped + more


def load_vit_weights(path):
    """Read ``path`` and return ``(mmpretrain_state_dict, fmt, dropped)``."""
    return convert_state_dict(_unwrap(read_checkpoint(path)), source=path)

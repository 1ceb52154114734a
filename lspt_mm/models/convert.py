"""Convert official MAE / MoCo v3 / DINOv2 (and Hugging Face DINOv2) ViT
files to mmpretrain checkpoints."""

import os
import os.path as osp

import torch

from .checkpoint import load_vit_weights

EXPECTED = {
    'mae': ('timm',),
    'mocov3': ('mocov3', 'mocov3_pretrain'),
    'dinov2': ('dinov2', 'dinov2_hf'),
}


def convert_file(src, dst, expect=None):
    """Write ``{'state_dict': {'backbone.<mmpretrain name>': tensor}}`` to
    ``dst``, readable by ``PromptedViT(pretrained=dst)`` and by mmpretrain's
    ``init_cfg=dict(type='Pretrained', checkpoint=dst, prefix='backbone.')``.

    Returns ``(number of tensors, detected layout, dropped keys)``.
    """
    state_dict, fmt, dropped = load_vit_weights(src)
    if expect is not None and fmt not in EXPECTED[expect]:
        raise ValueError(
            f'{src!r} has the {fmt!r} key layout, not a '
            f'{expect} checkpoint (expected {EXPECTED[expect]})'
        )
    save_mmpretrain(
        state_dict, dst, {'converted_from': osp.basename(src), 'layout': fmt}
    )
    return len(state_dict), fmt, dropped


def save_mmpretrain(state_dict, dst, meta):
    """Write mmpretrain-named backbone tensors as
    ``{'state_dict': {'backbone.<name>': tensor}, 'meta': meta}``."""
    out = {
        'state_dict': {f'backbone.{k}': v for k, v in state_dict.items()},
        'meta': meta,
    }
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    tmp = dst + '.tmp'
    torch.save(out, tmp)
    os.replace(tmp, dst)  # never leave a half-written file at dst


def main(expect, description, argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', help='source checkpoint file')
    parser.add_argument('dst', help='output mmpretrain checkpoint file')
    args = parser.parse_args(argv)
    n, fmt, dropped = convert_file(args.src, args.dst, expect)
    print(
        f'{args.src} ({fmt} layout) -> {args.dst}: {n} tensors; '
        f'dropped {len(dropped)} non-encoder keys {dropped[:8]}'
        f'{" ..." if len(dropped) > 8 else ""}'
    )

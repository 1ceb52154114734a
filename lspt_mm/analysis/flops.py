"""FLOPs of PromptedViT methods: analytic formulas and a counter.

Conventions: one FLOP is one multiply or one add, so a multiply-add is 2
FLOPs (``torch.utils.flop_counter`` counts the same way; OpenMMLab tables'
"Flops (G)" are multiply-adds, i.e. half of these). Only matrix products are
counted (linear layers, attention matmuls, convolutions); LayerNorm,
softmax, GELU, residual adds, LSTM gate non-linearities, GaPT's gate mix and
GSPC's patch mean are element-wise and left out (each < 1% of a block).

Analytic model, per image, ViT block with ``T`` tokens, width ``D``, MLP
width ``F`` (``4D`` for ViT-B):

- qkv ``2·T·D·3D``, output projection ``2·T·D·D``, MLP ``2·2·T·D·F``
  (linear part ``24·T·D²`` when ``F = 4D``);
- attention ``q·kᵀ`` and ``attn·v``: ``2·2·T²·D``.

LSPT's LSTM cell, once per block ``l < L`` (``L-1`` steps):

- hidden term ``W_hh·X̂_SP^l`` per image: ``2·N_p·D·4D``;
- input term ``W_ih·P^l`` once per *batch* (``P^l`` does not depend on the
  image): ``2·N_p·D·4D``, i.e. ``/B`` per image.

Backward: a layer whose weights train costs 2× its forward (gradient of
the input and of the weight); a frozen linear layer that still has to pass
gradients to earlier tokens costs 1× (input gradient only); the attention
matmuls have two activation operands: their gradients (of q, k and v) take
4 matmuls, and fused (flash-style) attention kernels also recompute
``q·kᵀ`` instead of storing the T×T weights, so attention backward is 2.5×
its forward whenever gradients flow (what ``FlopCounterMode`` counts).
Prompts enter at block 1, so with any prompt method every block passes
gradients; the linear probe passes none (only its head trains).
"""
import torch
from torch.utils.flop_counter import (FlopCounterMode, sdpa_backward_flop_count,
                                      sdpa_flop_count)

__all__ = [
    'arch_settings', 'analytic_flops', 'flop_counter', 'count_flops',
    'METHOD_SPECS'
]

ATTN_BWD = 2.5  # dq, dk, dv (4 matmuls) + recomputed q·kᵀ, over 2 fwd

# benchmark method name -> (prompt_method, freeze_backbone)
METHOD_SPECS = {
    'linear': ('none', True),
    'full': ('none', False),
    'vpt_shallow': ('vpt_shallow', True),
    'vpt_deep': ('vpt_deep', True),
    'gapt': ('gapt', True),
    'lspt': ('lspt', True),
    'lspt_lpc_only': ('lspt_lpc_only', True),
    'lspt_gspc_only': ('lspt_gspc_only', True),
}


def arch_settings(arch):
    """``(D, L, heads, F)`` of an mmpretrain ViT ``arch`` (name or dict)."""
    if isinstance(arch, str):
        from mmpretrain.models.backbones.vision_transformer import \
            VisionTransformer
        table = VisionTransformer.arch_zoo[arch.lower()]
    else:
        table = arch
    return (table['embed_dims'], table['num_layers'], table['num_heads'],
            table['feedforward_channels'])


def _block_flops(T, D, F):
    linear = 2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * D * F
    attn = 2 * 2 * T * T * D
    return linear, attn


def analytic_flops(method, arch, img_size, patch_size=16, num_prompts=0,
                   batch=1, head_fwd_flops=0):
    """Analytic forward and backward FLOPs of one batch.

    Args:
        method (str): a key of :data:`METHOD_SPECS`.
        arch: mmpretrain arch name or dict.
        img_size (int | tuple): input size.
        head_fwd_flops (float): forward FLOPs of the task head (neck and
            decode heads) for the batch; it trains, so its backward is
            counted 2×.

    Returns:
        dict: ``fwd``, ``bwd``, ``total`` (FLOPs per batch) and the parts
        ``blocks_fwd``, ``lstm_fwd``, ``patch_embed_fwd``, ``head_fwd``.
    """
    prompt_method, frozen = METHOD_SPECS[method]
    D, L, _, F = arch_settings(arch)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    N = (h // patch_size) * (w // patch_size)
    n_p = 0 if prompt_method == 'none' else num_prompts
    T = 1 + n_p + N
    linear, attn = _block_flops(T, D, F)
    blocks_fwd = batch * L * (linear + attn)
    patch_fwd = batch * 2 * N * 3 * patch_size * patch_size * D
    lstm_fwd = 0
    if prompt_method in ('lspt', 'lspt_lpc_only'):
        step = 2 * n_p * D * 4 * D
        lstm_fwd = (L - 1) * step * (batch + 1)  # hidden per image + input
    if not frozen:  # full fine-tune: everything trains
        blocks_bwd = batch * L * (2 * linear + ATTN_BWD * attn)
        patch_bwd = patch_fwd  # weight gradient only (images need none)
    elif n_p:  # frozen weights, activation gradients through every block
        blocks_bwd = batch * L * (linear + ATTN_BWD * attn)
        patch_bwd = 0
    else:  # linear probe: nothing flows into the backbone
        blocks_bwd = patch_bwd = 0
    fwd = blocks_fwd + patch_fwd + lstm_fwd + head_fwd_flops
    bwd = blocks_bwd + patch_bwd + 2 * lstm_fwd + 2 * head_fwd_flops
    return dict(fwd=fwd, bwd=bwd, total=fwd + bwd, blocks_fwd=blocks_fwd,
                lstm_fwd=lstm_fwd, patch_embed_fwd=patch_fwd,
                head_fwd=head_fwd_flops, tokens=T)


# ---------------------------------------------------------------- counter
def _sdpa_cpu_fwd(query_shape, key_shape, value_shape, *args, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_bwd(grad_out_shape, query_shape, key_shape, value_shape, *args,
                  **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape,
                                    value_shape)


def flop_counter():
    """``FlopCounterMode`` that also counts CPU fused attention (torch 2.13
    registers only the CUDA SDPA kernels, so CPU attention would count 0)."""
    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = \
            _sdpa_cpu_fwd
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = \
            _sdpa_cpu_bwd
    return FlopCounterMode(display=False, custom_mapping=mapping)


def count_flops(fn):
    """Run ``fn()`` under :func:`flop_counter`; returns ``(result, flops)``."""
    counter = flop_counter()
    with counter:
        result = fn()
    return result, counter.get_total_flops()

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

``T`` is the backbone's token count: prefix (CLS, registers) + ``N_p``
prompts + ``N`` patches (``PromptedViT.num_tokens``).

What a method adds (its own matrix products: LSPT's LSTM, adapters, LoRA)
and which blocks pass gradients comes from the method's component
(``PromptMethod.cost_terms``, e.g. LSPT's LSTM cell: hidden term
``W_hh·X̂_SP^l`` per image, ``2·N_p·D·4D``, and input term ``W_ih·P^l``
once per *batch*), through the method table
(:data:`lspt_mm.models.methods.METHODS`); adding a method adds its FLOPs.

Backward: a layer whose weights train costs 2× its forward (gradient of
the input and of the weight); a frozen linear layer that still has to pass
gradients to earlier tokens costs 1× (input gradient only); the attention
matmuls have two activation operands: their gradients (of q, k and v) take
4 matmuls, and fused (flash-style) attention kernels also recompute
``q·kᵀ`` instead of storing the T×T weights, so attention backward is 2.5×
its forward whenever gradients flow (what ``FlopCounterMode`` counts).
Prompts enter at block 1, so with any prompt method every block passes
gradients; the linear probe passes none (only its head trains); partial-k
only through its last k blocks.
"""

import importlib
from dataclasses import dataclass

import torch

from lspt_mm.models.methods import METHODS, get_method

__all__ = [
    'arch_settings',
    'analytic_flops',
    'model_flops',
    'flop_counter',
    'count_flops',
    'ViTShape',
    'METHOD_SPECS',
]

ATTN_BWD = 2.5  # dq, dk, dv (4 matmuls) + recomputed q·kᵀ, over 2 fwd


def _method_specs():

    return {
        name: (name, spec.freeze_backbone) for name, spec in METHODS.items()
    }


# method name -> (prompt_method, freeze_backbone), read from the method
# table (lspt_mm.models.methods.METHODS); kept for older callers
METHOD_SPECS = _method_specs()


@dataclass(frozen=True)
class ViTShape:
    """Sizes of one analytic FLOP computation: width ``D``, MLP width
    ``F``, ``L`` blocks, ``T`` tokens per block, ``N_p`` prompts, batch."""

    D: int
    F: int
    L: int
    T: int
    num_prompts: int
    batch: int

    # backward FLOPs of an attention over its forward (for the methods'
    # own attentions, e.g. CVPT's cross-attention)
    attn_bwd_factor = ATTN_BWD

    @property
    def linear(self):
        """Linear layers of one block, one image."""
        return _block_flops(self.T, self.D, self.F)[0]

    @property
    def attn(self):
        """Attention matmuls of one block, one image."""
        return _block_flops(self.T, self.D, self.F)[1]

    @property
    def frozen_block_bwd(self):
        """Backward of a frozen block passing gradients (one image)."""
        return self.linear + ATTN_BWD * self.attn

    @property
    def trained_block_bwd(self):
        """Backward of a block whose weights train (one image)."""
        return 2 * self.linear + ATTN_BWD * self.attn


def arch_settings(arch):
    """``(D, L, heads, F)`` of an mmpretrain ViT ``arch`` (name or dict)."""
    if isinstance(arch, str):
        from mmpretrain.models.backbones.vision_transformer import (
            VisionTransformer,
        )

        table = VisionTransformer.arch_zoo[arch.lower()]
    else:
        table = arch
    return (
        table['embed_dims'],
        table['num_layers'],
        table['num_heads'],
        table['feedforward_channels'],
    )


def _block_flops(T, D, F):
    linear = 2 * T * D * 3 * D + 2 * T * D * D + 2 * 2 * T * D * F
    attn = 2 * 2 * T * T * D
    return linear, attn


def analytic_flops(
    method,
    arch,
    img_size,
    patch_size=16,
    num_prompts=0,
    batch=1,
    head_fwd_flops=0,
    num_prefix_tokens=1,
    **options,
):
    """Analytic forward and backward FLOPs of one batch.

    Args:
        method (str): a name of the method table
            (:data:`lspt_mm.models.methods.METHODS`).
        arch: mmpretrain arch name or dict.
        img_size (int | tuple): input size (a partial last patch is padded,
            as the backbone does).
        num_prompts (int): ``N_p`` (ignored by methods without prompts).
        head_fwd_flops (float): forward FLOPs of the task head (neck and
            decode heads) for the batch; it trains, so its backward is
            counted 2×.
        num_prefix_tokens (int): tokens before the prompts (CLS and
            registers; ``PromptedViT.num_prefix_tokens``).
        options: the method's options (e.g. ``k`` of partial-k), over the
            table's.

    Returns:
        dict: ``fwd``, ``bwd``, ``total`` (FLOPs per batch) and the parts
        ``blocks_fwd``, ``method_fwd`` (the method's own matrix products;
        ``lstm_fwd`` is its older name), ``patch_embed_fwd``, ``head_fwd``,
        ``tokens`` (``T``).
    """

    spec = get_method(method)
    D, L, _, F = arch_settings(arch)
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    N = -(-h // patch_size) * -(-w // patch_size)
    n_p = num_prompts if spec.uses_prompts else 0
    # prompts read only by a per-token update (CVPT) are no block tokens
    in_seq = n_p if spec.prompts_in_attention(**options) else 0
    T = num_prefix_tokens + in_seq + N
    shape = ViTShape(D=D, F=F, L=L, T=T, num_prompts=n_p, batch=batch)
    blocks_fwd = batch * L * (shape.linear + shape.attn)
    patch_fwd = batch * 2 * N * 3 * patch_size * patch_size * D
    terms = spec.cost_terms(shape, **options)
    if not spec.freeze_backbone:  # full fine-tune: everything trains
        blocks_bwd = batch * L * shape.trained_block_bwd
        patch_bwd = patch_fwd  # weight gradient only (images need none)
    else:  # frozen weights: the method says where gradients flow
        blocks_bwd = terms['blocks_bwd']
        patch_bwd = 0
    method_fwd = terms['method_fwd']
    fwd = blocks_fwd + patch_fwd + method_fwd + head_fwd_flops
    bwd = blocks_bwd + patch_bwd + terms['method_bwd'] + 2 * head_fwd_flops
    return dict(
        fwd=fwd,
        bwd=bwd,
        total=fwd + bwd,
        blocks_fwd=blocks_fwd,
        method_fwd=method_fwd,
        lstm_fwd=method_fwd,
        patch_embed_fwd=patch_fwd,
        head_fwd=head_fwd_flops,
        tokens=T,
    )


def model_flops(vit, batch=1, img_size=None, method=None, head_fwd_flops=0):
    """:func:`analytic_flops` of a built PromptedViT (its method, options,
    arch, ``N_p`` and token layout); ``img_size`` defaults to the one it
    was built for; ``method``: the table name when it differs from the
    backbone's own (``'lora'`` for a backbone inside ``LoRAModel``)."""

    name = method or vit.method_name
    spec = get_method(name)
    if img_size is None:
        img_size = tuple(r * vit.patch_size for r in vit.patch_resolution)
    method_options = set(spec.options) | {
        'prompts_in_attention',
        'train_cross_attn',
        'position',
    }
    options = {
        k: getattr(vit.prompt_method, k)
        for k in method_options
        if hasattr(vit.prompt_method, k)
    }
    return analytic_flops(
        name,
        vit.arch_settings,
        img_size,
        vit.patch_size,
        vit.num_prompts,
        batch,
        head_fwd_flops,
        vit.num_prefix_tokens,
        **options,
    )


# ---------------------------------------------------------------- counter
def _counter_api():
    """``torch.utils.flop_counter`` (torch >= 2.1), or an ImportError that
    names the torch it needs."""
    try:
        return importlib.import_module('torch.utils.flop_counter')
    except ImportError as err:
        raise ImportError(
            'counting FLOPs (lspt_mm.analysis.flops.flop_counter / '
            'count_flops) needs torch >= 2.1 (torch.utils.flop_counter); '
            f'this is torch {torch.__version__} ({err}). The analytic FLOP '
            'model (analytic_flops) works on any torch.'
        ) from None


def _sdpa_cpu_fwd(query_shape, key_shape, value_shape, *args, **kwargs):
    return _counter_api().sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_bwd(
    grad_out_shape, query_shape, key_shape, value_shape, *args, **kwargs
):
    return _counter_api().sdpa_backward_flop_count(
        grad_out_shape, query_shape, key_shape, value_shape
    )


def flop_counter():
    """``FlopCounterMode`` that also counts CPU fused attention (torch 2.13
    registers only the CUDA SDPA kernels, so CPU attention would count 0)."""
    api = _counter_api()
    aten = torch.ops.aten
    mapping = {}
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu'):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = (
            _sdpa_cpu_fwd
        )
    if hasattr(aten, '_scaled_dot_product_flash_attention_for_cpu_backward'):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = (
            _sdpa_cpu_bwd
        )
    return api.FlopCounterMode(display=False, custom_mapping=mapping)


def count_flops(fn):
    """Run ``fn()`` under :func:`flop_counter`; returns ``(result, flops)``."""
    counter = flop_counter()
    with counter:
        result = fn()
    return result, counter.get_total_flops()

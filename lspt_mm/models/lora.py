"""LoRA on PromptedViT through mmpretrain's own ``LoRAModel``
(``mmpretrain/models/peft/lora.py``): a config wraps the backbone,

.. code-block:: python

    backbone=dict(type='LoRAModel',  # 'mmpretrain.LoRAModel' in mmseg
                  module=dict(type='PromptedViT', prompt_method='linear',
                              pretrained=..., save_trainable_only=True),
                  alpha=16, rank=16, drop_rate=0.1,
                  targets=[dict(type='qkv')])

(:meth:`lspt_mm.models.methods.MethodSpec.apply` writes it). Each targeted
linear layer computes ``W_0·x + (α / r)·B·A·Dropout(x)`` with ``A``
(``r × in``, Kaiming-uniform) and ``B`` (``out × r``, zero) the only trained
tensors.

What makes it work with this backbone (the glue lives in PromptedViT and
the checkpoint policy, not in a copy of ``LoRAModel``):

- ``LoRAModel`` builds ``PromptedViT``, which loads ``pretrained`` in its
  constructor, before the LoRA layers are inserted; ``LoRAModel``'s
  ``init_weights`` call then changes nothing (PromptedViT's
  ``init_weights`` leaves a loaded backbone alone).
- ``LoRAModel`` saves only ``lora_`` tensors. PromptedViT decides what is
  frozen by ``requires_grad`` (``is_frozen_key``), so the checkpoint policy
  fills the frozen ViT, including the renamed ``qkv.original_layer``
  weights, from ``pretrained`` when such a checkpoint is loaded, and never
  overwrites the ``lora_`` tensors.
- PromptedViT keeps frozen modules in eval mode but puts modules that hold
  trained tensors, and their parameter-free children, in train mode, so
  ``LoRALinear``'s dropout is active in training.
"""

import re

# local names of a block's linear layers -> (in, out) in units of D / F
_BLOCK_LINEARS = {
    'attn.qkv': ('D', '3D'),
    'attn.proj': ('D', 'D'),
    'ffn.layers.0.0': ('D', 'F'),
    'ffn.layers.1': ('F', 'D'),
}

# mmpretrain's own LoRA recipe for ViT-B
# (configs/vision_transformer/vit-base-p16_8xb64-lora_in1k-384px.py)
DEFAULT_LORA = dict(
    type='LoRAModel',
    alpha=16,
    rank=16,
    drop_rate=0.1,
    targets=[dict(type='qkv')],
)


def _matches(target, module_name):
    """``LoRAModel.apply_lora``'s rule: full regex match or name suffix."""
    return bool(re.fullmatch(target, module_name)) or module_name.endswith(
        target
    )


def cost_terms(shape, rank=16, targets=(), **options):
    """FLOP-model terms (see ``PromptMethod.cost_terms``) for LoRA on the
    qkv projections (the recipe here; other targets change which frozen
    gradients are needed and are not modelled). Per block and image
    ``A: D -> r`` costs ``2·T·D·r`` and ``B: r -> 3D`` ``2·T·r·3D``;
    backward: weight and input gradients (2x), except the input gradient of
    block 1's ``A`` (its input needs none). Block 1 passes gradients
    through its attention and MLP but not into its qkv input."""
    names = [t['type'] for t in targets]
    matched = [
        local
        for local in _BLOCK_LINEARS
        if any(_matches(t, f'layers.0.{local}') for t in names)
    ]
    if matched != ['attn.qkv']:
        raise NotImplementedError(
            f'analytic FLOPs of LoRA are modelled for targets=[qkv] only, '
            f'got {names} (matching {matched}); count them with '
            'lspt_mm.analysis.flops.count_flops'
        )
    rank = next((t.get('rank', rank) for t in targets), rank)
    T, D, B, L = shape.T, shape.D, shape.batch, shape.L
    a, b = 2 * T * D * rank, 2 * T * rank * 3 * D
    qkv_input_grad = 2 * T * 3 * D * D
    return dict(
        method_fwd=B * L * (a + b),
        method_bwd=B * (L * 2 * (a + b) - a),
        blocks_bwd=B * (L * shape.frozen_block_bwd - qkv_input_grad),
    )

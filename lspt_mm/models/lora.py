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
from collections.abc import Mapping

import torch.nn as nn

from mmpretrain.registry import MODELS

from .prompt_methods import PromptMethod

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


def cost_terms(shape, rank=16, targets=(), first_block_grad=False, **options):
    """FLOP-model terms (see ``PromptMethod.cost_terms``) for LoRA on the
    qkv projections (the recipe here; other targets change which frozen
    gradients are needed and are not modelled). Per block and image
    ``A: D -> r`` costs ``2·T·D·r`` and ``B: r -> 3D`` ``2·T·r·3D``;
    backward: weight and input gradients (2x), except the input gradient of
    block 1's ``A`` (its input needs none). Block 1 passes gradients
    through its attention and MLP but not into its qkv input
    (``first_block_grad``: composed with prompts that enter block 1, it
    does)."""
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
    # block 1's qkv input needs a gradient only under prompts
    unneeded = 0 if first_block_grad else 1
    qkv_input_grad = 2 * T * 3 * D * D
    return dict(
        method_fwd=B * L * (a + b),
        method_bwd=B * (L * 2 * (a + b) - unneeded * a),
        blocks_bwd=B
        * (L * shape.frozen_block_bwd - unneeded * qkv_input_grad),
    )


@MODELS.register_module()
class LoRATuning(PromptMethod):
    """LoRA as a component, so that it composes with a prompt method in one
    backbone (``compose=['lora']``, the table's ``lspt_lora``): each
    targeted linear layer of the ViT becomes mmpretrain's own
    ``LoRALinear``, ``W_0·x + (α / r)·B·A·Dropout(x)``, exactly as
    ``LoRAModel`` makes it (the table's ``lora`` row uses ``LoRAModel``
    itself). Its tensors are the ViT's ``<layer>.lora_down`` / ``lora_up``;
    the frozen weight becomes ``<layer>.original_layer.weight``.

    Args:
        alpha (int), rank (int), drop_rate (float): as ``LoRAModel``'s;
            defaults: mmpretrain's ViT recipe (16, 16, 0.1).
        targets (list): layer names (full regex match or name suffix, as
            ``LoRAModel``), strings or ``dict(type=...)``. Defaults to
            ``['qkv']``.
    """

    def __init__(
        self, *args, alpha=16, rank=16, drop_rate=0.1, targets=('qkv',), **kw
    ):
        super().__init__(*args, **kw)
        self.alpha, self.rank, self.drop_rate = alpha, rank, drop_rate
        self.targets = [
            t['type'] if isinstance(t, Mapping) else str(t) for t in targets
        ]
        if not self.targets:
            raise ValueError('LoRATuning: targets must name >= 1 layer')

    def attach(self, vit):
        from mmpretrain.models.peft.lora import LoRALinear

        replaced = []
        for name, module in list(vit.named_modules()):
            if not name.startswith('layers.') or not isinstance(
                module, nn.Linear
            ):
                continue
            if not any(_matches(t, name) for t in self.targets):
                continue
            parent, _, child = name.rpartition('.')
            lora = LoRALinear(module, self.alpha, self.rank, self.drop_rate)
            setattr(vit.get_submodule(parent), child, lora)
            for p in (lora.lora_down.weight, lora.lora_up.weight):
                p.requires_grad = True
            replaced.append(name)
        if not replaced:
            raise ValueError(
                f'LoRATuning: targets={self.targets} match no linear layer '
                "of the ViT's blocks"
            )

    @classmethod
    def cost_terms(cls, shape, rank=16, targets=('qkv',), **options):
        targets = [
            t if isinstance(t, Mapping) else dict(type=t) for t in targets
        ]
        return cost_terms(shape, rank=rank, targets=targets, **options)

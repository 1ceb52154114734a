"""Parameter-efficient baselines without prompts, on the same backbone:
bias tuning, partial-k and a bottleneck adapter (VPT's Table 4
comparison). LoRA goes through mmpretrain's own ``LoRAModel``
(:mod:`lspt_mm.models.lora`).

The forms follow the VPT code (Jia et al. 2022, github.com/KMnP/vpt):

- **bias** (``tinytl-bias`` in ``src/models/vit_models.py``): every ViT
  parameter whose name contains ``bias`` trains: patch embedding, qkv,
  output projection, both MLP layers, every LayerNorm, the final norm.
- **partial-k** (``partial-1/2/4`` in ``SSLViT.build_backbone``): the last
  ``k`` blocks and the final norm (``fc_norm`` there, ``ln1`` / ``ln2``
  here) train.
- **adapter** (``src/models/vit_adapter/adapter_block.py``,
  ``Pfeiffer_Block``; ``MODEL.ADAPTER.STYLE='Pfeiffer'``,
  ``REDUCATION_FACTOR=8`` in ``src/configs/config.py``): after each block's
  MLP, ``f ← f + W_up·GELU(W_down·f + b_down) + b_up`` with
  ``W_down: D → D/r``, then drop-path and the residual add. ``r = 8`` (the
  code's default).
"""

import torch.nn as nn

from mmpretrain.registry import MODELS

from .prompt_methods import PromptMethod


@MODELS.register_module()
class BiasTuning(PromptMethod):
    """Bias tuning (BitFit; VPT's ``tinytl-bias``): every bias of the frozen
    ViT trains, nothing else of it."""

    def trains_backbone_param(self, name):
        return name.rsplit('.', 1)[-1] == 'bias'

    @classmethod
    def cost_terms(cls, shape, **options):
        # the patch-embedding bias trains: activation gradients pass every
        # block; bias gradients are sums, not matrix products
        return dict(
            method_fwd=0,
            method_bwd=0,
            blocks_bwd=shape.batch * shape.L * shape.frozen_block_bwd,
        )


@MODELS.register_module()
class PartialTuning(PromptMethod):
    """Partial-k: the last ``k`` blocks and the final norm train (VPT's
    ``partial-k``; ``k = 1`` in VPT's Table 4).

    Args:
        k (int): trained blocks, ``1 <= k <= L``. Defaults to 1.
    """

    def __init__(self, *args, k=1, **kwargs):
        super().__init__(*args, **kwargs)
        if (
            isinstance(k, bool)
            or not isinstance(k, int)
            or not 1 <= k <= self.num_layers
        ):
            raise ValueError(
                f'PartialTuning: k must be an int in [1, '
                f'{self.num_layers}] (num_layers), got {k!r}; '
                'set it with prompt_cfg=dict(k=...)'
            )
        self.k = k

    def trains_backbone_param(self, name):
        parts = name.split('.')
        if parts[0] == 'layers':
            return int(parts[1]) >= self.num_layers - self.k
        return parts[0] in ('ln1', 'ln2')  # final norm (ln2: avg_featmap)

    @classmethod
    def cost_terms(cls, shape, k=1, **options):
        # blocks before the last k pass no gradient; the last k compute
        # weight and input gradients (the first of them: its LN1 trains)
        return dict(
            method_fwd=0,
            method_bwd=0,
            blocks_bwd=shape.batch * k * shape.trained_block_bwd,
        )


class BottleneckMLP(nn.Module):
    """``f + W_up·GELU(W_down·f + b_down) + b_up`` (Pfeiffer adapter)."""

    def __init__(self, dims, hidden):
        super().__init__()
        self.down = nn.Linear(dims, hidden)
        self.act = nn.GELU()
        self.up = nn.Linear(hidden, dims)

    def forward(self, f):
        return f + self.up(self.act(self.down(f)))


@MODELS.register_module()
class MLPAdapter(PromptMethod):
    """Bottleneck adapter after every block's MLP (VPT's adapter baseline,
    Pfeiffer form): block ``l`` computes ``x' = x + Attn(LN1 x)``, then
    ``f = γ2·MLP(LN2 x')``, ``f ← f + W_up·GELU(W_down·f + b_down) + b_up``
    and ``x' + DropPath(f)`` (``γ2``: LayerScale, identity without it).

    Args:
        reduction (int): ``r``, hidden width ``D / r``. Defaults to 8 (VPT's
            ``MODEL.ADAPTER.REDUCATION_FACTOR``).
        init (str): ``'zero_up'`` (default): ``W_down`` as ``nn.Linear``
            initialises it, ``W_up`` and both biases zero, so the block
            starts as the pretrained one and both matrices learn.
            ``'vpt'``: everything zero, as VPT's code; then GELU(0) = 0
            makes the gradients of ``W_down``, ``b_down`` and ``W_up``
            zero for ever and only ``b_up`` learns (the adapter reduces to
            a learned bias per block).
    """

    def __init__(self, *args, reduction=8, init='zero_up', **kwargs):
        super().__init__(*args, **kwargs)
        if (
            isinstance(reduction, bool)
            or not isinstance(reduction, int)
            or not 1 <= reduction <= self.embed_dims
        ):
            raise ValueError(
                f'MLPAdapter: reduction must be an int in [1, '
                f'{self.embed_dims}] (embed_dims), got '
                f'{reduction!r}'
            )
        if init not in ('zero_up', 'vpt'):
            raise ValueError(
                f'MLPAdapter: init={init!r} is unknown; choose '
                "'zero_up' or 'vpt'"
            )
        self.reduction = reduction
        hidden = self.embed_dims // reduction
        self.adapters = nn.ModuleList(
            BottleneckMLP(self.embed_dims, hidden)
            for _ in range(self.num_layers)
        )
        for adapter in self.adapters:
            zeros = [adapter.up.weight, adapter.up.bias, adapter.down.bias]
            if init == 'vpt':
                zeros.append(adapter.down.weight)
            for p in zeros:
                nn.init.zeros_(p)

    def mlp_adapter(self, layer_index):
        return self.adapters[layer_index]

    @classmethod
    def cost_terms(cls, shape, reduction=8, first_block_grad=False, **options):
        """Per block and image each projection costs ``a = 2·T·D·D/r``;
        backward: weight and input gradients (2x), except block 1's
        ``W_down``, whose input (the frozen MLP's output) needs none.
        Block 1's attention and MLP need no gradient either
        (``first_block_grad``: composed with prompts entering block 1,
        they do)."""
        a = 2 * shape.T * shape.D * (shape.D // reduction)
        B, L = shape.batch, shape.L
        unneeded = 0 if first_block_grad else 1
        return dict(
            method_fwd=B * L * 2 * a,
            method_bwd=B * (L * 4 * a - unneeded * a),
            blocks_bwd=B * (L - unneeded) * shape.frozen_block_bwd,
        )

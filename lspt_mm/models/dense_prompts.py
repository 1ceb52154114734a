"""Prompts that update every token: CVPT and LSPT through its cross-attention.

Both use the fifth way a component changes a block
(:meth:`~lspt_mm.models.prompt_methods.PromptMethod.patch_update`): in
block ``l`` the tokens (CLS, registers and patches: the queries) attend to
the block's prompts (keys and values) in a cross-attention, and the result
is added to every token,

    ``x ← x + s_l ⊙ γ1_l ⊙ CA_l(x, X_P^l)``,
    ``CA_l(x, P) = W_o·softmax(W_q x·(W_k P)ᵀ / √d)·W_v P + b_o``,

at ``position`` (CVPT's ``insert``: ``'before_attn'`` = 1, ``'after_attn'``
= 3, CVPT's default for classification and segmentation, ``'after_mlp'`` =
5). ``W_q, W_k, W_v, W_o`` are block ``l``'s own pretrained attention
weights (CVPT's code copies them into its ``CrossAttention`` and keeps them
frozen); with ``train_cross_attn=True`` each block gets a trainable copy,
initialised from the block. The queries are the raw tokens, with no
LayerNorm, as in CVPT's code. ``γ1_l``: the block's LayerScale of its
attention branch (DINOv2; none in MAE / MoCo v3 / CVPT's supervised ViT,
where it is the identity; ``layer_scale=False`` leaves it out). ``s_l``
(LSPT-CA only): a per-channel scale,
zero at the start, so training starts from the frozen ViT's output.

- :class:`CVPT` (Huang et al., ICCV 2025; code Lingyun0419/CVPT,
  ``CVPT.py``: ``CvptBlock``, ``CrossAttention``): a learnable set ``P^l``
  per block (``N_p × D``, Xavier-uniform as the code draws it), read only by
  the cross-attention; the prompts are not tokens of the self-attention.
- :class:`LSPTCrossAttention` (this project's extension, not the LSPT
  paper's method; ``docs/lspt_ca.md``): LSPT's prompts ``X_P^l`` (GSPC and
  LPC unchanged) are what the tokens read. ``prompts_in_attention`` keeps
  them in the self-attention too (then ``X̂_P^l`` is the block's output
  prompts, as in LSPT); without it (the default) the block does not
  transform them and GSPC reads ``X̂_P^l = X_P^{l-1}``.
"""

import torch
import torch.nn as nn

from mmpretrain.registry import MODELS

from .prompt_methods import LSPT, PromptMethod, VPTDeep
from .vit_blocks import UPDATE_POSITIONS, attention_projections
from .vit_blocks import cross_attention as cross_attention_fn


def cross_attention_cost(
    shape,
    position='after_attn',
    train_cross_attn=False,
    prompts_in_attention=False,
):
    """FLOP-model terms of the cross-attention of every block (one image:
    ``T`` query tokens (CLS, registers, patches), ``N_p`` prompts): q and out projections
    ``2·2·T·D²``, k and v ``2·2·N_p·D²``, the attention ``2·2·T·N_p·D``.
    Backward: input gradients of the four projections, the attention's
    ``ATTN_BWD ×`` its forward (``shape.attn_bwd_factor``), with trained weights their gradients (2×
    the projections). Without prompts in the self-attention the tokens
    need no gradient until the first update: block 1's queries, and what
    of block 1 comes before the update (its attention, or all of it at
    ``'after_mlp'``), pass none (``blocks_bwd``)."""
    T, D, N, B, L = shape.T, shape.D, shape.num_prompts, shape.batch, shape.L
    if prompts_in_attention:  # the prompt tokens query nothing
        T -= N
    q_o = 2 * 2 * T * D * D
    k_v = 2 * 2 * N * D * D
    att = 2 * 2 * T * N * D
    fwd = B * L * (q_o + k_v + att)
    bwd = B * L * (q_o + k_v + shape.attn_bwd_factor * att)
    blocks = L * shape.frozen_block_bwd
    if not prompts_in_attention:
        bwd -= B * q_o // 2  # block 1's queries
        attention = 2 * T * D * 4 * D + shape.attn_bwd_factor * shape.attn
        blocks -= {
            'before_attn': 0,
            'after_attn': attention,
            'after_mlp': shape.frozen_block_bwd,
        }[position]
    if train_cross_attn:
        bwd += B * L * (q_o + k_v)
    return dict(method_fwd=fwd, method_bwd=bwd, blocks_bwd=B * blocks)


class CrossAttentionUpdate:
    """What CVPT and LSPT-CA share: the per-block cross-attention of the
    tokens on the prompts as a :meth:`PromptMethod.patch_update`.

    Args (after PromptMethod's):
        position (str): where it enters a block, one of
            :data:`~lspt_mm.models.vit_blocks.UPDATE_POSITIONS`.
        train_cross_attn (bool): train a per-block copy of the attention
            weights (initialised from the block) instead of reading the
            frozen block's own.
        scale_init (float, optional): start of a per-block, per-channel
            scale ``s_l`` of the update; ``None``: no scale (CVPT).
        layer_scale (bool): multiply the update by the block's LayerScale
            ``γ1`` of its attention branch, as the block scales its own
            attention output (DINOv2 has one, learned per channel: mean
            |γ1| 0.31 in block 1 and 6.7 in block 12 of DINOv2-S; MAE, MoCo
            v3 and CVPT's supervised ViT have none, so there it changes
            nothing and CVPT's published form is kept). CVPT: True;
            LSPT-CA: False (its own ``s_l`` scales the update).
    """

    def _init_cross_attention(
        self, position, train_cross_attn, scale_init, layer_scale
    ):
        if position not in UPDATE_POSITIONS:
            raise ValueError(
                f'{type(self).__name__}: position={position!r}; choose one '
                f'of {UPDATE_POSITIONS} (CVPT insert 1, 3, 5)'
            )
        self.position = self.update_position = position
        self.train_cross_attn = bool(train_cross_attn)
        self.layer_scale = bool(layer_scale)
        D, L = self.embed_dims, self.num_layers
        if self.train_cross_attn:
            self.cross_attn = nn.ModuleList(
                nn.ModuleDict({n: nn.Linear(D, D) for n in 'qkvo'})
                for _ in range(L)
            )
        self.scale_init = scale_init
        if scale_init is not None:
            self.cross_scale = nn.Parameter(
                torch.full((L, D), float(scale_init))
            )
        else:
            self.cross_scale = None

    def backbone_weights_ready(self, vit):
        """Trainable copies start as the blocks' attention weights."""
        if not self.train_cross_attn:
            return
        with torch.no_grad():
            for copy, layer in zip(self.cross_attn, vit.layers):
                for n, (w, b) in zip('qkvo', attention_projections(layer)):
                    copy[n].weight.copy_(w)
                    copy[n].bias.copy_(b if b is not None else 0.0)

    def patch_update(self, layer_index, layer, prompts):
        if self.train_cross_attn:
            parts = self.cross_attn[layer_index]
            projections = [(parts[n].weight, parts[n].bias) for n in 'qkvo']
        else:
            projections = None
        scale = (
            None if self.cross_scale is None else self.cross_scale[layer_index]
        )

        gamma = layer.attn.gamma1 if self.layer_scale else None

        def update(x):
            out = cross_attention_fn(layer, x, prompts, projections)
            if gamma is not None:  # the block's LayerScale γ1 (DINOv2)
                out = gamma(out)
            return out if scale is None else out * scale

        return update


@MODELS.register_module()
class CVPT(CrossAttentionUpdate, PromptMethod):
    """CVPT: per-block prompts ``P^l`` read by the tokens through block
    ``l``'s weight-initialised cross-attention, added to every token
    (module docstring). Trains the prompts (and the head), as CVPT's code:
    the cross-attention weights stay the frozen block's.

    Args:
        position (str): ``'after_attn'`` (CVPT's ``insert=3``, the code's
            default and its segmentation backbone's).
        train_cross_attn (bool): Defaults to False (CVPT's code).
        init (str): ``'xavier'`` (CVPT's code: ``xavier_uniform_`` on the
            ``(L, N_p, D)`` prompt tensor) or ``'uniform'`` (VPT's).
    """

    num_prompt_sets = 'per_block'
    prompts_in_attention = False

    def __init__(
        self,
        *args,
        position='after_attn',
        train_cross_attn=False,
        init='xavier',
        layer_scale=True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self._init_cross_attention(
            position, train_cross_attn, None, layer_scale
        )
        if init not in ('xavier', 'uniform'):
            raise ValueError(
                f"CVPT: init={init!r}; choose 'xavier' (CVPT's code) or "
                "'uniform' (VPT's)"
            )
        self.init = init
        if init == 'xavier':
            nn.init.xavier_uniform_(self.prompts)

    @classmethod
    def cost_terms(
        cls, shape, position='after_attn', train_cross_attn=False, **options
    ):
        return cross_attention_cost(shape, position, train_cross_attn)

    # VPT-deep's: block l + 1 reads its own P^{l+1}
    next_prompts = VPTDeep.next_prompts


@MODELS.register_module()
class LSPTCrossAttention(CrossAttentionUpdate, LSPT):
    """LSPT-CA (this project's extension): LSPT's LSTM-coded prompts
    ``X_P^l`` read by the tokens through block ``l``'s cross-attention,
    ``x ← x + s_l ⊙ CA_l(x, X_P^l)`` with ``s_l = 0`` at the start (module
    docstring; spec: ``docs/lspt_ca.md``).

    Args:
        prompts_in_attention (bool): keep the prompts in the
            self-attention too. Defaults to False.
        position (str): Defaults to ``'after_attn'``.
        train_cross_attn (bool): Defaults to False.
        scale_init (float): Defaults to 0.
    """

    def __init__(
        self,
        *args,
        prompts_in_attention=False,
        position='after_attn',
        train_cross_attn=False,
        scale_init=0.0,
        layer_scale=False,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.prompts_in_attention = bool(prompts_in_attention)
        self._init_cross_attention(
            position, train_cross_attn, scale_init, layer_scale
        )

    @classmethod
    def cost_terms(
        cls,
        shape,
        position='after_attn',
        train_cross_attn=False,
        prompts_in_attention=False,
        **options,
    ):
        """LSPT's LSTM terms plus the cross-attention's."""
        lstm = super().cost_terms(shape)
        cross = cross_attention_cost(
            shape, position, train_cross_attn, prompts_in_attention
        )
        return dict(
            cross,
            method_fwd=lstm['method_fwd'] + cross['method_fwd'],
            method_bwd=lstm['method_bwd'] + cross['method_bwd'],
        )

"""Prompt methods: which prompts enter block 1 and what passes between blocks.

Every tuning method is a small ``nn.Module`` component of
:class:`~lspt_mm.models.PromptedViT`, registered in mmpretrain's ``MODELS``
(part of mmengine's ``MODELS`` hierarchy) and built from config, e.g.
``PromptedViT(prompt=dict(type='LSPT', num_prompts=100))``; the method table
(:mod:`lspt_mm.models.methods`) gives each a short name
(``prompt_method='lspt'``). A component holds only its own learnable state
(prompt tokens, LSTM cell, gates, temperatures, adapters) under the
backbone's ``prompt_method.`` prefix. :class:`PromptedViT` calls

- :meth:`PromptMethod.first_prompts` for ``X_P^0`` (``None``: no prompts),
- :meth:`PromptMethod.temperature` for block ``l``'s attention temperature,
- :meth:`PromptMethod.mlp_adapter` for a module applied to block ``l``'s MLP
  branch (``None``: the upstream block),
- :meth:`PromptMethod.next_prompts` after blocks ``0 .. L-2`` (0-based) to get
  the prompts of the next block from this block's input prompts ``X_P^{l-1}``,
  output prompts ``X̂_P^l`` and output patch tokens ``X^l``,
- :meth:`PromptMethod.patch_update` for a per-token update of block ``l``
  (``x ← x + u(x)`` at :attr:`PromptMethod.update_position`, e.g. CVPT's
  cross-attention of the tokens on the prompts; ``None``: none),
- :meth:`PromptMethod.trains_backbone_param` once at construction: which
  pretrained ViT parameters train although the backbone is frozen,
- :meth:`PromptMethod.attach` once the ViT has its weights (a component
  that changes the ViT's modules, e.g. LoRA's layers, does it there).

:attr:`PromptMethod.prompts_in_attention` says whether the prompts are
tokens of the blocks' self-attention (VPT, GaPT, LSPT) or only read by the
update (CVPT). A method without prompts (bias, adapter, LoRA) can be
*composed* with a prompt method (:meth:`PromptMethod.compose`, the
``compose`` option): PromptedViT asks every component of the composite
(:meth:`PromptMethod.components`).

Symbols follow ``shared/docs/method.md`` (1-based blocks in the docs, 0-based
indices in code: the block run last has index ``l``; its learnable prompt set
for the next block is ``P^{l+1}``).
"""

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

from lspt_mm import compat

from mmpretrain.registry import MODELS


def tensor_pattern(key):
    """State-dict ``key`` with its block indices written ``*``
    (``'adapters.3.down.weight'`` -> ``'adapters.*.down.weight'``)."""
    return re.sub(r'(?<=\.)\d+(?=\.|$)|^\d+(?=\.)', '*', key)


def vpt_uniform_bound(patch_size, embed_dims):
    """VPT's prompt init bound ``v = sqrt(6 / (3·p·p + D))``."""
    return math.sqrt(6.0 / float(3 * patch_size * patch_size + embed_dims))


class PromptMethod(nn.Module):
    """Base of every tuning method; by itself: no prompts, nothing of the
    ViT trains (linear probe, or full fine-tuning with
    ``freeze_backbone=False``).

    Subclass it (and register the subclass in a ``MODELS`` registry) to add
    a method; :class:`PromptedViT` passes the backbone's sizes.

    Args:
        num_prompts (int): ``N_p``, prompt tokens per block (ignored by
            methods without prompts).
        embed_dims (int): ``D``.
        num_layers (int): ``L``.
        patch_size (int): ``p``, for VPT's init bound.
        prompt_dropout (float): dropout on inserted prompt tokens.
    """

    # how many learnable sets P^l: 0, an int, or 'per_block' (L sets)
    num_prompt_sets = 0
    # recipe keys (lspt_mm/recipes.py) the component takes as options, e.g.
    # GaPT's gate_init: the recipe puts their values in ``prompt_cfg``
    recipe_options = ()
    # the name it was built under (table name or registry key); set by
    # lspt_mm.models.methods.build_method and recorded in checkpoints
    method_name = None
    # whether the prompts are tokens of the blocks' self-attention (False:
    # only a patch_update reads them, e.g. CVPT)
    prompts_in_attention = True
    # where patch_update's update enters a block (vit_blocks.UPDATE_POSITIONS)
    update_position = 'after_attn'

    def __init__(
        self,
        num_prompts,
        embed_dims,
        num_layers,
        patch_size,
        prompt_dropout=0.1,
    ):
        super().__init__()
        if self.num_prompt_sets and (
            isinstance(num_prompts, bool)
            or not isinstance(num_prompts, int)
            or num_prompts < 1
        ):
            raise ValueError(
                f'num_prompts must be an int >= 1 for {type(self).__name__} '
                f'(prompt_method / prompt=dict(type=...)), got '
                f'{num_prompts!r}'
            )
        self.num_prompts = num_prompts if self.num_prompt_sets else 0
        self.embed_dims = embed_dims
        self.num_layers = num_layers
        if self.num_prompt_sets:
            sets = self.num_prompt_sets
            if sets == 'per_block':
                sets = num_layers
            bound = vpt_uniform_bound(patch_size, embed_dims)
            self.prompts = nn.Parameter(
                torch.empty(sets, num_prompts, embed_dims).uniform_(
                    -bound, bound
                )
            )
            self.prompt_dropout = nn.Dropout(prompt_dropout)

    # ------------------------------------------------------------ structure
    @property
    def prompt_set_blocks(self):
        """Block (0-based) whose input each learnable set ``P^i`` serves:
        ``self.prompts[i]`` enters (or, for LSPT, feeds the LSTM that makes
        the prompts of) block ``prompt_set_blocks[i]``. Empty without
        prompts. A prompt initialiser fills ``prompts[i]`` from the tokens
        entering that block, for every method alike."""
        if not self.num_prompt_sets:
            return ()
        return tuple(range(self.prompts.shape[0]))

    def trains_backbone_param(self, name):
        """Whether the pretrained ViT parameter ``name`` (PromptedViT's
        name, e.g. ``'layers.11.ffn.layers.1.bias'``) trains when the
        backbone is frozen. Called once at construction."""
        return False

    def attach(self, vit):
        """Called once by ``vit`` (the PromptedViT) after its pretrained
        weights are loaded and its frozen tensors set: a component that
        changes the ViT's modules (LoRA's layers) does it here."""

    def backbone_weights_ready(self, vit):
        """Called when ``vit``'s ViT weights are (re)set: after
        ``pretrained`` is loaded, or after ``init_weights`` draws a random
        ViT (a component that copies ViT weights refreshes them here)."""

    # ------------------------------------------------------------ composing
    @property
    def add_ons(self):
        """The components composed with this one (name -> component)."""
        return self._modules.get('composed') or {}

    def compose(self, add_ons):
        """Combine this component with ``add_ons`` (name -> component of a
        method without prompts, e.g. bias tuning, adapters, LoRA): their
        tensors live under ``composed.<name>.``, what they train trains,
        their MLP adapters and ViT changes apply. One prompt method per
        backbone: an add-on with prompts, a temperature or a patch update
        is an error."""
        for name, part in add_ons.items():
            if (
                part.num_prompt_sets
                or type(part).temperature is not PromptMethod.temperature
                or type(part).patch_update is not PromptMethod.patch_update
                or part.add_ons
            ):
                raise ValueError(
                    f'compose: {name!r} ({type(part).__name__}) is not a '
                    'method without prompts; compose one prompt method '
                    "with 'bias', 'adapter' and / or 'lora'"
                )
        adapters = [
            n
            for n, c in (('the prompt method', self), *add_ons.items())
            if type(c).mlp_adapter is not PromptMethod.mlp_adapter
        ]
        if len(adapters) > 1:
            raise ValueError(
                f'compose: {adapters} each put an MLP adapter in every '
                'block; compose at most one of them'
            )
        if add_ons:
            self.composed = nn.ModuleDict(add_ons)
        return self

    def components(self):
        """This component and the ones composed with it."""
        return (self, *self.add_ons.values())

    def trains_param(self, name):
        """:meth:`trains_backbone_param` of the composite."""
        return any(c.trains_backbone_param(name) for c in self.components())

    def block_mlp_adapter(self, layer_index):
        """:meth:`mlp_adapter` of the composite (at most one has one)."""
        for part in self.components():
            adapter = part.mlp_adapter(layer_index)
            if adapter is not None:
                return adapter
        return None

    @classmethod
    def state_signature(cls, **options):
        """How the component's own tensors look in a state dict (under
        ``prompt_method.``): their names, block indices written ``*``, and
        the number of prompt sets (:attr:`num_prompt_sets`). Read off a
        tiny instance, so a new method needs nothing written here; the
        checkpoint policy recognises an old checkpoint's method by it
        (:func:`lspt_mm.models.methods.methods_saving`)."""
        probe = cls(
            num_prompts=1,
            embed_dims=8,
            num_layers=2,
            patch_size=16,
            prompt_dropout=0.0,
            **options,
        )
        names = frozenset(tensor_pattern(k) for k in probe.state_dict())
        return names, cls.num_prompt_sets

    @classmethod
    def cost_terms(cls, shape, **options):
        """Terms of the analytic FLOP model for a batch
        (:func:`lspt_mm.analysis.flops.analytic_flops`; ``shape``: a
        :class:`~lspt_mm.analysis.flops.ViTShape`, ``options``: the
        component's options), with a frozen backbone: ``method_fwd`` /
        ``method_bwd``, FLOPs of the method's own matrix products forward /
        backward; ``blocks_bwd``, backward FLOPs of the ViT blocks. Default:
        with prompts every block passes activation gradients (prompts enter
        block 1), without them nothing does."""
        blocks = (
            shape.batch * shape.L * shape.frozen_block_bwd
            if cls.num_prompt_sets
            else 0
        )
        return dict(method_fwd=0, method_bwd=0, blocks_bwd=blocks)

    # ------------------------------------------------------------ forward
    def first_prompts(self, batch_size):
        if not self.num_prompts:
            return None
        return self.prompt_dropout(self.prompts[0].expand(batch_size, -1, -1))

    def temperature(self, layer_index):
        return None

    def mlp_adapter(self, layer_index):
        """Module applied to block ``l``'s MLP branch before its residual
        add, or ``None``."""
        return None

    def patch_update(self, layer_index, layer, prompts):
        """The per-token update of block ``l`` (``layer``; ``prompts``: the
        block's prompts ``X_P^l``, (B, N_p, D)): a function ``u`` of the
        tokens, ``x ← x + u(x)`` at :attr:`update_position`, or ``None``.
        PromptedViT keeps the prompt tokens themselves out of it."""
        return None

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        """Returns ``(X_P^{l}, state)`` for the next block."""
        return out_prompts, state


@MODELS.register_module()
class NoPrompt(PromptMethod):
    """No prompts: the linear probe (frozen ViT) or full fine-tuning
    (``freeze_backbone=False``); LoRA wraps this one."""


@MODELS.register_module()
class VPTShallow(PromptMethod):
    """VPT-shallow: ``P^0`` inserted once, carried through all blocks."""

    num_prompt_sets = 1


@MODELS.register_module()
class VPTDeep(PromptMethod):
    """VPT-deep: before block l >= 2 the prompt slice is *replaced* by
    ``P^{l-1}``; the previous block's output prompts are discarded."""

    num_prompt_sets = 'per_block'

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        batch = out_prompts.shape[0]
        return self.prompt_dropout(
            self.prompts[layer_index + 1].expand(batch, -1, -1)
        ), state


@MODELS.register_module()
class GaPT(PromptMethod):
    """GaPT: prompts inserted once; after block l < L the next prompts are
    ``g_l·X̂_P^l + (1 - g_l)·X_P^{l-1}``, ``g_l = sigmoid(γ_l)``, plus one
    learnable attention temperature ``τ_l`` per block dividing the logits.

    Temperatures follow GaPT's official training dynamics: in training, the
    *parameter* ``τ`` is clamped in place to ``temperature_range`` (no
    gradient through the clamp) at the start of every forward, before any
    block uses it (official ``reinit_temp()``). A ``τ_l`` that an optimiser
    step pushed past a bound therefore returns to the bound and keeps
    receiving gradients, instead of sitting outside the range with zero
    gradient (what clamping only the value used would do).

    ``state_dict()`` clamps the parameter in place too and then hands back
    the parameter itself (as for every other tensor), so a checkpoint holds
    in-range values (the next training forward would clamp them anyway: a
    resumed run continues exactly), writing into the returned tensor
    changes the parameter, and mmengine's ``ExponentialMovingAverage(
    update_buffers=True)`` tracks ``τ``. In eval mode a forward clamps only
    the value used and leaves the parameter as it is; this is intended (a
    forward should not change the model it evaluates) and differs from the
    official code, which also clamps the parameter in eval. The outputs are
    the same either way.

    Args:
        gate_init (float): ``γ_l`` starts at ``-gate_init``.
        temperature_range (tuple): clamp of ``τ_l`` (init 1).
    """

    num_prompt_sets = 1
    recipe_options = ('gate_init',)  # GaPT's Table 5 gives it per task

    def __init__(
        self, *args, gate_init=10.0, temperature_range=(0.01, 10.0), **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.gate_logits = nn.Parameter(
            torch.full((self.num_layers - 1,), -float(gate_init))
        )
        self.temperatures = nn.Parameter(torch.ones(self.num_layers))
        self.temperature_range = tuple(temperature_range)

    @torch.no_grad()
    def clamp_temperatures_(self):
        """Clamp the parameter ``τ`` in place to ``temperature_range``."""
        self.temperatures.clamp_(*self.temperature_range)

    def first_prompts(self, batch_size):
        # called once per forward, before block 1: the official code's
        # in-place clamp goes here, before any use of τ in this graph
        if self.training:
            self.clamp_temperatures_()
        return super().first_prompts(batch_size)

    def temperature(self, layer_index):
        # after the in-place clamp this is the identity with gradient 1
        # (clamp passes gradients at the bounds); in eval it clamps the value
        return self.temperatures[layer_index].clamp(*self.temperature_range)

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # clamp the parameter itself, then save it as torch does (the saved
        # tensor is the parameter's data, not a clamped copy)
        self.clamp_temperatures_()
        super()._save_to_state_dict(destination, prefix, keep_vars)

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        gate = torch.sigmoid(self.gate_logits[layer_index])
        return gate * out_prompts + (1.0 - gate) * in_prompts, state


@MODELS.register_module()
class LSPTGSPCOnly(PromptMethod):
    """LSPT ablation, GSPC only: ``X_P^l = X̂_P^l + mean_i X^l_i`` (no LSTM,
    no per-block prompts)."""

    num_prompt_sets = 1

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        return out_prompts + patches.mean(dim=1, keepdim=True), state


@MODELS.register_module()
class LSPT(PromptMethod):
    """LSPT: GSPC then LPC after blocks 1..L-1.

    ``X̂_SP^l = X̂_P^l + mean_i X^l_i`` (GSPC, patch tokens only), then one
    shared LSTM cell: ``(X_P^l, C^l) = LSTMCell(input=P^l, hidden=X̂_SP^l,
    cell=C^{l-1})`` with ``C^0 = 0``, every prompt token a separate row.

    The input term ``W_ih·P^l + b_ih`` does not depend on the image, so it is
    computed once per forward for all blocks (once in all at inference) and
    broadcast over the batch (dropout on ``P^l`` is therefore shared by the
    batch).
    """

    num_prompt_sets = 'per_block'
    use_spatial_mean = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lstm = nn.LSTMCell(self.embed_dims, self.embed_dims)
        self._input_terms_cache = None  # (key, tensor), inference only

    @classmethod
    def cost_terms(cls, shape, **options):
        """The LSTM cell, once per block ``l < L`` (``L-1`` steps): hidden
        term ``W_hh·X̂_SP^l`` per image, ``2·N_p·D·4D``; input term
        ``W_ih·P^l`` once per batch (it does not depend on the image);
        backward 2x (the cell trains)."""
        terms = super().cost_terms(shape)
        D = shape.D
        step = 2 * shape.num_prompts * D * 4 * D
        terms['method_fwd'] = (shape.L - 1) * step * (shape.batch + 1)
        terms['method_bwd'] = 2 * terms['method_fwd']
        return terms

    def input_terms(self):
        """``W_ih·P^l + b_ih`` for l = 1..L-1: (L-1, N_p, 4D).

        It depends on parameters only, so at inference (eval mode, no grad)
        it is computed once and reused until a parameter changes (an
        optimiser step or ``load_state_dict`` bumps its version). Under
        ``torch.compile`` it is part of the graph instead (the cache's key,
        storage pointers and versions, cannot be traced; the product is
        ``(L-1)·N_p·D·4D`` multiply-adds, once per forward).
        """
        params = (self.prompts, self.lstm.weight_ih, self.lstm.bias_ih)
        if compat.is_compiling():  # torch.compiler's (torch >= 2.3)
            prompts = self.prompts[1:]
            if self.training:
                prompts = self.prompt_dropout(prompts)
            return F.linear(prompts, self.lstm.weight_ih, self.lstm.bias_ih)
        if self.training or torch.is_grad_enabled():
            self._input_terms_cache = None
            return F.linear(
                self.prompt_dropout(self.prompts[1:]),
                self.lstm.weight_ih,
                self.lstm.bias_ih,
            )
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        if (
            self._input_terms_cache is None
            or self._input_terms_cache[0] != key
        ):
            self._input_terms_cache = (
                key,
                F.linear(
                    self.prompts[1:], self.lstm.weight_ih, self.lstm.bias_ih
                ),
            )
        return self._input_terms_cache[1]

    def hidden_state(self, out_prompts, patches):
        if self.use_spatial_mean:
            return out_prompts + patches.mean(dim=1, keepdim=True)
        return out_prompts

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        if state is None:  # first LPC step of this forward
            input_terms, cell = self.input_terms(), None  # C^0 = 0
        else:
            input_terms, cell = state
        hidden = self.hidden_state(out_prompts, patches)
        gates = input_terms[layer_index] + F.linear(
            hidden, self.lstm.weight_hh, self.lstm.bias_hh
        )
        i, f, g, o = gates.chunk(4, dim=-1)
        new_cell = torch.sigmoid(i) * torch.tanh(g)
        if cell is not None:
            new_cell = new_cell + torch.sigmoid(f) * cell
        new_hidden = torch.sigmoid(o) * torch.tanh(new_cell)
        return new_hidden, (input_terms, new_cell)


@MODELS.register_module()
class LSPTLPCOnly(LSPT):
    """LSPT ablation, LPC only: the LSTM's hidden state is ``X̂_P^l``."""

    use_spatial_mean = False

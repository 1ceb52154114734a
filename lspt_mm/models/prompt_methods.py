"""Prompt methods: which prompts enter block 1 and what passes between blocks.

Each method is a small ``nn.Module`` holding only its own learnable state
(prompt tokens, LSTM cell, gates, temperatures). :class:`PromptedViT` calls

- :meth:`PromptMethod.first_prompts` for ``X_P^0`` (``None``: no prompts),
- :meth:`PromptMethod.temperature` for block ``l``'s attention temperature,
- :meth:`PromptMethod.next_prompts` after blocks ``0 .. L-2`` (0-based) to get
  the prompts of the next block from this block's input prompts ``X_P^{l-1}``,
  output prompts ``X̂_P^l`` and output patch tokens ``X^l``.

Symbols follow ``shared/docs/method.md`` (1-based blocks in the docs, 0-based
indices in code: the block run last has index ``l``; its learnable prompt set
for the next block is ``P^{l+1}``).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PROMPT_METHODS = {}


def register_prompt_method(name):
    def wrap(cls):
        PROMPT_METHODS[name] = cls
        cls.method_name = name
        return cls
    return wrap


def vpt_uniform_bound(patch_size, embed_dims):
    """VPT's prompt init bound ``v = sqrt(6 / (3·p·p + D))``."""
    return math.sqrt(6. / float(3 * patch_size * patch_size + embed_dims))


@register_prompt_method('none')
class PromptMethod(nn.Module):
    """No prompts: linear probe (frozen) or full fine-tuning (not frozen).

    Args:
        num_prompts (int): ``N_p``, prompt tokens per block.
        embed_dims (int): ``D``.
        num_layers (int): ``L``.
        patch_size (int): ``p``, for VPT's init bound.
        prompt_dropout (float): dropout on inserted prompt tokens.
    """
    num_prompt_sets = 0  # how many learnable sets P^l; overridden below

    def __init__(self, num_prompts, embed_dims, num_layers, patch_size,
                 prompt_dropout=0.1):
        super().__init__()
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
                    -bound, bound))
            self.prompt_dropout = nn.Dropout(prompt_dropout)

    def first_prompts(self, batch_size):
        if not self.num_prompts:
            return None
        return self.prompt_dropout(
            self.prompts[0].expand(batch_size, -1, -1))

    def temperature(self, layer_index):
        return None

    def next_prompts(self, layer_index, in_prompts, out_prompts, patches,
                     state):
        """Returns ``(X_P^{l}, state)`` for the next block."""
        return out_prompts, state


@register_prompt_method('vpt_shallow')
class VPTShallow(PromptMethod):
    """VPT-shallow: ``P^0`` inserted once, carried through all blocks."""
    num_prompt_sets = 1


@register_prompt_method('vpt_deep')
class VPTDeep(PromptMethod):
    """VPT-deep: before block l >= 2 the prompt slice is *replaced* by
    ``P^{l-1}``; the previous block's output prompts are discarded."""
    num_prompt_sets = 'per_block'

    def next_prompts(self, layer_index, in_prompts, out_prompts, patches,
                     state):
        batch = out_prompts.shape[0]
        return self.prompt_dropout(
            self.prompts[layer_index + 1].expand(batch, -1, -1)), state


@register_prompt_method('gapt')
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
    gradient (what clamping only the value used would do). The state dict
    always holds the clamped values (the next forward would clamp them
    anyway, so a resumed run continues exactly), and in eval mode the value
    used is clamped without touching the parameter.

    Args:
        gate_init (float): ``γ_l`` starts at ``-gate_init``.
        temperature_range (tuple): clamp of ``τ_l`` (init 1).
    """
    num_prompt_sets = 1

    def __init__(self, *args, gate_init=10., temperature_range=(0.01, 10.),
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.gate_logits = nn.Parameter(
            torch.full((self.num_layers - 1, ), -float(gate_init)))
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
        super()._save_to_state_dict(destination, prefix, keep_vars)
        key = prefix + 'temperatures'
        if key in destination and not keep_vars:
            destination[key] = destination[key].clamp(
                *self.temperature_range)

    def next_prompts(self, layer_index, in_prompts, out_prompts, patches,
                     state):
        gate = torch.sigmoid(self.gate_logits[layer_index])
        return gate * out_prompts + (1. - gate) * in_prompts, state


@register_prompt_method('lspt_gspc_only')
class LSPTGSPCOnly(PromptMethod):
    """LSPT ablation, GSPC only: ``X_P^l = X̂_P^l + mean_i X^l_i`` (no LSTM,
    no per-block prompts)."""
    num_prompt_sets = 1

    def next_prompts(self, layer_index, in_prompts, out_prompts, patches,
                     state):
        return out_prompts + patches.mean(dim=1, keepdim=True), state


@register_prompt_method('lspt')
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

    def input_terms(self):
        """``W_ih·P^l + b_ih`` for l = 1..L-1: (L-1, N_p, 4D).

        It depends on parameters only, so at inference (eval mode, no grad)
        it is computed once and reused until a parameter changes (an
        optimiser step or ``load_state_dict`` bumps its version).
        """
        params = (self.prompts, self.lstm.weight_ih, self.lstm.bias_ih)
        if self.training or torch.is_grad_enabled():
            self._input_terms_cache = None
            return F.linear(self.prompt_dropout(self.prompts[1:]),
                            self.lstm.weight_ih, self.lstm.bias_ih)
        key = tuple((p.data_ptr(), p._version, p.dtype) for p in params)
        if self._input_terms_cache is None or \
                self._input_terms_cache[0] != key:
            self._input_terms_cache = (key, F.linear(
                self.prompts[1:], self.lstm.weight_ih, self.lstm.bias_ih))
        return self._input_terms_cache[1]

    def hidden_state(self, out_prompts, patches):
        if self.use_spatial_mean:
            return out_prompts + patches.mean(dim=1, keepdim=True)
        return out_prompts

    def next_prompts(self, layer_index, in_prompts, out_prompts, patches,
                     state):
        if state is None:  # first LPC step of this forward
            input_terms, cell = self.input_terms(), None  # C^0 = 0
        else:
            input_terms, cell = state
        hidden = self.hidden_state(out_prompts, patches)
        gates = input_terms[layer_index] + F.linear(
            hidden, self.lstm.weight_hh, self.lstm.bias_hh)
        i, f, g, o = gates.chunk(4, dim=-1)
        new_cell = torch.sigmoid(i) * torch.tanh(g)
        if cell is not None:
            new_cell = new_cell + torch.sigmoid(f) * cell
        new_hidden = torch.sigmoid(o) * torch.tanh(new_cell)
        return new_hidden, (input_terms, new_cell)


@register_prompt_method('lspt_lpc_only')
class LSPTLPCOnly(LSPT):
    """LSPT ablation, LPC only: the LSTM's hidden state is ``X̂_P^l``."""
    use_spatial_mean = False


def build_prompt_method(name, **kwargs):
    if name not in PROMPT_METHODS:
        raise ValueError(f'prompt_method={name!r} is unknown; choose one of '
                         f'{sorted(PROMPT_METHODS)}')
    return PROMPT_METHODS[name](**kwargs)

"""One mmpretrain ``TransformerEncoderLayer`` seen from outside: its q, k, v
(:func:`qkv`), its attention map (:func:`attention_weights`), its forward
with GaPT's temperature ``τ_l`` and an MLP adapter (:func:`block_forward`),
and which blocks ``with_cp`` checkpoints (:func:`checkpoint_blocks`).

Used by :class:`~lspt_mm.models.PromptedViT` and by the data-driven prompt
inits (:mod:`lspt_mm.models.prompt_init`), which read keys and queries of
the frozen blocks.
"""

import torch.nn.functional as F


def qkv(layer, x):
    """q, k, v of ``layer``'s attention on tokens ``x``: (3, B, heads, T, d)."""
    attn = layer.attn
    B, N, _ = x.shape
    return (
        attn.qkv(layer.ln1(x))
        .reshape(B, N, 3, attn.num_heads, attn.head_dims)
        .permute(2, 0, 3, 1, 4)
    )


def attention_weights(layer, x, temperature=None):
    """Softmax attention of ``layer`` on its input tokens ``x``:
    ``softmax(q·kᵀ / (sqrt(d)·τ))``, shape (B, heads, T, T)."""
    q, k, _ = qkv(layer, x)
    logits = q @ k.transpose(-2, -1) * layer.attn.head_dims**-0.5
    if temperature is not None:
        logits = logits / temperature
    return logits.softmax(dim=-1)


def checkpoint_blocks(with_cp, num_layers):
    """Indices of the blocks ``with_cp`` checkpoints: ``False`` / ``None`` /
    ``0``: none; ``True``: all; an int ``k``: every k-th block (0, k, 2k,
    ...; ``1`` is all); a list / tuple: those (0-based) blocks."""
    if with_cp is None or with_cp is False:
        return frozenset()
    if with_cp is True:
        return frozenset(range(num_layers))
    if isinstance(with_cp, int):
        if with_cp < 0:
            raise ValueError(
                f'with_cp={with_cp!r}: give True, False, an '
                'int k >= 1 (every k-th block) or a list of '
                'block indices'
            )
        return (
            frozenset(range(0, num_layers, with_cp))
            if with_cp
            else frozenset()
        )
    if isinstance(with_cp, (list, tuple)):
        blocks = [
            b + num_layers if isinstance(b, int) and b < 0 else b
            for b in with_cp
        ]
        bad = [
            b
            for b in blocks
            if isinstance(b, bool)
            or not isinstance(b, int)
            or not 0 <= b < num_layers
        ]
        if bad:
            raise ValueError(
                f'with_cp={with_cp!r}: block indices must be '
                f'ints in [0, {num_layers}) (num_layers), got '
                f'{bad}'
            )
        return frozenset(blocks)
    raise TypeError(
        f'with_cp={with_cp!r}: give True, False, an int k '
        '(every k-th block) or a list of block indices'
    )


def block_forward(layer, x, temperature=None, mlp_adapter=None):
    """mmpretrain ``TransformerEncoderLayer`` forward, with attention logits
    divided by ``temperature`` (GaPT's ``τ_l``) when given, and
    ``mlp_adapter`` applied to the MLP branch ``γ2·MLP(LN2 x)`` before its
    drop-path and residual add when given."""
    if temperature is None and mlp_adapter is None:
        return layer(x)
    if temperature is None:
        x = x + layer.attn(layer.ln1(x))
    else:
        attn = layer.attn
        B, N, _ = x.shape
        q, k, v = qkv(layer, x)
        # dividing q by τ divides the logits by τ and keeps the fused kernel
        out = F.scaled_dot_product_attention(
            q / temperature,
            k,
            v,
            dropout_p=attn.attn_drop if attn.training else 0.0,
        )
        out = attn.proj(out.transpose(1, 2).reshape(B, N, attn.embed_dims))
        x = x + attn.out_drop(attn.gamma1(attn.proj_drop(out)))
    if mlp_adapter is None:
        return layer.ffn(layer.ln2(x), identity=x)
    ffn = layer.ffn
    branch = mlp_adapter(ffn.gamma2(ffn.layers(layer.ln2(x))))
    return x + ffn.dropout_layer(branch)

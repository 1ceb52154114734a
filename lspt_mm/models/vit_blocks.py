"""One mmpretrain ``TransformerEncoderLayer`` seen from outside: its q, k, v
(:func:`qkv`), its attention map (:func:`attention_weights`), its forward
with GaPT's temperature ``τ_l``, an MLP adapter and a per-token update
such as CVPT's cross-attention (:func:`block_forward`,
:func:`cross_attention`), and which blocks ``with_cp`` checkpoints
(:func:`checkpoint_blocks`).

Used by :class:`~lspt_mm.models.PromptedViT` and by the data-driven prompt
inits (:mod:`lspt_mm.models.prompt_init`), which read keys and queries of
the frozen blocks.
"""

import torch.nn.functional as F

# where a per-token update enters a block (CVPT's ``insert`` 1, 3 and 5)
UPDATE_POSITIONS = ('before_attn', 'after_attn', 'after_mlp')


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


def attention_projections(layer):
    """The frozen weights of ``layer``'s attention as four ``(W, b)``
    pairs: q, k, v (rows of the fused qkv, whatever wraps it, e.g.
    LoRA's ``original_layer``) and the output projection."""
    attn = layer.attn
    fused = getattr(attn.qkv, 'original_layer', attn.qkv)
    weights = fused.weight.chunk(3, dim=0)
    biases = (
        fused.bias.chunk(3, dim=0) if fused.bias is not None else [None] * 3
    )
    proj = getattr(attn.proj, 'original_layer', attn.proj)
    return (*zip(weights, biases), (proj.weight, proj.bias))


def cross_attention(layer, x, prompts, projections=None):
    """CVPT's cross-attention of tokens ``x`` (queries, (B, T, D)) on
    ``prompts`` (keys and values, (B, N, D)) with ``layer``'s heads:
    ``W_o·softmax(q(x)·k(P)ᵀ/√d)·v(P) + b_o``. ``projections``: four
    ``(W, b)`` pairs for q, k, v, out; default: the block's own attention
    weights (:func:`attention_projections`), as CVPT's code copies them. The
    queries are the raw tokens (no LayerNorm), as in CVPT's code."""
    attn = layer.attn
    (wq, bq), (wk, bk), (wv, bv), (wo, bo) = (
        projections or attention_projections(layer)
    )
    B, T, _ = x.shape
    N = prompts.shape[1]
    heads, d = attn.num_heads, attn.head_dims
    q = F.linear(x, wq, bq).reshape(B, T, heads, d).transpose(1, 2)
    k = F.linear(prompts, wk, bk).reshape(B, N, heads, d).transpose(1, 2)
    v = F.linear(prompts, wv, bv).reshape(B, N, heads, d).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v)
    return F.linear(out.transpose(1, 2).reshape(B, T, heads * d), wo, bo)


def block_forward(
    layer,
    x,
    temperature=None,
    mlp_adapter=None,
    update=None,
    update_position='after_attn',
):
    """mmpretrain ``TransformerEncoderLayer`` forward, with attention logits
    divided by ``temperature`` (GaPT's ``τ_l``) when given,
    ``mlp_adapter`` applied to the MLP branch ``γ2·MLP(LN2 x)`` before its
    drop-path and residual add when given, and ``x ← x + update(x)`` (a
    per-token update, e.g. CVPT's cross-attention on the prompts) at
    ``update_position``: ``'before_attn'``, ``'after_attn'`` (between the
    attention and the MLP residual; CVPT's default) or ``'after_mlp'``."""
    if update is not None:
        if update_position == 'before_attn':
            x = x + update(x)
        elif update_position == 'after_mlp':
            x = block_forward(layer, x, temperature, mlp_adapter)
            return x + update(x)
        elif update_position != 'after_attn':
            raise ValueError(
                f'update_position={update_position!r}: choose one of '
                f'{UPDATE_POSITIONS}'
            )
        else:
            x = _attention_residual(layer, x, temperature)
            x = x + update(x)
            return _mlp_residual(layer, x, mlp_adapter)
    if temperature is None and mlp_adapter is None:
        return layer(x)
    return _mlp_residual(
        layer, _attention_residual(layer, x, temperature), mlp_adapter
    )


def _attention_residual(layer, x, temperature):
    """``x + γ1·Attn(LN1 x)`` (logits divided by ``temperature``)."""
    if temperature is None:
        return x + layer.attn(layer.ln1(x))
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
        return x + attn.out_drop(attn.gamma1(attn.proj_drop(out)))


def _mlp_residual(layer, x, mlp_adapter):
    """``x + γ2·MLP(LN2 x)``, the MLP branch through ``mlp_adapter``."""
    if mlp_adapter is None:
        return layer.ffn(layer.ln2(x), identity=x)
    ffn = layer.ffn
    branch = mlp_adapter(ffn.gamma2(ffn.layers(layer.ln2(x))))
    return x + ffn.dropout_layer(branch)

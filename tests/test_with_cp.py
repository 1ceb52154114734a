"""Activation checkpointing of PromptedViT's blocks (``with_cp``): the same
outputs and gradients as the plain step, fewer tensors saved for backward,
and exactly the selected blocks recomputed."""

import copy

import pytest
import torch
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.models import METHODS as TABLE
from lspt_mm.models import PromptedViT
from lspt_mm.models.vit_blocks import checkpoint_blocks

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=8)
METHODS = [name for name, spec in TABLE.items() if not spec.wrapper]


def make(method, with_cp=False, **kwargs):
    torch.manual_seed(0)
    opts = (
        dict(num_prompts=3, prompt_dropout=0.3)
        if TABLE[method].uses_prompts
        else {}
    )
    if method == 'full':  # dropout / drop-path run inside trained blocks
        opts.update(drop_path_rate=0.3, drop_rate=0.2)
    vit = PromptedViT(
        prompt_method=method,
        with_cp=with_cp,
        out_indices=[1, 3],
        **{**KW, **opts, **kwargs},
    )
    vit.init_weights()
    with torch.no_grad():  # non-trivial gates, temperatures, adapters
        for name, p in vit.named_parameters():
            if 'prompt_method' in name or 'lora_' in name:
                p.add_(0.3 * torch.randn_like(p))
        if method == 'gapt':  # one τ outside the range: the clamp acts
            vit.prompt_method.temperatures[1] = 20.0
    return vit.train()


def step(vit, x):
    """One forward / backward with a fixed RNG; outputs and the gradients of
    the trained tensors."""
    torch.manual_seed(7)
    outs = vit(x)
    loss = sum(
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs
    )
    if loss.requires_grad:  # (the linear probe trains only its head)
        loss.backward()
    grads = {
        n: p.grad.clone() for n, p in vit.named_parameters() if p.requires_grad
    }
    return [o.detach() for o in outs], grads


def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 32, 32)


@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('with_cp', [True, 2])
def test_outputs_and_gradients_equal_the_plain_step(method, with_cp):
    plain = make(method)
    cp = make(method, with_cp=with_cp)
    cp.load_state_dict(plain.state_dict())
    x = images()
    outs, grads = step(plain, x)
    outs_cp, grads_cp = step(cp, x)
    for a, b in zip(outs, outs_cp):
        assert (a - b).abs().max() <= 1e-6
    assert grads.keys() == grads_cp.keys()
    assert grads or method == 'linear'  # (the linear probe: head only)
    for name, g in grads.items():
        assert (g - grads_cp[name]).abs().max() <= 1e-6, name
        if method != 'full':  # (drop-path may drop a whole branch)
            assert g.abs().sum() > 0, name


def test_dropout_masks_repeat_in_the_recomputation():
    """Full fine-tuning runs dropout and drop-path inside the checkpointed
    blocks: without the RNG state restored the recomputed masks differ and
    so do the gradients (the plain-step comparison above would fail)."""
    plain, cp = make('full'), make('full', with_cp=True)
    cp.load_state_dict(plain.state_dict())
    _, grads = step(plain, images())
    # a second forward with another seed gives other masks: other gradients
    torch.manual_seed(8)
    other = make('full')
    other.load_state_dict(plain.state_dict())
    torch.manual_seed(99)
    sum(o.sum() for o in other(images())).backward()
    _, grads_cp = step(cp, images())
    name = 'layers.0.ffn.layers.1.weight'
    assert (grads[name] - grads_cp[name]).abs().max() <= 1e-6
    assert (grads[name] - other.get_parameter(name).grad).abs().max() > 1e-3


def saved_bytes(vit, x):
    storages = {}

    def pack(t):
        s = t.untyped_storage()
        storages[s.data_ptr()] = s.nbytes()
        return t

    params = {p.untyped_storage().data_ptr() for p in vit.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs = vit(x)
    sum(o.sum() for o in outs).backward()
    return sum(n for p, n in storages.items() if p not in params)


def block_calls(vit, x, grad=True):
    """How often each block's LN1 ran in one forward (+ backward)."""
    calls = [0] * len(vit.layers)
    hooks = [
        layer.ln1.register_forward_hook(
            lambda *a, i=i: calls.__setitem__(i, calls[i] + 1)
        )
        for i, layer in enumerate(vit.layers)
    ]
    with torch.set_grad_enabled(grad):
        outs = vit(x)
        if grad:
            sum(o.sum() for o in outs).backward()
    for h in hooks:
        h.remove()
    return calls


@pytest.mark.parametrize(
    'with_cp,recomputed',
    [
        (False, []),
        (True, [0, 1, 2, 3]),
        (2, [0, 2]),
        (3, [0, 3]),
        ([1, -1], [1, 3]),
    ],
)
def test_selected_blocks_are_recomputed_and_save_less(with_cp, recomputed):
    vit = make('lspt', with_cp=with_cp)
    calls = block_calls(vit, images())
    assert calls == [2 if i in recomputed else 1 for i in range(4)]
    assert block_calls(vit, images(), grad=False) == [1] * 4  # inference
    plain = saved_bytes(make('lspt'), images())
    saved = saved_bytes(vit, images())
    if recomputed:
        assert saved < plain
    else:
        assert saved == plain


def test_checkpointing_every_block_saves_least():
    x = images()
    full_cp = saved_bytes(make('vpt_deep', with_cp=True), x)
    half_cp = saved_bytes(make('vpt_deep', with_cp=2), x)
    plain = saved_bytes(make('vpt_deep'), x)
    assert full_cp < half_cp < plain


def test_checkpoint_blocks_and_bad_values():
    assert checkpoint_blocks(False, 4) == frozenset()
    assert checkpoint_blocks(None, 4) == frozenset()
    assert checkpoint_blocks(True, 4) == {0, 1, 2, 3}
    assert checkpoint_blocks(1, 4) == {0, 1, 2, 3}
    assert checkpoint_blocks(3, 12) == {0, 3, 6, 9}
    assert checkpoint_blocks((0, -1), 12) == {0, 11}
    for bad in (-1, [12], [0.5], 'all'):
        with pytest.raises((ValueError, TypeError), match='with_cp'):
            make('lspt', with_cp=bad)


def test_with_cp_from_a_segmentation_config_builds():
    """mmseg's spelling in a backbone config reaches the blocks."""
    from mmseg.registry import MODELS

    cfg = dict(
        type='mmpretrain.PromptedViT',
        prompt_method='lspt',
        num_prompts=2,
        with_cp=True,
        out_type='featmap',
        out_indices=[3],
        **KW,
    )
    vit = MODELS.build(copy.deepcopy(cfg))
    assert vit._cp_blocks == {0, 1, 2, 3}
    vit.train()
    out = vit(images())[0]
    F.mse_loss(out, torch.zeros_like(out)).backward()
    assert vit.prompt_method.prompts.grad is not None


def test_cost_tool_measures_with_cp_side_by_side(tmp_path):
    """benchmark_methods.py --compare with_cp: the variant's record has
    with_cp on, the backbone's saved activations drop (same as counted
    above), the report gets the variants table and the targets."""
    import json
    import os.path as osp
    import sys

    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    sys.path.insert(0, osp.join(root, 'tools', 'analysis_tools'))
    import benchmark_methods as bm

    from lspt_mm.analysis import cost_report

    out = tmp_path / 'cp.json'
    bm.main(
        [
            '--in-process',
            '--tasks',
            'seg',
            '--seg-size',
            '32',
            '--seg-batch',
            '2',
            '--seg-num-prompts',
            '2',
            '--methods',
            'lspt',
            'full',
            '--compare',
            'with_cp',
            '--arch',
            'tiny',
            '--patch-size',
            '8',
            '--threads',
            '1',
            '--repeats',
            '1',
            '--warmup',
            '1',
            '--no-alloc-peak',
            '--seg-cfg-options',
            'model.decode_head.channels=32',
            'model.auxiliary_head.channels=16',
            '--out',
            str(out),
        ]
    )
    records = json.load(open(out))
    by = {cost_report.label(r): r for r in records}
    assert set(by) == {'lspt', 'full', 'lspt +with_cp'}
    plain, cp = by['lspt'], by['lspt +with_cp']
    assert cp['with_cp'] is True and not plain['with_cp']
    assert (
        0
        < cp['backbone_activation_mb']
        < 0.5 * plain['backbone_activation_mb']
    )
    # neck and heads save what they saved (up to the backbone's output
    # features, counted where first saved: in the last block or the neck)
    assert cp['activation_mb'] - cp['backbone_activation_mb'] == pytest.approx(
        plain['activation_mb'] - plain['backbone_activation_mb'], rel=0.02
    )
    for key in ('trainable_params', 'grad_mb', 'optim_state_mb'):
        assert cp[key] == plain[key]
    # frozen backbone: no backbone gradient or optimiser state but LSPT's
    assert 0 < plain['backbone_grad_mb'] < by['full']['backbone_grad_mb']
    text = cost_report.report(records)
    assert '### Variants' in text and '| lspt | with_cp |' in text
    assert 'lspt +with_cp: backbone saved activations <= 0.25 x plain' in text
    assert 'of every frozen-backbone method < 5% of full' in text


def test_blocks_without_backward_are_not_checkpointed():
    """The linear probe's blocks need no backward: run once, inputs not
    kept by a checkpoint."""
    vit = make('linear', with_cp=True)
    x = images()
    calls = []
    with torch.autograd.graph.saved_tensors_hooks(
        lambda t: calls.append(t) or t, lambda t: t
    ):
        vit(x)
    assert calls == []

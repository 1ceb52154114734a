"""The method vocabulary and the PEFT baselines on tiny archs.

- Methods are registered components: one registered here (outside the
  package) builds from config through mmpretrain's and mmseg's ``MODELS``.
- Bias tuning, partial-k and the adapter (tests/test_backbone.py also runs
  them through the written-out forward and the gradient check), LoRA through
  mmpretrain's own ``LoRAModel``: trained tensors, written-out forwards,
  trainable-only checkpoints, train / eval modes.
- Every table method: analytic FLOPs equal FlopCounterMode's; generated
  classification configs and the segmentation configs build it.
"""

import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.analysis.flops import count_flops, model_flops
from lspt_mm.models import METHODS, PromptedViT, PromptMethod
from lspt_mm.models.checkpoint_policy import (
    CheckpointMismatchError,
    check_checkpoint,
    checkpoint_holds_backbone,
    load_checkpoint,
)

from mmengine.config import Config
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import DefaultScope, Registry, init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'segmentation')
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=8)

# ------------------------------------------ a user's package, its registry
MY_MODELS = Registry('model', parent=ROOT_MODELS, scope='my_pkg')


@MY_MODELS.register_module()
class ScaledCarry(PromptMethod):
    """A user's method: VPT-shallow prompts, scaled by a learnable ``s``
    after every block: ``X_P^l = s·X̂_P^l``."""

    num_prompt_sets = 1

    def __init__(self, *args, scale=0.5, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale = nn.Parameter(torch.tensor(float(scale)))

    def next_prompts(
        self, layer_index, in_prompts, out_prompts, patches, state
    ):
        return self.scale * out_prompts, state


def images(b=2, size=32):
    torch.manual_seed(1)
    return torch.randn(b, 3, size, size)


def perturb(module, trained_only=False):
    """Make parameters non-trivial (zero-initialised ones included): every
    one, or (as training would) only the trained ones."""
    torch.manual_seed(3)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad or not trained_only:
                p.add_(0.05 * torch.randn_like(p))
    return module


def loss(features):
    """A loss whose gradient does not vanish (the sum of a LayerNorm's
    output does not depend on its input)."""
    torch.manual_seed(2)
    return (features * torch.randn_like(features)).sum()


def test_user_method_builds_from_config_in_mmpretrain_and_mmseg():
    from mmpretrain.registry import MODELS
    from mmseg.registry import MODELS as SEG_MODELS

    prompt = dict(
        prompt_method='my_pkg.ScaledCarry',
        prompt_cfg=dict(num_prompts=2, scale=1.0, prompt_dropout=0.0),
    )
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        torch.manual_seed(0)
        vit = MODELS.build(dict(type='PromptedViT', **prompt, **KW))
    with DefaultScope.overwrite_default_scope('mmseg'):
        torch.manual_seed(0)
        seg = SEG_MODELS.build(
            dict(
                type='mmpretrain.PromptedViT',
                **prompt,
                out_type='featmap',
                **KW,
            )
        )
    for model in (vit, seg):
        assert type(model.prompt_method) is ScaledCarry
        assert model.method_name == 'my_pkg.ScaledCarry'
        assert set(model.state_dict()) >= {
            'prompt_method.prompts',
            'prompt_method.scale',
        }
    # s = 1 is VPT-shallow with the same prompts; s != 1 is not
    torch.manual_seed(0)
    shallow = PromptedViT(
        prompt_method='vpt_shallow', num_prompts=2, prompt_dropout=0.0, **KW
    ).eval()
    vit.eval()
    shallow.load_state_dict(
        {
            k: v
            for k, v in vit.state_dict().items()
            if k != 'prompt_method.scale'
        }
    )
    x = images()
    assert torch.allclose(vit(x)[0], shallow(x)[0], atol=1e-6)
    with torch.no_grad():
        vit.prompt_method.scale.fill_(0.3)
    assert (vit(x)[0] - shallow(x)[0]).abs().max() > 1e-3
    loss(vit(x)[0]).backward()
    assert vit.prompt_method.scale.grad.abs() > 0


def test_method_registered_in_mmseg_is_found_unscoped_in_mmseg_scope():
    from mmseg.registry import MODELS as SEG_MODELS

    @SEG_MODELS.register_module(force=True)
    class SegUserShallow(PromptMethod):
        num_prompt_sets = 1

    with DefaultScope.overwrite_default_scope('mmseg'):
        vit = SEG_MODELS.build(
            dict(
                type='mmpretrain.PromptedViT',
                prompt_method='SegUserShallow',
                num_prompts=3,
                **KW,
            )
        )
    assert type(vit.prompt_method) is SegUserShallow
    assert vit.prompt_method.prompts.shape == (1, 3, 32)


def test_unknown_or_foreign_prompt_type_is_refused():
    with pytest.raises(ValueError, match='prompt_method=.*unknown'):
        PromptedViT(prompt_method='NoSuchMethod', **KW)
    with pytest.raises(TypeError, match='not a subclass'):
        PromptedViT(prompt_method='LinearClsHead', **KW)


# --------------------------------------------------------------- adapter
def test_adapter_starts_as_the_pretrained_block_and_both_matrices_learn():
    torch.manual_seed(0)
    adapter = PromptedViT(prompt_method='adapter', **KW).eval()
    linear = PromptedViT(prompt_method='linear', **KW).eval()
    linear.load_state_dict(adapter.state_dict(), strict=False)
    x = images()
    assert torch.equal(adapter(x)[0], linear(x)[0])  # W_up = 0: identity
    loss(adapter(x)[0]).backward()  # W_up = 0: W_down gets none yet
    for a in adapter.prompt_method.adapters:
        assert a.up.weight.grad.abs().sum() > 0
        assert a.up.bias.grad.abs().sum() > 0
    with torch.no_grad():
        for a in adapter.prompt_method.adapters:
            a.up.weight.add_(0.1)  # after a step, W_down learns too
    adapter.zero_grad()
    loss(adapter(x)[0]).backward()
    assert all(
        a.down.weight.grad.abs().sum() > 0
        for a in adapter.prompt_method.adapters
    )


def test_vpt_zero_init_adapter_only_ever_learns_its_output_bias():
    """VPT's code zeroes both projections: GELU(0) = 0 leaves W_down, b_down
    and W_up without gradient (documented in MLPAdapter)."""
    torch.manual_seed(0)
    vit = PromptedViT(
        prompt_method='adapter', prompt_cfg=dict(init='vpt'), **KW
    )
    loss(vit(images())[0]).backward()
    for a in vit.prompt_method.adapters:
        for p in (a.down.weight, a.down.bias, a.up.weight):
            assert p.grad.abs().sum() == 0
        assert a.up.bias.grad.abs().sum() > 0


def test_adapter_hidden_width_is_embed_dims_over_reduction():
    vit = PromptedViT(
        prompt_method='adapter', prompt_cfg=dict(reduction=4), **KW
    )
    assert vit.prompt_method.adapters[0].down.weight.shape == (8, 32)
    assert len(vit.prompt_method.adapters) == 4


# --------------------------------------------------------------- partial-k
def test_partial_k_trains_the_last_k_blocks_in_train_mode():
    vit = PromptedViT(
        prompt_method='partial', prompt_cfg=dict(k=2), drop_path_rate=0.3, **KW
    ).train()
    trained = {
        n.split('.')[0]
        + ('.' + n.split('.')[1] if n.startswith('layers') else '')
        for n, p in vit.named_parameters()
        if p.requires_grad
    }
    assert trained == {'layers.2', 'layers.3', 'ln1'}
    assert [layer.training for layer in vit.layers] == [
        False,
        False,
        True,
        True,
    ]
    assert vit.layers[3].ffn.dropout_layer.training  # drop-path: trained
    assert not vit.patch_embed.training and not vit.drop_after_pos.training
    vit.eval()
    assert not vit.layers[3].training


# --------------------------------------------------------------- bias
def _pretrained_file(tmp_path):
    torch.manual_seed(5)
    vit = PromptedViT(prompt_method='linear', **KW)
    path = str(tmp_path / 'vit.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v for k, v in vit.state_dict().items()
            }
        },
        path,
    )
    return path


def classifier(backbone, seed=0):
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            head=dict(
                type='LinearClsHead',
                num_classes=5,
                in_channels=32,
                loss=dict(type='CrossEntropyLoss'),
            ),
        )
    ).eval()


@pytest.mark.parametrize('method', ['bias', 'partial'])
def test_trainable_only_checkpoint_keeps_trained_vit_tensors(method, tmp_path):
    pretrained = _pretrained_file(tmp_path)
    cfg = dict(
        type='PromptedViT',
        prompt_method=method,
        pretrained=pretrained,
        save_trainable_only=True,
        **KW,
    )
    trained = perturb(classifier(cfg), trained_only=True)
    sd = trained.state_dict()
    vit = trained.backbone
    expected = {
        'backbone.' + n for n, p in vit.named_parameters() if p.requires_grad
    } | {'head.fc.weight', 'head.fc.bias'}
    assert set(sd) == expected  # trained ViT tensors kept, frozen left out
    path = str(tmp_path / 'ckpt.pth')
    torch.save({'state_dict': sd}, path)
    assert not checkpoint_holds_backbone(path)  # `pretrained` still needed
    fresh = classifier(cfg, seed=1)
    load_checkpoint(fresh, path)
    x = images()
    assert torch.equal(fresh.extract_feat(x)[0], trained.extract_feat(x)[0])
    full = dict(cfg, save_trainable_only=False)
    path_full = str(tmp_path / 'full.pth')
    torch.save({'state_dict': classifier(full).state_dict()}, path_full)
    assert checkpoint_holds_backbone(path_full)


# --------------------------------------------------------------- LoRA
def lora_backbone(pretrained=None, **kwargs):
    module = dict(
        type='PromptedViT',
        prompt_method='lspt',
        num_prompts=3,
        prompt_dropout=0.1,
        pretrained=pretrained,
        **KW,
        **kwargs,
    )
    return METHODS['lora'].apply(module)


def written_out_lora_vit(vit, x, scaling):
    """avg_token ViT whose qkv is ``W_0·h + b_0 + s·B·A·h`` (eval)."""
    B = x.shape[0]
    tokens = vit.patch_embed.projection(x).flatten(2).transpose(1, 2)
    tokens = torch.cat([vit.cls_token.expand(B, -1, -1), tokens], 1)
    tokens = tokens + vit.pos_embed
    for layer in vit.layers:
        attn, (B, T, D) = layer.attn, tokens.shape
        h = layer.ln1(tokens)
        lin = attn.qkv.original_layer
        qkv = F.linear(h, lin.weight, lin.bias) + scaling * (
            h @ attn.qkv.lora_down.weight.T @ attn.qkv.lora_up.weight.T
        )
        q, k, v = qkv.reshape(B, T, 3, attn.num_heads, attn.head_dims).permute(
            2, 0, 3, 1, 4
        )
        a = ((q @ k.transpose(-2, -1)) / attn.head_dims**0.5).softmax(-1)
        tokens = tokens + attn.proj((a @ v).transpose(1, 2).reshape(B, T, D))
        fc1, fc2 = layer.ffn.layers[0][0], layer.ffn.layers[1]
        tokens = tokens + fc2(F.gelu(fc1(layer.ln2(tokens))))
    return vit.ln1(tokens[:, 1:].mean(1))


def test_lora_config_wraps_a_prompt_free_promptedvit():
    cfg = lora_backbone()
    assert cfg['type'] == 'LoRAModel' and cfg['rank'] == 16
    assert cfg['module']['prompt_method'] == 'linear'
    assert 'num_prompts' not in cfg['module']
    assert cfg['module']['save_trainable_only']
    seg = METHODS['lora'].apply(
        dict(type='mmpretrain.PromptedViT'), scope='mmseg'
    )
    assert seg['type'] == 'mmpretrain.LoRAModel'


def test_lora_frozen_weights_load_at_construction_and_forward_matches(
    tmp_path,
):
    pretrained = _pretrained_file(tmp_path)
    file_sd = torch.load(pretrained)['state_dict']
    model = classifier(lora_backbone(pretrained))
    vit = model.backbone.module
    assert isinstance(vit, PromptedViT) and vit.method_name == 'linear'
    for i, layer in enumerate(vit.layers):
        assert torch.equal(
            layer.attn.qkv.original_layer.weight,
            file_sd[f'backbone.layers.{i}.attn.qkv.weight'],
        )
    perturb(model.backbone)  # lora_up starts at zero
    x = images()
    with torch.no_grad():
        ours = model.extract_feat(x)[0]
        ref = written_out_lora_vit(vit, x, 16 / 16)
    assert (ours - ref).abs().max() < 1e-5


def test_lora_gradients_reach_exactly_the_lora_tensors_and_dropout_trains(
    tmp_path,
):
    model = perturb(classifier(lora_backbone(_pretrained_file(tmp_path))))
    model.train()
    vit = model.backbone.module
    qkv = vit.layers[0].attn.qkv
    assert qkv.lora_dropout.training  # LoRA's own dropout is active
    assert not vit.layers[0].ffn.training and not vit.patch_embed.training
    assert not qkv.original_layer.training
    feats = model.extract_feat(images())[0]
    F.cross_entropy(model.head.fc(feats), torch.tensor([1, 3])).backward()
    trained = {
        n for n, p in model.backbone.named_parameters() if p.requires_grad
    }
    assert trained == {
        f'module.layers.{i}.attn.qkv.lora_{w}.weight'
        for i in range(4)
        for w in ('down', 'up')
    }
    for name, p in model.backbone.named_parameters():
        if p.requires_grad:
            assert p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


def test_lora_trainable_only_checkpoint_round_trip(tmp_path):
    pretrained = _pretrained_file(tmp_path)
    trained = perturb(classifier(lora_backbone(pretrained)), trained_only=True)
    sd = trained.state_dict()
    assert {k for k in sd if not k.startswith('head.')} == {
        f'backbone.module.layers.{i}.attn.qkv.lora_{w}.weight'
        for i in range(4)
        for w in ('down', 'up')
    }
    setup = sd._metadata['backbone.module']['lspt_mm']
    assert setup['trainable_only'] is True
    path = str(tmp_path / 'lora.pth')
    torch.save({'state_dict': sd}, path)
    fresh = classifier(lora_backbone(pretrained), seed=1)
    load_checkpoint(fresh, path)  # frozen ViT from pretrained, LoRA kept
    x = images()
    assert torch.equal(fresh.extract_feat(x)[0], trained.extract_feat(x)[0])
    with pytest.raises(CheckpointMismatchError, match='pretrained'):
        check_checkpoint(classifier(lora_backbone(None)), {'state_dict': sd})


# --------------------------------------------------------------- FLOPs
@pytest.mark.parametrize('method', list(METHODS))
def test_analytic_flops_equal_counted_flops(method):
    torch.manual_seed(0)
    spec = METHODS[method]
    cfg = spec.apply(dict(type='PromptedViT', num_prompts=3, **KW))
    if spec.wrapper:
        from mmpretrain.registry import MODELS

        backbone = MODELS.build(cfg)
        vit = backbone.module
    else:
        backbone = vit = PromptedViT(
            **{k: v for k, v in cfg.items() if k != 'type'}
        )
    backbone.train()
    x = images()
    _, fwd = count_flops(lambda: backbone(x)[0].sum())
    analytic = model_flops(vit, batch=2, method=method)
    assert fwd == analytic['fwd']
    if method == 'linear':
        assert analytic['bwd'] == 0
        return
    _, step = count_flops(lambda: backbone(x)[0].sum().backward())
    assert step - fwd == analytic['bwd']


# --------------------------------------------------------------- configs
TINY_SEG = {
    'model.backbone.arch': dict(ARCH, _delete_=True),
    'model.backbone.img_size': 32,
    'model.backbone.patch_size': 8,
    'model.backbone.pretrained': None,
    'model.backbone.num_prompts': 2,
}


@pytest.mark.parametrize('method', ['bias', 'partial', 'adapter', 'lora'])
def test_segmentation_baseline_configs(method):
    from mmseg.registry import MODELS

    name = f'{method}-mae-base_upernet_8xb2-160k_ade20k-512x512.py'
    cfg = Config.fromfile(osp.join(SEG, name))
    main = Config.fromfile(
        osp.join(SEG, 'lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py')
    )
    assert cfg.model.decode_head == main.model.decode_head
    assert cfg.optim_wrapper == main.optim_wrapper
    b = cfg.model.backbone
    if method == 'lora':
        # the LSPT config's backbone with the method swapped, nothing else
        assert b.to_dict() == METHODS['lora'].apply(
            main.model.backbone.to_dict(), scope='mmseg'
        )
        b = b.module
    init_default_scope('mmseg')
    b = dict(
        b.to_dict(),
        arch=ARCH,
        img_size=32,
        patch_size=8,
        out_indices=[1, 3],
        pretrained=None,
    )
    wrapped = (
        METHODS[method].apply(b, scope='mmseg') if method == 'lora' else b
    )
    model = MODELS.build(wrapped)
    vit = model.module if method == 'lora' else model
    assert vit.method_name == ('linear' if method == 'lora' else method)
    feats = model(torch.randn(1, 3, 32, 32))
    assert [f.shape for f in feats] == [(1, 32, 4, 4)] * 2


@pytest.mark.parametrize('method', list(METHODS))
def test_benchmark_config_builds_the_method(method):
    """``method=<name>`` on the benchmark config (the task as a setting,
    lspt_mm.recipes.apply_task) builds that method."""
    from lspt_mm.recipes import apply_task

    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_vtab1k.py'
        )
    )
    cfg.merge_from_dict(dict(task='dtd', method=method.replace('_', '-')))
    recipe = apply_task(cfg, log=False)
    assert recipe['method'] == method
    b = cfg.model.backbone.to_dict()
    vit_cfg = b['module'] if METHODS[method].wrapper else b
    vit_cfg.update(arch=ARCH, img_size=32, patch_size=8, pretrained=None)
    init_default_scope('mmpretrain')
    model = MODELS.build(b)
    vit = getattr(model, 'module', model)
    assert vit.method_name == ('linear' if method == 'lora' else method)
    assert vit.freeze_backbone == METHODS[method].freeze_backbone


# --------------------------------------------------------------- one list
NAME_SPELLINGS = (
    {'none', 'finetune'}
    | set(METHODS)
    | {n.replace('_', '-') for n in METHODS}
)


def method_name_lists(root=ROOT):
    """Places in ``lspt_mm/`` and ``tools/`` where method names are written
    out as a list: literal dicts (keys) / lists / tuples / sets with >= 3
    method names, and files registering methods by name string.
    ``python -c "import sys; sys.path[:0] = ['tests']; from
    test_peft_baselines import method_name_lists as m; print(m('TREE'))"``
    measures any checkout (docs/DEVELOPING.md)."""
    import ast
    import os

    places = []
    for top in ('lspt_mm', 'tools'):
        for folder, _, files in os.walk(osp.join(root, top)):
            for name in sorted(f for f in files if f.endswith('.py')):
                path = osp.join(folder, name)
                rel = osp.relpath(path, root)
                registered = False
                for node in ast.walk(ast.parse(open(path).read())):
                    if isinstance(node, ast.Dict):
                        elts = node.keys
                    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                        elts = node.elts
                    else:
                        registered |= (
                            isinstance(node, ast.Call)
                            and getattr(node.func, 'id', '')
                            == 'register_prompt_method'
                        )
                        continue
                    found = {
                        e.value
                        for e in elts
                        if isinstance(e, ast.Constant)
                        and e.value in NAME_SPELLINGS
                    }
                    if len(found) >= 3:
                        places.append(f'{rel}:{node.lineno}')
                if registered:
                    places.append(f'{rel} (registrations by name)')
    return places


def test_method_names_are_listed_only_in_the_table():
    places = method_name_lists()
    # the table itself is MethodSpec(...) calls, not a literal list;
    # tools/analysis_tools/methods_table.py's --methods default predates it
    assert [
        p
        for p in places
        if not p.startswith('tools/analysis_tools/methods_table.py:')
    ] == []


def _lora_step(model, x, seed=7):
    """One training forward/backward; returns the output and the LoRA
    gradients."""
    model.train()
    torch.manual_seed(seed)  # the same LoRA-dropout masks in both models
    feats = model.extract_feat(x)[0]
    loss = F.cross_entropy(model.head.fc(feats), torch.tensor([1, 3]))
    loss.backward()
    return feats.detach(), {
        n: p.grad.clone()
        for n, p in model.backbone.named_parameters()
        if p.grad is not None
    }


def _assert_same_step(a, b, tol):
    """Outputs and the 8 LoRA gradients of one step agree within tol."""
    x = images()
    (f0, g0), (f1, g1) = _lora_step(a, x), _lora_step(b, x)
    assert (f0 - f1).abs().max() <= tol
    assert g0.keys() == g1.keys() and len(g0) == 8
    for name in g0:
        assert (g0[name] - g1[name]).abs().max() <= tol, name


def test_lora_with_cp_gives_the_plain_step():
    """with_cp on the module LoRA wraps: its blocks recompute (LoRA dropout
    masks repeat) and outputs and LoRA gradients equal the plain step."""
    plain = perturb(classifier(lora_backbone()), trained_only=True)
    cp = perturb(classifier(lora_backbone(with_cp=True)), trained_only=True)
    assert cp.backbone.module.with_cp is True
    _assert_same_step(plain, cp, tol=1e-6)


def test_lora_compiles_to_the_eager_step():
    """torch.compile of a LoRA model (aot_eager: dynamo and AOTAutograd,
    no C++ build): outputs and LoRA gradients equal eager ones, one graph."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    cfg = dict(lora_backbone(), drop_rate=0.0)  # RNG streams would differ
    eager = perturb(classifier(cfg), trained_only=True)
    comp = perturb(classifier(cfg), trained_only=True)
    counter = CompileCounterWithBackend('aot_eager')
    comp.backbone.compile(backend=counter)
    _assert_same_step(eager, comp, tol=1e-5)
    assert counter.frame_count == 1
    torch._dynamo.reset()

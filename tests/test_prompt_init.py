"""Data-driven prompt initialisation (lspt_mm/models/prompt_init.py,
lspt_mm/engine/prompt_init_hook.py) against written-out references: SPT's
sampled rows, pooling windows and k-means centres, VIPAMIN's matching and
orthogonal term, the option leaving everything but the prompt values alone,
and the hook on the demo configs (once, logged, skipped on resume, unused by
test runs, identical prompts on every rank)."""

import copy
import os.path as osp
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401  (compat first, registries)
from lspt_mm.engine import PromptInitHook, check_hooks
from lspt_mm.engine.prompt_init_hook import _rng_states
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint_policy import backbone_setup
from lspt_mm.models.prompt_init import (
    PROMPT_INITS,
    PromptInit,
    build_prompt_init,
    kmeans,
    kmeans_pp_init,
    window_pool,
)
from lspt_mm.models.prompt_methods import vpt_uniform_bound

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(
    ROOT,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)
SEG_DEMO = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
)
ARCH = dict(embed_dims=32, num_layers=3, num_heads=4, feedforward_channels=64)
PROMPT_METHODS = (
    'vpt_shallow',
    'vpt_deep',
    'gapt',
    'lspt',
    'lspt_lpc_only',
    'lspt_gspc_only',
)


def tiny_vit(method='vpt_deep', init='uniform', num_prompts=4, seed=0):
    torch.manual_seed(seed)
    vit = PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method=method,
        num_prompts=num_prompts,
        prompt_init=init,
    )
    # a random ViT is near-isotropic; give the blocks distinct statistics
    with torch.no_grad():
        for p in vit.layers.parameters():
            p.mul_(3.0)
        vit.pos_embed.normal_()  # zeros until init_weights
    return vit


def images(n=10, seed=1):
    return torch.randn(
        n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)
    )


def apply(vit, imgs, split=6, seed=0):
    """The init on ``imgs`` in two batches (the streaming path)."""
    generator = torch.Generator().manual_seed(seed)
    return vit.prompt_init.apply(
        vit, [imgs[:split], imgs[split:]], len(imgs), generator
    )


@torch.no_grad()
def plain_block_tokens(vit, imgs):
    """Written out: the tokens SPT reads for each block of the frozen ViT
    without prompts -- block 0: the patch embeddings (before the position
    embedding); block l: block l-1's output without CLS."""
    vit.eval()
    x = vit.patch_embed.projection(imgs).flatten(2).transpose(1, 2)
    out = {0: x}
    t = (
        torch.cat([vit.cls_token.expand(len(imgs), -1, -1), x], 1)
        + vit.pos_embed
    )
    for layer_index, layer in enumerate(vit.layers[:-1]):
        t = layer(t)
        out[layer_index + 1] = t[:, 1:]
    return out


def row_of(row, table, atol=1e-5):
    """Whether ``row`` (D,) equals a row of ``table`` (..., D)."""
    table = table.reshape(-1, table.shape[-1])
    return bool(((table - row).abs().amax(dim=1) <= atol).any())


# ------------------------------------------------------------ the option
def test_names_and_forms():
    assert list(PROMPT_INITS) == [
        'uniform',
        'spt_random',
        'spt_mean',
        'spt_max',
        'spt_kmeans',
        'vipamin',
    ]
    assert type(build_prompt_init()) is PromptInit
    init = build_prompt_init(dict(type='vipamin', k=3, lam=0.25))
    assert (init.name, init.k, init.lam) == ('vipamin', 3, 0.25)
    init = build_prompt_init('vipamin', dict(k=2, num_images=50))
    assert (init.k, init.lam, init.num_images) == (2, 0.5, 50)
    assert build_prompt_init('spt_max').mode == 'max'
    assert (
        build_prompt_init(dict(type='SPTPromptInit', mode='kmeans')).name
        == 'spt_kmeans'
    )
    with pytest.raises(ValueError, match='spt_kmean.*choose one of'):
        build_prompt_init('spt_kmean')
    with pytest.raises(ValueError, match='lam'):
        build_prompt_init('vipamin', dict(lam=2))
    with pytest.raises(TypeError, match="'vipamin' options"):
        build_prompt_init('vipamin', dict(K=2))
    vit = PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='lspt',
        prompt_init='spt_mean',
        prompt_init_cfg=dict(batch_size=4),
    )
    assert (vit.prompt_init.name, vit.prompt_init.batch_size) == (
        'spt_mean',
        4,
    )


@pytest.mark.parametrize('method', PROMPT_METHODS)
@pytest.mark.parametrize('init', ['spt_kmeans', 'vipamin'])
def test_changes_nothing_but_the_initial_prompts(method, init):
    """Same construction (nothing drawn for the option), same state-dict
    keys, setup and trainable tensors; with the same prompt tensor the same
    forward in eval and in training mode."""
    uniform, other = tiny_vit(method), tiny_vit(method, init)
    a, b = uniform.state_dict(), other.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert backbone_setup(uniform) == backbone_setup(other)
    assert [(n, p.requires_grad) for n, p in uniform.named_parameters()] == [
        (n, p.requires_grad) for n, p in other.named_parameters()
    ]
    apply(other, images())
    assert not torch.equal(
        uniform.prompt_method.prompts, other.prompt_method.prompts
    )
    assert other.training  # the pass restored the mode
    with torch.no_grad():
        uniform.prompt_method.prompts.copy_(other.prompt_method.prompts)
    x = images(3, seed=7)
    for mode in (False, True):
        uniform.train(mode), other.train(mode)
        torch.manual_seed(3)
        out_a = uniform(x)[0]
        torch.manual_seed(3)
        out_b = other(x)[0]
        assert torch.equal(out_a, out_b)


def test_uniform_and_prompt_free_methods_compute_nothing():
    vit = tiny_vit('lspt')
    before = vit.prompt_method.prompts.clone()
    assert apply(vit, images())['sets'] == 0
    assert torch.equal(before, vit.prompt_method.prompts)
    linear = PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='linear',
        prompt_init='spt_random',
    )
    assert linear.prompt_method.prompt_set_blocks == ()
    assert apply(linear, images())['sets'] == 0


# ------------------------------------------------------------ SPT
@pytest.mark.parametrize('method', ['vpt_deep', 'lspt', 'vpt_shallow'])
def test_spt_random_rows_are_tokens_of_their_block(method):
    vit, imgs = tiny_vit(method, 'spt_random'), images()
    ref = plain_block_tokens(vit, imgs)
    vit.train()
    apply(vit, imgs)
    prompts = vit.prompt_method.prompts.detach()
    blocks = vit.prompt_method.prompt_set_blocks
    assert list(blocks) == list(range(len(prompts)))
    for i, block in enumerate(blocks):
        assert len({tuple(r.tolist()) for r in prompts[i]}) == len(prompts[i])
        for row in prompts[i]:
            assert row_of(row, ref[block])
            assert not any(row_of(row, ref[b]) for b in ref if b != block)
    # block 0: patch embeddings without the position embedding (the code's
    # RepCatcher on patch_embed), not the tokens entering block 0
    with torch.no_grad():
        embedded = vit.eval().embed_tokens(imgs)[0][:, 1:]
    assert not any(row_of(r, embedded) for r in prompts[0])


def test_spt_draws_are_seeded():
    a, b, c = (tiny_vit('vpt_deep', 'spt_random') for _ in range(3))
    apply(a, images()), apply(b, images()), apply(c, images(), seed=1)
    assert torch.equal(a.prompt_method.prompts, b.prompt_method.prompts)
    assert not torch.equal(a.prompt_method.prompts, c.prompt_method.prompts)


def test_window_pool_by_hand():
    x = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)
    x[1] = x[1].flip(0) ** 1.5  # max differs from the last row
    # N=16, N_p=4: w = 16 // 3 = 5, windows [0,5) [5,10) [10,15), then the
    # 16 % 5 = 1 trailing token
    want = torch.stack(
        [
            x[:, 0:5].mean(1),
            x[:, 5:10].mean(1),
            x[:, 10:15].mean(1),
            x[:, 15:16].mean(1),
        ],
        1,
    )
    assert torch.allclose(window_pool(x, 4, 'mean'), want)
    want = torch.stack(
        [
            x[:, 0:5].amax(1),
            x[:, 5:10].amax(1),
            x[:, 10:15].amax(1),
            x[:, 15:16].amax(1),
        ],
        1,
    )
    assert torch.equal(window_pool(x, 4, 'max'), want)
    # N_p=5: w = 4, no remainder: the code's x[:, -0:] is every token
    want = torch.stack(
        [
            x[:, 0:4].mean(1),
            x[:, 4:8].mean(1),
            x[:, 8:12].mean(1),
            x[:, 12:16].mean(1),
            x.mean(1),
        ],
        1,
    )
    assert torch.allclose(window_pool(x, 5, 'mean'), want)
    assert torch.allclose(window_pool(x, 1, 'mean'), x.mean(1, keepdim=True))
    with pytest.raises(ValueError, match='at least N_p - 1 = 17'):
        window_pool(x, 18, 'mean')


@pytest.mark.parametrize('reduce', ['mean', 'max'])
def test_spt_pooled_prompts_are_window_pools_of_their_block(reduce):
    vit, imgs = tiny_vit('vpt_deep', f'spt_{reduce}'), images()
    ref = plain_block_tokens(vit, imgs)
    apply(vit, imgs)
    prompts = vit.prompt_method.prompts.detach()
    for block, ref_tokens in ref.items():
        N = ref_tokens.shape[1]  # 16; N_p = 4: windows of 5, 5, 5, 1
        w = N // 3
        windows = [ref_tokens[:, p * w : (p + 1) * w] for p in range(3)]
        windows.append(ref_tokens[:, 3 * w :])
        pooled = torch.stack(
            [
                getattr(t, 'mean' if reduce == 'mean' else 'amax')(dim=1)
                for t in windows
            ],
            1,
        )
        for row in prompts[block]:
            assert row_of(row, pooled)
        others = [b for b in ref if b != block]
        assert not row_of(prompts[block][0], ref[others[0]])


def _lloyd_reference(points, centres, iters=100):
    """Plain k-means: assign every point to its nearest centre, move each
    centre to the mean of its points, until no assignment changes."""
    points = [list(map(float, p)) for p in points]
    centres = [list(map(float, c)) for c in centres]
    assign = None
    for _ in range(iters):
        new = []
        for p in points:
            d = [sum((a - b) ** 2 for a, b in zip(p, c)) for c in centres]
            new.append(d.index(min(d)))
        if new == assign:
            break
        assign = new
        for j in range(len(centres)):
            members = [p for p, a in zip(points, assign) if a == j]
            if members:
                centres[j] = [sum(col) / len(members) for col in zip(*members)]
    return torch.tensor(centres)


def test_kmeans_matches_a_plain_reference():
    g = torch.Generator().manual_seed(0)
    blobs = torch.tensor([[0.0, 0.0], [5.0, 5.0], [0.0, 6.0]])
    points = torch.cat(
        [c + 0.8 * torch.randn(12, 2, generator=g) for c in blobs]
    )
    init = points[[0, 1, 2]]  # all three in the first blob
    ours = kmeans(points, 3, init=init)
    assert torch.allclose(ours, _lloyd_reference(points, init), atol=1e-5)
    # k-means++ seeding (seeded): the same centres as the reference from
    # the same seeds, one centre per blob
    idx = kmeans_pp_init(points, 3, torch.Generator().manual_seed(4))
    ours = kmeans(points, 3, torch.Generator().manual_seed(4))
    ref = _lloyd_reference(points, points[idx])
    assert torch.allclose(ours, ref, atol=1e-5)
    nearest = torch.cdist(blobs, ours).argmin(dim=1)
    assert sorted(nearest.tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match='fewer prompts'):
        kmeans(points[:2], 3)


def test_spt_kmeans_prompts_are_centres_of_their_block_tokens():
    """With every token kept (max_tokens >= all), each prompt of set l is
    the mean of the block-l tokens nearest to it (Lloyd's fixed point)."""
    vit = tiny_vit('lspt', dict(type='spt_kmeans', max_tokens=10**6))
    imgs = images()
    ref = plain_block_tokens(vit, imgs)
    apply(vit, imgs)
    for block, tokens in ref.items():
        centres = vit.prompt_method.prompts[block].detach()
        tokens = tokens.reshape(-1, tokens.shape[-1])
        assign = torch.cdist(tokens, centres).argmin(dim=1)
        assert len(set(assign.tolist())) == len(centres)
        for j, c in enumerate(centres):
            assert torch.allclose(tokens[assign == j].mean(0), c, atol=1e-4), (
                block,
                j,
            )


# ------------------------------------------------------------ VIPAMIN
@torch.no_grad()
def vpt_deep_reference(vit, imgs):
    """Written out for VPT-deep: keys (mean over heads, then images) and
    patch tokens (mean over images) entering each block of the prompted
    model; attention outputs (before proj, mean over images) of the model
    without prompts."""
    vit.eval()
    B, P = len(imgs), vit.prompt_method.prompts
    n_p, H = P.shape[1], vit.layers[0].attn.num_heads
    x = vit.patch_embed.projection(imgs).flatten(2).transpose(1, 2)
    x = torch.cat([vit.cls_token.expand(B, -1, -1), x], 1) + vit.pos_embed
    plain = x.clone()
    keys, patches, attn_out = [], [], []
    x = torch.cat([x[:, :1], P[0].expand(B, -1, -1), x[:, 1:]], 1)
    for b, layer in enumerate(vit.layers):
        x = torch.cat([x[:, :1], P[b].expand(B, -1, -1), x[:, 1 + n_p :]], 1)
        T, D = x.shape[1], x.shape[2]
        qkv = layer.attn.qkv(layer.ln1(x)).reshape(B, T, 3, H, D // H)
        keys.append(qkv[:, :, 1].mean(2).mean(0)[1:])  # drop CLS
        patches.append(x[:, 1 + n_p :].mean(0))
        x = layer(x)
        T0 = plain.shape[1]
        q, k, v = (
            layer.attn.qkv(layer.ln1(plain))
            .reshape(B, T0, 3, H, D // H)
            .permute(2, 0, 3, 1, 4)
        )
        attn = (q @ k.transpose(-2, -1) * (D // H) ** -0.5).softmax(-1)
        attn_out.append((attn @ v).transpose(1, 2).reshape(B, T0, D).mean(0))
        plain = layer(plain)
    return keys, patches, attn_out


def test_vipamin_matching_is_a_direct_top_k():
    k = 3
    vit, imgs = (
        tiny_vit('vpt_deep', dict(type='vipamin', k=k, lam=0.0)),
        images(),
    )
    keys, patches, _ = vpt_deep_reference(vit, imgs)
    n_p = vit.num_prompts
    apply(vit, imgs)
    for b in range(len(keys)):
        pk, xk = keys[b][:n_p], keys[b][n_p:]
        for j in range(n_p):
            cos = torch.stack(
                [
                    torch.dot(pk[j], xk[i]) / (pk[j].norm() * xk[i].norm())
                    for i in range(len(xk))
                ]
            )
            top = cos.argsort(descending=True)[:k]
            want = patches[b][top].mean(0)
            assert torch.allclose(
                vit.prompt_method.prompts[b, j], want, atol=1e-5
            ), (b, j)


def test_vipamin_orthogonal_term_and_mix():
    """λ = 1: the code's formula with the projection written as
    ``I - pinv(O)·O``; λ = 0.5: the mix of the λ = 0 and λ = 1 prompts."""
    imgs = images()
    made = {}
    for lam in (0.0, 1.0, 0.5):
        vit = tiny_vit('vpt_deep', dict(type='vipamin', k=2, lam=lam))
        apply(vit, imgs, seed=5)
        made[lam] = vit.prompt_method.prompts.detach().double()
    _, _, attn_out = vpt_deep_reference(vit, imgs)
    g = torch.Generator().manual_seed(5)
    D, n_p = vit.embed_dims, vit.num_prompts
    bound = vpt_uniform_bound(8, D)
    for b, layer in enumerate(vit.layers):
        w = layer.attn.qkv.weight[2 * D :].double()
        bias = layer.attn.qkv.bias[2 * D :].double()
        noise = torch.empty(n_p, D, dtype=torch.float64).uniform_(
            -bound, bound, generator=g
        )
        out = attn_out[b].double()
        orth = torch.eye(D, dtype=torch.float64) - torch.linalg.pinv(out) @ out
        value = (noise @ w.T + bias) @ orth
        want = (value - bias) @ torch.linalg.pinv(w)
        assert torch.allclose(made[1.0][b], want, atol=1e-4), b
        # what it is built for: W_V·p + b_V has no component in span(O)
        # (the code's right-multiplication by pinv(W_V) makes this hold only
        # up to W_V's asymmetry, so it is not asserted)
    assert torch.allclose(
        made[0.5], 0.5 * made[0.0] + 0.5 * made[1.0], atol=1e-4
    )


def test_vipamin_k_larger_than_the_patches_is_refused():
    vit = tiny_vit('gapt', dict(type='vipamin', k=17, lam=0.0))
    with pytest.raises(ValueError, match='k=17 exceeds the 16 patch tokens'):
        apply(vit, images())


# ------------------------------------------------------------ the hook
def test_config_asks_for_the_hook():
    """A data-driven init without the hook is refused (the prompts would
    stay uniform); the runtimes list the hook; uniform needs none."""
    cfg = Config(
        dict(
            model=dict(
                backbone=dict(
                    type='LoRAModel',
                    module=dict(
                        type='PromptedViT', prompt_init=dict(type='vipamin')
                    ),
                )
            )
        )
    )
    with pytest.raises(ValueError, match="no dict\\(type='PromptInitHook'\\)"):
        check_hooks(cfg)
    cfg.custom_hooks = [dict(type='PromptInitHook')]
    check_hooks(cfg)
    for value in (None, 'uniform', dict(type='uniform')):
        check_hooks(Config(dict(model=dict(backbone=dict(prompt_init=value)))))


@pytest.fixture(scope='module')
def cub_root(tmp_path_factory):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_cls import make_synthetic_cls

    out = str(tmp_path_factory.mktemp('synthetic_cub'))
    make_synthetic_cls(out, per_class=6, test_per_class=2, splits=True)
    return out


def demo_runner(root, work_dir, name, **options):
    from lspt_mm.engine.runner_utils import build_runner
    from lspt_mm.recipes import apply_task

    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'data_root': root,
            'train_cfg.max_epochs': 1,
            'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1,
            'model.backbone.prompt_init': 'spt_random',
            **options,
        }
    )
    apply_task(cfg, log=False)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = name
    return build_runner(cfg)


LINE = 'training images (seed '  # the hook's one line


def _log(runner):
    with open(runner.logger.log_file) as f:
        return f.read()


def test_hook_runs_once_logs_and_leaves_the_rng_alone(cub_root, tmp_path):
    runner = demo_runner(cub_root, tmp_path / 'a', 'pi_a')
    hooks = [h for h in runner.hooks if isinstance(h, PromptInitHook)]
    assert len(hooks) == 1  # from the runtime config (cls_runtime.py)
    vit = runner.model.backbone
    before, rng = vit.prompt_method.prompts.detach().clone(), _rng_states()
    hooks[0].before_train(runner)
    after = vit.prompt_method.prompts.detach().clone()
    assert not torch.equal(before, after)
    now = _rng_states()
    assert torch.equal(rng['torch'], now['torch'])
    assert rng['python'] == now['python']
    assert all(
        (a == b).all() if hasattr(a, 'all') else a == b
        for a, b in zip(rng['numpy'], now['numpy'])
    )
    lines = [x for x in _log(runner).splitlines() if LINE in x]
    assert len(lines) == 1, lines
    assert 'prompt_init=spt_random()' in lines[0]
    assert 'from 32 training images (seed 0) in ' in lines[0]
    # the seed is the run's: the same prompts again, others with seed 1
    again = demo_runner(cub_root, tmp_path / 'b', 'pi_b')
    again.hooks[
        [isinstance(h, PromptInitHook) for h in again.hooks].index(True)
    ].before_train(again)
    assert torch.equal(again.model.backbone.prompt_method.prompts, after)
    other = demo_runner(
        cub_root, tmp_path / 'c', 'pi_c', **{'randomness.seed': 1}
    )
    other.hooks[
        [isinstance(h, PromptInitHook) for h in other.hooks].index(True)
    ].before_train(other)
    assert not torch.equal(other.model.backbone.prompt_method.prompts, after)


def _with_probe(runner):
    """A hook recording the prompts when training starts (after
    PromptInitHook)."""
    from mmengine.hooks import Hook

    class PromptProbe(Hook):
        prompts = None

        def before_train(self, runner):
            self.prompts = (
                runner.model.backbone.prompt_method.prompts.detach().clone()
            )

    probe = PromptProbe()
    runner.register_hook(probe, priority='LOW')
    return probe


def test_end_to_end_resume_and_test_keep_the_checkpoint_prompts(
    cub_root, tmp_path
):
    work = tmp_path / 'run'
    runner = demo_runner(cub_root, work, 'pi_run')
    probe = _with_probe(runner)
    runner.train()
    assert probe.prompts is not None
    lines = [x for x in _log(runner).splitlines() if LINE in x]
    assert len(lines) == 1, lines
    first = tmp_path / 'epoch_1.pth'  # max_keep_ckpts=1 removes it later
    first.write_bytes((work / 'epoch_1.pth').read_bytes())
    ckpt = torch.load(first, map_location='cpu', weights_only=False)
    saved = ckpt['state_dict']['backbone.prompt_method.prompts']
    # resumed: no recomputation, training continues from the checkpoint's
    resumed = demo_runner(
        cub_root,
        work,
        'pi_resumed',
        **{'train_cfg.max_epochs': 2, 'resume': True},
    )
    probe = _with_probe(resumed)
    resumed.train()
    assert torch.equal(probe.prompts, saved)
    log = _log(resumed)
    assert 'kept the prompts of the loaded checkpoint' in log
    assert LINE not in log
    # a test run never trains: the hook does not run, prompts = checkpoint's
    tester = demo_runner(
        cub_root, tmp_path / 'test', 'pi_test', load_from=str(first)
    )
    tester.test()
    assert torch.equal(tester.model.backbone.prompt_method.prompts, saved)
    assert LINE not in _log(tester) and 'kept the prompts' not in _log(tester)


def test_segmentation_demo_config(tmp_path):
    """The option on the mmseg demo (EncoderDecoder, mmseg data
    preprocessor padding the random crops): every set written."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_ade20k import make_synthetic_ade20k

    from mmengine.runner import Runner

    root = make_synthetic_ade20k(
        str(tmp_path / 'ade'),
        num_train=6,
        num_val=2,
        min_size=64,
        max_size=96,
        seed=0,
    )
    cfg = Config.fromfile(SEG_DEMO)
    cfg.merge_from_dict(
        {
            'model.backbone.prompt_init': dict(type='spt_max', batch_size=4),
            'train_dataloader.dataset.data_root': root,
            'val_dataloader.dataset.data_root': root,
            'test_dataloader.dataset.data_root': root,
        }
    )
    assert dict(type='PromptInitHook') in cfg.custom_hooks  # the runtime's
    cfg.work_dir, cfg.experiment_name = str(tmp_path / 'work'), 'pi_seg'
    runner = Runner.from_cfg(cfg)
    vit = runner.model.backbone
    before = vit.prompt_method.prompts.detach().clone()
    hook = [h for h in runner.hooks if isinstance(h, PromptInitHook)][0]
    hook.before_train(runner)
    changed = (vit.prompt_method.prompts != before).flatten(1).all(dim=1)
    assert changed.all() and len(changed) == 4
    assert 'from 6 training images' in _log(runner)


DIST_SCRIPT = '''
import sys, torch
import lspt_mm
from types import SimpleNamespace
from mmengine.dist import init_dist, get_rank
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from lspt_mm.engine import PromptInitHook
init_dist('pytorch', backend='gloo')
rank = get_rank()
torch.manual_seed(0)
model = MODELS.build(dict(
    type='ImageClassifier',
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=3),
    backbone=dict(type='PromptedViT', arch=dict(
        embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=64),
        img_size=32, patch_size=8, prompt_method='vpt_deep', num_prompts=3,
        prompt_init='spt_random'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels=32)))

class Data(torch.utils.data.Dataset):
    """Each rank its own images; only rank 0 may be read."""
    def __len__(self):
        return 8
    def __getitem__(self, i):
        assert rank == 0, 'rank %d read the data' % rank
        g = torch.Generator().manual_seed(100 * rank + i)
        return dict(inputs=torch.randint(0, 255, (3, 32, 32), generator=g,
                                         dtype=torch.uint8),
                    data_samples=DataSample().set_gt_label(i % 3))

runner = SimpleNamespace(
    model=model, train_dataloader=SimpleNamespace(dataset=Data()),
    logger=MMLogger.get_instance('dist_probe'), seed=rank, iter=0, epoch=0,
    _has_loaded=False)
before = model.backbone.prompt_method.prompts.detach().clone()
PromptInitHook().before_train(runner)
prompts = model.backbone.prompt_method.prompts.detach()
gathered = [torch.zeros_like(prompts) for _ in range(2)]
torch.distributed.all_gather(gathered, prompts)
print('rank %d identical %s changed %s' % (
    rank, torch.equal(gathered[0], gathered[1]),
    not torch.equal(before, prompts)), flush=True)
torch.distributed.barrier()
torch.distributed.destroy_process_group()
'''


def test_ranks_end_with_rank_0s_prompts(tmp_path):
    """torchrun, 2 CPU processes (gloo), different data and seeds per rank:
    rank 0 computes, every rank ends with its prompts (rank 1 never reads
    data)."""
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    script = tmp_path / 'dist.py'
    script.write_text(DIST_SCRIPT)
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'torch.distributed.run',
            '--nproc_per_node=2',
            f'--master_port={port}',
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=dict(
            __import__('os').environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT
        ),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    for rank in (0, 1):
        assert f'rank {rank} identical True changed True' in proc.stdout


def test_deepcopy_keeps_the_option():
    """EMA copies (mmengine's EMAHook deep-copies the model) keep it."""
    vit = tiny_vit('lspt', dict(type='vipamin', k=2))
    twin = copy.deepcopy(vit)
    assert repr(twin.prompt_init) == repr(vit.prompt_init)


# ------------------------------------------------------------ configs
SPT_README = dict(  # SPT's README / train_MAE.py, train.py (written out)
    mae=dict(lr=5e-2, head_weight_decay=0.5),
    mocov3=dict(lr=1e-3, head_weight_decay=3.0),
)


@pytest.mark.parametrize('variant', ['deep', 'shallow'])
@pytest.mark.parametrize('backbone', ['mae', 'mocov3'])
@pytest.mark.parametrize('benchmark', ['fgvc', 'vtab1k'])
def test_spt_recipe_configs(variant, backbone, benchmark):
    from lspt_mm.recipes import apply_task

    cfg = Config.fromfile(
        osp.join(
            ROOT,
            'configs',
            'classification',
            'prompt_init',
            f'spt-{variant}_vit-b16-{backbone}_{benchmark}.py',
        )
    )
    cfg.task = 'cub' if benchmark == 'fgvc' else 'dtd'
    apply_task(cfg, log=False)
    vit = cfg.model.backbone
    assert vit.prompt_method == f'vpt_{variant}'
    assert vit.num_prompts == (20 if variant == 'deep' else 100)
    assert vit.prompt_init == 'spt_random' and vit.prompt_dropout == 0.0
    optim = cfg.optim_wrapper
    assert optim.optimizer == dict(
        type='AdamW', lr=SPT_README[backbone]['lr'], weight_decay=1e-2
    )
    mult = optim.paramwise_cfg.custom_keys['head.fc.weight'].decay_mult
    assert mult * 1e-2 == pytest.approx(
        SPT_README[backbone]['head_weight_decay']
    )
    assert cfg.train_dataloader.batch_size == 32
    warmup, cosine = cfg.param_scheduler
    assert (
        warmup.type,
        warmup.end,
        cosine.type,
        cosine.begin,
        cosine.end,
        cosine.eta_min,
    ) == ('LinearLR', 10, 'CosineAnnealingLR', 10, 100, 1e-8)
    assert cfg.train_cfg.max_epochs == 100
    hooks = {h.type: h for h in cfg.custom_hooks}
    assert hooks['EMAHook'].momentum == pytest.approx(1 - 0.9999)
    assert {
        'CheckpointPolicyHook',
        'TrainableParamsHook',
        'RNGStateHook',
        'PromptInitHook',
    } <= set(hooks)


@pytest.mark.parametrize('backbone', ['b16-mae', 'b16-mocov3', 'b14-dinov2'])
def test_lspt_datainit_configs_only_add_the_init(backbone):
    from lspt_mm.recipes import apply_task

    for benchmark, task in (('fgvc', 'cub'), ('vtab1k', 'dtd')):
        base = Config.fromfile(
            osp.join(
                ROOT,
                'configs',
                'classification',
                f'lspt_vit-{backbone}_{benchmark}.py',
            )
        )
        cfg = Config.fromfile(
            osp.join(
                ROOT,
                'configs',
                'classification',
                'prompt_init',
                f'lspt-datainit_vit-{backbone}_{benchmark}.py',
            )
        )
        for c in (base, cfg):
            c.task = task
            apply_task(c, log=False)
        assert cfg.model.backbone.pop('prompt_init') == 'spt_kmeans'
        assert cfg.model == base.model
        assert cfg.optim_wrapper == base.optim_wrapper
        # the runtime's hooks hold PromptInitHook already (issue 18)
        assert cfg.custom_hooks == base.custom_hooks
        assert 'PromptInitHook' in [h.type for h in cfg.custom_hooks]


def test_spt_recipe_trains_on_the_demo(cub_root, tmp_path):
    """SPT's optimiser, schedule and hooks on the demo model: SPT's weight
    decay groups, the init pass, EMA, and a checkpoint the test run loads
    under the checkpoint policy (its state dict: the EMA weights)."""
    spt = Config.fromfile(
        osp.join(
            ROOT,
            'configs',
            'classification',
            'prompt_init',
            'spt-deep_vit-b16-mae_fgvc.py',
        )
    )
    runner = demo_runner(
        cub_root,
        tmp_path / 'spt',
        'pi_spt',
        method='vpt_deep',
        optim_wrapper=dict(spt.optim_wrapper.to_dict(), _delete_=True),
        param_scheduler=[s.to_dict() for s in spt.param_scheduler],
        custom_hooks=[h.to_dict() for h in spt.custom_hooks],
    )
    runner.train()
    groups = {}
    for group in runner.optim_wrapper.optimizer.param_groups:
        for p in group['params']:
            groups[id(p)] = group['weight_decay']
    model = runner.model
    assert groups[id(model.head.fc.weight)] == pytest.approx(0.5)
    assert groups[id(model.head.fc.bias)] == 0.0
    assert groups[id(model.backbone.prompt_method.prompts)] == 1e-2
    assert len(groups) == 3  # prompts, head weight, head bias
    log = _log(runner)
    assert sum(LINE in x for x in log.splitlines()) == 1
    ckpt = torch.load(
        tmp_path / 'spt' / 'epoch_1.pth',
        map_location='cpu',
        weights_only=False,
    )
    assert 'ema_state_dict' in ckpt
    tester = demo_runner(
        cub_root,
        tmp_path / 'spt_test',
        'pi_spt_test',
        method='vpt_deep',
        load_from=str(tmp_path / 'spt' / 'epoch_1.pth'),
        custom_hooks=[h.to_dict() for h in spt.custom_hooks],
    )
    from mmengine.hooks import Hook

    class TestProbe(Hook):  # after EMAHook's swap (ABOVE_NORMAL)
        def before_test_epoch(self, runner):
            self.prompts = (
                runner.model.backbone.prompt_method.prompts.detach().clone()
            )

    probe = TestProbe()
    tester.register_hook(probe, priority='LOW')
    tester.test()
    # tested on the EMA weights: the checkpoint's state_dict (mmpretrain's
    # EMAHook swaps the source weights back after the test)
    assert torch.equal(
        probe.prompts, ckpt['state_dict']['backbone.prompt_method.prompts']
    )
    assert not torch.equal(
        probe.prompts,
        ckpt['ema_state_dict']['module.backbone.prompt_method.prompts'],
    )

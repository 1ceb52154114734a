"""torch.compile of PromptedViT and of the models the configs build:
compiled outputs and gradients equal eager ones for every method, and
training steps compile once (GaPT's in-place temperature clamp, LSPT's
cached input term and prompt dropout cause no recompiles).

The backend is ``aot_eager``: dynamo's tracing, guards and graph breaks and
AOTAutograd's compiled backward and functionalisation (of GaPT's in-place
clamp) are those of ``inductor``, without its C++ builds (a minute per
graph on this CPU). Inductor's numerics on ViT-B are measured by the cost
tool (``compile_max_abs_diff``, docs/benchmarks.md)."""

import os.path as osp
import sys

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import lspt_mm  # noqa: F401
from lspt_mm.analysis import cost
from lspt_mm.models import METHODS as TABLE
from lspt_mm.models import PromptedViT

from mmengine.config import Config
from mmengine.hooks import Hook

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=8)
METHODS = [name for name, spec in TABLE.items() if not spec.wrapper]
BACKEND = 'aot_eager'
CLS_CONFIG = osp.join(
    ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_fgvc.py'
)
SEG_CONFIG = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py',
)
DEMO = osp.join(
    ROOT,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def make(method, **kwargs):
    torch.manual_seed(0)
    opts = (
        dict(num_prompts=3, prompt_dropout=0.0)
        if TABLE[method].uses_prompts
        else {}
    )
    if method == 'lspt_lora':  # its LoRA without dropout: eager and
        # compiled draw their dropout masks from different RNG streams
        opts.update(compose=[dict(type='LoRATuning', drop_rate=0.0)])
        method = 'lspt'
    vit = PromptedViT(
        prompt_method=method, out_indices=[1, 3], **{**KW, **opts, **kwargs}
    )
    vit.init_weights()
    with torch.no_grad():  # non-trivial gates, temperatures, adapters
        for name, p in vit.named_parameters():
            if 'prompt_method' in name:
                p.add_(0.3 * torch.randn_like(p))
        if method == 'gapt':  # one τ outside the range: the clamp acts
            vit.prompt_method.temperatures[1] = 20.0
    return vit


def step(model, x):
    outs = model(x)
    loss = sum(
        (o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs
    )
    if loss.requires_grad:
        loss.backward()
    return [o.detach() for o in outs]


def breaks():
    return sum(counters['graph_break'].values())


@pytest.mark.parametrize('method', METHODS)
def test_compiled_equals_eager_in_training_and_inference(method):
    eager, comp = make(method).train(), make(method).train()
    x = torch.randn(2, 3, 32, 32)
    counter = CompileCounterWithBackend(BACKEND)
    compiled = torch.compile(comp, backend=counter)
    outs, outs_c = step(eager, x), step(compiled, x)
    for a, b in zip(outs, outs_c):
        assert (a - b).abs().max() <= 1e-5
    for (name, p), pc in zip(eager.named_parameters(), comp.parameters()):
        assert (p.grad is None) == (pc.grad is None), name
        if p.grad is not None:
            assert (p.grad - pc.grad).abs().max() <= 1e-5, name
    if method == 'gapt':  # the in-place clamp reached the parameter
        assert comp.prompt_method.temperatures[1].item() == 10.0
    assert counter.frame_count == 1 and breaks() == 0  # one graph
    eager.eval()
    comp.eval()
    with torch.no_grad():
        for _ in range(2):  # LSPT: the second call would use its cache
            for a, b in zip(eager(x), compiled(x)):
                assert (a - b).abs().max() <= 1e-5
    assert counter.frame_count == 2 and breaks() == 0  # + the eval graph


def test_checkpointed_blocks_compile_to_the_same_gradients():
    eager = make('gapt', with_cp=True).train()
    comp = make('gapt', with_cp=True).train()
    x = torch.randn(2, 3, 32, 32)
    counter = CompileCounterWithBackend(BACKEND)
    step(eager, x)
    step(torch.compile(comp, backend=counter), x)
    for (name, p), pc in zip(eager.named_parameters(), comp.parameters()):
        if p.grad is not None:
            assert (p.grad - pc.grad).abs().max() <= 1e-5, name
    assert counter.frame_count == 1 and breaks() == 0


def _case(method, task, counter, **options):
    settings = cost.CostSettings(
        configs=dict(cls=CLS_CONFIG, seg=SEG_CONFIG),
        arch='tiny',
        patch_size=8,
        cfg_options=dict(
            cls={'task': 'cub', 'model.head.num_classes': 5},
            seg={
                'model.decode_head.channels': 32,
                'model.auxiliary_head.channels': 16,
            },
        ),
        threads=1,
        compile=dict(backend=counter),
        **options,
    )
    return cost.CostCase(
        dict(method=method, task=task, img_size=32, num_prompts=2, batch=2),
        settings,
    )


@pytest.mark.parametrize('method', ['lspt', 'gapt', 'vpt_deep'])
def test_train_steps_compile_once(method):
    """mmengine train steps (data preprocessor, loss, AdamW / SGD step) of
    the classification config with prompt dropout: the compile count stays
    fixed from the first step on, through optimiser steps that move GaPT's
    temperatures outside their range and LSPT's parameters (its input-term
    cache would key on their versions)."""
    counter = CompileCounterWithBackend(BACKEND)
    case = _case(method, 'cls', counter)
    vit = case.vit
    assert vit.prompt_method.prompt_dropout.p > 0
    case.enable_compile()
    case.train_step()
    after_first = counter.frame_count
    assert after_first >= 1
    for _ in range(2):
        if method == 'gapt':  # an optimiser step past the bound
            with torch.no_grad():
                vit.prompt_method.temperatures[0] = 50.0
        case.train_step()
        if method == 'gapt':  # clamped to 10 in the forward, then stepped
            assert abs(vit.prompt_method.temperatures[0].item() - 10.0) < 0.01
    assert counter.frame_count == after_first
    case.infer()
    after_eval = counter.frame_count
    case.train_step()  # parameters change: LSPT's eager cache would refill
    case.infer()
    case.infer()
    assert counter.frame_count == after_eval
    assert breaks() == 0


def test_segmentation_train_steps_compile_once():
    counter = CompileCounterWithBackend(BACKEND)
    case = _case('lspt', 'seg', counter, with_cp=True)
    case.enable_compile()
    case.train_step()
    first = counter.frame_count
    case.train_step()
    case.train_step()
    assert counter.frame_count == first
    case.infer()
    evaluated = counter.frame_count
    case.infer()
    assert counter.frame_count == evaluated


@pytest.fixture(scope='module')
def cub_root(tmp_path_factory):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_cls import make_synthetic_cls

    out = str(tmp_path_factory.mktemp('synthetic_cub'))
    make_synthetic_cls(out, per_class=6, test_per_class=2, splits=True)
    return out


class GraphCount(Hook):
    """Dynamo's count of compiled frames after every train iteration."""

    def __init__(self):
        self.after_iter = []

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        self.after_iter.append(counters['frames']['ok'])


def test_compile_key_compiles_training_and_testing(cub_root, tmp_path):
    """``compile=...`` in a config (mmengine's key): tools/train.py's
    runner compiles the model once per mode, training and testing run
    compiled, predictions equal the eager model's."""
    from lspt_mm.engine.runner_utils import build_runner
    from lspt_mm.recipes import apply_task

    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(
        {
            'data_root': cub_root,
            'train_cfg.max_epochs': 2,
            'train_cfg.val_interval': 2,
            'default_hooks.checkpoint.interval': 2,
            'train_dataloader.batch_size': 8,
            'train_dataloader.drop_last': True,
            'compile': dict(backend=BACKEND),
        }
    )
    apply_task(cfg, log=False)
    cfg.work_dir = str(tmp_path)
    runner = build_runner(cfg)
    model = runner.model
    assert model._compiled_call_impl is not None
    assert runner.cfg.compile is False  # mmengine's train_step compile: off
    count = GraphCount()
    runner.register_hook(count)
    runner.train()
    n = count.after_iter
    assert len(n) >= 4 and n[0] > 0 and n[-1] == n[0]  # no recompiles
    metrics = runner.test()
    assert 'accuracy/top1' in metrics
    batch = next(iter(runner.test_dataloader))
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        compiled = model(**data, mode='tensor')
        eager = model.forward(**data, mode='tensor')  # forward: not compiled
    assert (compiled - eager).abs().max() <= 1e-5


def test_bad_compile_value_is_named():
    from lspt_mm.engine.runner_utils import compile_options

    assert compile_options(Config(dict())) is None
    assert compile_options(Config(dict(compile=False))) is None
    assert compile_options(Config(dict(compile=True))) == {}
    assert compile_options(
        Config(dict(compile=dict(mode='reduce-overhead')))
    ) == dict(mode='reduce-overhead')
    with pytest.raises(ValueError, match='compile='):
        compile_options(Config(dict(compile='yes')))

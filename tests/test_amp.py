"""Mixed precision for every method: bf16 autocast train steps on CPU
(``AutocastOptimWrapper``, what ``tools/train.py --amp`` picks without a
GPU) against float32, and mmengine's ``AmpOptimWrapper`` on CUDA.

Stated tolerance (tiny 4-block ViT from the classification config, batch
2): the bf16 loss within 1% of float32's, the gradient of every trained
tensor within 10% in relative L2 norm (bf16 keeps 8 bits of mantissa,
0.4% per rounding; measured worst: 5%, GaPT's temperatures)."""

import os.path as osp

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.analysis import cost
from lspt_mm.engine import AutocastOptimWrapper

from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS_CONFIG = osp.join(
    ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_fgvc.py'
)
LOSS_TOL, GRAD_TOL = 1e-2, 0.1


def case(method, amp, device=None):
    options = {'task': 'cub', 'model.head.num_classes': 5}
    if cost.uses_prompts(method):
        options['model.backbone.prompt_dropout'] = 0.0
    settings = cost.CostSettings(
        configs=dict(cls=CLS_CONFIG),
        arch='tiny',
        patch_size=8,
        cfg_options=dict(cls=options),
        threads=1,
        amp=amp,
        device=device,
    )
    return cost.CostCase(
        dict(method=method, task='cls', img_size=32, num_prompts=2, batch=2),
        settings,
    )


def loss_and_grads(c):
    torch.manual_seed(1)  # the same dropout masks (LoRA's) in both runs
    log = c.train_step()  # model.train_step, as mmengine's loop runs it
    names = {id(p): n for n, p in c.model.named_parameters()}
    return float(log['loss']), {
        names[i]: g.float() for i, g in c.grads.items() if g is not None
    }


@pytest.mark.parametrize('method', cost.method_names())
def test_bf16_step_matches_float32(method):
    fp32, bf16 = case(method, False), case(method, True)
    assert isinstance(bf16.optim_wrapper, AutocastOptimWrapper)
    seen = []
    bf16.vit.layers[0].attn.qkv.register_forward_hook(
        lambda m, i, out: seen.append(out.dtype)
    )
    loss32, g32 = loss_and_grads(fp32)
    loss16, g16 = loss_and_grads(bf16)
    assert seen == [torch.bfloat16]  # the forward ran under autocast
    assert abs(loss16 - loss32) <= LOSS_TOL * abs(loss32)
    assert g16.keys() == g32.keys() and g32
    for name, g in g32.items():
        assert g16[name].dtype == torch.float32  # float32 master weights
        err = (g16[name] - g).norm() / g.norm().clamp_min(1e-12)
        assert err <= GRAD_TOL, (name, err.item())


def test_autocast_wrapper_casts_the_forward_and_refuses_fp16():
    model = torch.nn.Linear(4, 4)
    wrapper = build_optim_wrapper(
        model,
        dict(type='AutocastOptimWrapper', optimizer=dict(type='SGD', lr=0.1)),
    )
    assert wrapper.cast_dtype == torch.bfloat16
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().sum())
    assert model.weight.dtype == torch.float32
    with pytest.raises(ValueError, match='loss scaling'):
        AutocastOptimWrapper(
            dtype='float16',
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        )


def test_train_tool_amp_picks_the_wrapper_of_the_machine():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(ROOT, 'tools', 'train.py')
    )
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    demo = osp.join(
        ROOT,
        'configs',
        'classification',
        'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
    )
    cfg = train.merge_args(
        Config.fromfile(demo), train.parse_args([demo, '--amp'])
    )
    if torch.cuda.is_available():
        assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    else:
        assert cfg.optim_wrapper.type == 'AutocastOptimWrapper'
        assert cfg.optim_wrapper.dtype == 'bfloat16'


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('method', cost.method_names())
def test_cuda_amp_step_matches_float32(method):
    fp32, amp = case(method, False, 'cuda'), case(method, True, 'cuda')
    assert type(amp.optim_wrapper).__name__ == 'AmpOptimWrapper'
    loss32, g32 = loss_and_grads(fp32)
    loss16, g16 = loss_and_grads(amp)
    assert abs(loss16 - loss32) <= LOSS_TOL * abs(loss32)
    for name, g in g32.items():  # (AmpOptimWrapper unscales before step)
        err = (g16[name] - g).norm() / g.norm().clamp_min(1e-12)
        assert err <= GRAD_TOL, (name, err.item())

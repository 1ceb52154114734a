"""GaPT's temperatures follow the official training dynamics (issue 8.5).

GaPT's official ``PromptedVisionTransformer.forward_features`` calls
``reinit_temp()`` before every forward: ``self.temp.data.copy_(
self.temp.data.clamp(min=0.01, max=10.0))``, then uses ``self.temp[i]``
unclamped. A temperature an optimiser step pushed past a bound returns to the
bound and keeps learning. The reference below is that procedure written out
on a copy of the model (no code shared with ``GaPT.temperature``).
"""

import copy

import torch
import torch.nn.functional as F

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT
from lspt_mm.models.vit_blocks import block_forward

from mmengine.runner.checkpoint import get_state_dict

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
LO, HI = 0.01, 10.0
KEY = 'prompt_method.temperatures'


def make():
    torch.manual_seed(0)
    vit = PromptedViT(
        prompt_method='gapt',
        num_prompts=3,
        prompt_dropout=0.0,
        arch=ARCH,
        img_size=32,
        patch_size=8,
        out_type='avg_token',
    )
    vit.init_weights()
    with torch.no_grad():
        vit.prompt_method.gate_logits.fill_(0.0)  # gates at 0.5: all paths
    return vit


def batch():
    torch.manual_seed(1)
    return torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])


def official_forward(vit, x):
    """The official forward: in-place clamp of the parameter, then
    ``temp[i]`` used as is (written out, not via ``GaPT.temperature``)."""
    pm = vit.prompt_method
    pm.temperatures.data.copy_(pm.temperatures.data.clamp(min=LO, max=HI))
    B = x.shape[0]
    tokens, _ = vit.patch_embed(x)
    tokens = torch.cat([vit.cls_token.expand(B, -1, -1), tokens], 1)
    tokens = tokens + vit.pos_embed
    n_p = pm.num_prompts
    x = torch.cat(
        [tokens[:, :1], pm.prompts[0].expand(B, -1, -1), tokens[:, 1:]], 1
    )
    for i, layer in enumerate(vit.layers):
        prompt_in = x[:, 1 : 1 + n_p]
        x = block_forward(layer, x, pm.temperatures[i])
        if i < len(vit.layers) - 1:
            gate = pm.gate_logits[i].sigmoid()
            x = torch.cat(
                [
                    x[:, :1],
                    gate * x[:, 1 : 1 + n_p] + (1 - gate) * prompt_in,
                    x[:, 1 + n_p :],
                ],
                1,
            )
    return vit.ln1(x[:, 1:].mean(1))


def loss_of(feat, head, y):
    return F.cross_entropy(head(feat), y)


def test_out_of_range_temperature_returns_to_bound_and_keeps_learning():
    """A τ past either bound is clamped in place by the training forward
    and gets the same (nonzero) gradient as a τ set at that bound."""
    x, y = batch()
    head = torch.nn.Linear(32, 4)
    vit = make().train()
    with torch.no_grad():
        vit.prompt_method.temperatures.copy_(
            torch.tensor([25.0, -3.0, 1.0, 2.0])
        )
    loss_of(vit(x)[0], head, y).backward()
    tau = vit.prompt_method.temperatures
    assert tau.tolist()[:2] == [HI, torch.tensor(LO).item()]
    grad = tau.grad.clone()
    assert (grad[:2].abs() > 0).all(), grad  # clamping the value only: 0

    ref = make().train()
    with torch.no_grad():
        ref.prompt_method.temperatures.copy_(torch.tensor([HI, LO, 1.0, 2.0]))
    loss_of(ref(x)[0], head, y).backward()
    assert torch.allclose(
        grad, ref.prompt_method.temperatures.grad, rtol=1e-5, atol=1e-8
    )


def test_sgd_trajectory_matches_official_reinit_temp():
    """Several SGD steps with a large lr on τ (so it leaves the range):
    the temperatures, outputs and losses follow the official procedure."""
    x, y = batch()
    torch.manual_seed(2)
    head = torch.nn.Linear(32, 4)
    ours, ref = make().train(), make().train()
    ref_head = copy.deepcopy(head)
    with torch.no_grad():
        for vit in (ours, ref):
            vit.prompt_method.temperatures.copy_(
                torch.tensor([9.5, 0.02, 1.0, 5.0])
            )

    def sgd(vit, h):
        params = [p for p in vit.parameters() if p.requires_grad]
        return torch.optim.SGD(
            [*params, *h.parameters()], lr=200.0, momentum=0.9
        )

    opt, ref_opt = sgd(ours, head), sgd(ref, ref_head)
    left_range, ours_taus = False, []
    for _ in range(6):
        opt.zero_grad()
        ref_opt.zero_grad()
        loss = loss_of(ours(x)[0], head, y)
        ref_loss = loss_of(official_forward(ref, x), ref_head, y)
        assert torch.allclose(loss, ref_loss, rtol=1e-5)
        loss.backward()
        ref_loss.backward()
        opt.step()
        ref_opt.step()
        t = ours.prompt_method.temperatures.detach()
        left_range |= bool(((t < LO) | (t > HI)).any())
        ours_taus.append(t.clone())
        assert torch.allclose(
            t, ref.prompt_method.temperatures.detach(), rtol=1e-4, atol=1e-6
        )
    assert left_range, 'the test must push a temperature out of range'
    # and at least one out-of-range τ came back and moved again
    assert any(not torch.equal(a, b) for a, b in zip(ours_taus, ours_taus[1:]))


def test_saved_temperatures_are_within_range():
    """The state dict (torch's and mmengine's checkpoint path) holds τ
    clamped, whatever the last optimiser step left in the parameter; a
    model loaded from it gives the same outputs."""
    vit = make().eval()
    with torch.no_grad():
        vit.prompt_method.temperatures.copy_(
            torch.tensor([25.0, -3.0, 1.0, 2.0])
        )
    for state in (vit.state_dict(), get_state_dict(vit)):
        tau = state[KEY]
        assert tau.min() >= LO and tau.max() <= HI, tau
        assert tau.tolist() == torch.tensor([HI, LO, 1.0, 2.0]).tolist()
    # eval does not touch the parameter, and uses the clamped value
    # (state_dict() above clamped the parameter in place: push it out again)
    with torch.no_grad():
        vit.prompt_method.temperatures[0] = 25.0
    x, _ = batch()
    with torch.no_grad():
        out = vit(x)[0]
    assert vit.prompt_method.temperatures[0].item() == 25.0
    loaded = make().eval()
    loaded.load_state_dict(vit.state_dict())
    with torch.no_grad():
        assert torch.allclose(loaded(x)[0], out, atol=1e-6)
    # keep_vars (parameter objects, e.g. for optimisers) is left alone
    assert (
        vit.state_dict(keep_vars=True)[KEY] is vit.prompt_method.temperatures
    )


def test_state_dict_hands_back_the_temperature_parameter():
    """Issue 19, case 8: ``state_dict()`` returns the parameter's own data
    (clamped in place), as for every other tensor: writing into it changes
    the parameter, and mmengine's EMA with ``update_buffers=True`` (which
    averages ``state_dict()`` tensors in place) tracks the temperatures."""
    from mmengine.model import ExponentialMovingAverage

    vit = make()
    pm = vit.prompt_method
    with torch.no_grad():
        pm.temperatures.copy_(torch.tensor([25.0, -3.0, 1.0, 2.0]))
    state = vit.state_dict()
    assert state[KEY].data_ptr() == pm.temperatures.data_ptr()
    assert (
        pm.temperatures.tolist() == torch.tensor([HI, LO, 1.0, 2.0]).tolist()
    )  # clamped in place
    state[KEY].copy_(torch.tensor([0.5, 0.6, 0.7, 0.8]))
    assert torch.equal(
        pm.temperatures.detach(), torch.tensor([0.5, 0.6, 0.7, 0.8])
    )
    ema = ExponentialMovingAverage(vit, momentum=0.5, update_buffers=True)
    avg = ema.module.prompt_method
    for step, (tau, gate) in enumerate([(2.0, 1.0), (4.0, 3.0)]):
        with torch.no_grad():
            pm.temperatures.fill_(tau)
            pm.gate_logits.fill_(gate)
        ema.update_parameters(vit)  # the first update copies
        want_tau, want_gate = (2.0, 1.0) if step == 0 else (3.0, 2.0)
        assert torch.allclose(
            avg.gate_logits.detach(), torch.full((3,), want_gate)
        )
        assert torch.allclose(
            avg.temperatures.detach(), torch.full((4,), want_tau)
        )

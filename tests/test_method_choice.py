"""How a config chooses a method: one documented way (``prompt_method`` +
``prompt_cfg``), the old spellings with a warning saying what to write, and
how an old checkpoint's method is recognised from its tensors."""

import glob
import warnings

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint_policy import (
    CheckpointMismatchError,
    check_state_dict,
    inferred_setup,
)
from lspt_mm.models.methods import METHODS, methods_saving, resolve

from mmengine.config import Config

ARCH = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
KW = dict(arch=ARCH, img_size=32, patch_size=8)


def build(**kwargs):
    torch.manual_seed(0)
    return PromptedViT(**KW, **kwargs)


def same_model(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return (
        a.method_name == b.method_name
        and a.freeze_backbone == b.freeze_backbone
        and list(sa) == list(sb)
        and all(torch.equal(sa[k], sb[k]) for k in sa)
        and [p.requires_grad for p in a.parameters()]
        == [p.requires_grad for p in b.parameters()]
    )


@pytest.mark.parametrize(
    'old, new, advice',
    [
        (
            dict(prompt=dict(type='GaPT', num_prompts=4, gate_init=5.0)),
            dict(
                prompt_method='gapt',
                prompt_cfg=dict(num_prompts=4, gate_init=5.0),
            ),
            "prompt_method='gapt', prompt_cfg={'num_prompts': 4, 'gate_init': 5.0}",
        ),
        (
            dict(prompt_method='none'),
            dict(prompt_method='linear'),
            "prompt_method='linear'",
        ),
        (
            dict(prompt_method='none', freeze_backbone=False),
            dict(prompt_method='full'),
            "prompt_method='full'",
        ),
        (
            dict(prompt_method='vpt_deep', freeze_backbone=True),
            dict(prompt_method='vpt_deep'),
            "prompt_method='vpt_deep' without freeze_backbone",
        ),
        (
            dict(prompt_method='NoPrompt', freeze_backbone=False),
            dict(prompt_method='full'),
            "prompt_method='full'",
        ),
    ],
)
def test_old_spellings_warn_what_to_write_and_build_the_same_model(
    old, new, advice
):
    with pytest.warns(FutureWarning, match='deprecated') as record:
        a = build(**old)
    assert advice in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # the documented way: no warning
        b = build(**new)
    assert same_model(a, b)


def test_registered_type_is_a_documented_choice():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        vit = build(prompt_method='VPTDeep', prompt_cfg=dict(num_prompts=2))
        # prompts on a trained ViT: a type with freeze_backbone=False
        trained = build(prompt_method='VPTDeep', freeze_backbone=False)
    assert vit.method_name == 'vpt_deep' and vit.num_prompts == 2
    assert trained.method_name == 'VPTDeep' and not trained.freeze_backbone
    assert all(p.requires_grad for p in trained.parameters())


def test_contradictions_are_refused():
    with pytest.raises(ValueError, match='means freeze_backbone=False'):
        build(prompt_method='full', freeze_backbone=True)
    with pytest.raises(ValueError, match='not both'):
        build(prompt=dict(type='LSPT'), prompt_method='lspt')
    with pytest.raises(ValueError, match='wraps the backbone'):
        build(prompt_method='lora')


def test_every_shipped_config_uses_the_documented_way():
    """No shipped config builds its backbone through an old spelling."""
    paths = sorted(glob.glob('configs/**/*.py', recursive=True))
    paths = [p for p in paths if '/_base_/' not in p]
    assert len(paths) > 100
    for path in paths:
        backbone = Config.fromfile(path).model.backbone
        vit = backbone.get('module', backbone)  # LoRA's wrapper
        with warnings.catch_warnings():
            warnings.simplefilter('error', FutureWarning)
            try:
                resolve(
                    prompt_method=vit.get('prompt_method'),
                    prompt_cfg=vit.get('prompt_cfg'),
                    freeze_backbone=vit.get('freeze_backbone'),
                    prompt=vit.get('prompt'),
                )
            except FutureWarning as err:
                pytest.fail(f'{path}: {err}')


def test_old_checkpoint_method_is_recognised_from_its_tensors():
    """Checkpoints without a recorded setup: each table method's tensors
    name the methods that save exactly those (from the components)."""
    for name, spec in METHODS.items():
        if spec.wrapper:
            continue
        vit = build(prompt_method=name, num_prompts=3)
        own = {
            k[len('prompt_method.') :]: v
            for k, v in vit.state_dict().items()
            if k.startswith('prompt_method.')
        }
        found = methods_saving(own)
        assert name in found, (name, found)
        setup = inferred_setup(vit.state_dict(), '')
        assert setup['candidates'] == found
        assert setup['num_prompts'] == (3 if spec.uses_prompts else 0)
    assert methods_saving({'prompts': torch.zeros(1, 3, 8)}) == [
        'vpt_shallow',
        'lspt_gspc_only',
    ]
    # VPT-deep and CVPT differ only in forward
    assert methods_saving({'prompts': torch.zeros(4, 3, 8)}) == [
        'vpt_deep',
        'cvpt',
    ]


def test_mismatch_message_names_the_inferred_candidates():
    """A VPT-shallow checkpoint without metadata loaded into a VPT-shallow
    model with another N_p: the method is not called a difference."""
    saved = build(prompt_method='vpt_shallow', num_prompts=3).state_dict()
    plain = type(saved)((k, v) for k, v in saved.items())  # no metadata
    model = build(prompt_method='vpt_shallow', num_prompts=5)
    with pytest.raises(CheckpointMismatchError) as err:
        check_state_dict(model, plain)
    text = str(err.value)
    assert 'num_prompts=3' in text and 'inferred' in text
    assert 'vpt_shallow or lspt_gspc_only' in text

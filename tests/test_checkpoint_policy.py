"""A checkpoint that does not fit its config is an error, never a model with
random parts: tools/test.py, load_from, --resume, the analysis loader and
``pretrained`` all go through lspt_mm.models.checkpoint_policy."""

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint import safe_load
from lspt_mm.models.checkpoint_policy import (
    CheckpointMismatchError,
    check_checkpoint,
)

from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
)
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
ARCH = dict(embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64)


def classifier(method='lspt', num_prompts=8, num_classes=5, **backbone):
    """A tiny mmpretrain ImageClassifier on a PromptedViT."""
    from mmpretrain.registry import MODELS

    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='PromptedViT',
                arch=ARCH,
                img_size=32,
                patch_size=8,
                prompt_method=method,
                num_prompts=num_prompts,
                prompt_dropout=0.0,
                **backbone,
            ),
            head=dict(
                type='LinearClsHead',
                num_classes=num_classes,
                in_channels=32,
                loss=dict(type='CrossEntropyLoss'),
            ),
        )
    ).eval()


def save(model, path):
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


# --------------------------------------------------------------- the policy
def test_setup_is_recorded_in_the_checkpoint(tmp_path):
    path = save(classifier('vpt_deep', 4), tmp_path / 'vpt.pth')
    setup = safe_load(path)['state_dict']._metadata['backbone']['lspt_mm']
    assert setup['prompt_method'] == 'vpt_deep'
    assert setup['num_prompts'] == 4
    assert setup['arch'] == ARCH
    assert setup['trainable_only'] is False


def test_other_method_and_prompt_count_is_refused_naming_both(tmp_path):
    path = save(classifier('vpt_deep', 4), tmp_path / 'vpt.pth')
    model = classifier('lspt', 8)
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint(model, safe_load(path), path)
    msg = str(err.value)
    assert (
        'missing (4): backbone.prompt_method.lstm.{weight_ih, weight_hh, '
        'bias_ih, bias_hh}' in msg
    )
    assert (
        'shape of backbone.prompt_method.prompts: (3, 4, 32) in the '
        'checkpoint, (3, 8, 32) in the model' in msg
    )
    assert (
        "trained with prompt_method='vpt_deep', num_prompts=4; the "
        "config says prompt_method='lspt', num_prompts=8" in msg
    )
    assert path in msg


def test_checkpoint_without_recorded_setup_is_described_from_tensors(tmp_path):
    sd = classifier('gapt', 2).state_dict()
    del sd._metadata  # as saved before setups were recorded
    with pytest.raises(
        CheckpointMismatchError,
        match=r"prompt_method='gapt', num_prompts=2 \(inferred "
        r'from its tensors\)',
    ) as err:
        check_checkpoint(classifier('vpt_shallow', 2), {'state_dict': sd})
    assert (
        'unexpected (2): backbone.prompt_method.{gate_logits, '
        'temperatures}' in str(err.value)
    )


def test_wrong_num_classes_head_is_refused():
    ten = {'state_dict': classifier(num_classes=10).state_dict()}
    with pytest.raises(CheckpointMismatchError) as err:
        check_checkpoint(classifier(num_classes=5), ten)
    msg = str(err.value)
    assert (
        'shape of head.fc.weight: (10, 32) in the checkpoint, (5, 32) in '
        'the model' in msg
    )
    assert (
        'head.fc has 10 outputs in the checkpoint and 5 in the model: '
        'trained with num_classes=10?' in msg
    )


def test_matching_checkpoint_passes_and_module_prefix_is_stripped():
    model = classifier()
    sd = {'module.' + k: v for k, v in model.state_dict().items()}
    check_checkpoint(model, {'state_dict': sd})  # no error


def _pretrained_file(tmp_path):
    """An mmpretrain-layout backbone file (what the converters write)."""
    vit = PromptedViT(
        arch=ARCH, img_size=32, patch_size=8, prompt_method='linear'
    )
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


def test_trainable_only_checkpoint_takes_frozen_vit_from_pretrained(tmp_path):
    pretrained = _pretrained_file(tmp_path)
    trained = classifier(pretrained=pretrained, save_trainable_only=True)
    with torch.no_grad():
        trained.backbone.prompt_method.prompts.add_(1.0)
    ckpt = {'state_dict': trained.state_dict()}
    assert not any(
        k.startswith('backbone.layers.') for k in ckpt['state_dict']
    )
    fresh = classifier(pretrained=pretrained, save_trainable_only=True)
    check_checkpoint(fresh, ckpt)  # the frozen ViT comes from `pretrained`
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(fresh.extract_feat(x)[0], trained.extract_feat(x)[0])
    with pytest.raises(
        CheckpointMismatchError, match='frozen ViT must come from the backbone'
    ):
        check_checkpoint(classifier(save_trainable_only=True), ckpt)


def test_linear_probe_trainable_only_checkpoint_loads(tmp_path):
    """A linear probe's trainable-only checkpoint holds no backbone tensor
    at all (only the head); its recorded setup says the ViT comes from
    `pretrained`. Without that record, the missing ViT is still an
    error."""
    pretrained = _pretrained_file(tmp_path)
    trained = classifier(
        'linear', 0, pretrained=pretrained, save_trainable_only=True
    )
    with torch.no_grad():
        trained.head.fc.weight.add_(1.0)
    path = save(trained, tmp_path / 'linear.pth')
    ckpt = safe_load(path)
    assert not any(k.startswith('backbone.') for k in ckpt['state_dict'])
    fresh = classifier(
        'linear', 0, pretrained=pretrained, save_trainable_only=True
    )
    check_checkpoint(fresh, ckpt)
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    assert torch.equal(fresh.head.fc.weight, trained.head.fc.weight)
    bare = {'state_dict': dict(ckpt['state_dict'])}  # metadata dropped
    with pytest.raises(
        CheckpointMismatchError,
        match=r'missing \(\d+\): '
        r'backbone\.',
    ):
        check_checkpoint(fresh, bare)


def test_pretrained_file_with_part_of_a_prompt_method_is_refused(tmp_path):
    """A runner checkpoint of VPT-deep given as `pretrained` to LSPT would
    load the prompts and leave the LSTM random."""
    vpt = PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='vpt_deep',
        num_prompts=4,
    )
    path = str(tmp_path / 'vpt_run.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v for k, v in vpt.state_dict().items()
            }
        },
        path,
    )
    with pytest.raises(CheckpointMismatchError) as err:
        PromptedViT(
            arch=ARCH,
            img_size=32,
            patch_size=8,
            prompt_method='lspt',
            num_prompts=4,
            pretrained=path,
        )
    assert 'prompt_method.lstm.weight_ih' in str(err.value)
    assert "prompt_method='vpt_deep or cvpt'" in str(err.value)
    # the same method loads all of it
    same = PromptedViT(
        arch=ARCH,
        img_size=32,
        patch_size=8,
        prompt_method='vpt_deep',
        num_prompts=4,
        pretrained=path,
    )
    assert torch.equal(same.prompt_method.prompts, vpt.prompt_method.prompts)


# ------------------------------------------------ runner, tools, analysis
@pytest.fixture(scope='module')
def demo_checkpoints(tmp_path_factory):
    """Checkpoints of the demo model: as configured (LSPT, 4 prompts) and
    trained as VPT-deep with 2 prompts, plus the synthetic data."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_ade20k import make_synthetic_ade20k

    from mmseg.registry import MODELS

    out = tmp_path_factory.mktemp('policy')
    root = make_synthetic_ade20k(
        str(out / 'ade'),
        num_train=4,
        num_val=2,
        min_size=64,
        max_size=72,
        seed=0,
    )
    init_default_scope('mmseg')
    paths = {}
    for name, opts in (
        ('lspt', {}),
        (
            'vpt',
            {
                'model.backbone.prompt_method': 'vpt_deep',
                'model.backbone.num_prompts': 2,
            },
        ),
    ):
        cfg = Config.fromfile(DEMO)
        cfg.merge_from_dict(opts)
        torch.manual_seed(0)
        paths[name] = save(MODELS.build(cfg.model), out / f'{name}.pth')
    return root, paths


def _data_opts(root):
    return [
        f'{s}_dataloader.dataset.data_root={root}'
        for s in ('train', 'val', 'test')
    ]


def test_test_tool_stops_on_a_checkpoint_of_another_method(
    demo_checkpoints, tmp_path
):
    """Before: exit 0 and metrics of a model whose LSTM was random."""
    root, paths = demo_checkpoints
    proc = subprocess.run(
        [
            sys.executable,
            'tools/test.py',
            DEMO,
            paths['vpt'],
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
        ]
        + _data_opts(root),
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert 'Test metrics' not in proc.stdout
    # one short message at the end, no traceback
    err = proc.stderr[proc.stderr.index('error: ') :].strip().splitlines()
    assert err[0] == (
        f'error: Checkpoint {paths["vpt"]} does not match the '
        'model built from the config:'
    )
    assert len(err) <= 6, err
    assert (
        "trained with prompt_method='vpt_deep', num_prompts=2; the "
        "config says prompt_method='lspt', num_prompts=4" in proc.stderr
    )
    assert 'Traceback' not in proc.stderr


def _runner(cfg_options, work_dir):
    from lspt_mm.engine.runner_utils import build_runner

    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(cfg_options)
    cfg.work_dir = str(work_dir)
    return build_runner(cfg)


def test_load_from_and_resume_go_through_the_policy(
    demo_checkpoints, tmp_path
):
    root, paths = demo_checkpoints
    opts = {
        f'{s}_dataloader.dataset.data_root': root
        for s in ('train', 'val', 'test')
    }
    runner = _runner(opts, tmp_path / 'ok')
    hooks = [type(h).__name__ for h in runner.hooks]
    assert hooks.count('CheckpointPolicyHook') == 1  # from the _base_ config
    runner.load_checkpoint(paths['lspt'])  # fits: loads
    with pytest.raises(CheckpointMismatchError, match='vpt_deep'):
        runner.load_checkpoint(paths['vpt'])  # load_from's path
    with pytest.raises(CheckpointMismatchError, match='vpt_deep'):
        runner.resume(paths['vpt'])


def test_every_runtime_declares_the_hook():
    """The configs hold the hook (tools add none: issue 18)."""
    for name in ('cls_runtime.py', 'seg_runtime.py'):
        cfg = Config.fromfile(
            osp.join(osp.dirname(osp.dirname(DEMO)), '_base_', name)
        )
        assert dict(type='CheckpointPolicyHook') in cfg.custom_hooks


def test_analysis_loader_refuses_a_checkpoint_of_another_method(
    demo_checkpoints,
):
    """Before: lspt_mm.analysis.tokens loaded with strict=False."""
    from lspt_mm.analysis.tokens import load_model

    _, paths = demo_checkpoints
    with pytest.raises(CheckpointMismatchError, match='vpt_deep'):
        load_model(DEMO, paths['vpt'])
    model, _ = load_model(DEMO, paths['lspt'])
    saved = safe_load(paths['lspt'])['state_dict']
    assert torch.equal(
        model.backbone.prompt_method.lstm.weight_ih,
        saved['backbone.prompt_method.lstm.weight_ih'],
    )

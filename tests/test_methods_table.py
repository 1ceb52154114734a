"""The real-weights methods table: each method a protocol task of one
config, the size knobs as config overrides, end to end on tiny files in the
official Fashion-MNIST and DINOv2 release layouts."""

import json
import os
import os.path as osp

import pytest
import torch
from test_dinov2_backbone import random_official  # noqa: E402
from test_fashion_mnist import make_fmnist  # noqa: E402

import lspt_mm  # noqa: F401
from lspt_mm.tuning import Protocol, ProtocolError, Unit
from lspt_mm.tuning.methods_table import method_tasks, size_options

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(
    ROOT,
    'configs',
    'classification',
    'realweights',
    'lspt_dinov2-s14-imgfocus_1xb32-fmnist-112px.py',
)
TINY = dict(embed_dims=24, num_layers=2, num_heads=2, feedforward_channels=48)


def test_size_options_reach_the_run_config(tmp_path):
    opts = size_options(
        img_size=56,
        epochs=3,
        per_class=dict(train=4, val=2, test=3),
        weights='w.pth',
        arch='dinov2-base',
        num_prompts=7,
    )
    tasks = method_tasks(
        CONFIG, ['none', 'gapt'], dict(lr=[0.1, 0.2], num_prompts=[1, 5])
    )
    assert (
        'num_prompts' not in tasks[0].grid and 'num_prompts' in tasks[1].grid
    )
    protocol = Protocol(tasks, str(tmp_path), cfg_options=opts)
    cfg = protocol.build_config(Unit(tasks[1], 'tune', dict(lr=0.2), 0))
    b = cfg.model.backbone
    assert (
        b.prompt_method,
        b.img_size,
        b.arch,
        b.num_prompts,
        b.pretrained,
    ) == ('gapt', 56, 'dinov2-base', 7, 'w.pth')
    assert b.patch_size is None and b.layer_scale_init_value is None
    for name in ('train', 'test'):
        ds = cfg[f'{name}_dataloader'].dataset
        assert ds.pipeline[0].type == 'Resize'
        assert tuple(ds.pipeline[0].scale) == (56, 56)
        assert (ds.train_per_class, ds.val_per_class, ds.test_per_class) == (
            4,
            2,
            3,
        )
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'val'
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.param_scheduler[1].T_max == 2
    assert cfg.param_scheduler[1].end == 3
    assert cfg.optim_wrapper.optimizer.lr == 0.2
    with pytest.raises(ProtocolError, match='unknown methods'):
        method_tasks(CONFIG, ['lsp'], {})
    with pytest.raises(ProtocolError, match='epochs'):
        size_options(epochs=1)


def test_two_methods_end_to_end(tmp_path):
    data = str(tmp_path / 'fmnist')
    os.makedirs(data)
    make_fmnist(data, per_class_train=3, per_class_test=2)
    sd = random_official(0)
    weights = str(tmp_path / 'dinov2_tiny.pth')
    torch.save(sd, weights)
    opts = size_options(
        img_size=56,
        epochs=2,
        weights=weights,
        per_class=dict(train=2, val=1, test=2),
        num_prompts=2,
    )
    opts.update(
        {
            'model.backbone.arch': dict(TINY, _delete_=True),
            'model.backbone.patch_size': 14,
            'model.backbone.layer_scale_init_value': 1e-5,
            'model.head.in_channels': 24,
            'train_dataloader.batch_size': 8,
            'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False,
            'test_dataloader.num_workers': 0,
            'test_dataloader.persistent_workers': False,
        }
    )
    tasks = method_tasks(CONFIG, ['none', 'lspt'], dict(lr=[0.01]))
    for t in tasks:
        t.data_root = data
    protocol = Protocol(
        tasks, str(tmp_path / 'work'), seeds=[0, 1], cfg_options=opts
    )
    assert protocol.run() == 2 * 2  # one grid point: no tuning, two seeds
    for method in ('none', 'lspt'):
        for seed in (0, 1):
            result = json.load(
                open(
                    Unit(
                        [t for t in tasks if t.name == method][0],
                        'final',
                        dict(lr=0.01),
                        seed,
                    ).result_path(protocol.work_dir)
                )
            )
            assert result['eval_split'] == 'test'
            assert 0 <= result['score'] <= 100
    assert protocol.run() == 0  # resumed: nothing left to run


def test_prompt_init_variants_and_fixed_lrs():
    tasks = method_tasks(
        CONFIG,
        ['linear', 'lspt'],
        dict(lr=[0.1, 0.2]),
        prompt_inits=['uniform', 'vipamin'],
        method_grids=dict(lspt=dict(lr=[0.01])),
    )
    names = [t.name for t in tasks]
    assert names == ['linear', 'lspt', 'lspt+vipamin']
    by_name = {t.name: t for t in tasks}
    assert by_name['lspt+vipamin'].cfg_options == {
        'model.backbone.prompt_method': 'lspt',
        'model.backbone.prompt_init': 'vipamin',
    }
    assert 'model.backbone.prompt_init' not in by_name['lspt'].cfg_options
    assert [list(v) for v in by_name['lspt+vipamin'].grid.values()] == [[0.01]]
    assert [list(v) for v in by_name['linear'].grid.values()] == [[0.1, 0.2]]
    with pytest.raises(ProtocolError, match='unknown prompt inits'):
        method_tasks(CONFIG, ['lspt'], {}, prompt_inits=['spt'])

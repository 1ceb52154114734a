"""CamVid (issue 21): the dataset's checks, the colour converter, the
separate lr per module, and a tiny train + test run of the CPU config on a
generated CamVid-layout folder."""

import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.datasets import DataFileError
from lspt_mm.datasets.camvid import (
    CAMVID_CLASSES,
    CamVidDataset,
    check_camvid,
    colour_to_index,
)

CPU_CFG = (
    'configs/segmentation/camvid/'
    'lspt-dinov2-small_upernet-light_1xb4-400iter_camvid-112x112.py'
)
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def make_camvid(root, counts=(4, 2, 2), size=(42, 56), seed=0):
    """A CamVid-layout folder: images whose colour follows the label (so a
    model can learn it), labels 0..10 with a void (11) stripe."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in zip(('train', 'val', 'test'), counts):
        for d in (split, split + 'annot'):
            (root / d).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            lab = np.zeros((h, w), np.uint8)
            for k in range(4):  # four bands of random classes
                lab[k * h // 4 : (k + 1) * h // 4] = rng.integers(0, 11)
            lab[:, :3] = 11  # void
            img = np.stack([lab * 23, 255 - lab * 23, lab * 11], -1).astype(
                np.uint8
            )
            img = np.clip(img + rng.integers(0, 10, img.shape), 0, 255)
            cv2.imwrite(str(root / split / f'f{i}.png'), img.astype(np.uint8))
            cv2.imwrite(str(root / (split + 'annot') / f'f{i}.png'), lab)
    return root


def loading_pipeline():
    return [
        dict(type='mmseg.CheckedLoadImageFromFile'),
        dict(type='mmseg.CheckedLoadAnnotations', reduce_zero_label=False),
    ]


def test_void_ignored_and_bad_label_value_named(tmp_path):
    root = make_camvid(tmp_path / 'camvid')
    ds = CamVidDataset(data_root=str(root), pipeline=loading_pipeline())
    assert ds.metainfo['classes'] == CAMVID_CLASSES and len(ds) == 4
    gt = ds[0]['gt_seg_map']
    assert (gt[:, :3] == 255).all() and gt[:, 3:].max() <= 10
    bad = root / 'trainannot' / 'f1.png'
    lab = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    lab[5, 5] = 13
    cv2.imwrite(str(bad), lab)
    with pytest.raises(DataFileError, match=r'f1\.png.*13'):
        ds[1]
    problems = check_camvid(str(root))
    assert (
        len(problems) == 1 and 'f1.png' in problems[0] and '13' in problems[0]
    )


def test_missing_label_file_and_folder_named(tmp_path):
    root = make_camvid(tmp_path / 'camvid')
    (root / 'valannot' / 'f1.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'valannot/f1\.png'):
        CamVidDataset(
            data_root=str(root),
            pipeline=[],
            data_prefix=dict(img_path='val', seg_map_path='valannot'),
        )
    assert any(
        'no label' in p and 'valannot/f1.png' in p
        for p in check_camvid(str(root))
    )
    with pytest.raises(
        FileNotFoundError, match=r'CamVid dataset not found.*nowhere'
    ):
        CamVidDataset(data_root=str(tmp_path / 'nowhere'), pipeline=[])


def test_official_colours_to_indices():
    rgb = np.array(
        [
            [[128, 128, 128], [64, 192, 0], [192, 0, 192]],
            [[0, 0, 0], [1, 2, 3], [128, 64, 128]],
        ],
        np.uint8,
    )
    # Sky, Wall -> Building, MotorcycleScooter -> Bicyclist; Void, an
    # unknown colour -> void; Road
    assert colour_to_index(rgb).tolist() == [[0, 1, 10], [11, 11, 3]]


def test_module_lr_mult():
    from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.decode_head = torch.nn.Linear(2, 2)
    model.backbone.weight.requires_grad_(False)

    def build(pw):
        return OPTIM_WRAPPER_CONSTRUCTORS.build(
            dict(
                type='PromptTuningOptimWrapperConstructor',
                optim_wrapper_cfg=dict(
                    type='OptimWrapper',
                    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
                ),
                paramwise_cfg=pw,
            )
        )(model)

    lrs = {
        id(g['params'][0]): g['lr']
        for g in build(
            dict(module_lr_mult=dict(decode_head=10.0, backbone=2.0))
        ).optimizer.param_groups
    }
    assert lrs == {
        id(model.backbone.bias): pytest.approx(2e-3),
        id(model.decode_head.weight): pytest.approx(1e-2),
        id(model.decode_head.bias): pytest.approx(1e-2),
    }
    # off by default: one lr
    assert {g['lr'] for g in build(None).optimizer.param_groups} == {1e-3}
    with pytest.raises(ValueError, match='decode_haed'):
        build(dict(module_lr_mult=dict(decode_haed=10.0)))


def tiny_config(root, work_dir):
    """The CPU CamVid config at toy size (random 4-block ViT, 28 px crops,
    4 iterations) on the CamVid-layout folder ``root``."""
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(ROOT, CPU_CFG))
    cfg.work_dir = str(work_dir)
    crop = (28, 28)
    scale = (56, 42)
    cfg.merge_from_dict(
        {
            'model.data_preprocessor.size': crop,
            'model.backbone.arch': dict(
                _delete_=True,
                embed_dims=32,
                num_layers=4,
                num_heads=2,
                feedforward_channels=64,
            ),
            'model.backbone.img_size': crop,
            'model.backbone.pretrained': None,
            # random ViT: the checkpoint must hold it
            'model.backbone.save_trainable_only': False,
            'model.backbone.layer_scale_init_value': 0.0,
            'model.backbone.num_prompts': 2,
            'model.backbone.out_indices': [0, 1, 2, 3],
            'model.neck.embed_dim': 32,
            'model.decode_head.in_channels': [32] * 4,
            'model.decode_head.channels': 16,
            'model.auxiliary_head.in_channels': 32,
            'model.auxiliary_head.channels': 8,
            'optim_wrapper.paramwise_cfg.module_lr_mult': dict(
                decode_head=2.0
            ),
            'train_cfg.max_iters': 4,
            'train_cfg.val_interval': 4,
            'default_hooks.checkpoint.interval': 4,
            'default_hooks.logger.interval': 1,
            'param_scheduler': [
                dict(type='ConstantLR', factor=1.0, by_epoch=False)
            ],
        }
    )
    for pipe in (cfg.train_pipeline, cfg.test_pipeline):
        for t in pipe:
            if t['type'] in ('RandomResize', 'Resize'):
                t['scale'] = scale
            if t['type'] == 'RandomCrop':
                t['crop_size'] = crop
    for key, pipe in (
        ('train_dataloader', cfg.train_pipeline),
        ('val_dataloader', cfg.test_pipeline),
        ('test_dataloader', cfg.test_pipeline),
    ):
        cfg[key].dataset.data_root = str(root)
        cfg[key].dataset.pipeline = pipe
    cfg.train_dataloader.batch_size = 2
    return cfg


def test_tiny_train_then_test_then_figures(tmp_path, monkeypatch, capsys):
    """Train, test, then ``camvid_figures.py`` on the run folder: it builds
    the model from the config the run dumped, loads the checkpoint and
    draws the per-class table, curves and predictions."""
    import importlib.util

    from mmengine.runner import Runner

    monkeypatch.chdir(ROOT)
    root = make_camvid(tmp_path / 'camvid', counts=(6, 2, 3))
    run_dir = tmp_path / 'work'
    cfg = tiny_config(root, run_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = osp.join(cfg.work_dir, 'iter_4.pth')
    assert osp.isfile(ckpt)
    cfg.load_from = ckpt
    cfg.work_dir = str(run_dir / 'test')
    metrics = Runner.from_cfg(cfg).test()
    assert 0 <= metrics['mIoU'] <= 100 and 'aAcc' in metrics

    spec = importlib.util.spec_from_file_location(
        'camvid_figures',
        osp.join(ROOT, 'tools', 'analysis_tools', 'camvid_figures.py'),
    )
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    assert figures.run_config(str(run_dir), None).endswith(
        osp.basename(CPU_CFG)
    )
    out = tmp_path / 'figures'
    out.mkdir()
    name = sorted(p.stem for p in (root / 'test').iterdir())[0]
    monkeypatch.setattr(
        sys,
        'argv',
        ['camvid_figures.py', '--runs', f'tiny={run_dir}']
        + ['--data-root', str(root), '--images', name, '--out', str(out)]
        + ['--width', '56'],
    )
    capsys.readouterr()
    figures.main()
    table = capsys.readouterr().out
    for cls in CAMVID_CLASSES:
        assert f'| {cls} |' in table
    assert (out / 'camvid_loss.png').is_file()
    grid = cv2.imread(str(out / 'camvid_predictions.jpg'))
    # title bar + one row; columns: image, ground truth, the run
    assert grid.shape[:2] == (22 + 42, 3 * 56)
    # a checkpoint that does not fit the config is refused, not drawn
    bad = run_dir / 'iter_4.pth'
    state = torch.load(bad, map_location='cpu', weights_only=False)
    state['state_dict'].pop(next(iter(state['state_dict'])))
    torch.save(state, bad)
    with pytest.raises(Exception, match='missing|Missing'):
        figures.predict(
            figures.run_config(str(run_dir), None), str(bad), {}, []
        )


def test_backbone_lr_mult_is_a_protocol_axis():
    """The tuning protocol's ``backbone_lr_mult`` axis sets
    ``paramwise_cfg.module_lr_mult.backbone`` of a config: the prompt
    tensors get that multiple of the head's lr."""
    from lspt_mm.tuning.protocol import axis_key, grid_points

    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    cfg = Config.fromfile(osp.join(ROOT, CPU_CFG))
    (point,) = grid_points(dict(backbone_lr_mult=[5.0]))
    cfg.merge_from_dict({axis_key(k): v for k, v in point.items()})
    model = torch.nn.Module()
    model.backbone = torch.nn.Module()
    model.backbone.prompt_method = torch.nn.Module()
    model.backbone.prompt_method.prompts = torch.nn.Parameter(
        torch.zeros(2, 4)
    )
    model.decode_head = torch.nn.Linear(2, 2)
    lrs = {
        g['params'][0].shape: g['lr']
        for g in build_optim_wrapper(
            model, cfg.optim_wrapper
        ).optimizer.param_groups
    }
    base = cfg.optim_wrapper.optimizer.lr
    assert lrs[(2, 4)] == pytest.approx(5 * base)
    assert lrs[(2, 2)] == pytest.approx(base)


def test_splits_choose_and_join_folders(tmp_path):
    root = make_camvid(tmp_path / 'camvid', counts=(3, 2, 1))
    kw = dict(data_root=str(root), pipeline=loading_pipeline())
    sizes = {
        split: len(CamVidDataset(split=split, **kw))
        for split in ('train', 'val', 'test', 'trainval', 'train+test')
    }
    assert sizes == {
        'train': 3,
        'val': 2,
        'test': 1,
        'trainval': 5,
        'train+test': 4,
    }
    joined = CamVidDataset(split='trainval', **kw)
    paths = [joined.get_data_info(i)['seg_map_path'] for i in range(5)]
    assert [osp.basename(osp.dirname(p)) for p in paths] == (
        ['trainannot'] * 3 + ['valannot'] * 2
    )
    with pytest.raises(ValueError, match="split='training' is unknown"):
        CamVidDataset(split='training', **kw)
    with pytest.raises(ValueError, match='give one'):
        CamVidDataset(
            split='val',
            data_prefix=dict(img_path='val', seg_map_path='valannot'),
            **kw,
        )


def test_segmentation_table_through_the_tuning_protocol(tmp_path, monkeypatch):
    """``tools/run_benchmark.py --configs`` on CamVid configs: lr chosen on
    val (mIoU), the chosen point retrained on train+val with two seeds and
    scored on test; one row per method in the summary."""
    import json

    from mmengine.config import Config

    monkeypatch.chdir(ROOT)
    root = make_camvid(tmp_path / 'camvid', counts=(4, 2, 2))
    configs = []
    for method in ('linear', 'lspt'):
        cfg = tiny_config(root, tmp_path / 'unused')
        cfg.merge_from_dict(
            {
                'model.backbone.prompt_method': method,
                'train_cfg.max_iters': 2,
                'default_hooks.checkpoint.interval': 2,
            }
        )
        path = str(tmp_path / f'{method}.py')
        cfg.dump(path)
        configs.append(path)
    sys.path.insert(0, osp.join(ROOT, 'tools'))
    import run_benchmark

    work = tmp_path / 'table'
    run_benchmark.main(
        ['--configs', *configs, '--names', 'linear', 'lspt']
        + ['--split-key', 'split', '--metric', 'mIoU']
        + ['--lr', '1e-3', '3e-3', '--seeds', '0', '1']
        + ['--data-root', str(root), '--work-dir', str(work)]
    )
    for method in ('linear', 'lspt'):
        choice = json.loads((work / method / 'choice.json').read_text())
        assert choice['point']['lr'] in (1e-3, 3e-3)
        finals = sorted((work / method / 'final').glob('*/seed*/result.json'))
        assert len(finals) == 2
        for f in finals:
            result = json.loads(f.read_text())
            assert result['metric'] == 'mIoU' and 0 <= result['score'] <= 100
        # the final runs trained on train + val and were scored on test
        run = Config.fromfile(
            sorted((work / method / 'final').glob('*/seed0/*.py'))[0]
        )
        assert run.train_dataloader.dataset.split == 'trainval'
        assert run.test_dataloader.dataset.split == 'test'
    summary = (work / 'summary.md').read_text()
    assert 'linear' in summary and 'lspt' in summary
    # per-class IoU of the final runs: recorded by the metric, tabulated
    assert 'IoU.Sky' in result['metrics'] or 'IoU.Road' in result['metrics']
    assert '## Per-class IoU of the final runs' in summary
    rows = [line for line in summary.splitlines() if line.startswith('| ')]
    assert any(line.split(' | ')[0][2:] in CAMVID_CLASSES for line in rows)

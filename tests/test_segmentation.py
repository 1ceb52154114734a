"""ADE20K segmentation: configs, tools, demo training, resume, bad input."""

import glob
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import lspt_mm  # noqa: F401  (compat first)
import lspt_mm.datasets  # noqa: F401
import lspt_mm.engine  # noqa: F401
from lspt_mm.models.methods import get_method

from mmengine.config import Config
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(ROOT, 'configs', 'segmentation')
DEMO = osp.join(
    SEG, 'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py'
)
ENV = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_ade20k import make_synthetic_ade20k

    out = tmp_path_factory.mktemp('synthetic_ade')
    return make_synthetic_ade20k(
        str(out), num_train=32, num_val=8, min_size=64, max_size=96, seed=0
    )


def _data_opts(root):
    return [
        f'{s}_dataloader.dataset.data_root={root}'
        for s in ('train', 'val', 'test')
    ]


# ------------------------------------------------------------------ configs
def test_entry_config_is_the_lspt_mae_recipe():
    entry = Config.fromfile(osp.join(ROOT, 'configs', 'lspt_vitb_ade20k.py'))
    full = Config.fromfile(
        osp.join(SEG, 'lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py')
    )
    assert entry.to_dict() == full.to_dict()
    m = entry.model
    assert entry.default_scope == 'mmseg'
    assert 'lspt_mm' in entry.custom_imports.imports
    assert m.type == 'PromptedEncoderDecoder'  # EncoderDecoder + policy
    assert m.backbone.type == 'mmpretrain.PromptedViT'
    assert m.backbone.prompt_method == 'lspt'
    assert 'freeze_backbone' not in m.backbone  # the method table's
    assert m.backbone.pretrained == 'checkpoints/mae_pretrain_vit_base.pth'
    assert m.backbone.img_size == 512 and m.backbone.patch_size == 16
    assert list(m.backbone.out_indices) == [3, 5, 7, 11]
    assert m.backbone.out_type == 'featmap'
    assert m.neck.type == 'Feature2Pyramid'
    assert list(m.neck.rescales) == [4, 2, 1, 0.5]
    assert m.decode_head.type == 'UPerHead'
    assert m.decode_head.num_classes == 150
    assert m.auxiliary_head.type == 'FCNHead'
    assert m.auxiliary_head.num_classes == 150
    assert m.test_cfg.mode == 'slide'
    assert entry.train_cfg.max_iters == 160000
    assert entry.train_dataloader.batch_size * 8 == 16
    assert entry.optim_wrapper.optimizer.type == 'AdamW'
    assert (
        entry.train_dataloader.dataset.data_root
        == 'data/ade/ADEChallengeData2016'
    )
    assert entry.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


@pytest.mark.parametrize(
    'name,method,pretrained,frozen',
    [
        ('lspt-mocov3', 'lspt', 'linear-vit-b-300ep.pth.tar', True),
        ('linear-mae', 'linear', 'mae_pretrain_vit_base.pth', True),
        ('vpt-shallow-mae', 'vpt_shallow', 'mae_pretrain_vit_base.pth', True),
        ('vpt-deep-mae', 'vpt_deep', 'mae_pretrain_vit_base.pth', True),
        ('vpt-deep-mocov3', 'vpt_deep', 'linear-vit-b-300ep.pth.tar', True),
        ('gapt-mae', 'gapt', 'mae_pretrain_vit_base.pth', True),
        ('gapt-mocov3', 'gapt', 'linear-vit-b-300ep.pth.tar', True),
        ('finetune-mae', 'full', 'mae_pretrain_vit_base.pth', False),
    ],
)
def test_sibling_configs_differ_only_where_they_must(
    name, method, pretrained, frozen
):
    cfg = Config.fromfile(
        osp.join(SEG, f'{name}-base_upernet_8xb2-160k_ade20k-512x512.py')
    )
    main = Config.fromfile(
        osp.join(SEG, 'lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py')
    )
    b = cfg.model.backbone
    assert b.prompt_method == method
    assert b.pretrained == 'checkpoints/' + pretrained
    assert get_method(b.prompt_method).freeze_backbone == frozen
    if method == 'gapt':
        assert b.prompt_cfg.gate_init == 10.0
    # everything but the backbone and (full fine-tune) the optimiser is the
    # same recipe
    assert cfg.model.decode_head == main.model.decode_head
    assert cfg.train_dataloader == main.train_dataloader
    assert cfg.param_scheduler == main.param_scheduler
    if frozen:
        assert cfg.optim_wrapper == main.optim_wrapper


def test_full_finetune_layer_decay_builds_on_prompted_vit():
    """MAE's recipe (AdamW 8e-5, layer decay 0.8) on PromptedViT names:
    the lr falls by 0.8 per block from the head down to the embedding."""
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    cfg = Config.fromfile(
        osp.join(SEG, 'finetune-mae-base_upernet_8xb2-160k_ade20k-512x512.py')
    )
    cfg.model.backbone.update(
        arch=dict(
            embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64
        ),
        img_size=32,
        patch_size=16,
        out_indices=[0, 1, 2],
        pretrained=None,
    )
    cfg.model.neck.embed_dim = 32
    cfg.model.decode_head.update(
        in_channels=[32] * 4, channels=16, norm_cfg=dict(type='BN')
    )
    cfg.model.decode_head.in_index = [0, 1, 2, 3]
    cfg.model.neck.norm_cfg = dict(type='BN')
    cfg.model.auxiliary_head.update(
        in_channels=32, channels=8, norm_cfg=dict(type='BN')
    )
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    top = 8e-5
    assert lrs['decode_head.conv_seg.weight'] == pytest.approx(top)
    assert lrs['backbone.layers.2.attn.qkv.weight'] == pytest.approx(top * 0.8)
    assert lrs['backbone.layers.0.attn.qkv.weight'] == pytest.approx(
        top * 0.8**3
    )
    assert lrs['backbone.patch_embed.projection.weight'] == pytest.approx(
        top * 0.8**4
    )
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert len(lrs) == n_trainable  # full fine-tune: every tensor trains


# ------------------------------------------------------------- tool flags
def test_train_tool_flags():
    train = _load_tool('train')
    args = train.parse_args(
        [DEMO, '--amp', '--resume', '--cfg-options', 'train_cfg.max_iters=7']
    )
    cfg = train.merge_args(Config.fromfile(DEMO), args)
    # GPU: mmengine's AmpOptimWrapper; CPU: bf16 autocast (tests/test_amp.py)
    assert cfg.optim_wrapper.type == (
        'AmpOptimWrapper'
        if torch.cuda.is_available()
        else 'AutocastOptimWrapper'
    )
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.train_cfg.max_iters == 7
    assert cfg.work_dir.endswith(osp.splitext(osp.basename(DEMO))[0])
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        train.merge_args(
            Config.fromfile(DEMO),
            train.parse_args([DEMO, '--resume', 'nope.pth']),
        )
    if not torch.cuda.is_available():  # AmpOptimWrapper on CPU: refused
        with pytest.raises(SystemExit, match='needs a CUDA'):
            train.main(
                [
                    DEMO,
                    '--work-dir',
                    '/tmp/unused',
                    '--cfg-options',
                    'optim_wrapper.type=AmpOptimWrapper',
                ]
            )


def test_test_tool_flags(tmp_path):
    test = _load_tool('test')
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'x')
    args = test.parse_args(
        [
            DEMO,
            str(ckpt),
            '--out',
            str(tmp_path / 'p'),
            '--show-dir',
            str(tmp_path / 's'),
            '--tta',
        ]
    )
    cfg = test.merge_args(Config.fromfile(DEMO), args)
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'p')
    assert cfg.test_evaluator.keep_results is True
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 's')
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.type == 'PromptedEncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    assert cfg.load_from == str(ckpt)


# ------------------------------------------------------------- bad input
def _dataset(root, pipeline, **kwargs):
    from mmseg.registry import DATASETS

    init_default_scope('mmseg')
    cfg = Config.fromfile(DEMO)
    ds = cfg.train_dataloader.dataset
    ds.update(data_root=root, pipeline=pipeline, **kwargs)
    return DATASETS.build(ds)


def test_missing_data_root_says_where_and_how(tmp_path):
    train = _load_tool('train')
    missing = str(tmp_path / 'nowhere' / 'ADEChallengeData2016')
    with pytest.raises(FileNotFoundError) as err:
        train.main(
            [DEMO, '--work-dir', str(tmp_path / 'w'), '--cfg-options']
            + _data_opts(missing)
        )
    msg = str(err.value)
    assert missing in msg
    assert 'images/training' in msg
    assert 'ADEChallengeData2016.zip' in msg
    assert 'make_synthetic_ade20k.py' in msg


def _copy_dataset(src, dst, n=4):
    for sub in ('images/training', 'annotations/training'):
        os.makedirs(osp.join(dst, sub))
        files = sorted(os.listdir(osp.join(src, sub)))[:n]
        for f in files:
            with (
                open(osp.join(src, sub, f), 'rb') as a,
                open(osp.join(dst, sub, f), 'wb') as b,
            ):
                b.write(a.read())
    return dst


LOAD = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='CheckedLoadAnnotations', reduce_zero_label=True),
]


def test_corrupt_image_named_or_skipped_with_warning(data_root, tmp_path):
    from lspt_mm.datasets.ade20k import DataFileError

    from mmengine.logging import MMLogger

    root = _copy_dataset(data_root, str(tmp_path / 'ade'))
    bad = osp.join(root, 'images/training/ADE_train_00000002.jpg')
    with open(bad, 'wb') as f:
        f.write(b'\xff\xd8 not really a jpeg')
    ds = _dataset(root, LOAD)
    assert ds[0]['img'].shape[:2] == ds[0]['gt_seg_map'].shape
    with pytest.raises(DataFileError, match='ADE_train_00000002.jpg'):
        ds[1]
    # skip mode: a warning naming the file, and another sample instead
    skip = [dict(LOAD[0], on_error='skip'), LOAD[1]]
    ds = _dataset(root, skip)
    logger = MMLogger.get_current_instance()
    records = []

    class Grab:
        level = 0

        def handle(self, record):
            records.append(record.getMessage())

    handler = Grab()
    logger.handlers.append(handler)
    try:
        sample = ds[1]
    finally:
        logger.handlers.remove(handler)
    assert 'ADE_train_00000002' not in sample['img_path']
    assert any(
        'ADE_train_00000002.jpg' in r and 'skipping' in r for r in records
    ), records


def test_label_size_mismatch_names_both_files(data_root, tmp_path):
    from lspt_mm.datasets.ade20k import DataFileError

    root = _copy_dataset(data_root, str(tmp_path / 'ade'))
    bad = osp.join(root, 'annotations/training/ADE_train_00000003.png')
    Image.fromarray(np.ones((10, 12), np.uint8), mode='L').save(bad)
    ds = _dataset(root, LOAD)
    with pytest.raises(DataFileError) as err:
        ds[2]
    assert 'ADE_train_00000003.png' in str(err.value)
    assert 'ADE_train_00000003.jpg' in str(err.value)
    assert '10x12' in str(err.value)
    ds[0]  # others still load


def _grab_log():
    """A handler on the current MMLogger that collects messages."""
    from mmengine.logging import MMLogger

    records = []

    class Grab:
        level = 0

        def handle(self, record):
            records.append(record.getMessage())

    logger = MMLogger.get_current_instance()
    handler = Grab()
    logger.handlers.append(handler)
    return records, lambda: logger.handlers.remove(handler)


def _set_pixels(path, values):
    """Write ``values`` into the first pixels of label PNG ``path``."""
    seg = np.array(Image.open(path))
    seg.flat[: len(values)] = values
    Image.fromarray(seg, mode='L').save(path)


def test_out_of_range_label_values_named_or_skipped(data_root, tmp_path):
    """A label PNG with values outside 0..150 stops with DataFileError
    naming the file and the values (today: IndexError 'Target 199 is out of
    bounds' from the loss); 150 (the last class) and 255 (ignored) pass;
    on_error='skip' drops the sample with a warning."""
    from lspt_mm.datasets.ade20k import DataFileError

    from mmseg.datasets.transforms import LoadAnnotations

    root = _copy_dataset(data_root, str(tmp_path / 'ade'))
    ann = osp.join(root, 'annotations/training')
    _set_pixels(osp.join(ann, 'ADE_train_00000001.png'), [150, 255, 0, 1])
    bad = osp.join(ann, 'ADE_train_00000003.png')
    _set_pixels(bad, [200, 200, 151, 7])
    ds = _dataset(root, LOAD)
    # valid extremes load, and exactly as mmseg's own loader loads them
    ours = ds[0]['gt_seg_map']
    ref = LoadAnnotations(reduce_zero_label=True)(
        dict(
            seg_map_path=osp.join(ann, 'ADE_train_00000001.png'),
            reduce_zero_label=True,
            seg_fields=[],
        )
    )['gt_seg_map']
    assert np.array_equal(ours, ref)
    assert list(ours.flat[:4]) == [149, 255, 255, 0]
    with pytest.raises(DataFileError) as err:
        ds[2]
    msg = str(err.value)
    assert bad in msg and '151, 200' in msg and '(3 pixels)' in msg
    assert '0..150' in msg and "on_error='skip'" in msg
    # skip mode: a warning naming the file, and another sample instead
    ds = _dataset(root, [LOAD[0], dict(LOAD[1], on_error='skip')])
    records, remove = _grab_log()
    try:
        sample = ds[2]
    finally:
        remove()
    assert 'ADE_train_00000003' not in sample['img_path']
    assert any(
        bad in r and '151, 200' in r and 'skipping' in r for r in records
    ), records
    # an explicit class count overrides the dataset's
    ds = _dataset(root, [LOAD[0], dict(LOAD[1], num_classes=5)])
    with pytest.raises(DataFileError, match=r'valid are 0\.\.5'):
        ds[0]


def test_offline_checker_reports_every_fault(data_root, tmp_path):
    """`python -m lspt_mm.datasets.ade20k ROOT` runs (today: KeyError
    'CheckedADE20KDataset is already registered') and lists every fault in
    one pass."""
    root = _copy_dataset(data_root, str(tmp_path / 'ade'))
    for sub in ('images/validation', 'annotations/validation'):
        os.makedirs(osp.join(root, sub))
    ann = osp.join(root, 'annotations/training')
    img = osp.join(root, 'images/training')
    _set_pixels(osp.join(ann, 'ADE_train_00000001.png'), [151])
    _set_pixels(osp.join(ann, 'ADE_train_00000002.png'), [250, 250])
    os.remove(osp.join(ann, 'ADE_train_00000003.png'))
    with open(osp.join(img, 'ADE_train_00000004.jpg'), 'wb') as f:
        f.write(b'not a jpeg')
    proc = subprocess.run(
        [sys.executable, '-m', 'lspt_mm.datasets.ade20k', root],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert 'already registered' not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == f'4 problem(s) found in {root}', proc.stdout
    assert any(
        'ADE_train_00000001.png' in x and 'values 151 (1 pixels)' in x
        for x in lines
    ), lines
    assert any(
        'ADE_train_00000002.png' in x and 'values 250 (2 pixels)' in x
        for x in lines
    ), lines
    assert any('ADE_train_00000003.jpg: no label' in x for x in lines)
    assert any('ADE_train_00000004.jpg: unreadable image' in x for x in lines)
    # a clean copy: exit 0
    proc = subprocess.run(
        [sys.executable, '-m', 'lspt_mm.datasets.ade20k', data_root],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert (
        proc.returncode == 0
        and proc.stdout.splitlines()[-1]
        == f'0 problem(s) found in {data_root}'
    ), proc.stdout + proc.stderr


def test_missing_pretrained_file_through_train_tool(tmp_path):
    train = _load_tool('train')
    missing = str(tmp_path / 'mae_pretrain_vit_base.pth')
    with pytest.raises(FileNotFoundError) as err:
        train.main(
            [
                DEMO,
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'model.backbone.pretrained={missing}',
            ]
        )
    assert missing in str(err.value)
    assert (
        'https://dl.fbaipublicfiles.com/mae/pretrain/'
        'mae_pretrain_vit_base.pth' in str(err.value)
    )


# ------------------------------------------------------ atomic checkpoints
class _FakeRunner:
    """What CheckpointHook uses of a runner; saves through mmengine's real
    save_checkpoint (LocalBackend.put)."""

    def __init__(self, work_dir):
        from mmengine.logging import MessageHub, MMLogger

        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance('atomic_ckpt_test')
        self.logger = MMLogger.get_instance('atomic_ckpt_test')
        self.iter = 0

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kw):
        from mmengine.runner.checkpoint import save_checkpoint

        save_checkpoint(  # backend_args passed on, as mmengine's Runner does
            {
                'meta': meta,
                'state_dict': {'w': torch.full((50000,), float(meta['iter']))},
            },
            osp.join(out_dir, filename),
            backend_args=kw.get('backend_args'),
        )


def test_interrupted_save_leaves_last_checkpoint_complete(
    tmp_path, monkeypatch
):
    import lspt_mm.engine.checkpoint_hook as ch

    from mmengine.runner.checkpoint import find_latest_checkpoint

    runner = _FakeRunner(tmp_path)
    hook = ch.AtomicCheckpointHook(interval=1, by_epoch=False)
    hook.before_train(runner)
    hook._save_checkpoint_with_step(runner, 1, dict(iter=1))

    # killed while the second checkpoint is being written (after its bytes
    # went to disk, before it got its name)
    def killed(*args):
        raise KeyboardInterrupt('killed during save')

    monkeypatch.setattr(ch.os, 'fsync', killed)
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 2, dict(iter=2))
    monkeypatch.undo()
    latest = find_latest_checkpoint(str(tmp_path))
    assert latest == osp.join(str(tmp_path), 'iter_1.pth')
    assert torch.load(latest, weights_only=False)['state_dict']['w'][0] == 1
    assert not osp.exists(tmp_path / 'iter_2.pth')  # no half file
    assert sorted(os.listdir(tmp_path)) == ['iter_1.pth', 'last_checkpoint']

    # killed while last_checkpoint itself is being rewritten
    real_replace = os.replace

    def killed_on_pointer(src, dst):
        if dst.endswith('last_checkpoint'):
            raise KeyboardInterrupt('killed during pointer update')
        real_replace(src, dst)

    monkeypatch.setattr(ch.os, 'replace', killed_on_pointer)
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 3, dict(iter=3))
    monkeypatch.undo()
    assert find_latest_checkpoint(str(tmp_path)) == latest
    # the new file is complete, just not yet "latest"
    assert (
        torch.load(tmp_path / 'iter_3.pth', weights_only=False)['state_dict'][
            'w'
        ][0]
        == 3
    )
    hook._save_checkpoint_with_step(runner, 4, dict(iter=4))
    assert find_latest_checkpoint(str(tmp_path)).endswith('iter_4.pth')


# ------------------------------------------- end to end: train, test, resume
def _run(args, cwd=ROOT):
    proc = subprocess.run(
        [sys.executable] + args,
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def _state(path):
    return torch.load(path, map_location='cpu', weights_only=False)[
        'state_dict'
    ]


SHORT = [
    'train_cfg.max_iters=40',
    'train_cfg.val_interval=20',
    'default_hooks.checkpoint.interval=20',
    'default_hooks.logger.interval=5',
]


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory):
    """The demo config, shortened: 40 iterations, uninterrupted."""
    work = str(tmp_path_factory.mktemp('seg_e2e'))
    log = _run(
        ['tools/train.py', DEMO, '--work-dir', work, '--cfg-options']
        + SHORT
        + _data_opts(data_root)
    )
    return work, log


def test_demo_trains_and_test_tool_reproduces_validation(
    data_root, trained, tmp_path
):
    work, log = trained
    assert 'Iter(train) [ 5/40]' in log and 'Iter(train) [40/40]' in log
    assert 'trainable params' in log
    with open(osp.join(work, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    assert ckpt.endswith('iter_40.pth')
    scalars = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    vals = [json.loads(line) for line in open(scalars[0]) if 'mIoU' in line]
    assert [v['step'] for v in vals] == [20, 40]

    out = _run(
        [
            'tools/test.py',
            DEMO,
            ckpt,
            '--work-dir',
            str(tmp_path / 'test'),
            '--out',
            str(tmp_path / 'pred'),
            '--cfg-options',
        ]
        + _data_opts(data_root)
    )
    line = [x for x in out.splitlines() if x.startswith('Test metrics: ')]
    metrics = json.loads(line[-1][len('Test metrics: ') :])
    for key in ('aAcc', 'mIoU', 'mAcc'):
        assert metrics[key] == vals[-1][key], (metrics, vals[-1])
    assert 'per class results' in out  # the per-class IoU table
    assert re.search(r'\|\s+sky\s+\|\s+\d+\.\d+', out)
    assert len(os.listdir(tmp_path / 'pred')) == 8  # one PNG per val image

    # the untrained (initialised) model is far worse
    demo = _load_tool('demo')
    untrained = str(tmp_path / 'untrained.pth')
    demo.save_untrained(DEMO, untrained, {})
    out = _run(
        [
            'tools/test.py',
            DEMO,
            untrained,
            '--work-dir',
            str(tmp_path / 'test0'),
            '--cfg-options',
        ]
        + _data_opts(data_root)
    )
    line = [x for x in out.splitlines() if x.startswith('Test metrics: ')]
    before = json.loads(line[-1][len('Test metrics: ') :])
    assert metrics['mIoU'] > before['mIoU'] + 10, (before, metrics)


def test_console_shows_progress_and_the_log_file_keeps_everything(trained):
    """tools/train.py's console: progress, the short per-class summary and
    the metrics, not the config / environment / hook-order dumps, the
    per-parameter optimiser settings or the 150-row table (today all of
    them, ~1,000 lines for this run); the work dir's log file has it all."""
    work, console = trained
    log_file = glob.glob(osp.join(work, '*', '*.log'))
    assert len(log_file) == 1
    logged = open(log_file[0]).read()
    bulky = (
        'System environment',
        'Config:',
        'Hooks will be executed',
        'paramwise_options',
        'per class results:\n',
    )
    for text in bulky:
        assert text in logged, text
        assert text not in console, text
    assert f'environment, config and hook order: in {log_file[0]}' in console
    assert 'nan' not in console
    for text in (
        'Iter(train) [40/40]',
        'Saving checkpoint at 40',
        'Iter(val) [8/8]    aAcc:',
        'trainable params',
        '9 of 150 classes occur in the ground truth',
    ):
        assert text in console and text in logged, text
    # the full table (150 classes) in the file, the 9 present on the console
    rows = [ln for ln in logged.splitlines() if re.match(r'\|\s+\w', ln)]
    assert len([r for r in rows if 'nan' in r]) >= 2 * 141
    summary = [ln for ln in console.splitlines() if re.match(r'\|\s+\w', ln)]
    assert len(summary) == 2 * (1 + 9)  # header + 9 classes, 2 validations
    assert len(console.splitlines()) < 120, len(console.splitlines())


def test_resume_reaches_the_same_weights(data_root, trained, tmp_path):
    work, _ = trained
    resumed = str(tmp_path / 'resumed')
    # a run that stops at iteration 20 (as if killed after that save) ...
    _run(
        ['tools/train.py', DEMO, '--work-dir', resumed, '--cfg-options']
        + SHORT[1:]
        + ['train_cfg.max_iters=20']
        + _data_opts(data_root)
    )
    assert not osp.exists(osp.join(resumed, 'iter_40.pth'))
    # ... restarted with --resume (latest in the work dir) and full length
    log = _run(
        [
            'tools/train.py',
            DEMO,
            '--work-dir',
            resumed,
            '--resume',
            '--cfg-options',
        ]
        + SHORT
        + _data_opts(data_root)
    )
    assert 'resumed' in log.lower() or 'Advance dataloader 20' in log
    a = _state(osp.join(work, 'iter_40.pth'))
    b = _state(osp.join(resumed, 'iter_40.pth'))
    assert a.keys() == b.keys()
    differing = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differing, differing


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _test_metrics(out):
    line = [x for x in out.splitlines() if x.startswith('Test metrics: ')]
    return json.loads(line[-1][len('Test metrics: ') :])


def test_dist_scripts_train_and_test_on_cpu(data_root, tmp_path):
    """tools/dist_train.sh / dist_test.sh with 2 processes (gloo on CPU):
    both exit cleanly, and distributed testing gives the single-process
    metrics of the same checkpoint."""
    work = str(tmp_path / 'ddp')
    for script, args in (
        (
            'dist_train.sh',
            [
                DEMO,
                '2',
                '--work-dir',
                work,
                '--cfg-options',
                'train_cfg.max_iters=10',
                'train_cfg.val_interval=10',
                'default_hooks.checkpoint.interval=10',
            ],
        ),
        (
            'dist_test.sh',
            [
                DEMO,
                osp.join(work, 'iter_10.pth'),
                '2',
                '--work-dir',
                str(tmp_path / 'ddp_test'),
                '--cfg-options',
            ],
        ),
    ):
        proc = subprocess.run(
            ['bash', osp.join('tools', script)] + args + _data_opts(data_root),
            cwd=ROOT,
            env=dict(ENV, PORT=str(_free_port())),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    distributed = _test_metrics(proc.stdout + proc.stderr)
    single = _test_metrics(
        _run(
            [
                'tools/test.py',
                DEMO,
                osp.join(work, 'iter_10.pth'),
                '--work-dir',
                str(tmp_path / 'single'),
                '--cfg-options',
            ]
            + _data_opts(data_root)
        )
    )
    assert distributed == single

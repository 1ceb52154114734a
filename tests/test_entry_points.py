"""Issue 18, parts 2 and 3: the config is the whole run, and OpenMMLab's own
entry points work with it.

- ``Runner.from_cfg(Config.fromfile(C))`` builds and trains what
  ``tools/train.py C`` does (same resolved config, hooks, optimiser groups,
  loss), with ``task=`` / ``method=`` set afterwards re-resolved;
- mmseg's ``init_model`` / ``inference_model`` / ``show_result_pyplot`` /
  ``MMSegInferencer`` and mmpretrain's ``get_model`` / ``inference_model`` /
  ``ImageClassificationInferencer`` on a checkpoint written by
  ``tools/train.py`` (the demo configs, a few iterations), on a path and on
  an array, and refusing a checkpoint that does not fit;
- every shipped config's test pipeline is one those doors can rebuild;
- ``demo/image_demo.py``.
"""

import glob
import importlib.util
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

import lspt_mm  # noqa: F401
from lspt_mm.models.checkpoint_policy import CheckpointMismatchError

import mmcv
from mmengine.config import Config
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
)
CLS = osp.join(
    ROOT,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)
ALL_CONFIGS = sorted(
    p
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if osp.sep + '_base_' + osp.sep not in p
)


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        f'_lspt_tool_{name}', osp.join(ROOT, 'tools', f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """Tiny synthetic ADE20K and CUB copies and their options."""
    sys.path.insert(0, osp.join(ROOT, 'tools', 'dataset_converters'))
    from make_synthetic_ade20k import make_synthetic_ade20k
    from make_synthetic_cls import make_synthetic_cls

    tmp = tmp_path_factory.mktemp('entry')
    ade = make_synthetic_ade20k(
        str(tmp / 'ade'), num_train=4, num_val=2, min_size=64, max_size=80
    )
    make_synthetic_cls(
        str(tmp / 'cls'), per_class=3, test_per_class=1, splits=True
    )
    seg_opts = {
        f'{s}_dataloader.dataset.data_root': ade
        for s in ('train', 'val', 'test')
    }
    seg_opts.update(
        {
            'train_cfg.max_iters': 2,
            'train_cfg.val_interval': 2,
            'default_hooks.checkpoint.interval': 2,
        }
    )
    cls_opts = {
        'data_root': str(tmp / 'cls'),
        'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1,
        'default_hooks.checkpoint.interval': 1,
    }
    return dict(
        tmp=tmp,
        ade=ade,
        seg=seg_opts,
        cls=cls_opts,
        img=osp.join(ade, 'images', 'validation', 'ADE_val_00000001.jpg'),
    )


@pytest.fixture(scope='module')
def checkpoints(data):
    """Checkpoints written by tools/train.py's runner (its argument
    handling and runner, in this process: a few iterations)."""
    out = {}
    for name, config, ckpt in (
        ('seg', SEG, 'iter_2.pth'),
        ('cls', CLS, 'epoch_1.pth'),
    ):
        work = str(data['tmp'] / f'train_{name}')
        _tool_runner(config, data[name], work).train()
        out[name] = osp.join(work, ckpt)
        assert osp.isfile(out[name])
    return out


# ------------------------------------------------ configs are the whole run
def _tool_runner(config, options, work_dir):
    """The runner tools/train.py builds (its own argument handling)."""
    train = _tool('train')
    args = train.parse_args(
        [
            config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *[f'{k}={v}' for k, v in options.items()],
        ]
    )
    cfg = train.merge_args(Config.fromfile(config), args)
    return train.build_runner(cfg)


def _plain_runner(config, options, work_dir):
    """What a user's own launcher does: mmengine only."""
    from mmengine.runner import Runner

    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = work_dir
    return Runner.from_cfg(cfg)


def _dump(runner):
    cfg = runner.cfg.to_dict()
    cfg.pop('launcher', None)  # the tools record their --launcher
    cfg.pop('work_dir')  # each runner its own
    return Config(cfg).pretty_text


def _groups(runner):
    return [
        (
            sorted(
                n
                for n, p in runner.model.named_parameters()
                if any(p is q for q in g['params'])
            ),
            g['lr'],
            g['weight_decay'],
        )
        for g in runner.optim_wrapper.param_groups
    ]


@pytest.mark.parametrize(
    'name,extra',
    [
        ('seg', {}),
        ('cls', {}),
        # a method set afterwards re-resolves (prompts of the recipe row kept
        # as the demo sets them, the backbone switched)
        ('cls', {'method': 'vpt_deep'}),
    ],
)
def test_from_cfg_runs_what_train_tool_runs(data, tmp_path, name, extra):
    config = SEG if name == 'seg' else CLS
    options = dict(data[name], **extra)
    runners, losses = [], []
    for make in (_tool_runner, _plain_runner):  # each seeded when built
        runner = make(config, options, str(tmp_path / make.__name__))
        runner.train()
        losses.append(runner.message_hub.get_scalar('train/loss').current())
        runners.append(runner)
    tool, plain = runners
    assert losses[0] == losses[1]
    assert _dump(tool) == _dump(plain)
    assert [type(h).__name__ for h in tool.hooks] == [
        type(h).__name__ for h in plain.hooks
    ]
    assert 'PromptInitHook' in [type(h).__name__ for h in plain.hooks]
    if name == 'cls':
        assert plain.cfg.task_recipe['method'] == extra.get('method', 'lspt')
        assert plain.model.backbone.method_name == extra.get('method', 'lspt')
    assert _groups(tool) == _groups(plain)


def test_task_set_after_loading_is_resolved_by_from_cfg(tmp_path):
    """``merge_from_dict(task=...)`` on a loaded benchmark config: the
    runner gets that task's row (class count, lr, batch, data)."""
    from mmengine.runner import Runner

    cfg = Config.fromfile(
        osp.join(
            ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_vtab1k.py'
        )
    )
    assert cfg.task == 'caltech101' and cfg.model.head.num_classes == 102
    cfg.merge_from_dict(
        {
            'task': 'dtd',
            'model.backbone.arch': 'small',
            'model.head.in_channels': 768 // 2,
            'model.backbone.pretrained': None,
            'data_root': str(tmp_path / 'vtab'),
        }
    )
    cfg.work_dir = str(tmp_path / 'work')
    with pytest.raises(FileNotFoundError, match='VTAB-1k root'):  # the data
        Runner.from_cfg(cfg).train()
    assert (
        cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 47
    )
    assert cfg.optim_wrapper.optimizer.lr == 0.25  # GaPT Table 5, MAE DTD
    assert cfg.train_dataloader.dataset.task == 'dtd'
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'vtab')
    assert cfg.task_recipe['task'] == 'dtd'


def test_a_data_driven_init_without_its_hook_is_refused(data, tmp_path):
    from mmengine.runner import Runner

    cfg = Config.fromfile(CLS)
    cfg.merge_from_dict(
        dict(data['cls'], **{'model.backbone.prompt_init': 'spt_kmeans'})
    )
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h['type'] != 'PromptInitHook'
    ]
    cfg.work_dir = str(tmp_path)
    with pytest.raises(ValueError, match='PromptInitHook'):
        Runner.from_cfg(cfg)


def test_from_cfg_wrapper_is_installed_once():
    from lspt_mm.engine import from_cfg

    from mmengine.runner import Runner

    wrapped = Runner.__dict__['from_cfg']
    assert from_cfg.install() is False
    assert Runner.__dict__['from_cfg'] is wrapped


@pytest.mark.parametrize(
    'config', ALL_CONFIGS, ids=[osp.relpath(p, ROOT) for p in ALL_CONFIGS]
)
def test_every_config_loads_complete_for_the_doors(config, data):
    """Loaded as it is, each config is resolved (benchmark configs: their
    default task) and its test pipeline is one mmseg's / mmpretrain's
    inferencers rebuild for a path and an array."""
    from lspt_mm.recipes import apply_task

    cfg = Config.fromfile(config)
    before = cfg.to_dict()
    apply_task(cfg, log=False)
    assert cfg.to_dict() == before  # nothing left to fill
    for value in (cfg.model.get('head', {}) or {}).values():
        assert value is not None
    assert cfg.model.type in (
        'PromptedEncoderDecoder',
        'PromptedImageClassifier',
    )
    image = mmcv.imread(data['img'])
    if cfg.default_scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        from mmseg.apis.inference import _preprare_data

        with DefaultScope.overwrite_default_scope('mmseg'):
            pipeline = MMSegInferencer._init_pipeline(
                MMSegInferencer.__new__(MMSegInferencer), cfg.copy()
            )
            assert pipeline(dict(img=image))['inputs'].shape[0] == 3
            model = type('M', (), dict(cfg=cfg.copy(), device='cpu'))()
            for img in (data['img'], image):  # path first (mmseg keeps
                batch, _ = _preprare_data(img, model)  # the array loader)
                assert batch['inputs'][0].shape[0] == 3
    else:
        from mmpretrain.apis import ImageClassificationInferencer

        with DefaultScope.overwrite_default_scope('mmpretrain'):
            pipeline = ImageClassificationInferencer._init_pipeline(
                None, cfg.copy()
            )
            out = pipeline(
                dict(
                    img=image,
                    img_shape=image.shape[:2],
                    ori_shape=image.shape[:2],
                )
            )
            assert out['inputs'].shape[0] == 3


# ------------------------------------------------------ the inference doors
def test_mmseg_doors(data, checkpoints):
    from mmseg.apis import (
        MMSegInferencer,
        inference_model,
        init_model,
        show_result_pyplot,
    )

    model = init_model(SEG, checkpoints['seg'], device='cpu')
    image = mmcv.imread(data['img'])
    shape = image.shape[:2]
    by_path = inference_model(model, data['img'])
    vis = show_result_pyplot(
        model,
        data['img'],
        by_path,
        show=False,
        out_file=str(data['tmp'] / 'seg_vis.png'),
    )
    assert vis.shape[:2] == shape
    by_array = inference_model(model, image)
    for result in (by_path, by_array):
        assert tuple(result.pred_sem_seg.data.shape[-2:]) == shape
    assert (by_path.pred_sem_seg.data == by_array.pred_sem_seg.data).all()
    inferencer = MMSegInferencer(
        model=SEG, weights=checkpoints['seg'], device='cpu'
    )
    for img in (data['img'], image):
        pred = np.asarray(inferencer(img)['predictions'])
        assert pred.shape == shape
        assert (pred == by_path.pred_sem_seg.data[0].numpy()).all()
    # a checkpoint of another method is refused (was: a random prompt coder)
    with pytest.raises(CheckpointMismatchError, match='lspt'):
        init_model(
            SEG,
            checkpoints['seg'],
            device='cpu',
            cfg_options={'model.backbone.prompt_method': 'vpt_deep'},
        )


def test_mmpretrain_doors(data, checkpoints):
    from mmpretrain.apis import (
        ImageClassificationInferencer,
        get_model,
        inference_model,
    )

    image = mmcv.imread(data['img'])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = get_model(CLS, pretrained=checkpoints['cls'], device='cpu')
        results = [inference_model(model, img) for img in (data['img'], image)]
        inferencer = ImageClassificationInferencer(
            CLS, pretrained=checkpoints['cls'], device='cpu'
        )
        results += [inferencer(img)[0] for img in (data['img'], image)]
        for result in results:
            assert result['pred_label'] == results[0]['pred_label']
            assert len(result['pred_scores']) == 6
            assert result['pred_score'] == pytest.approx(
                results[0]['pred_score'], abs=1e-5
            )
        # a head of another class count is refused (was: a warning)
        with pytest.raises(CheckpointMismatchError, match='num_classes=6'):
            get_model(
                CLS,
                pretrained=checkpoints['cls'],
                device='cpu',
                head=dict(num_classes=10),
            )


def test_image_demo_script(data, checkpoints):
    out = str(data['tmp'] / 'demo_seg.png')
    proc = subprocess.run(
        [
            sys.executable,
            'demo/image_demo.py',
            data['img'],
            SEG,
            checkpoints['seg'],
            '--out-file',
            out,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'label map; most pixels' in proc.stdout and osp.isfile(out)
    assert mmcv.imread(out).shape[0] > 0
    demo = importlib.util.spec_from_file_location(
        '_lspt_image_demo', osp.join(ROOT, 'demo', 'image_demo.py')
    )
    module = importlib.util.module_from_spec(demo)
    demo.loader.exec_module(module)
    out = str(data['tmp'] / 'demo_cls.png')
    result = module.main(
        [data['img'], CLS, checkpoints['cls'], '--out-file', out]
    )
    assert len(result['pred_scores']) == 6 and osp.isfile(out)
    with pytest.raises(SystemExit, match='does not match the model built'):
        module.main(
            [
                data['img'],
                CLS,
                checkpoints['cls'],
                '--cfg-options',
                'model.head.num_classes=10',
            ]
        )

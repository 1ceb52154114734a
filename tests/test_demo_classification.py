"""Classification quick start: the synthetic data generators in the library
(and the converter that writes them), the demo config (the real CUB recipe,
shrunk), and tools/demo_classification.py end to end (shortened)."""

import importlib.util
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import lspt_mm  # noqa: F401  (compat first)

from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO = osp.join(
    ROOT,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)
CUB = osp.join(
    ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_fgvc.py'
)  # with task='cub'


def _load_tool(path, name):
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stripe_energy(path):
    """(vertical, horizontal) gradient energy of an image's grey level:
    horizontal stripes change along y."""
    grey = np.asarray(Image.open(path).convert('L'), dtype=np.float32)
    return (
        np.abs(np.diff(grey, axis=0)).mean(),
        np.abs(np.diff(grey, axis=1)).mean(),
    )


def test_generators_live_in_the_library(tmp_path):
    """tests/synthetic_cls.py re-exports the library's generators; the
    textured variant pairs classes by colour and tells them apart by the
    stripes' orientation."""
    from lspt_mm.datasets import synthetic

    sys.path.insert(0, osp.join(ROOT, 'tests'))
    import synthetic_cls

    assert synthetic_cls.make_vtab is synthetic.make_vtab
    assert synthetic_cls.FGVC_MAKERS is synthetic.FGVC_MAKERS
    rng = np.random.default_rng(0)
    means, energy = {}, {}
    for label in range(4):
        path = str(tmp_path / f'{label}.jpg')
        synthetic.save_image(path, label, rng, size=(48, 48), textured=True)
        means[label] = np.asarray(
            Image.open(path).convert('RGB'), dtype=np.float32
        ).mean((0, 1))
        energy[label] = _stripe_energy(path)
    # 0 and 1 share a colour, 2 and 3 another one
    assert np.abs(means[0] - means[1]).max() < 40
    assert np.abs(means[0] - means[2]).max() > 80
    for label in range(4):  # even: horizontal stripes (changes along y)
        dy, dx = energy[label]
        assert (dy > 1.5 * dx) == (label % 2 == 0), (label, dy, dx)


def test_converter_writes_the_official_layouts(tmp_path):
    from lspt_mm.datasets import FGVC, VTAB1k

    conv = _load_tool(
        'tools/dataset_converters/make_synthetic_cls.py', '_make_synthetic_cls'
    )
    assert (
        conv.main(
            [
                str(tmp_path / 'fgvc'),
                '--splits',
                '--per-class',
                '10',
                '--test-per-class',
                '3',
            ]
        )
        == 0
    )
    root = str(tmp_path / 'fgvc' / 'CUB_200_2011')
    for name in (
        'images.txt',
        'image_class_labels.txt',
        'train_test_split.txt',
        'train.json',
        'val.json',
        'test.json',
    ):
        assert osp.isfile(osp.join(root, name)), name
    sizes = {
        s: len(FGVC(root, 'cub', split=s, num_classes=6))
        for s in ('train', 'val', 'test')
    }
    assert sizes == dict(train=54, val=6, test=18)
    assert (
        conv.main(
            [
                str(tmp_path / 'vtab'),
                '--layout',
                'vtab',
                '--task',
                'stripes',
                '--num-classes',
                '4',
                '--per-class',
                '8',
                '--test-per-class',
                '2',
            ]
        )
        == 0
    )
    ds = VTAB1k(
        str(tmp_path / 'vtab'),
        'stripes',
        split='train800val200',
        num_classes=4,
    )
    assert len(ds) == 4 * (8 + 2)


def test_demo_config_is_the_cub_recipe_shrunk():
    """Same components as the LSPT + MAE FGVC config with task='cub', and
    its CUB recipe (lr, weight decay); only the documented sizes differ."""
    from lspt_mm.recipes import apply_task

    demo, real = Config.fromfile(DEMO), Config.fromfile(CUB)
    real.task = 'cub'
    for cfg in (demo, real):
        apply_task(cfg, log=False)
    assert demo.optim_wrapper.optimizer.lr == 0.1  # GaPT Table 5, CUB/MAE
    assert demo.task_recipe['kept'] == [
        'num_prompts=4 (recipe: 100)',
        'model.head.num_classes=6 (recipe: 200)',
        'data_preprocessor.num_classes=6 (recipe: 200)',
        'train_dataloader.batch_size=16 (recipe: 64)',
    ]
    assert demo.runner_type == real.runner_type == 'ConciseRunner'
    for key in (
        'type',
        'prompt_method',
        'out_type',
        'prompt_dropout',
    ):
        assert demo.model.backbone[key] == real.model.backbone[key], key
    assert demo.model.head.type == real.model.head.type
    assert demo.model.backbone.pretrained is None
    assert (
        demo.model.head.num_classes == demo.data_preprocessor.num_classes == 6
    )
    assert demo.optim_wrapper.optimizer == real.optim_wrapper.optimizer
    for split in ('train', 'val', 'test'):
        a = demo[f'{split}_dataloader'].dataset
        b = real[f'{split}_dataloader'].dataset
        assert (a.type, a.name, a.split) == (b.type, b.name, b.split)
        assert [t.type for t in a.pipeline] == [t.type for t in b.pipeline]
    assert [s.type for s in demo.param_scheduler] == [
        s.type for s in real.param_scheduler
    ]
    assert demo.randomness.deterministic is True


def test_demo_trains_tests_and_prints_a_short_result(tmp_path):
    """tools/demo_classification.py, shortened to 4 epochs: data in the
    CUB layout, untrained test, tools/train.py, tools/test.py on val (equal
    to the last validation) and test; trained far above untrained."""
    work, data = tmp_path / 'work', tmp_path / 'data'
    proc = subprocess.run(
        [
            sys.executable,
            'tools/demo_classification.py',
            '--work-dir',
            str(work),
            '--data-dir',
            str(data),
            '--cfg-options',
            'train_cfg.max_epochs=4',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(__import__('os').environ, OMP_NUM_THREADS='1'),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    result = proc.stdout[proc.stdout.index('== result ==') :].splitlines()
    assert len(result) == 6, result
    top1 = {
        line.split(':')[0]: float(line.split(':')[1].split()[0])
        for line in result[1:5]
    }
    assert (
        top1['top-1 trained, last validation']
        == top1['top-1 trained, tools/test.py (val)']
    )
    assert (
        top1['top-1 trained, tools/test.py (test)']
        > top1['top-1 untrained, test split'] + 30
    ), top1
    assert result[5].startswith('test reproduces validation: yes')
    # the numbers depend on the thread count (OMP_NUM_THREADS=1 above)
    assert '; torch threads 1 (the trained numbers depend on it);' in result[5]
    assert osp.isfile(data / 'CUB_200_2011' / 'test.json')
    assert osp.isfile(work / 'epoch_4.pth')
    metrics = json.loads(
        [x for x in out.splitlines() if x.startswith('Test metrics: ')][-1][
            14:
        ]
    )
    assert (
        round(metrics['accuracy/top1'], 2)
        == top1['top-1 trained, tools/test.py (test)']
    )
    # the console leaves the set-up dumps to the log files
    assert 'System environment' not in out and 'Config:' not in out
    assert len(out.splitlines()) < 120, len(out.splitlines())


@pytest.mark.parametrize('layout', ['fgvc', 'vtab'])
def test_generated_data_is_deterministic(tmp_path, layout):
    conv = _load_tool(
        'tools/dataset_converters/make_synthetic_cls.py',
        '_make_synthetic_cls2',
    )
    a = conv.make_synthetic_cls(
        str(tmp_path / 'a'), layout, per_class=3, test_per_class=1
    )
    b = conv.make_synthetic_cls(
        str(tmp_path / 'b'), layout, per_class=3, test_per_class=1
    )
    import filecmp
    import os

    for dirpath, _, files in os.walk(a):
        for f in files:
            other = osp.join(b, osp.relpath(osp.join(dirpath, f), a))
            assert filecmp.cmp(osp.join(dirpath, f), other, shallow=False)

"""End to end: tiny synthetic data in the real FGVC / VTAB-1k layouts, the
benchmark configs (the task as a setting) shrunk to a tiny random ViT
through ``--cfg-options``, trained and tested by mmengine's Runner,
summarized by tools/run_benchmark.py (fixed settings: no grid, final runs
only; the tuning protocol itself is tested in tests/test_protocol.py).

The synthetic task is learnable (class = image colour, see
lspt_mm/datasets/synthetic.py); the accuracy threshold (70%) is far above
chance (25% for 4 classes, 17% for 6) and a control run with shuffled training
labels stays below it, so these tests fail when labels, data or training
are broken.
"""

import csv
import json
import os.path as osp
import random
import re
import subprocess
import sys

import pytest

import lspt_mm  # noqa: F401
from lspt_mm.datasets.benchmarks import FGVC_DATASETS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))
sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import prepare_fgvc_splits as prep  # noqa: E402
import run_benchmark as rb  # noqa: E402
from synthetic_cls import as_cli, tiny_cfg_options  # noqa: E402

from lspt_mm.datasets.synthetic import FGVC_MAKERS, make_vtab  # noqa: E402

THRESHOLD = 70.0  # top-1 %, chance is 25% (4 classes) / 16.7% (6 classes)
EPOCHS = 4
VTAB_TASKS = {'kitti': 4, 'clevr_dist': 6}  # the tasks' real class counts


def scores_by_task(rows):
    """``{task: {seed: test top-1}}`` of run_benchmark's rows."""
    return {r['task']: r['tests'] for r in rows if r['tests']}


@pytest.fixture(scope='module')
def vtab_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'vtab-1k')
    for i, (task, n) in enumerate(VTAB_TASKS.items()):
        make_vtab(root, task, num_classes=n, seed=i)
    return root


@pytest.fixture(scope='module')
def fgvc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'fgvc'
    for i, (name, make) in enumerate(FGVC_MAKERS.items()):
        folder = str(root / FGVC_DATASETS[name]['folder'])
        make(folder, seed=i)
        prep.main([name, folder])
    return str(root)


def test_vtab_benchmark(vtab_root, tmp_path):
    """LSPT + MAE protocol (avg token), the VTAB-1k benchmark config, 2
    tasks x 2 seeds, summary table; a second call resumes (skips finished
    runs)."""
    work_dir = str(tmp_path / 'bench')
    argv = [
        '--benchmark',
        'vtab1k',
        '--method',
        'lspt',
        '--backbone',
        'mae',
        '--seeds',
        '0',
        '1',
        '--tasks',
        *VTAB_TASKS,
        '--data-root',
        vtab_root,
        '--work-dir',
        work_dir,
        '--cfg-options',
        *as_cli(tiny_cfg_options('vtab1k', epochs=EPOCHS)),
    ]
    results = scores_by_task(rb.main(argv))
    assert set(results) == set(VTAB_TASKS)
    for task, per_seed in results.items():
        assert set(per_seed) == {0, 1}
        for seed, top1 in per_seed.items():
            assert top1 > THRESHOLD, (task, seed, top1)
        res = json.load(
            open(
                osp.join(
                    work_dir, task, 'final', 'config', 'seed0', 'result.json'
                )
            )
        )
        assert res['config'] == rb.benchmark_config('mae', 'vtab1k')
        assert res['settings']['task_cfg_options']['task'] == task
        assert res['train_split'] == 'train800val200'
        assert res['eval_split'] == 'test'
    text = open(osp.join(work_dir, 'summary.md')).read()
    assert re.search(
        r"\| Structured \| kitti \| config's values \| – \| "
        r'\d+\.\d\d ± \d+\.\d\d \| 2',
        text,
    )
    assert 'mean of 2/19 tasks' in text
    rows = list(csv.reader(open(osp.join(work_dir, 'summary.csv'))))
    header = rows[0]
    overall = [r for r in rows if r[:2] == ['all', 'mean_of_tasks']][0]
    assert float(overall[header.index('test_mean')]) > THRESHOLD
    # resume: nothing reruns, same numbers
    assert scores_by_task(rb.main(argv)) == results


def test_fgvc_benchmark_one_config_method_as_setting(fgvc_root, tmp_path):
    """GaPT + MoCo v3 protocol (CLS token) on all five FGVC layouts: one
    benchmark config, the task and the method as settings (GaPT's gate
    init of each task from the table)."""
    work_dir = str(tmp_path / 'bench')
    # GaPT's MoCo v3 lrs (0.5 / 1.0 at batch 64, ViT-B, 100 prompts) make
    # the 2-layer toy fail to learn in 4 epochs (measured): 0.1 here
    opts = tiny_cfg_options('fgvc', epochs=EPOCHS, num_classes=4, lr=0.1)
    results = scores_by_task(
        rb.main(
            [
                '--benchmark',
                'fgvc',
                '--method',
                'gapt',
                '--backbone',
                'mocov3',
                '--seeds',
                '0',
                '--data-root',
                fgvc_root,
                '--work-dir',
                work_dir,
                '--cfg-options',
                *as_cli(opts),
            ]
        )
    )
    assert set(results) == set(FGVC_DATASETS)
    gates = dict(
        cub=5.0,
        nabirds=5.0,
        oxford_flowers=10.0,
        stanford_cars=5.0,
        stanford_dogs=10.0,
    )  # GaPT Table 5, MoCo v3
    for task, per_seed in results.items():
        assert per_seed[0] > THRESHOLD, (task, per_seed)
        dumped = open(
            osp.join(
                work_dir,
                task,
                'final',
                'config',
                'seed0',
                'lspt_vit-b16-mocov3_fgvc.py',
            )
        ).read()
        assert "prompt_method='gapt'" in dumped
        assert f'gate_init={gates[task]}' in dumped, task
    text = open(osp.join(work_dir, 'summary.md')).read()
    assert 'mean of 5/5 tasks' in text


def test_train_test_tools_fgvc(fgvc_root, tmp_path):
    """The LSPT MoCo v3 FGVC config with task=cub through tools/train.py
    and tools/test.py (the commands the README gives); the trained
    checkpoint holds only the trainable tensors (frozen ViT from a
    `pretrained` file) and tools/test.py refills it from there."""
    config = rb.benchmark_config('mocov3', 'fgvc')
    opts = tiny_cfg_options('fgvc', epochs=EPOCHS, num_classes=4)
    opts['task'] = 'cub'
    opts['data_root'] = fgvc_root
    opts['model.backbone.pretrained'] = _tiny_pretrained(tmp_path, opts)
    work_dir = str(tmp_path / 'work')
    cli = as_cli(opts)
    out = subprocess.run(
        [
            sys.executable,
            'tools/train.py',
            config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *cli,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (
        "task 'cub' (200 classes), MoCo v3 ViT-B/16, LSPT: recipe row "
        "('mocov3', 'fgvc', 'cub')" in out.stdout + out.stderr
    )
    ckpt = osp.join(work_dir, f'epoch_{EPOCHS}.pth')
    assert osp.isfile(ckpt)
    from lspt_mm.models.checkpoint import safe_load

    keys = safe_load(ckpt)['state_dict']
    assert not any(k.startswith('backbone.layers.') for k in keys)
    assert 'backbone.prompt_method.prompts' in keys
    out = subprocess.run(
        [
            sys.executable,
            'tools/test.py',
            config,
            ckpt,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *cli,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = [
        x for x in out.stdout.splitlines() if x.startswith('Test metrics: ')
    ][-1]
    top1 = json.loads(line[len('Test metrics: ') :])['accuracy/top1']
    assert top1 > THRESHOLD
    # without the `pretrained` file the frozen ViT cannot be refilled
    out = subprocess.run(
        [
            sys.executable,
            'tools/test.py',
            config,
            ckpt,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *cli,
            'model.backbone.pretrained=None',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and 'Test metrics' not in out.stdout
    assert 'frozen ViT must come from the backbone' in out.stderr
    assert 'Traceback' not in out.stderr


def _tiny_pretrained(tmp_path, opts):
    """A ViT weight file for the tiny arch of ``opts`` (mmpretrain
    layout): the frozen backbone a trainable-only checkpoint needs."""
    import torch

    from lspt_mm.models import PromptedViT

    arch = {
        k: v for k, v in opts['model.backbone.arch'].items() if k != '_delete_'
    }
    torch.manual_seed(1)
    vit = PromptedViT(
        arch=arch,
        img_size=opts['model.backbone.img_size'],
        patch_size=opts['model.backbone.patch_size'],
        prompt_method='linear',
    )
    path = str(tmp_path / 'tiny_vit.pth')
    torch.save(
        {
            'state_dict': {
                'backbone.' + k: v for k, v in vit.state_dict().items()
            }
        },
        path,
    )
    return path


def test_shuffled_labels_stay_below_threshold(vtab_root, tmp_path):
    """Control: the same training with the training labels shuffled does
    not reach the threshold, so the threshold can fail."""
    import shutil

    root = tmp_path / 'vtab-1k'
    shutil.copytree(osp.join(vtab_root, 'kitti'), root / 'kitti')
    path = root / 'kitti' / 'train800val200.txt'
    lines = path.read_text().split('\n')[:-1]
    labels = [ln.rsplit(' ', 1)[1] for ln in lines]
    random.Random(0).shuffle(labels)
    path.write_text(
        ''.join(
            f'{ln.rsplit(" ", 1)[0]} {lb}\n' for ln, lb in zip(lines, labels)
        )
    )
    results = scores_by_task(
        rb.main(
            [
                '--benchmark',
                'vtab1k',
                '--tasks',
                'kitti',
                '--data-root',
                str(root),
                '--work-dir',
                str(tmp_path / 'bench'),
                '--cfg-options',
                *as_cli(tiny_cfg_options('vtab1k', epochs=EPOCHS)),
            ]
        )
    )
    assert results['kitti'][0] < THRESHOLD - 20

"""Quick-start demo, one command, CPU, no downloads: the main job
(LSPT + UPerNet segmentation on synthetic ADE20K-layout data, about a
minute and a half) or classification (LSPT on synthetic data in the
official CUB-200-2011 layout, about half a minute):

    python tools/demo.py [segmentation | classification]
                         [--work-dir DIR] [--data-dir DIR]
                         [--cfg-options k=v ...]

(``tools/demo_ade20k.py`` and ``tools/demo_classification.py`` are the two
settings' short names.) Each run

1. writes the synthetic dataset if missing (classification: with its split
   lists, as tools/dataset_converters/prepare_fgvc_splits.py does for the
   real data);
2. tests the untrained model (the demo config's initialised weights, before
   any training step) with tools/test.py;
3. trains the tiny LSPT config with tools/train.py;
4. runs tools/test.py on the saved final checkpoint: on the val split (it
   must reproduce the last validation of training exactly) and, for
   classification, on the test split;
5. prints the metric untrained vs. trained, and the torch thread count the
   tools ran with: the trained numbers depend on it, as floating-point sums
   are split across threads (measured pairs: docs/segmentation.md); the
   same count gives the same numbers.
"""

import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass(frozen=True)
class DemoTask:
    """What differs between the two demos."""

    config: str  # relative to the repository root
    scope: str  # the registry scope the model builds in
    work_dir: str
    data_dir: str
    data_folder: str  # the dataset folder under data_dir
    data_marker: str  # a file / folder that exists once data is written
    make_data: tuple  # the generator's command line (after the python)
    metric: str  # the metric the result lines print
    metric_title: str
    same_keys: tuple  # metrics test must reproduce from validation
    test_split_too: bool  # test on the test split besides val


TASKS = {
    'segmentation': DemoTask(
        config='configs/segmentation/lspt-vit-tiny_upernet_1xb4-300iter_'
        'synthetic-ade20k-64x64_demo.py',
        scope='mmseg',
        work_dir='work_dirs/demo_ade20k',
        data_dir='data/synthetic_ade',
        data_folder='ADEChallengeData2016',
        data_marker='',
        make_data=('tools/dataset_converters/make_synthetic_ade20k.py',),
        metric='mIoU',
        metric_title='mIoU',
        same_keys=('aAcc', 'mIoU', 'mAcc'),
        test_split_too=False,
    ),
    'classification': DemoTask(
        config='configs/classification/lspt-vit-tiny_1xb16-10e_synthetic-'
        'cub-32x32_demo.py',
        scope='mmpretrain',
        work_dir='work_dirs/demo_cls',
        data_dir='data/synthetic_fgvc',
        data_folder='CUB_200_2011',
        data_marker='test.json',
        make_data=(
            'tools/dataset_converters/make_synthetic_cls.py',
            '--layout',
            'fgvc',
            '--dataset',
            'cub',
            '--splits',
        ),
        metric='accuracy/top1',
        metric_title='top-1',
        same_keys=('accuracy/top1',),
        test_split_too=True,
    ),
}
TASKS['ade20k'], TASKS['cls'] = TASKS['segmentation'], TASKS['classification']


def run(cmd, capture_prefix='Test metrics: '):
    """Run ``cmd`` in the repository root, stream its output, return the
    parsed ``Test metrics`` line (or None)."""
    print('$ ' + ' '.join(cmd), flush=True)
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = None
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith(capture_prefix):
            metrics = json.loads(line[len(capture_prefix) :])
    if proc.wait():
        raise SystemExit(
            f'command failed ({proc.returncode}): ' + ' '.join(cmd)
        )
    return metrics


def last_val_metrics(work_dir, metric):
    """The last validation metrics written during training (LocalVisBackend
    scalars) holding ``metric``."""
    last = None
    for path in sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    ):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if metric in record:
                    last = record
    return last


def save_untrained(config, path, cfg_options, scope='mmseg'):
    """The model as training starts it: built and initialised from
    ``config`` in registry ``scope``, before any step. The per-parameter
    initialisation report goes to ``<path stem>_init.log``, not the
    console."""
    sys.path.insert(0, ROOT)
    import importlib

    import torch

    import lspt_mm  # noqa: F401
    from lspt_mm.engine import file_only

    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed

    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(scope)
    models = importlib.import_module(f'{scope}.registry').MODELS
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    logger = MMLogger.get_instance(
        f'demo_untrained_{osp.abspath(path)}',
        log_file=osp.splitext(path)[0] + '_init.log',
        file_mode='w',
    )
    set_random_seed(cfg.randomness.seed)
    with file_only(logger):
        model = models.build(cfg.model)
        model.init_weights()
    torch.save(
        {
            'meta': {'note': 'untrained (initialised) demo model'},
            'state_dict': model.state_dict(),
        },
        path,
    )


def torch_threads():
    """The intra-op thread count torch takes in this environment (what
    tools/train.py and tools/test.py, run as children with it, take)."""
    import torch

    return torch.get_num_threads()


def main(argv=None, task=None):
    """Run the demo of ``task`` (or the one named on the command line)."""
    sys.path.insert(0, ROOT)
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    if task is None:
        parser.add_argument(
            'task', nargs='?', default='segmentation', choices=sorted(TASKS)
        )
    parser.add_argument('--config', default=None)
    parser.add_argument('--work-dir', default=None)
    parser.add_argument('--data-dir', default=None)
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={}
    )
    args = parser.parse_args(argv)
    demo = TASKS[task or args.task]
    config = args.config or osp.join(ROOT, demo.config)
    work_dir = args.work_dir or demo.work_dir
    data_dir = args.data_dir or demo.data_dir
    start = time.time()
    # the tools run in children with this environment, so with this many
    # intra-op threads (OMP_NUM_THREADS, else torch's default: the physical
    # cores); float sums are split by thread, so the trained weights and
    # metrics differ (slightly) between thread counts
    threads = torch_threads()
    os.chdir(ROOT)
    data_root = osp.join(data_dir, demo.data_folder)
    if not osp.exists(osp.join(data_root, demo.data_marker)):
        run(
            [sys.executable, demo.make_data[0], data_dir, *demo.make_data[1:]],
            capture_prefix='\0',
        )
    options = dict(args.cfg_options)
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = data_root
    opts = ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]

    def test(ckpt, name, *extra):
        return run(
            [
                sys.executable,
                'tools/test.py',
                config,
                ckpt,
                '--work-dir',
                osp.join(work_dir, name),
                *opts,
                *extra,
            ]
        )

    print('\n== 1/3 untrained model ==', flush=True)
    untrained_ckpt = osp.join(work_dir, 'untrained.pth')
    save_untrained(config, untrained_ckpt, options, demo.scope)
    before = test(untrained_ckpt, 'test_untrained')

    print('\n== 2/3 training ==', flush=True)
    run(
        [sys.executable, 'tools/train.py', config, '--work-dir', work_dir]
        + opts,
        capture_prefix='\0',
    )
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    val = last_val_metrics(work_dir, demo.metric)

    print('\n== 3/3 testing the saved checkpoint ==', flush=True)
    if demo.test_split_too:
        on_val = test(ckpt, 'test_val', 'test_dataloader.dataset.split=val')
        after = test(ckpt, 'test')
    else:  # the demo's test split is its val split
        on_val = after = test(ckpt, 'test')
    same = val is not None and all(on_val[k] == val[k] for k in demo.same_keys)
    name, key = demo.metric_title, demo.metric
    rows = [
        (f'{name} untrained', before[key]),
        (f'{name} trained, last validation', val[key]),
        (f'{name} trained, tools/test.py', on_val[key]),
    ]
    if demo.test_split_too:
        rows[0] = (f'{name} untrained, test split', before[key])
        rows[2] = (f'{name} trained, tools/test.py (val)', on_val[key])
        rows.append((f'{name} trained, tools/test.py (test)', after[key]))
    width = max(len(r[0]) for r in rows) + 2
    print('\n== result ==')
    for i, (title, value) in enumerate(rows):
        tail = f'  ({ckpt})' if i == len(rows) - 1 else ''
        print(f'{title + ":":<{width}}{value:6.2f}{tail}')
    print(
        f'test reproduces validation: {"yes" if same else "NO"}; '
        f'torch threads {threads} (the trained numbers depend on it); '
        f'total time {time.time() - start:.0f} s'
    )
    if not same:
        raise SystemExit(
            'tools/test.py did not reproduce the validation metrics'
        )
    return dict(
        untrained=before,
        val=val,
        test_val=on_val,
        test=after,
        checkpoint=ckpt,
        threads=threads,
    )


if __name__ == '__main__':
    main()

"""Classification quick start, one command, CPU, no downloads (about a
minute):

    python tools/demo_classification.py [--work-dir work_dirs/demo_cls]
                                        [--cfg-options k=v ...]

1. writes a synthetic dataset in the official CUB-200-2011 layout
   (data/synthetic_fgvc/CUB_200_2011, 6 classes) if missing, and its split
   lists with tools/dataset_converters/prepare_fgvc_splits.py, as for the
   real data;
2. tests the untrained model (the demo config's initialised weights, before
   any training step) with tools/test.py;
3. trains the tiny LSPT config with tools/train.py (validation every 2
   epochs);
4. runs tools/test.py on the saved final checkpoint: on the val split (it
   must reproduce the last validation exactly) and on the test split;
5. prints top-1 accuracy untrained vs. trained.
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(ROOT, 'configs', 'classification',
                       'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py')
TOP1 = 'accuracy/top1'


def run(cmd, capture_prefix='Test metrics: '):
    """Run ``cmd``, stream its output, return the parsed ``Test metrics``
    line (or None)."""
    print('$ ' + ' '.join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    metrics = None
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith(capture_prefix):
            metrics = json.loads(line[len(capture_prefix):])
    if proc.wait():
        raise SystemExit(f'command failed ({proc.returncode}): '
                         + ' '.join(cmd))
    return metrics


def last_val_metrics(work_dir):
    """The last validation metrics written during training (LocalVisBackend
    scalars)."""
    last = None
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if TOP1 in record:
                    last = record
    return last


def save_untrained(config, path, cfg_options):
    """The model as training starts it: built and initialised from the demo
    config, before any step (the initialisation report goes to a file next
    to ``path``)."""
    sys.path.insert(0, ROOT)
    import lspt_mm  # noqa: F401
    import torch
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope
    from mmengine.runner import set_random_seed
    from mmpretrain.registry import MODELS

    from lspt_mm.engine import file_only
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope('mmpretrain')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    logger = MMLogger.get_instance(
        f'demo_untrained_{osp.abspath(path)}',
        log_file=osp.splitext(path)[0] + '_init.log', file_mode='w')
    set_random_seed(cfg.randomness.seed)
    with file_only(logger):
        model = MODELS.build(cfg.model)
        model.init_weights()
    torch.save({'meta': {'note': 'untrained (initialised) demo model'},
                'state_dict': model.state_dict()}, path)


def main(argv=None):
    sys.path.insert(0, ROOT)
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEMO_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo_cls')
    parser.add_argument('--data-dir', default='data/synthetic_fgvc')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        default={})
    args = parser.parse_args(argv)
    start = time.time()
    os.chdir(ROOT)
    data_root = osp.join(args.data_dir, 'CUB_200_2011')
    if not osp.isfile(osp.join(data_root, 'test.json')):
        run([sys.executable,
             'tools/dataset_converters/make_synthetic_cls.py', args.data_dir,
             '--layout', 'fgvc', '--dataset', 'cub', '--splits'],
            capture_prefix='\0')
    options = dict(args.cfg_options)
    for split in ('train', 'val', 'test'):
        options[f'{split}_dataloader.dataset.data_root'] = data_root
    opts = ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]

    print('\n== 1/3 untrained model ==', flush=True)
    untrained_ckpt = osp.join(args.work_dir, 'untrained.pth')
    save_untrained(args.config, untrained_ckpt, options)
    before = run([sys.executable, 'tools/test.py', args.config,
                  untrained_ckpt, '--work-dir',
                  osp.join(args.work_dir, 'test_untrained')] + opts)

    print('\n== 2/3 training ==', flush=True)
    run([sys.executable, 'tools/train.py', args.config, '--work-dir',
         args.work_dir] + opts, capture_prefix='\0')
    with open(osp.join(args.work_dir, 'last_checkpoint')) as f:
        ckpt = f.read().strip()
    val = last_val_metrics(args.work_dir)

    print('\n== 3/3 testing the saved checkpoint (val split, test split) ==',
          flush=True)
    on_val = run([sys.executable, 'tools/test.py', args.config, ckpt,
                  '--work-dir', osp.join(args.work_dir, 'test_val'),
                  *opts, 'test_dataloader.dataset.split=val'])
    after = run([sys.executable, 'tools/test.py', args.config, ckpt,
                 '--work-dir', osp.join(args.work_dir, 'test')] + opts)

    same = val is not None and on_val[TOP1] == val[TOP1]
    print('\n== result ==')
    print(f'top-1 untrained, test split:         {before[TOP1]:6.2f}')
    print(f'top-1 trained, last validation:      {val[TOP1]:6.2f}')
    print(f'top-1 trained, tools/test.py (val):  {on_val[TOP1]:6.2f}')
    print(f'top-1 trained, tools/test.py (test): {after[TOP1]:6.2f}  '
          f'({ckpt})')
    print(f'test reproduces validation: {"yes" if same else "NO"}; '
          f'total time {time.time() - start:.0f} s')
    if not same:
        raise SystemExit('tools/test.py did not reproduce the validation '
                         'metrics')
    return dict(untrained=before, val=val, test_val=on_val, test=after,
                checkpoint=ckpt)


if __name__ == '__main__':
    main()

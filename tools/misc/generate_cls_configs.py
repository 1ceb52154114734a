#!/usr/bin/env python
"""Write the classification configs (method x backbone x FGVC / VTAB-1k task).

Every generated file is a few lines on top of ``configs/_base_``; the
per-task numbers come from ``lspt_mm/datasets/benchmarks.py`` (one table,
``TASK_HPARAMS``: GaPT's Table 5), or from a recipe table written by the
tuning protocol (``--recipes``).

    # the committed set (LSPT, MAE and MoCo v3, all 24 tasks)
    python tools/misc/generate_cls_configs.py
    # baselines for some tasks
    python tools/misc/generate_cls_configs.py --methods gapt vpt-deep \
        --backbones mae --benchmarks vtab1k --tasks cifar dtd
    # check that the committed files are what the table gives
    python tools/misc/generate_cls_configs.py --check
    # configs from this project's tuned values (tools/run_benchmark.py
    # --write-recipes), into another folder
    python tools/misc/generate_cls_configs.py --recipes recipes.json \
        --out-dir work_dirs/tuned_configs
"""
import argparse
import os
import os.path as osp
import sys
import textwrap

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, REPO)

from lspt_mm.datasets.benchmarks import (BENCHMARKS, FGVC_DATASETS,  # noqa
                                         hparams_of, num_classes_of,
                                         read_recipe_table)
from lspt_mm.models.methods import METHODS as METHOD_TABLE  # noqa

# method name in file names ('-' spelling) -> its row of the method table
SPECS = {name.replace('_', '-'): spec for name, spec in METHOD_TABLE.items()}
# -> the backbone settings its configs get (a wrapper's own, e.g. LoRA's)
METHODS = {name: dict(spec.wrapper) if spec.wrapper else
           spec.backbone_options() for name, spec in SPECS.items()}
METHOD_TITLES = {name: spec.title for name, spec in SPECS.items()}
BACKBONES = {'mae': 'MAE', 'mocov3': 'MoCo v3'}
# the batch size of configs/_base_/datasets/<benchmark>.py; a recipe with
# another batch size sets it (and auto_scale_lr's base) in the config
BATCH = {'fgvc': 64, 'vtab1k': 128}
DEFAULT_OUT = osp.join(REPO, 'configs', 'classification')
COMMITTED = dict(methods=['lspt'], backbones=list(BACKBONES),
                 benchmarks=list(BENCHMARKS))


def config_name(method, backbone, benchmark, task, recipes=None):
    """e.g. ``lspt_vit-b16-mae_1xb128-100e_vtab1k-kitti.py`` (the batch size
    is the recipe's)."""
    batch = hparams_of(backbone, benchmark, task, method,
                       recipes)['batch_size']
    return (f'{method}_vit-b16-{backbone}_1xb{batch}-100e_'
            f'{benchmark}-{task.replace("_", "-")}.py')


def config_path(method, backbone, benchmark, task, out_dir=DEFAULT_OUT,
                recipes=None):
    return osp.join(out_dir, benchmark,
                    config_name(method, backbone, benchmark, task, recipes))


def config_text(method, backbone, benchmark, task, base_rel='../../_base_',
                recipes=None):
    """Text of one config file; ``base_rel`` is the path from the file's
    folder to ``configs/_base_``; ``recipes``: a table from
    ``read_recipe_table`` overriding ``TASK_HPARAMS``."""
    if method not in METHODS:
        raise KeyError(f'unknown method {method!r}; known: {list(METHODS)}')
    if backbone not in BACKBONES:
        raise KeyError(f'unknown backbone {backbone!r}; known: '
                       f'{list(BACKBONES)}')
    if benchmark not in BENCHMARKS:
        raise KeyError(f'unknown benchmark {benchmark!r}; known: '
                       f'{list(BENCHMARKS)}')
    num_classes = num_classes_of(benchmark, task)
    hp = hparams_of(backbone, benchmark, task, method, recipes)
    spec = SPECS[method]
    settings = dict(METHODS[method])
    if spec.uses_prompts:
        settings['num_prompts'] = hp['num_prompts']
    if spec.name == 'gapt':
        settings['prompt_cfg'] = dict(gate_init=hp['gate_init'])
    if spec.wrapper:  # the whole backbone becomes the wrapper's module
        from mmengine.config import Config
        base = Config.fromfile(osp.join(
            REPO, 'configs', '_base_', 'models',
            f'prompted_vit_cls_{backbone}.py')).model.backbone.to_dict()
        settings = dict(_delete_=True, **spec.apply(base))

    def fmt(v, indent=8):
        if isinstance(v, dict):
            one = 'dict(' + ', '.join(f'{k}={fmt(x)}' for k, x in
                                      v.items()) + ')'
            if len(one) + indent < 79:
                return one
            pad = ' ' * (indent + 4)
            return 'dict(\n' + ',\n'.join(
                f'{pad}{k}={fmt(x, indent + 4)}' for k, x in v.items()) + ')'
        if isinstance(v, (list, tuple)) and any(isinstance(x, dict)
                                                for x in v):
            return '[' + ', '.join(fmt(x, indent) for x in v) + ']'
        return repr(v)

    backbone_args = ', '.join(f'{k}={fmt(v)}' for k, v in settings.items())
    if len(backbone_args) > 58:
        backbone_args = '\n        ' + ',\n        '.join(
            f'{k}={fmt(v)}' for k, v in settings.items())
    if benchmark == 'vtab1k':
        title = f'VTAB-1k {task}'
        ds = f"task='{task}'"
        head = ''
        loaders = ('train_dataloader', 'test_dataloader')
    else:
        spec = FGVC_DATASETS[task]
        title = f'FGVC {spec["title"]}'
        head = f"data_root = 'data/fgvc/{spec['folder']}'\n"
        ds = f"name='{task}', data_root=data_root"
        loaders = ('train_dataloader', 'val_dataloader', 'test_dataloader')
    lines = [
        f'# {METHOD_TITLES[method]}, {BACKBONES[backbone]} ViT-B/16, '
        f'{title}.',
        '# Generated by tools/misc/generate_cls_configs.py from the table in',
        '# lspt_mm/datasets/benchmarks.py (edit that, not this file).',
        *textwrap.wrap(f'hyper-parameters: {hp["source"]}.', 77,
                       initial_indent='# ', subsequent_indent='#   '),
        '_base_ = [',
        f"    '{base_rel}/models/prompted_vit_cls_{backbone}.py',",
        f"    '{base_rel}/datasets/{benchmark}.py',",
        f"    '{base_rel}/schedules/cls_sgd-cosine_100e.py',",
        f"    '{base_rel}/cls_runtime.py',",
        ']',
        head.rstrip('\n') if head else None,
        f'model = dict(\n    backbone=dict({backbone_args}),\n'
        f'    head=dict(num_classes={num_classes}))',
        f'data_preprocessor = dict(num_classes={num_classes})',
    ]
    for loader in loaders:
        batch = ''
        if loader == 'train_dataloader' and hp['batch_size'] != BATCH[
                benchmark]:
            batch = f'batch_size={hp["batch_size"]}, '
        line = f'{loader} = dict({batch}dataset=dict({ds}))'
        lines.append(line if len(line) < 80 else
                     f'{loader} = dict(\n    {batch}dataset=dict({ds}))')
    optim = f"lr={hp['lr']!r}"
    if hp.get('weight_decay'):
        optim += f", weight_decay={hp['weight_decay']!r}"
    lines.append(f'optim_wrapper = dict(optimizer=dict({optim}))')
    if hp['batch_size'] != BATCH[benchmark]:
        lines.append('# the lr is the one at this batch size')
        lines.append(
            f'auto_scale_lr = dict(base_batch_size={hp["batch_size"]})')
    return '\n'.join(line for line in lines if line is not None) + '\n'


def write_config(method, backbone, benchmark, task, out_dir=DEFAULT_OUT,
                 recipes=None):
    path = config_path(method, backbone, benchmark, task, out_dir, recipes)
    os.makedirs(osp.dirname(path), exist_ok=True)
    base_rel = osp.relpath(osp.join(REPO, 'configs', '_base_'),
                           osp.dirname(path))
    text = config_text(method, backbone, benchmark, task, base_rel, recipes)
    if osp.isfile(path) and open(path).read() == text:
        return path  # unchanged (other processes may be reading it)
    # atomic: shards of tools/run_benchmark.py may write the same file
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)
    return path


def selection(methods, backbones, benchmarks, tasks=None):
    for benchmark in benchmarks:
        bench_tasks = BENCHMARKS[benchmark]['tasks']
        for task in (tasks or bench_tasks):
            if task not in bench_tasks:
                continue
            for method in methods:
                for backbone in backbones:
                    yield method, backbone, benchmark, task


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--methods', nargs='+', choices=list(METHODS),
                        default=COMMITTED['methods'])
    parser.add_argument('--backbones', nargs='+', choices=list(BACKBONES),
                        default=COMMITTED['backbones'])
    parser.add_argument('--benchmarks', nargs='+', choices=list(BENCHMARKS),
                        default=COMMITTED['benchmarks'])
    parser.add_argument('--tasks', nargs='+', help='subset of tasks')
    parser.add_argument('--out-dir', default=DEFAULT_OUT)
    parser.add_argument('--recipes', help='recipe table (JSON) written by '
                        'tools/run_benchmark.py --write-recipes; its rows '
                        'replace the table in benchmarks.py')
    parser.add_argument('--check', action='store_true',
                        help='only check that the files are up to date')
    args = parser.parse_args(argv)
    recipes = None
    if args.recipes:
        for method in args.methods:  # a table is tuned for one method
            recipes = read_recipe_table(args.recipes, method)
    stale, expected = [], set()
    n = 0
    for sel in selection(args.methods, args.backbones, args.benchmarks,
                         args.tasks):
        n += 1
        path = config_path(*sel, out_dir=args.out_dir, recipes=recipes)
        expected.add(osp.abspath(path))
        if args.check:
            base_rel = osp.relpath(osp.join(REPO, 'configs', '_base_'),
                                   osp.dirname(path))
            if not osp.isfile(path) or open(path).read() != config_text(
                    *sel, base_rel=base_rel, recipes=recipes):
                stale.append(path)
        else:
            write_config(*sel, out_dir=args.out_dir, recipes=recipes)
    # files of the selected methods / backbones no longer generated (e.g.
    # after a batch size in the table changed a file name)
    orphans = []
    if not args.tasks:
        for benchmark in args.benchmarks:
            folder = osp.join(args.out_dir, benchmark)
            if not osp.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                path = osp.abspath(osp.join(folder, name))
                if path in expected or not name.endswith('.py'):
                    continue
                if any(name.startswith(f'{m}_vit-b16-{b}_')
                       for m in args.methods for b in args.backbones):
                    orphans.append(path)
    if args.check:
        if stale or orphans:
            if stale:
                print('out of date or missing:\n  ' + '\n  '.join(stale))
            if orphans:
                print('not generated from the table (delete them):\n  ' +
                      '\n  '.join(orphans))
            return 1
        print(f'{n} configs up to date')
    else:
        for path in orphans:
            os.remove(path)
            print(f'removed {path} (no longer generated)')
        print(f'wrote {n} configs under {args.out_dir}')
    return 0

if __name__ == '__main__':
    sys.exit(main())

#!/usr/bin/env python
"""The papers' tuning protocol from the command line (library:
``lspt_mm/tuning``): for each task, train every grid point on the tuning
split and score it on the validation split, choose one point per task
(higher validation score; ties: smaller lr, then smaller weight decay, then
fewer prompts), train it on train+val with N seeds and test; write
``summary.md`` / ``summary.csv`` / ``tuning.csv`` and, on request, the
chosen points as a recipe table.

    # a whole VTAB-1k table: LSPT on MAE, GaPT's lr grid, 3 seeds
    python tools/run_benchmark.py --benchmark vtab1k --method lspt \\
        --backbone mae --grid gapt --seeds 0 1 2 --data-root data/vtab-1k \\
        --work-dir work_dirs/protocol/lspt_mae_vtab1k --write-recipes
    # fixed settings (the recipe table's), no tuning: final runs only
    python tools/run_benchmark.py --benchmark fgvc --method gapt \\
        --backbone mocov3 --seeds 0 1 2 --data-root data/fgvc
    # DINOv2 ViT-B/14 (rows: GaPT's MoCo v3 ones, this project's choice)
    python tools/run_benchmark.py --benchmark vtab1k --backbone dinov2 ...
    # any configs (e.g. several methods on one dataset), an lr grid
    python tools/run_benchmark.py --configs a_lspt.py a_gapt.py \\
        --splits train val trainval test --lr 0.1 0.5 1.0 --seeds 0 1 2 \\
        --work-dir work_dirs/protocol/cub_methods
    # four machines (or GPUs), then collect
    python tools/run_benchmark.py ... --phase tune --shard 0/4   # on each
    python tools/run_benchmark.py ... --phase final --shard 0/4  # on each
    python tools/run_benchmark.py ... --collect OTHER_WORK_DIRS

Runs are in-process and one at a time (mmengine ``Runner``; one GPU or the
CPU). Rerunning the same command resumes: runs with a result are skipped,
a run killed mid-training continues from its last checkpoint.
``--cfg-options`` applies to every run, before the grid point.

``--benchmark`` runs the benchmark config of the backbone
(``configs/classification/lspt_vit-<b16|b14>-<backbone>_<benchmark>.py``,
or ``--config``) once per task, with ``task=<name>`` and ``method=...`` as
options: the task's recipe comes from the table
(``lspt_mm.recipes.apply_task``).
"""

import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

import lspt_mm  # noqa: E402,F401  (compat fixes before any mm import)
from lspt_mm.datasets.benchmarks import BENCHMARKS  # noqa: E402
from lspt_mm.models.methods import METHODS, get_method  # noqa: E402
from lspt_mm.recipes import BACKBONES, PUBLISHED_GRIDS  # noqa: E402
from lspt_mm.tuning import (  # noqa: E402
    Protocol,
    ProtocolError,
    benchmark_tasks,
    config_tasks,
    load_task_file,
    parse_shard,
    write_recipe_table,
    write_summary,
)
from lspt_mm.tuning.benchmark import parse_value  # noqa: E402

PATCH = {'dinov2': 14}  # ViT-B/<patch> in the config names; others 16


def benchmark_config(backbone, benchmark):
    """The benchmark config of ``backbone`` (one per backbone and
    benchmark; the task is a setting)."""
    return osp.join(
        REPO,
        'configs',
        'classification',
        f'lspt_vit-b{PATCH.get(backbone, 16)}-{backbone}_{benchmark}.py',
    )


def check_benchmark_config(path, benchmark, backbone):
    """``path`` must be a benchmark config of ``benchmark`` and
    ``backbone`` (its ``benchmark`` setting keys the recipe rows)."""
    from mmengine.config import Config

    if not osp.isfile(path):
        raise ProtocolError(f'benchmark config {path} does not exist')
    spec = Config.fromfile(path).get('benchmark', None) or {}
    have = (spec.get('name'), spec.get('backbone'))
    if have != (benchmark, backbone):
        raise ProtocolError(
            f'{path}: its benchmark setting is (name, backbone) = {have}, '
            f'not ({benchmark!r}, {backbone!r}); use a benchmark config '
            '(lspt_mm.recipes.apply_task) of this benchmark and '
            'backbone, or set --benchmark / --backbone to its values'
        )


def method_name(text):
    """A method-table name (``vpt-deep`` or ``vpt_deep``)."""
    try:
        return get_method(text).name
    except KeyError as err:
        raise argparse.ArgumentTypeError(err.args[0]) from None


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(
        description='Tuning protocol: grid on val, final runs on train+val '
        'with seeds, summary',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_argument_group('what to tune (one of)')
    src.add_argument(
        '--benchmark',
        choices=list(BENCHMARKS),
        help='every task of FGVC or VTAB-1k, configs from the recipe table',
    )
    src.add_argument(
        '--configs',
        nargs='+',
        metavar='CONFIG',
        help='one task per config (e.g. one per method)',
    )
    src.add_argument(
        '--task-file',
        help='tasks in a file (see lspt_mm.tuning.benchmark.load_task_file)',
    )
    b = p.add_argument_group('--benchmark options')
    b.add_argument(
        '--method',
        default='lspt',
        type=method_name,
        metavar='METHOD',
        help='a method of the method table '
        f'(lspt_mm/models/methods.py): {", ".join(METHODS)}',
    )
    b.add_argument('--backbone', default='mae', choices=list(BACKBONES))
    b.add_argument(
        '--config',
        help='the benchmark config (default: '
        'configs/classification/lspt_vit-<b16|b14>-<backbone>_'
        '<benchmark>.py)',
    )
    b.add_argument('--tasks', nargs='+', help='subset of tasks')
    b.add_argument(
        '--recipes',
        help='recipe table (JSON) to start from '
        "instead of GaPT's (given to the config as "
        'benchmark.recipes)',
    )
    c = p.add_argument_group('--configs options')
    c.add_argument(
        '--splits',
        nargs=4,
        metavar=('TUNE_TRAIN', 'VAL', 'FINAL_TRAIN', 'TEST'),
        default=['train', 'val', 'trainval', 'test'],
        help='split names (default: train val trainval test)',
    )
    c.add_argument(
        '--split-key',
        default='split',
        help='dataset field that takes the split name',
    )
    c.add_argument(
        '--names', nargs='+', help='task names (default: config file stems)'
    )
    c.add_argument('--group', default='all', help='group of the tasks')
    g = p.add_argument_group('grid (axes not given keep the config value)')
    g.add_argument(
        '--grid',
        nargs='+',
        default=[],
        choices=['recipe'] + sorted(PUBLISHED_GRIDS),
        help='published grids: gapt (lr), vpt (lr x batch/256, '
        'weight decay), vpt-prompts (prompt count); recipe: '
        'none (the default)',
    )
    g.add_argument('--lr', nargs='+', type=float)
    g.add_argument('--weight-decay', nargs='+', type=float)
    g.add_argument('--num-prompts', nargs='+', type=int)
    g.add_argument(
        '--axis',
        nargs='+',
        default=[],
        metavar='KEY=V1,V2',
        help='any config key as an axis, e.g. '
        'model.backbone.prompt_cfg.gate_init=5,10',
    )
    r = p.add_argument_group('runs')
    r.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        help='seeds of the final runs (default 0)',
    )
    r.add_argument(
        '--tune-seeds',
        type=int,
        nargs='+',
        help='seeds of each tuning run (default 0)',
    )
    r.add_argument('--metric', help='metric key (default accuracy/top1)')
    r.add_argument(
        '--data-root',
        help='vtab1k: the vtab-1k folder; fgvc: '
        'the folder holding the dataset folders; --configs: the '
        "datasets' data_root",
    )
    r.add_argument('--work-dir')
    r.add_argument('--phase', default='all', choices=['all', 'tune', 'final'])
    r.add_argument(
        '--shard',
        default='0/1',
        help='i/n: run every n-th '
        'unit starting at i (spread over machines or GPUs)',
    )
    r.add_argument(
        '--collect',
        nargs='*',
        metavar='WORK_DIR',
        help='no training: merge results of other work dirs '
        '(shards), choose, summarize',
    )
    r.add_argument(
        '--summarize-only',
        action='store_true',
        help='same as --collect with no other dirs',
    )
    r.add_argument(
        '--write-recipes',
        nargs='?',
        const='',
        metavar='PATH',
        help='write the chosen points as a recipe table (default '
        '<work-dir>/recipes.json)',
    )
    r.add_argument(
        '--keep-checkpoints', default='final', choices=['all', 'final', 'none']
    )
    r.add_argument(
        '--dry-run',
        action='store_true',
        help='print the runs of this shard and stop',
    )
    r.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='overrides applied to every run (key=value)',
    )
    args = p.parse_args(argv)
    sources = [x for x in (args.benchmark, args.configs, args.task_file) if x]
    if len(sources) != 1:
        p.error('give exactly one of --benchmark, --configs, --task-file')
    return args


def explicit_axes(args):
    axes = {}
    for name in ('lr', 'weight_decay', 'num_prompts'):
        if getattr(args, name) is not None:
            axes[name] = getattr(args, name)
    for item in args.axis:
        key, sep, values = item.partition('=')
        if not sep or not values:
            raise ProtocolError(f'--axis {item!r}: write KEY=V1,V2')
        axes[key] = [parse_value(v) for v in values.split(',')]
    return axes


def build(args):
    """``(Protocol, title, method)`` from the parsed arguments."""
    explicit = explicit_axes(args)
    defaults = {}
    method = None
    if args.benchmark:
        method = args.method
        work_dir = args.work_dir or osp.join(
            'work_dirs',
            'protocol',
            f'{args.method}_{args.backbone}_{args.benchmark}',
        )
        config = args.config or benchmark_config(args.backbone, args.benchmark)
        check_benchmark_config(config, args.benchmark, args.backbone)
        tasks = benchmark_tasks(
            args.benchmark,
            args.method,
            args.backbone,
            config,
            tasks=args.tasks,
            data_root=args.data_root,
            grids=args.grid,
            explicit=explicit,
            prompt_free=not METHODS[args.method].uses_prompts,
            recipes=args.recipes,
        )
        title = (
            f'{METHODS[args.method].title}, '
            f'{BACKBONES[args.backbone]["title"]}, '
            f'{BENCHMARKS[args.benchmark]["title"]}'
        )
    else:
        if args.grid and set(args.grid) != {'recipe'}:
            raise ProtocolError(
                '--grid names need --benchmark (they depend '
                "on the task's batch size); give --lr ... "
                'or a grid in the task file'
            )
        if args.configs:
            tasks = config_tasks(
                args.configs,
                args.splits,
                args.names,
                args.group,
                args.data_root,
                explicit,
                args.split_key,
            )
        else:
            tasks, defaults = load_task_file(args.task_file)
            for t in tasks:
                t.grid.update(explicit)
                if args.data_root is not None:
                    t.data_root = args.data_root
        work_dir = args.work_dir or osp.join(
            'work_dirs',
            'protocol',
            osp.splitext(osp.basename(args.task_file or args.configs[0]))[0],
        )
        title = f'Tuning protocol: {", ".join(t.name for t in tasks)}'
    protocol = Protocol(
        tasks,
        work_dir,
        seeds=args.seeds or defaults.get('seeds', [0]),
        tune_seeds=args.tune_seeds or defaults.get('tune_seeds', [0]),
        metric=args.metric or defaults.get('metric', 'accuracy/top1'),
        cfg_options=args.cfg_options,
        keep_checkpoints=args.keep_checkpoints,
    )
    return protocol, title, method


def print_plan(protocol, phase, shard):
    plan = protocol.plan(phase, shard)
    print(
        f'[run_benchmark] shard {shard[0]}/{shard[1]}: '
        f'{len(plan["tune"])} tuning runs, {len(plan["final"])} final '
        f'runs (of {len(protocol.tune_units())} and '
        f'{len(protocol.final_slots())})'
    )
    for unit in plan['tune']:
        split = unit.task.splits.tune_train
        print(f'  tune  {unit}  (train {split}, score {unit.task.splits.val})')
    for task, seed in plan['final']:
        print(
            f'  final {task.name} seed {seed} (chosen point; train '
            f'{task.splits.final_train}, test {task.splits.test})'
        )


def main(argv=None):
    args = parse_args(argv)
    try:
        protocol, title, method = build(args)
        shard = parse_shard(args.shard)
        if args.dry_run:
            print_plan(protocol, args.phase, shard)
            return None
        os.makedirs(protocol.work_dir, exist_ok=True)
        collect = args.collect is not None or args.summarize_only
        if collect:
            n = protocol.collect(args.collect or ())
            print(
                f'[run_benchmark] collected {n} result files into '
                f'{protocol.work_dir}'
            )
        else:
            protocol.run(args.phase, shard)
        sizes = (
            {
                g: len(t)
                for g, t in BENCHMARKS[args.benchmark]['groups'].items()
            }
            if args.benchmark
            else None
        )
        rows, text = write_summary(protocol, title, sizes)
        print(text)
        print(
            f'[run_benchmark] wrote summary.md, summary.csv, tuning.csv '
            f'in {protocol.work_dir}'
        )
        if args.write_recipes is not None:
            path = args.write_recipes or osp.join(
                protocol.work_dir, 'recipes.json'
            )
            table = write_recipe_table(protocol, path, method, rows)
            print(
                f'[run_benchmark] wrote {len(table["rows"])} tuned '
                f'recipes to {path} (run {table["run_id"]}, '
                f'{table["date"]}); train from it: tools/train.py '
                'CONFIG --cfg-options task=NAME benchmark.recipes='
                f'{path}, or tools/run_benchmark.py --recipes {path}'
            )
        return rows
    except ProtocolError as e:
        sys.exit(f'run_benchmark: {e}')


if __name__ == '__main__':
    main()

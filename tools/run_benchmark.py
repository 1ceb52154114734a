#!/usr/bin/env python
"""Run a whole classification benchmark (every task, several seeds) and
write a summary table.

    python tools/run_benchmark.py --benchmark vtab1k --method lspt \
        --backbone mae --seeds 0 1 2 --data-root data/vtab-1k \
        --work-dir work_dirs/benchmarks/lspt_mae_vtab1k
    python tools/run_benchmark.py --benchmark fgvc --method gapt \
        --backbone mocov3 --data-root data/fgvc --tasks cub stanford_dogs

For each task and seed: train with the task's config (the committed one in
``configs/classification/<benchmark>/``, else one generated from the table
in ``lspt_mm/datasets/benchmarks.py`` into ``<work-dir>/configs/``), then
test the final model on the test split; the top-1 accuracy goes to
``<work-dir>/<task>/seed<k>/result.json``. Runs whose result exists are
skipped (``--overwrite`` reruns them), so an interrupted benchmark resumes,
and tasks can be spread over machines with ``--tasks`` and collected with
``--summarize-only``. The summary (per task mean ± std over seeds, group
means, overall mean over tasks) is written to ``<work-dir>/summary.md`` and
``<work-dir>/summary.csv``.

Runs are in-process and one at a time (mmengine ``Runner``; one GPU or the
CPU). ``--cfg-options`` applies to every run (e.g. shorter schedules).
"""
import argparse
import csv
import gc
import json
import math
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, osp.join(REPO, 'tools', 'misc'))

import lspt_mm  # noqa: E402,F401  (compat fixes before any mm import)
import lspt_mm.datasets  # noqa: E402,F401
from lspt_mm.datasets.benchmarks import BENCHMARKS, FGVC_DATASETS  # noqa
import generate_cls_configs as gen  # noqa: E402

METRIC = 'accuracy/top1'


def config_for(method, backbone, benchmark, task, work_dir):
    """The committed config if there is one, else a generated one."""
    committed = gen.config_path(method, backbone, benchmark, task)
    if osp.isfile(committed):
        return committed
    return gen.write_config(method, backbone, benchmark, task,
                            out_dir=osp.join(work_dir, 'configs'))


def set_data_root(cfg, benchmark, task, data_root):
    root = data_root if benchmark == 'vtab1k' else osp.join(
        data_root, FGVC_DATASETS[task]['folder'])
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if loader is not None:
            loader.dataset.data_root = root


def run_one(config, task, seed, run_dir, benchmark, data_root=None,
            cfg_options=None):
    """Train then test one (task, seed); returns the result dict."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    if data_root is not None:
        set_data_root(cfg, benchmark, task, data_root)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = run_dir
    cfg.randomness = dict(cfg.get('randomness', {}), seed=seed)
    cfg.experiment_name = f'{task}_seed{seed}'
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    result = dict(
        task=task, seed=seed, top1=float(metrics[METRIC]), config=config,
        metrics={k: float(v) for k, v in metrics.items()})
    del runner
    gc.collect()
    return result


def collect(work_dir, tasks, seeds=None):
    """``{task: {seed: top1}}`` from the result files under ``work_dir``."""
    results = {}
    for task in tasks:
        task_dir = osp.join(work_dir, task)
        if not osp.isdir(task_dir):
            continue
        for entry in sorted(os.listdir(task_dir)):
            path = osp.join(task_dir, entry, 'result.json')
            if not (entry.startswith('seed') and osp.isfile(path)):
                continue
            with open(path) as f:
                res = json.load(f)
            if seeds is None or res['seed'] in seeds:
                results.setdefault(task, {})[res['seed']] = res['top1']
    return results


def _mean_std(values):
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean)**2 for v in values) /
                    (len(values) - 1)) if len(values) > 1 else 0.
    return mean, std


def summarize(results, benchmark, title=''):
    """Rows ``(group, task, mean, std, n, per-seed dict)`` plus the
    markdown text. Group and overall means are over per-task means; they
    say how many tasks they cover."""
    groups = BENCHMARKS[benchmark]['groups']
    rows, lines = [], []
    lines.append(f'# {title or benchmark} (top-1 %, mean ± std over seeds)')
    lines.append('')
    lines.append('| Group | Task | Top-1 | Seeds |')
    lines.append('|---|---|---|---|')
    all_means = []
    for group, tasks in groups.items():
        means = []
        for task in tasks:
            if task not in results:
                lines.append(f'| {group} | {task} | not run | 0 |')
                continue
            per_seed = results[task]
            mean, std = _mean_std(list(per_seed.values()))
            means.append(mean)
            rows.append((group, task, mean, std, len(per_seed), per_seed))
            lines.append(f'| {group} | {task} | {mean:.2f} ± {std:.2f} | '
                         f'{len(per_seed)} |')
        if means and len(groups) > 1:
            gmean = sum(means) / len(means)
            rows.append((group, 'mean', gmean, None, len(means), {}))
            lines.append(f'| **{group}** | mean of {len(means)}/'
                         f'{len(tasks)} tasks | **{gmean:.2f}** | |')
        all_means += means
    num_tasks = sum(len(t) for t in groups.values())
    if all_means:
        overall = sum(all_means) / len(all_means)
        rows.append(('all', 'mean', overall, None, len(all_means), {}))
        lines.append(f'| **all** | mean of {len(all_means)}/{num_tasks} '
                     f'tasks | **{overall:.2f}** | |')
    lines.append('')
    return rows, '\n'.join(lines)


def write_summary(results, benchmark, work_dir, title=''):
    rows, text = summarize(results, benchmark, title)
    seeds = sorted({s for r in rows for s in r[5]})
    md = osp.join(work_dir, 'summary.md')
    with open(md, 'w') as f:
        f.write(text)
    path = osp.join(work_dir, 'summary.csv')
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['group', 'task', 'top1_mean', 'top1_std', 'n'] +
                        [f'seed{s}' for s in seeds])
        for group, task, mean, std, n, per_seed in rows:
            writer.writerow([
                group, task, f'{mean:.4f}',
                '' if std is None else f'{std:.4f}', n
            ] + [
                f'{per_seed[s]:.4f}' if s in per_seed else '' for s in seeds
            ])
    return md, path, text


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Run a classification benchmark and summarize it')
    parser.add_argument('--benchmark', required=True,
                        choices=list(BENCHMARKS))
    parser.add_argument('--method', default='lspt', choices=list(gen.METHODS))
    parser.add_argument('--backbone', default='mae',
                        choices=list(gen.BACKBONES))
    parser.add_argument('--seeds', type=int, nargs='+', default=[0])
    parser.add_argument('--tasks', nargs='+',
                        help='subset of tasks (default: all)')
    parser.add_argument('--data-root',
                        help='vtab1k: the vtab-1k folder; fgvc: the folder '
                        'holding the five dataset folders (default: the '
                        "configs' data/ paths)")
    parser.add_argument('--work-dir', help='default: work_dirs/benchmarks/'
                        '<method>_<backbone>_<benchmark>')
    parser.add_argument('--overwrite', action='store_true',
                        help='rerun runs that already have a result')
    parser.add_argument('--summarize-only', action='store_true',
                        help='only collect results and write the summary')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='overrides applied to every run (key=value)')
    args = parser.parse_args(argv)
    known = BENCHMARKS[args.benchmark]['tasks']
    for task in args.tasks or []:
        if task not in known:
            parser.error(f'unknown {args.benchmark} task {task!r}; known: '
                         f'{list(known)}')
    return args


def main(argv=None):
    args = parse_args(argv)
    tasks = args.tasks or list(BENCHMARKS[args.benchmark]['tasks'])
    work_dir = args.work_dir or osp.join(
        'work_dirs', 'benchmarks',
        f'{args.method}_{args.backbone}_{args.benchmark}')
    os.makedirs(work_dir, exist_ok=True)
    if not args.summarize_only:
        for task in tasks:
            config = config_for(args.method, args.backbone, args.benchmark,
                                task, work_dir)
            for seed in args.seeds:
                run_dir = osp.join(work_dir, task, f'seed{seed}')
                result_file = osp.join(run_dir, 'result.json')
                if osp.isfile(result_file) and not args.overwrite:
                    print(f'[run_benchmark] {task} seed {seed}: done '
                          f'({result_file}), skipped')
                    continue
                result = run_one(config, task, seed, run_dir, args.benchmark,
                                 args.data_root, args.cfg_options)
                os.makedirs(run_dir, exist_ok=True)
                with open(result_file, 'w') as f:
                    json.dump(result, f, indent=1)
                print(f'[run_benchmark] {task} seed {seed}: top-1 '
                      f'{result["top1"]:.2f}')
    results = collect(work_dir, tasks, args.seeds)
    title = (f'{gen.METHOD_TITLES[args.method]}, '
             f'{gen.BACKBONES[args.backbone]} ViT-B/16, {args.benchmark}')
    md, csv_path, text = write_summary(results, args.benchmark, work_dir,
                                       title)
    print(text)
    print(f'[run_benchmark] wrote {md} and {csv_path} (hyper-parameters: '
          'lspt_mm/datasets/benchmarks.py, GaPT Table 5)')
    return results


if __name__ == '__main__':
    main()

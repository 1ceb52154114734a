"""What a protocol run reports: per-task choice, validation score, test
mean ± std over seeds, group and benchmark means (markdown and CSV), every
grid point's validation score (CSV), and the chosen points as a recipe table
that the configs read (``benchmark.recipes=``, JSON).

Means: a group mean is the mean of its tasks' test means (tasks whose final
runs exist; the row says how many); the benchmark mean is the mean over all
such tasks, and with several groups also the mean of the group means (VPT
and GaPT print the VTAB-1k group means Natural / Specialized / Structured
and an overall mean). Std is the sample standard deviation (n - 1) over
seeds.
"""

import csv
import datetime
import io
import json
import math
import os.path as osp

from lspt_mm.engine.checkpoint_hook import atomic_write_text
from lspt_mm.models.methods import METHODS

from .protocol import (
    RULE,
    Unit,
    axis_key,
    axis_label,
    grid_points,
    point_id,
    point_text,
)

RECIPE_FORMAT = 'lspt_mm recipe table 1'
# axis -> key of the project's recipe table (lspt_mm/recipes.py); a
# method's own recipe keys (its component's ``recipe_options``, e.g. GaPT's
# gate_init) are searched as ``model.backbone.prompt_cfg.<key>``
RECIPE_FIELDS = {
    'lr': 'lr',
    'weight_decay': 'weight_decay',
    'num_prompts': 'num_prompts',
    **{
        f'model.backbone.prompt_cfg.{key}': key
        for spec in METHODS.values()
        for key in spec.component_class.recipe_options
    },
}


def mean_std(values):
    """Mean and sample std (``n - 1``; 0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(
        sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    )


def task_rows(protocol):
    """One dict per task: ``task``, ``group``, ``status``, ``choice`` (or
    None), ``val_score``, ``tests`` ``{seed: score}`` of the chosen point,
    ``test_mean``, ``test_std``, ``tuning`` ``(done, total)``, ``grid``
    ``[(point, mean val score or None)]``, ``class_scores`` ``{class:
    {seed: IoU}}`` of the final runs (segmentation metrics with
    ``per_class=True``; else empty)."""
    rows = []
    for task in protocol.tasks:
        choice = protocol.choice(task)
        grid = []
        if protocol.tunes(task):
            for point in grid_points(task.grid):
                scores = []
                for seed in protocol.tune_seeds:
                    r = protocol.load_result(Unit(task, 'tune', point, seed))
                    if r is not None:
                        scores.append(r['score'])
                grid.append(
                    (
                        point,
                        dict(zip(protocol.tune_seeds, scores))
                        if len(scores) == len(protocol.tune_seeds)
                        else None,
                    )
                )
        tests, classes = {}, {}
        if choice is not None:
            for seed in protocol.seeds:
                r = protocol.load_result(
                    Unit(task, 'final', choice['point'], seed)
                )
                if r is not None:
                    tests[seed] = r['score']
                    for key, value in r.get('metrics', {}).items():
                        if key.startswith('IoU.'):
                            classes.setdefault(key[4:], {})[seed] = value
        done, total = protocol.tuning_progress(task)
        if choice is None:
            status = f'tuning {done}/{total}' if done else 'not run'
        elif len(tests) < len(protocol.seeds):
            status = f'final {len(tests)}/{len(protocol.seeds)} seeds'
        else:
            status = 'done'
        mean, std = mean_std(list(tests.values())) if tests else (None, None)
        rows.append(
            dict(
                task=task.name,
                group=task.group,
                status=status,
                choice=choice,
                val_score=choice and choice['val_score'],
                tests=tests,
                test_mean=mean,
                test_std=std,
                tuning=(done, total),
                grid=grid,
                class_scores=classes,
                task_obj=task,
            )
        )
    return rows


def group_means(rows, group_sizes=None):
    """``[(group, mean or None, k, n)]`` in first-appearance order, then
    ``('all', mean over tasks, k, n)`` and, with several groups,
    ``('groups', mean of the group means, k groups, n groups)``; ``k``
    counts tasks with test results, ``n`` the group's tasks
    (``group_sizes``, e.g. the benchmark's, else the protocol's)."""
    groups = {}
    for row in rows:
        groups.setdefault(row['group'], []).append(row)
    sizes = dict(group_sizes or {})
    out, all_means, gmeans = [], [], []
    for group, members in groups.items():
        means = [r['test_mean'] for r in members if r['test_mean'] is not None]
        gmean = sum(means) / len(means) if means else None
        out.append((group, gmean, len(means), sizes.get(group, len(members))))
        all_means += means
        if gmean is not None:
            gmeans.append(gmean)
    out.append(
        (
            'all',
            sum(all_means) / len(all_means) if all_means else None,
            len(all_means),
            sum(sizes.values()) if sizes else len(rows),
        )
    )
    if len(groups) > 1 or len(sizes) > 1:
        out.append(
            (
                'groups',
                sum(gmeans) / len(gmeans) if gmeans else None,
                len(gmeans),
                max(len(groups), len(sizes)),
            )
        )
    return out


def _f(x, digits=2):
    return '–' if x is None else f'{x:.{digits}f}'


def summary_markdown(protocol, rows, title='', group_sizes=None):
    first = protocol.tasks[0].splits
    lines = [
        f'# {title or "Tuning protocol"}',
        '',
        f'Run `{protocol.run_id}`, `{protocol.work_dir}`. Metric '
        f'`{protocol.metric}`. Grid points train on the tuning split '
        f'(`{first.tune_train}`) and are scored on `{first.val}` '
        f'(tuning seeds {", ".join(map(str, protocol.tune_seeds))}); '
        f'the chosen point trains on `{first.final_train}` and is '
        f'tested on `{first.test}` with seeds '
        f'{", ".join(map(str, protocol.seeds))} (mean ± sample std). '
        f'Choice: {RULE}.',
        '',
        '| Group | Task | Chosen point | Val | Test | Seeds | Status |',
        '|---|---|---|---|---|---|---|',
    ]
    by_group = {}
    for row in rows:
        by_group.setdefault(row['group'], []).append(row)
    means = {g: (m, k, n) for g, m, k, n in group_means(rows, group_sizes)}
    multi = 'groups' in means
    for group, members in by_group.items():
        for r in members:
            point = point_text(r['choice']['point']) if r['choice'] else '–'
            test = (
                '–'
                if r['test_mean'] is None
                else f'{r["test_mean"]:.2f} ± {r["test_std"]:.2f}'
            )
            lines.append(
                f'| {group} | {r["task"]} | {point} | '
                f'{_f(r["val_score"])} | {test} | '
                f'{len(r["tests"])} | {r["status"]} |'
            )
        if multi:
            m, k, n = means[group]
            lines.append(
                f'| **{group}** | mean of {k}/{n} tasks | | | '
                f'**{_f(m)}** | | |'
            )
    m, k, n = means['all']
    lines.append(f'| **all** | mean of {k}/{n} tasks | | | **{_f(m)}** | | |')
    if multi:
        m, k, n = means['groups']
        lines.append(
            f'| **all** | mean of {k}/{n} group means | | | **{_f(m)}** | | |'
        )
    tuned = [r for r in rows if r['grid']]
    if tuned:
        lines += [
            '',
            '## Validation score of every grid point '
            '(mean over tuning seeds; **chosen**)',
            '',
        ]
        for r in tuned:
            cells = []
            for point, scores in r['grid']:
                pid = point_id(point)
                if scores is None:
                    cells.append(f'{pid} –')
                    continue
                text = _f(sum(scores.values()) / len(scores))
                if r['choice'] and r['choice']['point_id'] == pid:
                    text = f'**{text}**'
                cells.append(f'{pid} {text}')
            lines.append(f'- {r["task"]}: ' + ', '.join(cells))
    lines += class_table(rows)
    return '\n'.join(lines) + '\n'


def class_table(rows):
    """Markdown lines: per-class IoU of the final runs, mean ± std over
    seeds, one column per task (empty when no run recorded classes)."""
    with_classes = [r for r in rows if r.get('class_scores')]
    if not with_classes:
        return []
    # the metric's order (the dataset's class order) of the fullest run
    orders = sorted(
        (list(r['class_scores']) for r in with_classes), key=len, reverse=True
    )
    names = []
    for order in orders:
        names += [c for c in order if c not in names]
    lines = [
        '',
        '## Per-class IoU of the final runs (test; mean ± std over seeds)',
        '',
        '| class | ' + ' | '.join(r['task'] for r in with_classes) + ' |',
        '|---' * (len(with_classes) + 1) + '|',
    ]
    for name in names:
        cells = []
        for r in with_classes:
            seeds = r['class_scores'].get(name)
            if not seeds:
                cells.append('–')
                continue
            m, sd = mean_std(list(seeds.values()))
            cells.append(f'{_f(m)} ± {_f(sd)}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return lines


def _axes_of(rows):
    axes = []
    for r in rows:
        for a in r['task_obj'].grid:
            if a not in axes:
                axes.append(a)
    return axes


def summary_csv(protocol, rows, group_sizes=None):
    axes = _axes_of(rows)
    seeds = protocol.seeds
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(
        ['group', 'task', 'status', 'chosen_point']
        + [axis_label(a) for a in axes]
        + ['val_score', 'test_mean', 'test_std', 'n_seeds']
        + [f'test_seed{s}' for s in seeds]
    )
    for r in rows:
        point = r['choice']['point'] if r['choice'] else {}
        w.writerow(
            [
                r['group'],
                r['task'],
                r['status'],
                r['choice']['point_id'] if r['choice'] else '',
            ]
            + [point.get(a, '') for a in axes]
            + [
                _f(r['val_score'], 4) if r['val_score'] is not None else '',
                _f(r['test_mean'], 4) if r['tests'] else '',
                _f(r['test_std'], 4) if r['tests'] else '',
                len(r['tests']),
            ]
            + [_f(r['tests'][s], 4) if s in r['tests'] else '' for s in seeds]
        )
    pad = [''] * (2 + len(axes))
    for group, m, k, n in group_means(rows, group_sizes):
        name = {'all': 'mean_of_tasks', 'groups': 'mean_of_groups'}.get(
            group, 'mean'
        )
        w.writerow(
            [group if group not in ('all', 'groups') else 'all', name]
            + pad
            + ['', '' if m is None else f'{m:.4f}', '', k]
            + [''] * len(seeds)
        )
    return buf.getvalue()


def tuning_csv(protocol, rows):
    axes = _axes_of(rows)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(
        ['task', 'point', 'chosen']
        + [axis_label(a) for a in axes]
        + ['val_mean']
        + [f'val_seed{s}' for s in protocol.tune_seeds]
    )
    for r in rows:
        for point, scores in r['grid']:
            pid = point_id(point)
            chosen = bool(r['choice'] and r['choice']['point_id'] == pid)
            w.writerow(
                [r['task'], pid, int(chosen)]
                + [point.get(a, '') for a in axes]
                + (
                    [
                        '',
                    ]
                    * (1 + len(protocol.tune_seeds))
                    if scores is None
                    else [f'{sum(scores.values()) / len(scores):.4f}']
                    + [f'{scores[s]:.4f}' for s in protocol.tune_seeds]
                )
            )
    return buf.getvalue()


def write_summary(protocol, title='', group_sizes=None):
    """Write ``summary.md``, ``summary.csv`` and ``tuning.csv`` into the
    work dir; returns ``(rows, markdown text)``. ``group_sizes``: tasks per
    group of the whole benchmark (means then say "k/n tasks")."""
    rows = task_rows(protocol)
    text = summary_markdown(protocol, rows, title, group_sizes)
    atomic_write_text(osp.join(protocol.work_dir, 'summary.md'), text)
    atomic_write_text(
        osp.join(protocol.work_dir, 'summary.csv'),
        summary_csv(protocol, rows, group_sizes),
    )
    atomic_write_text(
        osp.join(protocol.work_dir, 'tuning.csv'), tuning_csv(protocol, rows)
    )
    return rows, text


def recipe_table(protocol, method=None, rows=None):
    """The chosen points as a recipe table (a dict; JSON-ready). Each row:
    the task's ``recipe`` metadata (e.g. backbone / benchmark / task and
    its untuned values), the chosen values under the recipe table's names
    (``lr``, ``weight_decay``, ``num_prompts``, ``gate_init``), every
    chosen value under its config key (``overrides``), the validation and
    test scores, and ``source`` (run id, date). Tasks without a completed
    tuning (or with one grid point: nothing tuned) are left out."""
    rows = rows if rows is not None else task_rows(protocol)
    date = datetime.date.today().isoformat()
    out_rows = []
    for r in rows:
        choice = r['choice']
        if choice is None or choice['val_score'] is None:
            continue
        task = r['task_obj']
        row = dict(task.recipe)
        row.setdefault('task', task.name)
        for axis, value in choice['point'].items():
            if axis in RECIPE_FIELDS:
                row[RECIPE_FIELDS[axis]] = value
        row['overrides'] = {axis_key(a): v for a, v in choice['point'].items()}
        row.update(
            val_score=choice['val_score'],
            val_split=task.splits.val,
            test_mean=r['test_mean'],
            test_std=r['test_std'],
            test_seeds=len(r['tests']),
            source=(
                f'tuned by the protocol: run {protocol.run_id} '
                f'({date}), {protocol.metric} {choice["val_score"]:.2f}'
                f' on {task.splits.val}'
            ),
        )
        out_rows.append(row)
    return dict(
        format=RECIPE_FORMAT,
        method=method,
        run_id=protocol.run_id,
        date=date,
        work_dir=osp.abspath(protocol.work_dir),
        metric=protocol.metric,
        rule=RULE,
        tune_seeds=protocol.tune_seeds,
        seeds=protocol.seeds,
        cfg_options=json.loads(json.dumps(protocol.cfg_options, default=repr)),
        rows=out_rows,
    )


def write_recipe_table(protocol, path, method=None, rows=None):
    """Write :func:`recipe_table` as JSON to ``path``; returns the table."""
    table = recipe_table(protocol, method, rows)
    atomic_write_text(path, json.dumps(table, indent=1))
    return table

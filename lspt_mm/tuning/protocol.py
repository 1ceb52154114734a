"""The papers' tuning protocol, as library code.

VPT's ``tune_vtab.py`` / ``tune_fgvc.py`` and GaPT tune this way: for each
task, train every point of a hyper-parameter grid on the *tuning* split and
score it on the *validation* split; pick one point per task by a fixed rule
(:data:`RULE`); train that point on train+val with N seeds and report the
*test* split (mean ± std over seeds).

Vocabulary (nothing here knows FGVC or VTAB-1k; see
:mod:`lspt_mm.tuning.benchmark` for those):

- **task** (:class:`Task`): one thing tuned on its own: an mmengine config,
  the names of its four splits (:class:`Splits`), a grid, a group (for group
  means), optionally a data root and config overrides. A benchmark dataset
  (VTAB-1k ``dtd``) or one method on one dataset are both tasks.
- **grid**: ordered axes ``{axis: values}``; an axis is a short name of
  :data:`AXES` (``lr``, ``weight_decay``, ``num_prompts``) or any dotted
  config key (``model.backbone.prompt_cfg.gate_init``). A **point** gives
  one value per axis; axes not in the grid keep the config's value.
- **unit**: one training run ``(task, phase, point, seed)``: phase ``tune``
  trains on ``Splits.tune_train`` and scores ``Splits.val``; phase
  ``final`` trains the chosen point on ``Splits.final_train`` and scores
  ``Splits.test``. Its result is one JSON file written atomically; a unit
  with a result is never rerun (an interrupted sweep resumes), a unit
  killed mid-training resumes from its last checkpoint (mmengine
  ``resume``), and a result made with other settings is an error, never
  mixed in.

Work directory::

    protocol.json                     settings and run id
    <task>/tune/<point>/seed<k>/      mmengine work dir + result.json
    <task>/choice.json                when the task's tuning is complete
    <task>/final/<point>/seed<k>/     mmengine work dir + result.json
    summary.md, summary.csv, tuning.csv   (lspt_mm.tuning.report)

Spreading over machines: units are numbered in a fixed order (tuning:
task, point, seed; final: task, seed) and shard ``i/n`` runs the units whose
number is ``i`` modulo ``n``, so the assignment does not depend on what is
already done. Each shard writes only its own result files; results of
shards in other work directories are merged by :meth:`Protocol.collect`.
"""

import datetime
import gc
import glob
import hashlib
import itertools
import json
import math
import os
import os.path as osp
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field

from lspt_mm.engine.checkpoint_hook import atomic_write_text
from lspt_mm.engine.runner_utils import build_runner
from lspt_mm.recipes import (
    TaskError,
    apply_task,
    is_benchmark_config,
    task_recipe,
)
from lspt_mm.tuning.progress import Progress
from lspt_mm.utils import leaf_dataset_cfgs

# short axis name -> (label in point ids, config key)
AXES = {
    'lr': ('lr', 'optim_wrapper.optimizer.lr'),
    'weight_decay': ('wd', 'optim_wrapper.optimizer.weight_decay'),
    'num_prompts': ('np', 'model.backbone.num_prompts'),
    # lr of the tuned backbone parts (prompts, LSTM, gates, LoRA, ...)
    # relative to the head's (paramwise_cfg.module_lr_mult; 1 = one lr)
    'backbone_lr_mult': (
        'blr',
        'optim_wrapper.paramwise_cfg.module_lr_mult.backbone',
    ),
}
SCORE_DIGITS = 6  # scores equal to 1e-6 are a tie
RULE = (
    'highest validation score (mean over the tuning seeds; scores equal '
    'to 1e-6 tie, a NaN score ranks last); ties go to the smaller lr, '
    'then the smaller weight decay, then fewer prompts, then the '
    'smaller value of each further axis in grid order'
)
PHASES = ('tune', 'final')
RESULT = 'result.json'
_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')


class ProtocolError(RuntimeError):
    """A protocol setting or work-directory state that cannot be used."""


@dataclass(frozen=True)
class Splits:
    """The split names of a task's dataset and how a config takes them.

    Args:
        tune_train: what grid points train on (VTAB-1k ``train800``).
        val: what grid points are scored on (``val200``).
        final_train: what the chosen point trains on (``train800val200``).
        test: what the final runs report (``test``).
        key: the dataset field that takes the split (``split``; e.g.
            ``ann_file`` for a ``CustomDataset``).
        template: the value written to ``key`` (``'{split}'``; e.g.
            ``'meta/{split}.txt'``).
    """

    tune_train: str
    val: str
    final_train: str
    test: str
    key: str = 'split'
    template: str = '{split}'

    def of(self, phase):
        """``(train split, evaluated split)`` of a phase."""
        if phase == 'tune':
            return self.tune_train, self.val
        if phase == 'final':
            return self.final_train, self.test
        raise ValueError(f'unknown phase {phase!r}; known: {PHASES}')

    def value(self, split):
        return self.template.format(split=split)


@dataclass
class Task:
    """One task of the protocol (see the module docstring).

    ``recipe`` is carried to the recipe table written back (e.g. the
    ``(backbone, benchmark, task)`` key and the untuned hyper-parameters).
    """

    name: str
    config: str
    splits: Splits
    grid: dict = field(default_factory=dict)
    group: str = 'all'
    data_root: str = None
    cfg_options: dict = field(default_factory=dict)
    recipe: dict = field(default_factory=dict)

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ProtocolError(
                f'task name {self.name!r}: use letters, '
                'digits and _ . + - only (it names a folder)'
            )
        if not osp.isfile(self.config):
            raise ProtocolError(
                f'task {self.name!r}: config {self.config!r} does not exist'
            )
        self.grid = normalize_grid(self.grid)


# ------------------------------------------------------------------ grid
def axis_key(axis):
    """The config key an axis sets."""
    return AXES[axis][1] if axis in AXES else axis


def axis_label(axis):
    return AXES[axis][0] if axis in AXES else axis.rsplit('.', 1)[-1]


def normalize_grid(axes):
    """``{axis: tuple of distinct values}`` with the axes of :data:`AXES`
    first (in that order), then the others as given."""
    order = [a for a in AXES if a in axes] + [a for a in axes if a not in AXES]
    out = {}
    for axis in order:
        values = axes[axis]
        if not isinstance(values, (list, tuple)):
            values = (values,)
        values = tuple(dict.fromkeys(values))
        if not values:
            raise ProtocolError(f'grid axis {axis!r} has no values')
        out[axis] = values
    return out


def grid_points(axes):
    """Every point of the grid (dicts), the last axis varying fastest."""
    axes = normalize_grid(axes)
    points = [
        dict(zip(axes, values)) for values in itertools.product(*axes.values())
    ]
    ids = [point_id(p) for p in points]
    if len(set(ids)) != len(ids):
        raise ProtocolError(
            f'grid {axes} gives equal point names; use '
            'values that differ when printed'
        )
    return points


def _fmt(value):
    if isinstance(value, float):
        return repr(value)
    return str(value).replace('/', '-').replace(' ', '')


def point_id(point):
    """Folder name of a point: ``lr0.1_wd0.0_np10`` (``config``: the
    config's own values, an empty grid)."""
    if not point:
        return 'config'
    return '_'.join(f'{axis_label(a)}{_fmt(v)}' for a, v in point.items())


def point_text(point):
    if not point:
        return "config's values"
    return ', '.join(f'{axis_label(a)}={_fmt(v)}' for a, v in point.items())


def rank_key(point, score):
    """Sort key of :data:`RULE` (smallest = chosen)."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        first = math.inf
    else:
        first = -round(float(score), SCORE_DIGITS)
    return (first,) + tuple(point.values())


def choose_point(scored):
    """The point :data:`RULE` picks from ``[(point, score), ...]`` (points
    of one grid: same axes in the same order)."""
    if not scored:
        raise ProtocolError('no scored points to choose from')
    return min(scored, key=lambda ps: rank_key(*ps))[0]


def parse_shard(text):
    """``'i/n'`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in text.split('/'))
    except (ValueError, AttributeError):
        raise ProtocolError(
            f'--shard {text!r}: write i/n, e.g. 0/4 (shard '
            'i of n, counted from 0)'
        ) from None
    if not 0 <= i < n:
        raise ProtocolError(f'--shard {text!r}: need 0 <= i < n')
    return i, n


# ------------------------------------------------------------ the config
def _json_normal(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=repr))


def _sha(obj):
    text = json.dumps(obj, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def train_and_evaluate(cfg):
    """Train ``cfg`` with mmengine's runner, then evaluate the final model
    with the test loop; returns its metrics as floats."""
    import torch

    runner = build_runner(cfg)
    try:
        runner.train()
        metrics = runner.test()
    finally:
        del runner
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    out = {}
    for k, v in metrics.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            pass  # per-class lists and the like
    return out


@dataclass
class Unit:
    task: Task
    phase: str
    point: dict
    seed: int

    @property
    def point_id(self):
        return point_id(self.point)

    def run_dir(self, work_dir):
        return osp.join(
            work_dir,
            self.task.name,
            self.phase,
            self.point_id,
            f'seed{self.seed}',
        )

    def result_path(self, work_dir):
        return osp.join(self.run_dir(work_dir), RESULT)

    def __str__(self):
        return (
            f'{self.task.name} {self.phase} {point_text(self.point)} '
            f'seed {self.seed}'
        )


class Protocol:
    """Tune, choose, run finals, for a list of :class:`Task`.

    Args:
        tasks (list[Task]): what to tune (names must be distinct).
        work_dir (str): where every run and result goes.
        seeds (list[int]): seeds of the final runs.
        tune_seeds (list[int]): seeds of each grid point's tuning run
            (VPT and GaPT: one).
        metric (str): the key of the evaluator's metrics that scores a run
            (higher is better).
        cfg_options (dict): overrides for every run (applied before the
            task's own ``cfg_options``, then the grid point).
        keep_checkpoints (str): after a run's result is written, keep its
            checkpoints for ``'all'`` runs, ``'final'`` runs only (default),
            or ``'none'``.
        run_unit (callable): ``cfg -> metrics``; default
            :func:`train_and_evaluate`.
        log (callable): where progress lines go.
    """

    def __init__(
        self,
        tasks,
        work_dir,
        seeds=(0,),
        tune_seeds=(0,),
        metric='accuracy/top1',
        cfg_options=None,
        keep_checkpoints='final',
        run_unit=None,
        log=print,
    ):
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ProtocolError(f'task names must be distinct: {names}')
        if not tasks:
            raise ProtocolError('no tasks')
        if keep_checkpoints not in ('all', 'final', 'none'):
            raise ProtocolError(
                f'keep_checkpoints={keep_checkpoints!r}: '
                "use 'all', 'final' or 'none'"
            )
        self.tasks = list(tasks)
        self.work_dir = work_dir
        self.seeds = [int(s) for s in seeds]
        self.tune_seeds = [int(s) for s in tune_seeds]
        if not self.seeds or not self.tune_seeds:
            raise ProtocolError('need at least one seed and one tuning seed')
        self.metric = metric
        self.cfg_options = dict(cfg_options or {})
        self.keep_checkpoints = keep_checkpoints
        self.run_unit = run_unit or train_and_evaluate
        self.log = log
        self._config_sha = {}
        self._run_id = None

    # -------------------------------------------------------------- units
    def tunes(self, task):
        """Whether ``task`` has something to choose (more than one point)."""
        return len(grid_points(task.grid)) > 1

    def tune_units(self):
        """Every tuning run, in the fixed order shards count in."""
        return [
            Unit(task, 'tune', point, seed)
            for task in self.tasks
            if self.tunes(task)
            for point in grid_points(task.grid)
            for seed in self.tune_seeds
        ]

    def final_slots(self):
        """``(task, seed)`` of every final run, in the fixed order."""
        return [(task, seed) for task in self.tasks for seed in self.seeds]

    def load_result(self, unit):
        path = unit.result_path(self.work_dir)
        if not osp.isfile(path):
            return None
        with open(path) as f:
            result = json.load(f)
        self._check_settings(unit, result, path)
        return result

    # ------------------------------------------------------------ choice
    def choice(self, task, write=True):
        """The chosen point of ``task`` as a dict (``point``, ``point_id``,
        ``val_score``, ``scores``, ``rule``), or ``None`` while tuning runs
        are missing. Written to ``<task>/choice.json``."""
        points = grid_points(task.grid)
        if not self.tunes(task):
            return dict(
                task=task.name,
                point=points[0],
                point_id=point_id(points[0]),
                val_score=None,
                scores={},
                rule='one point: nothing to tune',
            )
        scored, scores = [], {}
        for point in points:
            values = []
            for seed in self.tune_seeds:
                result = self.load_result(Unit(task, 'tune', point, seed))
                if result is None:
                    return None
                values.append(result['score'])
            mean = sum(values) / len(values)
            scored.append((point, mean))
            scores[point_id(point)] = mean
        best = choose_point(scored)
        choice = dict(
            task=task.name,
            point=best,
            point_id=point_id(best),
            val_score=scores[point_id(best)],
            val_split=task.splits.val,
            metric=self.metric,
            tune_seeds=self.tune_seeds,
            scores=scores,
            rule=RULE,
        )
        if write:
            atomic_write_text(
                osp.join(self.work_dir, task.name, 'choice.json'),
                json.dumps(choice, indent=1),
            )
        return choice

    def tuning_progress(self, task):
        """``(done, total)`` tuning runs of ``task``."""
        if not self.tunes(task):
            return 0, 0
        units = [u for u in self.tune_units() if u.task is task]
        done = sum(osp.isfile(u.result_path(self.work_dir)) for u in units)
        return done, len(units)

    # -------------------------------------------------------------- runs
    @property
    def run_id(self):
        """The work dir's run id: made by the first process that writes
        ``protocol.json`` (shards started together agree on it)."""
        if self._run_id is None:
            path = osp.join(self.work_dir, 'protocol.json')
            if not osp.isfile(path):
                stamp = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
                info = dict(
                    run_id=f'{stamp}-{uuid.uuid4().hex[:6]}',
                    created=datetime.datetime.now().isoformat(
                        timespec='seconds'
                    ),
                )
                os.makedirs(self.work_dir, exist_ok=True)
                tmp = f'{path}.{uuid.uuid4().hex}.tmp'
                with open(tmp, 'w') as f:
                    json.dump(info, f)
                try:
                    os.link(tmp, path)  # create only if absent
                except FileExistsError:
                    pass
                finally:
                    os.remove(tmp)
            with open(path) as f:
                self._run_id = json.load(f)['run_id']
        return self._run_id

    def write_protocol_file(self):
        """``protocol.json``: the settings (informative; the run id stays
        the first one's)."""
        path = osp.join(self.work_dir, 'protocol.json')
        run_id = self.run_id
        with open(path) as f:
            created = json.load(f).get('created')
        info = dict(
            run_id=run_id,
            created=created,
            rule=RULE,
            metric=self.metric,
            seeds=self.seeds,
            tune_seeds=self.tune_seeds,
            cfg_options=_json_normal(self.cfg_options),
            tasks=[
                dict(
                    name=t.name,
                    config=t.config,
                    group=t.group,
                    splits=_json_normal(t.splits.__dict__),
                    grid=_json_normal(t.grid),
                    cfg_options=_json_normal(t.cfg_options),
                    recipe=_json_normal(t.recipe),
                )
                for t in self.tasks
            ],
        )
        atomic_write_text(path, json.dumps(info, indent=1))

    def config_sha(self, task):
        """Hash of the task's config file as parsed (what its runs start
        from); for a benchmark config, of that plus the recipe row its
        task resolves to (a changed recipe table is other settings)."""
        key = (task.config, task.name)
        if key not in self._config_sha:
            from mmengine.config import Config

            cfg = Config.fromfile(task.config)
            content = cfg.to_dict()
            if is_benchmark_config(cfg):
                for options in (self.cfg_options, task.cfg_options):
                    if options:
                        cfg.merge_from_dict(options)
                try:
                    content['task_recipe'] = task_recipe(cfg)
                except TaskError as err:
                    raise ProtocolError(f'task {task.name!r}: {err}') from None
            self._config_sha[key] = _sha(content)
        return self._config_sha[key]

    def settings(self, unit):
        """Everything a unit's result depends on besides the data location:
        a result file made with other settings is not this unit's."""
        train, evaluated = unit.task.splits.of(unit.phase)
        return _json_normal(
            dict(
                config_sha=self.config_sha(unit.task),
                cfg_options=self.cfg_options,
                task_cfg_options=unit.task.cfg_options,
                point=unit.point,
                seed=unit.seed,
                phase=unit.phase,
                train_split=train,
                eval_split=evaluated,
                metric=self.metric,
            )
        )

    def _check_settings(self, unit, result, path):
        want = self.settings(unit)
        have = result.get('settings')
        if have != want:
            diff = sorted(
                k
                for k in set(want) | set(have or {})
                if (have or {}).get(k) != want.get(k)
            )
            raise ProtocolError(
                f'{path} was made with other settings than this run '
                f'(differs in: {", ".join(diff)}). Use another --work-dir, '
                'or delete that result to rerun the unit.'
            )

    def build_config(self, unit):
        """The unit's mmengine config: the task's config, ``cfg_options``,
        the task's options, a benchmark config's recipe
        (:func:`~lspt_mm.recipes.apply_task`), its data root,
        the phase's splits (no validation during training; the evaluated
        split is the test loop's), the grid point, the seed and the run
        directory."""

        from mmengine.config import Config

        task = unit.task
        cfg = Config.fromfile(task.config)
        if self.cfg_options:
            cfg.merge_from_dict(self.cfg_options)
        if task.cfg_options:
            cfg.merge_from_dict(task.cfg_options)
        try:
            apply_task(cfg, log=False)
        except TaskError as err:
            raise ProtocolError(f'task {task.name!r}: {err}') from None
        train_split, eval_split = task.splits.of(unit.phase)
        for key in ('train_dataloader', 'test_dataloader', 'test_evaluator'):
            if cfg.get(key) is None:
                raise ProtocolError(
                    f'{task.config}: the protocol needs `{key}` (it trains '
                    'with the train loader and scores the evaluated split '
                    'with the test loop and evaluator)'
                )
        for loader, split in (
            ('train_dataloader', train_split),
            ('test_dataloader', eval_split),
        ):
            for ds in leaf_dataset_cfgs(cfg[loader]['dataset']):
                ds[task.splits.key] = task.splits.value(split)
                if task.data_root is not None:
                    ds['data_root'] = task.data_root
        cfg.val_dataloader = None
        cfg.val_evaluator = None
        cfg.val_cfg = None
        if unit.point:
            cfg.merge_from_dict(
                {axis_key(a): v for a, v in unit.point.items()}
            )
        run_dir = unit.run_dir(self.work_dir)
        cfg.work_dir = run_dir
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=unit.seed)
        cfg.launcher = 'none'
        cfg.experiment_name = (
            f'{task.name}_{unit.phase}_{unit.point_id}_'
            f'seed{unit.seed}_{uuid.uuid4().hex[:8]}'
        )
        # killed mid-training: continue from the last checkpoint
        cfg.resume = osp.isfile(osp.join(run_dir, 'last_checkpoint'))
        cfg.load_from = None
        return cfg

    def run_one(self, unit):
        """Run ``unit`` unless its result exists; returns whether it ran."""
        path = unit.result_path(self.work_dir)
        if self.load_result(unit) is not None:
            self.log(f'[protocol] {unit}: done ({path}), skipped')
            return False
        cfg = self.build_config(unit)
        self.log(
            f'[protocol] {unit}: '
            f'{"resuming" if cfg.resume else "training"} on '
            f'{unit.task.splits.of(unit.phase)[0]}'
        )
        start = time.time()
        metrics = self.run_unit(cfg)
        if self.metric not in metrics:
            raise ProtocolError(
                f'{unit.task.config}: the evaluator gave {sorted(metrics)}, '
                f'not the protocol metric {self.metric!r} (--metric)'
            )
        train, evaluated = unit.task.splits.of(unit.phase)
        result = dict(
            task=unit.task.name,
            phase=unit.phase,
            point=unit.point,
            point_id=unit.point_id,
            seed=unit.seed,
            train_split=train,
            eval_split=evaluated,
            metric=self.metric,
            score=metrics[self.metric],
            metrics=metrics,
            config=unit.task.config,
            seconds=round(time.time() - start, 1),
            finished=datetime.datetime.now().isoformat(timespec='seconds'),
            host=socket.gethostname(),
            run_id=self.run_id,
            settings=self.settings(unit),
        )
        atomic_write_text(path, json.dumps(result, indent=1))
        self.log(
            f'[protocol] {unit}: {self.metric} on {evaluated} '
            f'{result["score"]:.2f}'
        )
        if self.keep_checkpoints == 'none' or (
            self.keep_checkpoints == 'final' and unit.phase == 'tune'
        ):
            self._drop_checkpoints(unit.run_dir(self.work_dir))
        return True

    @staticmethod
    def _drop_checkpoints(run_dir):
        for path in glob.glob(osp.join(run_dir, '*.pth')) + [
            osp.join(run_dir, 'last_checkpoint')
        ]:
            if osp.isfile(path):
                os.remove(path)

    def plan(self, phase='all', shard=(0, 1)):
        """``{'tune': [units], 'final': [(task, seed)]}`` of this shard."""
        i, n = shard
        out = dict(tune=[], final=[])
        if phase in ('tune', 'all'):
            out['tune'] = [
                u for k, u in enumerate(self.tune_units()) if k % n == i
            ]
        if phase in ('final', 'all'):
            out['final'] = [
                s for k, s in enumerate(self.final_slots()) if k % n == i
            ]
        return out

    def run(self, phase='all', shard=(0, 1)):
        """Run this shard's units of ``phase`` (``'tune'``, ``'final'`` or
        ``'all'``); returns how many ran. A final run waits (is skipped
        with a message) while its task's tuning is incomplete, e.g. in
        other shards."""
        if phase not in ('all',) + PHASES:
            raise ProtocolError(f'phase {phase!r}: use all, tune or final')
        os.makedirs(self.work_dir, exist_ok=True)
        self.write_protocol_file()
        plan = self.plan(phase, shard)
        progress = Progress(len(plan['tune']) + len(plan['final']), self.log)

        def run_counted(unit):
            start = time.time()
            did = self.run_one(unit)
            progress.step(did, time.time() - start)
            return did

        ran = 0
        for unit in plan['tune']:
            ran += run_counted(unit)
        waiting = {}
        for task, seed in plan['final']:
            choice = self.choice(task)
            if choice is None:
                waiting[task.name] = self.tuning_progress(task)
                continue
            ran += run_counted(Unit(task, 'final', choice['point'], seed))
        for name, (done, total) in waiting.items():
            self.log(
                f'[protocol] {name}: final runs wait for tuning '
                f'({done}/{total} runs have a result; the rest belong '
                'to other shards or were not run): rerun with --phase '
                'final once they are in this work dir (--collect)'
            )
        return ran

    # ----------------------------------------------------------- collect
    def collect(self, other_dirs=()):
        """Copy the result files of ``other_dirs`` (other shards' work
        dirs) that this work dir lacks; returns how many were copied. A
        unit with results in both keeps this work dir's (a different score
        is reported)."""
        copied = 0
        for other in other_dirs:
            if osp.abspath(other) == osp.abspath(self.work_dir):
                continue
            if not osp.isdir(other):
                raise ProtocolError(f'--collect: {other!r} is not a folder')
            pattern = osp.join(other, '*', '*', '*', 'seed*', RESULT)
            for src in sorted(glob.glob(pattern)):
                rel = osp.relpath(src, other)
                if rel.split(os.sep)[1] not in PHASES:
                    continue
                dst = osp.join(self.work_dir, rel)
                if osp.isfile(dst):
                    with open(src) as f, open(dst) as g:
                        a, b = json.load(f), json.load(g)
                    if a['score'] != b['score']:
                        self.log(
                            f'[protocol] {rel}: {other} has score '
                            f'{a["score"]}, kept {b["score"]} of '
                            f'{self.work_dir}'
                        )
                    continue
                os.makedirs(osp.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst + '.part')
                os.replace(dst + '.part', dst)
                copied += 1
        return copied

"""The dataset-specific plug of the protocol: FGVC and VTAB-1k tasks (split
names, data folders, recipe-table grids), and generic tasks from configs or
a task file.

Split names (VPT's protocol): VTAB-1k tunes on ``train800`` / ``val200`` and
trains the final runs on ``train800val200`` (all 1000), FGVC on ``train`` /
``val`` then ``trainval``; both test on ``test``.
"""

import ast
import os.path as osp

from lspt_mm.datasets.benchmarks import BENCHMARKS, FGVC_DATASETS
from lspt_mm.recipes import hparams_of, published_grid, read_recipe_table

from .protocol import AXES, ProtocolError, Splits, Task

SPLIT_SCHEMES = {
    'vtab1k': Splits('train800', 'val200', 'train800val200', 'test'),
    'fgvc': Splits('train', 'val', 'trainval', 'test'),
}


def splits_from(spec, key='split', template='{split}'):
    """A :class:`Splits` from a scheme name (``'vtab1k'``, ``'fgvc'``), a
    list of the four names (tune_train, val, final_train, test) or a dict
    of :class:`Splits` fields."""
    if isinstance(spec, Splits):
        return spec
    if isinstance(spec, str):
        if spec not in SPLIT_SCHEMES:
            raise ProtocolError(
                f'unknown split scheme {spec!r}; known: '
                f'{sorted(SPLIT_SCHEMES)}, or give the four '
                'names: tune_train val final_train test'
            )
        return SPLIT_SCHEMES[spec]
    if isinstance(spec, dict):
        return Splits(**{'key': key, 'template': template, **spec})
    spec = list(spec)
    if len(spec) != 4:
        raise ProtocolError(
            f'splits {spec}: give four names: tune_train '
            'val final_train test (e.g. train val trainval '
            'test)'
        )
    return Splits(*spec, key=key, template=template)


def parse_value(text):
    """A grid value from the command line: a Python literal, else text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def build_grid(
    named=(), explicit=None, batch_size=None, recipe=None, prompt_free=False
):
    """Grid axes from published grids (:data:`PUBLISHED_GRIDS` names in
    ``lspt_mm.recipes``; VPT's lr scaled by ``batch_size``) and
    ``explicit`` axes (they win). ``prompt_free``: drop ``num_prompts``
    (linear probe, full fine-tuning). ``recipe`` is unused for values: axes
    not in the grid keep the config's (the recipe's) value."""
    axes = {}
    for name in named or ():
        if name == 'recipe':
            continue
        if batch_size is None and name == 'vpt':
            raise ProtocolError(
                "grid 'vpt' scales the lr by batch/256: "
                'the task needs a batch size'
            )
        axes.update(published_grid(name, batch_size))
    axes.update(explicit or {})
    if prompt_free:
        axes.pop('num_prompts', None)
    return axes


def benchmark_tasks(
    benchmark,
    method,
    backbone,
    config,
    tasks=None,
    data_root=None,
    grids=(),
    explicit=None,
    prompt_free=False,
    recipes=None,
):
    """One :class:`Task` per dataset of ``benchmark`` (in the benchmark's
    group order), all on one benchmark config that takes the task as a
    setting (``cfg_options``: ``task``, ``method`` and, with ``recipes``,
    ``benchmark.recipes``), each with its recipe-table row as ``recipe``.

    Args:
        config (str): the benchmark config (e.g.
            ``configs/classification/lspt_vit-b16-mae_fgvc.py``; see
            :func:`lspt_mm.recipes.apply_task`).
        data_root (str): VTAB-1k: the ``vtab-1k`` folder; FGVC: the folder
            holding the dataset folders. None: the config's.
        grids / explicit: see :func:`build_grid`.
        recipes (str): a recipe table file (``read_recipe_table``) whose
            rows replace GaPT's.
    """
    if benchmark not in BENCHMARKS:
        raise ProtocolError(
            f'unknown benchmark {benchmark!r}; known: {sorted(BENCHMARKS)}'
        )
    known = BENCHMARKS[benchmark]['tasks']
    for name in tasks or ():
        if name not in known:
            raise ProtocolError(
                f'unknown {benchmark} task {name!r}; known: {list(known)}'
            )
    table = read_recipe_table(recipes, method) if recipes else None
    out = []
    for group, names in BENCHMARKS[benchmark]['groups'].items():
        for name in names:
            if tasks and name not in tasks:
                continue
            hp = hparams_of(backbone, benchmark, name, method, table)
            root = None
            if data_root is not None:
                root = (
                    data_root
                    if benchmark == 'vtab1k'
                    else osp.join(data_root, FGVC_DATASETS[name]['folder'])
                )
            recipe = dict(backbone=backbone, benchmark=benchmark, task=name)
            recipe.update({k: v for k, v in hp.items() if k != 'source'})
            recipe['untuned_source'] = hp['source']
            options = {'task': name, 'method': method}
            if recipes:
                options['benchmark.recipes'] = recipes
            out.append(
                Task(
                    name=name,
                    config=config,
                    splits=SPLIT_SCHEMES[benchmark],
                    grid=build_grid(
                        grids,
                        explicit,
                        hp['batch_size'],
                        prompt_free=prompt_free,
                    ),
                    group=group,
                    data_root=root,
                    cfg_options=options,
                    recipe=recipe,
                )
            )
    return out


def config_tasks(
    configs,
    splits,
    names=None,
    group='all',
    data_root=None,
    grid=None,
    split_key='split',
):
    """One :class:`Task` per config (name: the config's file stem, or
    ``names``), all with the same splits and grid: e.g. several methods on
    one dataset."""
    names = names or [osp.splitext(osp.basename(c))[0] for c in configs]
    if len(names) != len(configs):
        raise ProtocolError(f'{len(names)} names for {len(configs)} configs')
    return [
        Task(
            name=n,
            config=c,
            splits=splits_from(splits, split_key),
            grid=dict(grid or {}),
            group=group,
            data_root=data_root,
        )
        for n, c in zip(names, configs)
    ]


def load_task_file(path):
    """Tasks and defaults from a task file (an mmengine config, ``.py`` /
    ``.json`` / ``.yaml``)::

        tasks = [
            dict(name='lspt', config='configs/x_lspt.py', splits='fgvc'),
            dict(name='gapt', config='configs/x_gapt.py',
                 splits=['train', 'val', 'trainval', 'test'],
                 grid=dict(lr=[0.1, 1.0]), group='CUB', data_root='data/x',
                 cfg_options={'train_cfg.max_epochs': 50}),
        ]
        grid = dict(lr=[0.01, 0.1, 1.0])   # default grid of every task
        seeds = [0, 1, 2]                  # optional defaults for the CLI
        tune_seeds = [0]
        metric = 'accuracy/top1'

    Relative config paths are taken from the current directory, as the
    tools do. Returns ``(tasks, defaults)``."""
    from mmengine.config import Config

    cfg = Config.fromfile(path).to_dict()
    if not cfg.get('tasks'):
        raise ProtocolError(
            f'{path}: no `tasks` list (see '
            'lspt_mm.tuning.benchmark.load_task_file)'
        )
    default_grid = cfg.get('grid') or {}
    tasks = []
    for i, spec in enumerate(cfg['tasks']):
        spec = dict(spec)
        missing = [k for k in ('name', 'config', 'splits') if k not in spec]
        if missing:
            raise ProtocolError(f'{path}: tasks[{i}] lacks {missing}')
        splits = splits_from(
            spec.pop('splits'),
            key=spec.pop('split_key', 'split'),
            template=spec.pop('split_template', '{split}'),
        )
        grid = dict(default_grid)
        grid.update(spec.pop('grid', None) or {})
        unknown = set(spec) - {
            'name',
            'config',
            'group',
            'data_root',
            'cfg_options',
            'recipe',
        }
        if unknown:
            raise ProtocolError(
                f'{path}: tasks[{i}] has unknown keys {sorted(unknown)}'
            )
        tasks.append(Task(splits=splits, grid=grid, **spec))
    defaults = {
        k: cfg[k] for k in ('seeds', 'tune_seeds', 'metric') if k in cfg
    }
    return tasks, defaults


__all__ = [
    'AXES',
    'SPLIT_SCHEMES',
    'splits_from',
    'parse_value',
    'build_grid',
    'benchmark_tasks',
    'config_tasks',
    'load_task_file',
]

"""The papers' tuning protocol: a grid on the validation split, a fixed
choice rule, final runs on train+val over seeds, resumable and shardable
(:mod:`.protocol`); summaries and recipe tables (:mod:`.report`); FGVC /
VTAB-1k tasks and generic tasks from configs (:mod:`.benchmark`).
``tools/run_benchmark.py`` is the command line."""

from .benchmark import (
    SPLIT_SCHEMES,
    benchmark_tasks,
    build_grid,
    config_tasks,
    load_task_file,
    splits_from,
)
from .protocol import (
    AXES,
    RULE,
    Protocol,
    ProtocolError,
    Splits,
    Task,
    Unit,
    choose_point,
    grid_points,
    parse_shard,
    point_id,
    train_and_evaluate,
)
from .report import recipe_table, task_rows, write_recipe_table, write_summary

__all__ = [
    'AXES',
    'RULE',
    'SPLIT_SCHEMES',
    'Protocol',
    'ProtocolError',
    'Splits',
    'Task',
    'Unit',
    'benchmark_tasks',
    'build_grid',
    'choose_point',
    'config_tasks',
    'grid_points',
    'load_task_file',
    'parse_shard',
    'point_id',
    'recipe_table',
    'splits_from',
    'task_rows',
    'train_and_evaluate',
    'write_recipe_table',
    'write_summary',
]

"""mmengine's ``Runner.from_cfg`` on this project's configs.

``Runner.from_cfg(Config.fromfile(C))`` is how many users (and mmseg's and
mmpretrain's own tools) start a run. A shipped config is complete when it
is loaded (benchmark configs resolve their default task:
:func:`lspt_mm.recipes.complete_config`), but ``task=`` /
``method=`` set afterwards (``Config.merge_from_dict``, ``--cfg-options``)
must be re-resolved, as ``tools/train.py`` does. :func:`install` (called by
``import lspt_mm``, which every config's ``custom_imports`` does) wraps
``Runner.from_cfg`` once so that it first calls :func:`prepare_config`:

- benchmark configs: :func:`~lspt_mm.recipes.apply_task`
  (idempotent: a config already resolved for its task is unchanged), which
  logs the recipe row;
- every config: :func:`check_hooks` (a run's hooks come from the config:
  nothing is added, a missing one is an error).

Configs that are not this project's (no ``benchmark`` and no data-driven
``prompt_init``) are passed through untouched. The config given is
resolved in place, so it shows what runs. ``runner_type`` is honoured by
``RUNNERS.build`` and by mmseg's / mmpretrain's ``tools/train.py``, not by a
direct ``Runner.from_cfg`` (mmengine's behaviour); ``ConciseRunner`` only
sends set-up dumps to the log file, the run is the same.
"""

from lspt_mm.recipes import apply_task

from mmengine.runner import Runner

from .prompt_init_hook import _asks_for_data


def check_hooks(cfg):
    """Raise ``ValueError`` when the model asks for a data-driven
    ``prompt_init`` and ``custom_hooks`` lacks ``PromptInitHook`` (the
    prompts would silently stay uniform)."""

    if not _asks_for_data(cfg.get('model', None)):
        return
    hooks = cfg.get('custom_hooks', None) or []
    if any(
        str(h.get('type', '')).split('.')[-1] == 'PromptInitHook'
        for h in hooks
        if isinstance(h, dict)
    ):
        return
    where = getattr(cfg, 'filename', None) or 'the config'
    raise ValueError(
        f'{where}: the model has a data-driven prompt_init but custom_hooks '
        "has no dict(type='PromptInitHook'), so the prompts would stay "
        'uniform; add it (configs/_base_/cls_runtime.py and seg_runtime.py '
        'list it)'
    )


def prepare_config(cfg, log=True):
    """Resolve ``cfg`` (in place) as every entry point does before building
    a runner or a model: the benchmark task and method
    (:func:`~lspt_mm.recipes.apply_task`) and the hook check.
    Returns the recipe (None for a config that is not a benchmark
    config)."""

    recipe = apply_task(cfg, log=log)
    check_hooks(cfg)
    return recipe


def _from_cfg(cls, cfg):
    prepare_config(cfg)
    return _from_cfg.original(cls, cfg)


def install():
    """Wrap ``Runner.from_cfg`` with :func:`prepare_config` (once: calling
    it again changes nothing). Returns whether it wrapped it now."""
    current = Runner.__dict__['from_cfg'].__func__
    if getattr(current, '_lspt_mm', False):
        return False
    _from_cfg.original = current
    _from_cfg._lspt_mm = True
    Runner.from_cfg = classmethod(_from_cfg)
    return True


install()

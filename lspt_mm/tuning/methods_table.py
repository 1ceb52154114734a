"""Every method on one dataset with one frozen backbone, through the tuning
protocol: the real-weights table (frozen DINOv2-S/14 on Fashion-MNIST here;
any MAE / MoCo v3 / DINOv2 file and any classification config elsewhere).

Each method is a :class:`~lspt_mm.tuning.Task` of the same config with its
own ``prompt_method``; size knobs (images per class, image size, epochs,
prompt count, weights) become ``cfg_options`` common to all runs, so the
table is the protocol's ordinary summary (choice on val, mean ± std of test
over seeds).
"""

from lspt_mm.models.methods import METHODS
from lspt_mm.models.prompt_init import PROMPT_INITS

from .benchmark import splits_from
from .protocol import ProtocolError, Task

# prompt_method -> row title, in the order of the method table
# (lspt_mm/models/methods.py): the methods that the one option
# `model.backbone.prompt_method` selects on a frozen-backbone config (full
# fine-tuning and LoRA change more than that); 'none' is the linear probe's
# older name
METHOD_TITLES = {
    name: spec.title
    for name, spec in METHODS.items()
    if spec.freeze_backbone and not spec.wrapper
}
METHOD_TITLES['none'] = METHODS['linear'].title
# the real-weights table's rows: the linear probe and every prompt method
PROMPT_TABLE_METHODS = [
    name
    for name, spec in METHODS.items()
    if name == 'linear' or spec.uses_prompts
]


def size_options(
    img_size=None,
    epochs=None,
    per_class=None,
    weights=None,
    arch=None,
    num_prompts=None,
    pipelines=('train', 'val', 'test'),
):
    """``cfg_options`` for the size knobs of a real-weights config.

    Args:
        img_size (int): backbone ``img_size`` and the first (``Resize``)
            transform of every pipeline.
        epochs (int): ``max_epochs`` with the one-epoch warm-up then cosine
            schedule of the config (``param_scheduler[1]``), one evaluation
            and one checkpoint at the end.
        per_class (dict): e.g. ``dict(train=60, val=20, test=100)``: the
            dataset's ``<split>_per_class`` on every loader.
        weights (str): the backbone's ``pretrained`` file.
        arch (str): the backbone arch; patch size and LayerScale then
            follow the arch (``PromptedViT.ARCH_DEFAULTS``).
        num_prompts (int): ``N_p`` of every prompt method.
    """
    opts = {}
    if img_size is not None:
        opts['model.backbone.img_size'] = img_size
        for name in pipelines:
            opts[f'{name}_dataloader.dataset.pipeline.0.scale'] = (
                img_size,
                img_size,
            )
    if epochs is not None:
        if epochs < 2:
            raise ProtocolError(
                'epochs must be >= 2 (1 warm-up epoch, then cosine)'
            )
        opts.update(
            {
                'train_cfg.max_epochs': epochs,
                'train_cfg.val_interval': epochs,
                'param_scheduler.1.T_max': epochs - 1,
                'param_scheduler.1.end': epochs,
                'default_hooks.checkpoint.interval': epochs,
            }
        )
    for split, n in (per_class or {}).items():
        for name in pipelines:
            opts[f'{name}_dataloader.dataset.{split}_per_class'] = n
    if weights is not None:
        opts['model.backbone.pretrained'] = weights
    if arch is not None:
        opts.update(
            {
                'model.backbone.arch': arch,
                'model.backbone.patch_size': None,
                'model.backbone.layer_scale_init_value': None,
            }
        )
    if num_prompts is not None:
        opts['model.backbone.num_prompts'] = num_prompts
    return opts


def method_tasks(
    config,
    methods,
    grid,
    splits=('train', 'val', 'trainval', 'test'),
    group='all',
    prompt_inits=(None,),
    method_grids=None,
):
    """One task per method and prompt initialisation on ``config``.

    A task is named by its ``prompt_method`` (``<method>+<init>`` for a
    ``prompt_init`` other than the default), and sets only those two
    options. Methods without prompts get no prompt axis and no init
    variants. ``method_grids`` (``{method: grid}``) replaces ``grid`` for a
    method, e.g. its lr chosen by an earlier table, so the init variants are
    compared at that lr.
    """

    unknown = [m for m in methods if m not in METHOD_TITLES]
    if unknown:
        raise ProtocolError(
            f'unknown methods {unknown}; known: {list(METHOD_TITLES)}'
        )
    bad = [i for i in prompt_inits if i is not None and i not in PROMPT_INITS]
    if bad:
        raise ProtocolError(
            f'unknown prompt inits {bad}; known: {list(PROMPT_INITS)}'
        )
    tasks = []
    for method in methods:
        uses_prompts = METHODS[
            method if method != 'none' else 'linear'
        ].uses_prompts
        task_grid = dict((method_grids or {}).get(method, grid))
        if not uses_prompts:
            task_grid.pop('num_prompts', None)
        for init in prompt_inits if uses_prompts else (None,):
            name, title = method, METHOD_TITLES[method]
            options = {'model.backbone.prompt_method': method}
            if init not in (None, 'uniform'):
                name, title = f'{method}+{init}', f'{title}, {init} init'
                options['model.backbone.prompt_init'] = init
            tasks.append(
                Task(
                    name=name,
                    config=config,
                    splits=splits_from(list(splits)),
                    grid=task_grid,
                    group=group,
                    cfg_options=options,
                    recipe=dict(title=title),
                )
            )
    return tasks

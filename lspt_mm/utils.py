"""Parameter accounting."""

from mmengine.hooks import Hook
from mmengine.logging import MMLogger, print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def count_parameters(model):
    """Returns ``(trainable, total)`` parameter counts."""
    total = trainable = 0
    for p in model.parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def what_trains(model):
    """What trains, in words: each prompted backbone's method (its table
    line: title and what it trains) and the trainable count per top-level
    module, e.g. ``'method lspt_bias (LSPT + bias: as LSPT, and every
    bias of the ViT); backbone 1,234,567, decode_head 89,012'``."""
    from .models.checkpoint_policy import prompted_backbones
    from .models.methods import METHODS

    lora_model = any(type(m).__name__ == 'LoRAModel' for m in model.modules())
    parts = []
    for _, vit in prompted_backbones(model):
        name = 'lora' if lora_model else vit.method_name
        spec = METHODS.get(name)
        parts.append(
            f'method {name}'
            + (f' ({spec.title}: {spec.trains})' if spec else '')
        )
    counts = {}
    for key, p in model.named_parameters():
        if p.requires_grad:
            top = key.split('.')[0]
            counts[top] = counts.get(top, 0) + p.numel()
    if counts:
        parts.append(', '.join(f'{k} {n:,}' for k, n in counts.items()))
    return '; '.join(parts)


def log_trainable_parameters(model, logger=None):
    """Print the trainable-parameter count, its share of the total and
    what trains (:func:`what_trains`)."""
    trainable, total = count_parameters(model)
    message = (
        f'trainable params: {trainable:,} of {total:,} '
        f'({100.0 * trainable / max(total, 1):.2f}%)'
    )
    detail = what_trains(model)
    if detail:
        message += '; ' + detail
    print_log(message, logger=logger or MMLogger.get_current_instance())
    return message


@HOOKS.register_module()
class TrainableParamsHook(Hook):
    """Logs the trainable-parameter count and share when training starts."""

    def before_train(self, runner):
        model = (
            runner.model.module
            if is_model_wrapper(runner.model)
            else runner.model
        )
        log_trainable_parameters(model, runner.logger)


def leaf_dataset_cfgs(dataset):
    """The leaf dataset dicts of a (possibly wrapped: ``dataset`` /
    ``datasets``) dataset config, e.g. to set a split or a data root."""
    if dataset.get('datasets') is not None:
        for ds in dataset['datasets']:
            yield from leaf_dataset_cfgs(ds)
    elif isinstance(dataset.get('dataset'), dict):
        yield from leaf_dataset_cfgs(dataset['dataset'])
    else:
        yield dataset

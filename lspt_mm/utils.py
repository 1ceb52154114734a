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


def log_trainable_parameters(model, logger=None):
    """Print the trainable-parameter count and its share of the total."""
    trainable, total = count_parameters(model)
    message = (f'trainable params: {trainable:,} of {total:,} '
               f'({100. * trainable / max(total, 1):.2f}%)')
    print_log(message, logger=logger or MMLogger.get_current_instance())
    return message


@HOOKS.register_module()
class TrainableParamsHook(Hook):
    """Logs the trainable-parameter count and share when training starts."""

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
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


def add_custom_hook(cfg, hook_type, why):
    """Append ``dict(type=hook_type)`` to ``cfg.custom_hooks`` unless the
    config has that hook already (with or without a scope prefix); log
    ``why`` when it is added. Returns whether it was added."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    if any(str(h.get('type', '')).split('.')[-1] == hook_type
           for h in hooks if isinstance(h, dict)):
        return False
    hooks.append(dict(type=hook_type))
    cfg.custom_hooks = hooks
    print_log(f'Added {hook_type} ({why}).', logger='current')
    return True

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
    message = (
        f'trainable params: {trainable:,} of {total:,} '
        f'({100.0 * trainable / max(total, 1):.2f}%)'
    )
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

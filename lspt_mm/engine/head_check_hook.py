"""The model's class count must be the data's, checked before the first
iteration.

A head with fewer outputs than the dataset has classes fails deep inside the
loss (``IndexError: Target 5 is out of bounds``, naming no setting); one
with more trains silently. :class:`HeadDataCheckHook` (in ``custom_hooks``
of the runtime configs) compares, before training / validation / testing
starts, the dataset's class count (``len(dataset.metainfo['classes'])``)
with

- mmpretrain: ``model.head.num_classes`` and
  ``model.data_preprocessor.num_classes`` (when set: batch augments use it);
- mmseg: ``model.decode_head.num_classes`` and each
  ``model.auxiliary_head``'s,

and stops with :class:`HeadDataMismatchError` naming both settings. A
dataset without class names in its metainfo is not checked.
"""

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .run_errors import RunStoppedError


class HeadDataMismatchError(RunStoppedError):
    """The model's class count differs from the dataset's."""


def model_class_counts(model):
    """``[(setting, num_classes), ...]`` of the class counts the model
    declares (the config keys that set them)."""
    model = model.module if is_model_wrapper(model) else model
    found = []
    head = getattr(model, 'head', None)
    if head is not None and getattr(head, 'num_classes', None) is not None:
        found.append(('model.head.num_classes', head.num_classes))
    pre = getattr(model, 'data_preprocessor', None)
    if getattr(pre, 'num_classes', None) is not None:
        found.append(('data_preprocessor.num_classes', pre.num_classes))
    decode = getattr(model, 'decode_head', None)
    if getattr(decode, 'num_classes', None) is not None:
        found.append(('model.decode_head.num_classes', decode.num_classes))
    aux = getattr(model, 'auxiliary_head', None)
    if aux is not None:
        heads = list(aux) if hasattr(aux, '__iter__') else [aux]
        for i, h in enumerate(heads):
            if getattr(h, 'num_classes', None) is not None:
                key = (
                    'model.auxiliary_head'
                    + (f'[{i}]' if len(heads) > 1 else '')
                    + '.num_classes'
                )
                found.append((key, h.num_classes))
    return found


def dataset_class_count(dataset):
    """``len(metainfo['classes'])``, or None when the dataset names none."""
    classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
    return None if classes is None else len(classes)


def check_head_against_data(model, dataset, which):
    """Raise :class:`HeadDataMismatchError` when a class count of ``model``
    differs from ``dataset``'s (``which``: e.g. ``'train_dataloader'``)."""
    n = dataset_class_count(dataset)
    if n is None:
        return
    wrong = [(k, v) for k, v in model_class_counts(model) if v != n]
    if not wrong:
        return
    settings = ', '.join(f'{k}={v}' for k, v in wrong)
    name = type(dataset).__name__
    root = getattr(dataset, 'data_root', None)
    raise HeadDataMismatchError(
        f'{settings}, but the dataset of {which} ({name}'
        f'{", data_root=" + repr(root) if root else ""}) has {n} classes '
        f"({which}.dataset's metainfo 'classes'). Set "
        f'{" and ".join(k for k, _ in wrong)} to {n}, or use data with '
        f'{wrong[0][1]} classes.'
    )


@HOOKS.register_module()
class HeadDataCheckHook(Hook):
    """See the module docstring."""

    priority = 'VERY_HIGH'

    def __init__(self):
        self._checked = set()

    def _check(self, runner, loop, which):
        if which in self._checked or loop is None:
            return
        self._checked.add(which)
        dataloader = getattr(loop, 'dataloader', None)
        if dataloader is not None:
            check_head_against_data(runner.model, dataloader.dataset, which)

    def before_train(self, runner):
        self._check(runner, runner.train_loop, 'train_dataloader')

    def before_val(self, runner):
        self._check(runner, runner.val_loop, 'val_dataloader')

    def before_test(self, runner):
        self._check(runner, runner.test_loop, 'test_dataloader')

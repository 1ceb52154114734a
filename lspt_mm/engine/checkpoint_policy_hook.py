"""The runner's ``load_from`` and ``--resume`` under the checkpoint policy.

mmengine's ``Runner.load_checkpoint`` loads with ``strict=False``: a
checkpoint of another prompt method, ``N_p`` or ``num_classes`` then loads
with the unmatched parts left random, and only a warning in the log says so.
:class:`CheckpointPolicyHook` checks the checkpoint against the model right
after it is read and before any weight is copied (mmengine calls
``after_load_checkpoint`` in between), and stops with one message naming what
does not fit (:mod:`lspt_mm.models.checkpoint_policy`).
"""

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..models.checkpoint_policy import check_checkpoint


def _checkpoint_name(runner):
    """The file the runner is loading (for messages)."""
    load_from = getattr(runner, '_load_from', None)
    if load_from is not None:
        return str(load_from)
    if getattr(runner, '_resume', False):
        from mmengine.runner.checkpoint import find_latest_checkpoint

        latest = find_latest_checkpoint(runner.work_dir)
        if latest is not None:
            return str(latest)
    return 'the checkpoint'


@HOOKS.register_module()
class CheckpointPolicyHook(Hook):
    """Refuse a ``load_from`` / ``--resume`` checkpoint that does not fit the
    model: every trainable tensor must be found with the model's shape, no
    key left over (a trainable-only checkpoint takes the frozen ViT from
    ``pretrained``). ``tools/train.py`` and ``tools/test.py`` add it when a
    config lacks it."""

    priority = 'VERY_HIGH'  # before any other hook reads the checkpoint

    def after_load_checkpoint(self, runner, checkpoint):
        check_checkpoint(runner.model, checkpoint, _checkpoint_name(runner))

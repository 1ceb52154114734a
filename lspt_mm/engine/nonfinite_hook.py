"""Stop (or skip) a training step whose loss or gradient is not finite.

Without it a diverged run trains to the end on ``loss: nan``, exits 0 and
saves NaN weights. :class:`NonFiniteLossHook` (in ``custom_hooks`` of the
runtime configs) looks at every step *before* the optimiser applies it:

- the loss given to the optimiser wrapper (``OptimWrapper.backward``), and
- the gradients of the trained parameters (before ``OptimWrapper.step``;
  not under mmengine's ``AmpOptimWrapper``, whose loss scaler already
  skips steps with inf / NaN gradients and lowers the scale).

``action='stop'`` (default): the step is not applied and the run stops with
:class:`NonFiniteLossError` naming the iteration, every loss term and the
learning rate; no checkpoint is written after it (the last one on disk is
from before the divergence) and ``tools/train.py`` exits with status 1.
``action='skip'``: the step is not applied, a warning names it, training
goes on; the count is reported at the end, and more than ``max_skips``
skipped steps (if set) stop the run as ``'stop'`` does.

In both modes a checkpoint about to be saved is checked too: a non-finite
model tensor stops the run before it is written.
"""

import math

import torch

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from .run_errors import RunStoppedError


class NonFiniteLossError(RunStoppedError):
    """A training step had a non-finite loss or gradient."""


def _finite(t):
    return bool(torch.isfinite(t.detach()).all())


def _fmt(value):
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        return str(value)
    return f'{v:.4g}'


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """See the module docstring.

    Args:
        action (str): ``'stop'`` (default) or ``'skip'``.
        max_skips (int, optional): with ``'skip'``, stop after this many
            skipped steps (None: never).
        check_grads (bool): also check the gradients (default True).
    """

    priority = 'VERY_HIGH'  # after_train_iter before the checkpoint hook

    def __init__(self, action='stop', max_skips=None, check_grads=True):
        if action not in ('stop', 'skip'):
            raise ValueError(
                "NonFiniteLossHook: action must be 'stop' or "
                f"'skip', got {action!r}"
            )
        if max_skips is not None and (
            not isinstance(max_skips, int) or max_skips < 0
        ):
            raise ValueError(
                'NonFiniteLossHook: max_skips must be None or '
                f'an int >= 0, got {max_skips!r}'
            )
        self.action = action
        self.max_skips = max_skips
        self.check_grads = check_grads
        self.skipped = []  # iterations
        self._bad = None  # what was not finite in this step

    # ---------------------------------------------- watching the optimiser
    def before_train(self, runner):
        wrappers = runner.optim_wrapper
        wrappers = (
            list(wrappers.values())
            if isinstance(wrappers, OptimWrapperDict)
            else [wrappers]
        )
        model = (
            runner.model.module
            if is_model_wrapper(runner.model)
            else runner.model
        )
        names = {id(p): n for n, p in model.named_parameters()}
        for wrapper in wrappers:
            self._watch(wrapper, names)

    def _watch(self, wrapper, names):
        if getattr(wrapper, '_nonfinite_hook', None) is self:
            return
        wrapper._nonfinite_hook = self
        backward, step = wrapper.backward, wrapper.step
        check_grads = self.check_grads and not isinstance(
            wrapper, AmpOptimWrapper
        )
        hook = self

        def checked_backward(loss, **kwargs):
            if hook._bad is None and not _finite(loss):
                hook._bad = 'loss'
            if hook._bad is not None:
                # no backward of a NaN loss (no NaN gradients); counted as
                # mmengine's backward counts, for gradient accumulation
                wrapper._inner_count += 1
                return None
            return backward(loss, **kwargs)

        def checked_step(**kwargs):
            if hook._bad is None and check_grads:
                bad = [
                    names.get(id(p), 'a parameter')
                    for group in wrapper.optimizer.param_groups
                    for p in group['params']
                    if p.grad is not None and not _finite(p.grad)
                ]
                if bad:
                    hook._bad = (
                        'gradient of '
                        + ', '.join(bad[:5])
                        + (f' (+{len(bad) - 5} more)' if len(bad) > 5 else '')
                    )
            if hook._bad is not None:
                return None  # the step is not applied
            return step(**kwargs)

        wrapper.backward = checked_backward
        wrapper.step = checked_step

    # ------------------------------------------------------ after the step
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._bad = None

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        if self._bad is None:
            # a loss term can be NaN while the total is not (never summed)
            bad_terms = [
                k
                for k, v in (outputs or {}).items()
                if 'loss' in k and not _is_finite_value(v)
            ]
            if not bad_terms:
                return
            self._bad = 'loss term ' + ', '.join(bad_terms)
        bad, self._bad = self._bad, None
        it = runner.iter + 1
        terms = ', '.join(
            f'{k}={_fmt(v)}' for k, v in (outputs or {}).items() if 'loss' in k
        )
        lr = ', '.join(  # one value per distinct lr of the groups
            f'{k}={"/".join(dict.fromkeys(_fmt(x) for x in v))}'
            for k, v in runner.optim_wrapper.get_lr().items()
        )
        where = f'iteration {it}'
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        what = (
            f'non-finite {bad} at {where}: {terms or "no loss terms"} ({lr})'
        )
        if self.action == 'skip':
            self.skipped.append(it)
            if self.max_skips is None or len(self.skipped) <= self.max_skips:
                runner.logger.warning(
                    f'{what}; step skipped (not applied; '
                    f'{len(self.skipped)} so far)'
                )
                return
            what += (
                f'; {len(self.skipped)} steps skipped, more than '
                f'max_skips={self.max_skips}'
            )
        last = runner.message_hub.get_info('last_ckpt')
        kept = (
            f'the last checkpoint, {last}, is from before it'
            if last
            else 'no checkpoint was saved'
        )
        msg = (
            f'Training stopped: {what}. The step was not applied and '
            f'{kept}. Lower the learning rate (optim_wrapper.optimizer.'
            'lr), add gradient clipping (optim_wrapper.clip_grad), or set '
            "action='skip' on NonFiniteLossHook to skip such steps."
        )
        runner.logger.error(msg)
        raise NonFiniteLossError(msg)

    def after_train(self, runner):
        if self.skipped:
            shown = ', '.join(map(str, self.skipped[:20]))
            more = ', ...' if len(self.skipped) > 20 else ''
            runner.logger.warning(
                f'NonFiniteLossHook: {len(self.skipped)} training step(s) '
                'had a non-finite loss or gradient and were skipped '
                f'(iterations {shown}{more})'
            )

    # ------------------------------------------------- no NaN checkpoints
    def before_save_checkpoint(self, runner, checkpoint):
        bad = [
            k
            for k, v in checkpoint.get('state_dict', {}).items()
            if torch.is_tensor(v) and v.is_floating_point() and not _finite(v)
        ]
        if bad:
            msg = (
                f'Not saving the checkpoint at iteration {runner.iter}: '
                f'non-finite values in {", ".join(bad[:5])}'
                f'{" ..." if len(bad) > 5 else ""}; the last checkpoint '
                'on disk is kept.'
            )
            runner.logger.error(msg)
            raise NonFiniteLossError(msg)


def _is_finite_value(v):
    if torch.is_tensor(v):
        return _finite(v)
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return True

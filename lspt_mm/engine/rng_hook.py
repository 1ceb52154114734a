"""Exact resume: the torch random state travels with the checkpoint.

mmengine's resume restores model, optimiser, schedulers and the position in
the data stream (an iteration-based loop replays the sampler and the data
pipeline up to the resumed iteration, so numpy / python ``random`` used by
the transforms end up where they were). It does not restore the *torch*
random state, which drives dropout and the prompts' dropout, so a resumed run
drifts from an uninterrupted one. This hook

- stores ``torch`` (and CUDA) RNG states in every checkpoint,
- restores them where the uninterrupted run was when it saved: before the
  next epoch's data iterator is opened (epoch-based loops; opening it draws
  the workers' base seed from the torch RNG), or before the first training
  iteration (iteration-based loops, after the data replay),
- gives an iteration-based loop's train dataloader its own seeded
  ``torch.Generator``, so the data iterators it reopens at every pass over
  the data (during the replay too) never draw from the global RNG,
- keeps validation neutral to the torch RNG (the validation dataloader draws
  a seed from it when it starts), so a checkpoint's state is the one the next
  training iteration uses.
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def _get_state():
    state = {'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_state(state):
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RNGStateHook(Hook):
    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None
        self._val_state = None

    def before_run(self, runner):
        # the built loop only: a test run has none (and must not build one)
        loop = getattr(runner, '_train_loop', None)
        if isinstance(loop, IterBasedTrainLoop) and \
                loop.dataloader.generator is None:
            loop.dataloader.generator = torch.Generator().manual_seed(
                runner.seed or 0)

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = _get_state()

    def after_load_checkpoint(self, runner, checkpoint):
        if 'rng_state' in checkpoint:
            self._pending = checkpoint['rng_state']

    def before_train_epoch(self, runner):
        if self._pending is not None and not isinstance(
                runner.train_loop, IterBasedTrainLoop):
            _set_state(self._pending)
            self._pending = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._pending is not None:
            _set_state(self._pending)
            self._pending = None

    def before_val_epoch(self, runner):
        self._val_state = _get_state()

    def after_val_epoch(self, runner, metrics=None):
        if self._val_state is not None:
            _set_state(self._val_state)
            self._val_state = None

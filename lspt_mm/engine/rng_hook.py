"""Exact resume: the torch random state travels with the checkpoint.

mmengine's resume restores model, optimiser, schedulers and the position in
the data stream (an iteration-based loop replays the sampler and the data
pipeline up to the resumed iteration, so numpy / python ``random`` used by
the transforms end up where they were). It does not restore the *torch*
random state, which drives dropout and the prompts' dropout, so a resumed run
drifts from an uninterrupted one. This hook

- stores ``torch`` (and CUDA) RNG states in every checkpoint,
- restores them right before the first training iteration after a resume,
- keeps validation neutral to the torch RNG (the validation dataloader draws
  a seed from it when it starts), so a checkpoint's state is the one the next
  training iteration uses.
"""
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


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

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = _get_state()

    def after_load_checkpoint(self, runner, checkpoint):
        if 'rng_state' in checkpoint:
            self._pending = checkpoint['rng_state']

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

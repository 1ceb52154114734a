"""Exact resume: the random states travel with the checkpoint.

mmengine's resume restores model, optimiser, schedulers and the position in
the data stream (an iteration-based loop replays the sampler and the data
pipeline up to the resumed iteration, so numpy / python ``random`` used by
the transforms end up where they were). It does not restore the *torch*
random state, which drives dropout and the prompts' dropout, so a resumed run
drifts from an uninterrupted one; and an epoch-based loop (classification)
replays nothing, so the numpy / python ``random`` states that the random
transforms of the main process draw from (``num_workers=0``: RandomCrop,
RandomFlip, ...) start the resumed epoch where a fresh process starts them.
This hook

- stores the ``torch`` (and CUDA), numpy and python ``random`` states in
  every checkpoint,
- restores them where the uninterrupted run was when it saved: before the
  next epoch's data iterator is opened (epoch-based loops; opening it draws
  the workers' base seed from the torch RNG), or before the first training
  iteration (iteration-based loops, after the data replay). There only the
  torch (and CUDA) states are restored: the replay already brought numpy /
  python ``random`` to where they were, and ``before_train_iter`` runs
  after the first batch was drawn, so setting them back then would hand the
  next batch's transforms the draws of the batch before it,
- gives an iteration-based loop's train dataloader its own seeded
  ``torch.Generator``, so the data iterators it reopens at every pass over
  the data (during the replay too) never draw from the global RNG,
- keeps validation neutral to these states (the validation dataloader draws
  a seed from the torch RNG when it starts), so a checkpoint's state is the
  one the next training iteration uses.

Dataloader workers (``num_workers > 0``) seed their numpy / python /
torch states from mmengine's ``worker_init_fn`` (seed, rank, worker id) each
time the epoch's iterator starts them, so resumed epochs match too; with
``persistent_workers=True`` the workers keep their states across epochs and
a resumed run (fresh workers) cannot match: the hook warns.
"""

import random

import numpy as np
import torch

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop


def _get_state():
    state = {
        'torch': torch.get_rng_state(),
        'numpy': _numpy_state_to_plain(np.random.get_state()),
        'python': _python_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_state(state):
    torch.set_rng_state(state['torch'])
    if 'numpy' in state:
        np.random.set_state(_numpy_state_from_plain(state['numpy']))
    if 'python' in state:
        random.setstate(_python_state_from_plain(state['python']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# numpy / python states as tensors and plain values: what a weights-only
# checkpoint reader accepts (no pickled numpy arrays or tuples of objects
# beyond the allow-list)
def _numpy_state_to_plain(state):
    name, keys, pos, has_gauss, cached = state
    return {
        'name': name,
        'keys': torch.from_numpy(keys.astype(np.int64)),
        'pos': int(pos),
        'has_gauss': int(has_gauss),
        'cached_gaussian': float(cached),
    }


def _numpy_state_from_plain(plain):
    return (
        plain['name'],
        plain['keys'].numpy().astype(np.uint32),
        plain['pos'],
        plain['has_gauss'],
        plain['cached_gaussian'],
    )


def _python_state_to_plain(state):
    version, internal, gauss_next = state
    return {
        'version': version,
        'internal': torch.tensor(internal, dtype=torch.int64),
        'gauss_next': gauss_next,
    }


def _python_state_from_plain(plain):
    return (
        plain['version'],
        tuple(plain['internal'].tolist()),
        plain['gauss_next'],
    )


@HOOKS.register_module()
class RNGStateHook(Hook):
    priority = 'VERY_LOW'

    def __init__(self):
        self._pending = None
        self._val_state = None

    def before_run(self, runner):
        # the built loop only: a test run has none (and must not build one)
        loop = getattr(runner, '_train_loop', None)
        loader = getattr(loop, 'dataloader', None)
        if (
            getattr(loader, 'persistent_workers', False)
            and getattr(loader, 'num_workers', 0) > 0
        ):
            runner.logger.warning(
                'RNGStateHook: train_dataloader.persistent_workers=True keeps '
                "the workers' random states across epochs; a resumed run "
                'starts fresh workers, so its random augmentations differ '
                'from an uninterrupted run (persistent_workers=False resumes '
                'exactly)'
            )
        if (
            isinstance(loop, IterBasedTrainLoop)
            and loop.dataloader.generator is None
        ):
            loop.dataloader.generator = torch.Generator().manual_seed(
                runner.seed or 0
            )

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['rng_state'] = _get_state()

    def after_load_checkpoint(self, runner, checkpoint):
        if 'rng_state' in checkpoint:
            self._pending = checkpoint['rng_state']

    def before_train_epoch(self, runner):
        if self._pending is not None and not isinstance(
            runner.train_loop, IterBasedTrainLoop
        ):
            _set_state(self._pending)
            self._pending = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self._pending is not None:
            # iteration-based loop: this batch was already drawn after the
            # replay, which brought numpy / python ``random`` to where they
            # were at the save; only torch's state (dropout) is restored
            state = {
                k: v
                for k, v in self._pending.items()
                if k not in ('numpy', 'python')
            }
            _set_state(state)
            self._pending = None

    def before_val_epoch(self, runner):
        self._val_state = _get_state()

    def after_val_epoch(self, runner, metrics=None):
        if self._val_state is not None:
            _set_state(self._val_state)
            self._val_state = None

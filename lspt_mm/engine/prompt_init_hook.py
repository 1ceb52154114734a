"""Data-driven prompt initialisation when training starts.

``PromptedViT(prompt_init='spt_kmeans' | 'vipamin' | ...)``
(:mod:`lspt_mm.models.prompt_init`) needs training images; this hook runs it
once, in ``before_train`` (after mmengine has built the model, initialised
its weights and loaded ``load_from`` / ``--resume`` checkpoints):

- a seeded sample of the training set (``num_images``, default 300 or the
  whole set if smaller), through the training pipeline and the model's data
  preprocessor (batch augments such as mixup off), the python / numpy /
  torch random states saved before and restored after (the training stream
  is the one a ``'uniform'`` run sees);
- the frozen backbone in eval mode under ``torch.no_grad()``; the prompt
  parameters set in place; one log line with the image count and the time;
- a resumed run, or one that loaded a checkpoint (``load_from``), keeps the
  prompts of its checkpoint and logs that instead;
- distributed runs: rank 0 computes, every rank receives its prompts
  (broadcast), so all ranks start from identical prompts (DDP only
  broadcasts parameters when it wraps the model, before this hook);
- test-only runs never call ``before_train``: they are unaffected, and so
  are configs whose backbones keep ``'uniform'`` (nothing is drawn).

The runtimes (``configs/_base_/*_runtime.py``) list the hook, so
``--cfg-options model.backbone.prompt_init=spt_kmeans`` works on any shipped
config; a config that asks for a data-driven init without the hook is refused
when its runner is built (:func:`lspt_mm.engine.from_cfg.check_hooks`).
"""

import random

import numpy as np
import torch

from mmengine.dist import (
    broadcast,
    broadcast_object_list,
    get_rank,
    is_distributed,
)
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..models.checkpoint_policy import prompted_backbones, unwrap_model
from ..models.prompt_init import PROMPT_INITS


def _rng_states():
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_states(state):
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state:
        torch.cuda.set_rng_state_all(state['cuda'])


def _seed_all(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sample_batches(model, dataset, indices, batch_size, collate_fn=None):
    """Preprocessed image batches (B, 3, H, W) of ``dataset[indices]``:
    the dataset's (training) pipeline, ``collate_fn`` (default mmengine's
    ``pseudo_collate``) and ``model.data_preprocessor`` in training mode
    without batch augments (padding / stacking as in training)."""
    from mmengine.dataset import pseudo_collate

    collate_fn = collate_fn or pseudo_collate
    preprocessor = model.data_preprocessor
    for chunk in torch.as_tensor(indices).split(batch_size):
        data = collate_fn([dataset[int(i)] for i in chunk])
        augments = getattr(preprocessor, 'batch_augments', None)
        if augments is not None:
            preprocessor.batch_augments = None
        try:
            data = preprocessor(data, True)
        finally:
            if augments is not None:
                preprocessor.batch_augments = augments
        yield data['inputs']


@HOOKS.register_module()
class PromptInitHook(Hook):
    """Compute every backbone's data-driven ``prompt_init`` before training.

    Args:
        num_images (int, optional): training images in the sample; None:
            the backbone's ``prompt_init`` option (default 300).
        batch_size (int, optional): images per forward; None: the
            ``prompt_init``'s (default 32).
        seed (int, optional): seed of the sample, the pipeline's random
            transforms and the init's draws; None: the ``prompt_init``'s,
            else the run's ``randomness.seed``.
    """

    priority = 'HIGH'  # before hooks that read the weights in before_train

    def __init__(self, num_images=None, batch_size=None, seed=None):
        self.num_images = num_images
        self.batch_size = batch_size
        self.seed = seed

    @staticmethod
    def _targets(runner):
        model = unwrap_model(runner.model)
        return model, [
            (prefix, vit)
            for prefix, vit in prompted_backbones(model)
            if vit.prompt_init.needs_data
        ]

    def before_train(self, runner):
        model, targets = self._targets(runner)
        for prefix, vit in [
            t for t in targets if not t[1].prompt_method.prompt_set_blocks
        ]:
            runner.logger.info(
                f'{prefix or "backbone."}prompt_init={vit.prompt_init!r}: '
                f'{vit.method_name} has no prompts, nothing to set'
            )
        targets = [t for t in targets if t[1].prompt_method.prompt_set_blocks]
        if not targets:
            return
        names = ', '.join(
            f'{p or "backbone."}prompt_init={v.prompt_init!r}'
            for p, v in targets
        )
        if (
            getattr(runner, '_has_loaded', False)
            or runner.iter > 0
            or runner.epoch > 0
        ):
            runner.logger.info(
                f'{names}: kept the prompts of the loaded checkpoint '
                f'(resumed or load_from; iteration {runner.iter})'
            )
            return
        error = None
        if get_rank() == 0:
            try:
                self._compute(runner, model, targets)
            except Exception as err:  # every rank must leave the broadcast
                error = err
        if is_distributed():
            status = [
                None if error is None else f'{type(error).__name__}: {error}'
            ]
            broadcast_object_list(status, src=0)
            if status[0] is not None:
                raise RuntimeError(f'PromptInitHook on rank 0: {status[0]}')
            for _, vit in targets:
                broadcast(vit.prompt_method.prompts.data, src=0)
        if error is not None:
            raise error

    def _compute(self, runner, model, targets):
        dataset = runner.train_dataloader.dataset
        collate_fn = getattr(runner.train_dataloader, 'collate_fn', None)
        for prefix, vit in targets:
            init = vit.prompt_init
            num = self.num_images or init.num_images
            batch = self.batch_size or init.batch_size
            seed = self.seed if self.seed is not None else init.seed
            if seed is None:
                seed = runner.seed if runner.seed is not None else 0
            num = min(num, len(dataset))
            if num < 1:
                raise ValueError(
                    f'{prefix}prompt_init={init!r}: the training set is empty'
                )
            generator = torch.Generator().manual_seed(seed)
            indices = torch.randperm(len(dataset), generator=generator)[:num]
            device = vit.prompt_method.prompts.device
            saved = _rng_states()
            _seed_all(seed)
            try:
                batches = (
                    x.to(device)
                    for x in sample_batches(
                        model, dataset, indices, batch, collate_fn
                    )
                )
                info = init.apply(vit, batches, num, generator)
            finally:
                _set_rng_states(saved)
            method = vit.prompt_method
            runner.logger.info(
                f'{prefix or "backbone."}prompt_init={init!r}: '
                f'{info["sets"]} prompt set(s) of {method.method_name} '
                f'(blocks {list(method.prompt_set_blocks)}) from {num} '
                f'training images (seed {seed}) in {info["seconds"]:.2f} s'
            )


def _asks_for_data(node):
    """Whether a model config (nested dicts / lists) has a ``prompt_init``
    other than ``'uniform'``."""
    if isinstance(node, dict) or hasattr(node, 'items'):
        for key, value in node.items():
            if key == 'prompt_init' and value is not None:
                name = (
                    value
                    if isinstance(value, str)
                    else dict(value).get('type')
                )
                if (
                    name != 'uniform'
                    and name != PROMPT_INITS['uniform']['type']
                ):
                    return True
            elif _asks_for_data(value):
                return True
    elif isinstance(node, (list, tuple)):
        return any(_asks_for_data(v) for v in node)
    return False

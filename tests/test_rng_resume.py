"""Exact resume of the torch random state (prompt dropout) in epoch- and
iteration-based loops: a run killed after epoch / iteration k and resumed
ends with the same weights as one that was never interrupted."""

import copy

import pytest
import torch
import torch.nn as nn

import lspt_mm  # noqa: F401  (registers RNGStateHook)

from mmengine.model import BaseModel
from mmengine.runner import Runner


class DropoutModel(BaseModel):
    """A linear model behind dropout: every step draws from the torch RNG."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(8, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.fc(self.drop(inputs))
        if mode == 'loss':
            return dict(loss=((out.squeeze(1) - labels) ** 2).mean())
        return out


class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 12

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(
            inputs=torch.randn(8, generator=g),
            labels=torch.randn((), generator=g),
        )


def run(work_dir, by_epoch, resume_from=None):
    loader = dict(
        dataset=Data(),
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        collate_fn=dict(type='default_collate'),
    )
    train_cfg = (
        dict(by_epoch=True, max_epochs=4)
        if by_epoch
        else dict(by_epoch=False, max_iters=12)
    )
    runner = Runner(
        model=DropoutModel(),
        work_dir=str(work_dir),
        train_dataloader=loader,
        train_cfg=train_cfg,
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=1 if by_epoch else 3,
                by_epoch=by_epoch,
            )
        ),
        custom_hooks=[dict(type='RNGStateHook')],
        randomness=dict(seed=0),
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmengine',
        experiment_name=f'{work_dir.name}_'
        f'{by_epoch}_{resume_from is not None}',
    )
    runner.train()
    return copy.deepcopy(runner.model.state_dict())


@pytest.mark.parametrize('by_epoch', [True, False])
def test_resumed_run_ends_with_the_uninterrupted_weights(tmp_path, by_epoch):
    full = run(tmp_path / 'full', by_epoch)
    ckpt = tmp_path / 'full' / ('epoch_2.pth' if by_epoch else 'iter_6.pth')
    resumed = run(tmp_path / 'resumed', by_epoch, resume_from=str(ckpt))
    for key in full:
        assert torch.equal(full[key], resumed[key]), key

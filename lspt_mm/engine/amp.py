"""Mixed precision where mmengine's ``AmpOptimWrapper`` cannot run.

mmengine's ``AmpOptimWrapper`` (fp16 / bf16 autocast with a ``GradScaler``)
refuses to start without a CUDA, NPU, MLU or MUSA device. On CPU,
:class:`AutocastOptimWrapper` runs the forward under
``torch.autocast(device, dtype=bfloat16)`` and updates the float32 weights
as the plain ``OptimWrapper`` does: bf16 keeps float32's exponent range, so
no loss scaling is needed. ``tools/train.py --amp`` picks it on machines
without an accelerator.

Measured on a 4-block, 64-wide ViT (2 images, 2 prompts): the bf16 loss is
within 0.15% of float32's for every method of the method table and the
gradient of every trained tensor within 5% (relative L2; GaPT's temperatures
4.8%, LSPT's LSTM 1.3%; tests/test_amp.py). Computing LSPT's LSTM gates and
cell state in float32 changed its worst gradient error from 1.1% to 0.9% on
a 12-block ViT, so the cell follows autocast like every other layer.
"""

from contextlib import contextmanager

import torch

from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose ``optim_context`` (the forward of
    ``model.train_step``) runs under ``torch.autocast``.

    Args:
        dtype (str | torch.dtype): autocast dtype. Defaults to
            ``'bfloat16'`` (the CPU autocast dtype; float16 would need loss
            scaling: use ``AmpOptimWrapper`` on a GPU).
        device_type (str, optional): autocast device type; None: that of
            the model's first parameter.
        **kwargs: ``OptimWrapper``'s (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    def __init__(self, dtype='bfloat16', device_type=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(dtype, str):
            if not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(
                    f'AutocastOptimWrapper: dtype={dtype!r} is '
                    "not a torch dtype; use 'bfloat16'"
                )
            dtype = getattr(torch, dtype)
        if dtype == torch.float16:
            raise ValueError(
                'AutocastOptimWrapper has no loss scaling: float16 gradients '
                "underflow without it; use dtype='bfloat16' or mmengine's "
                'AmpOptimWrapper on a GPU'
            )
        self.cast_dtype = dtype
        self.device_type = device_type

    @contextmanager
    def optim_context(self, model):
        device = self.device_type
        if device is None:
            param = next(model.parameters(), None)
            device = 'cpu' if param is None else param.device.type
        with (
            super().optim_context(model),
            torch.autocast(device, dtype=self.cast_dtype),
        ):
            yield

"""Each compatibility fix is active only when needed, and does its job."""
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm import compat


def test_torchvision_stand_in_box_ops_match_definition():
    import torchvision.ops.boxes as boxes
    if not getattr(sys.modules['torchvision'], '_lspt_stand_in', False):
        pytest.skip('a real torchvision is installed')
    a = torch.tensor([[0., 0., 2., 2.], [1., 1., 3., 4.]])
    b = torch.tensor([[1., 1., 2., 2.], [5., 5., 6., 6.]])
    iou = boxes.box_iou(a, b)
    # overlap of a0 and b0 is 1x1; union 4 + 1 - 1
    assert torch.allclose(iou, torch.tensor([[0.25, 0.], [1 / 6, 0.]]))
    giou = boxes.generalized_box_iou(a, b)
    assert giou[0, 0] == iou[0, 0]  # b0 inside a0: hull is a0
    assert giou[0, 1] < 0  # disjoint boxes
    from mmpretrain.models.utils.box_utils import box_iou  # imports work
    assert torch.allclose(box_iou(a, b), iou)


def test_torchvision_wrapped_transform_fails_clearly():
    if not getattr(sys.modules['torchvision'], '_lspt_stand_in', False):
        pytest.skip('a real torchvision is installed')
    from torchvision.transforms import RandomResizedCrop
    with pytest.raises(RuntimeError, match='torchvision'):
        RandomResizedCrop(224)


def test_mmseg_imports_and_compiled_ops_fail_only_when_called():
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)
    import mmcv._ext as ext
    if 'mmcv_ext' not in compat.APPLIED:
        pytest.skip('full mmcv with compiled ops is installed')
    with pytest.raises(RuntimeError, match='nms.*mmcv-lite'):
        ext.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)


def test_fixes_are_idempotent_and_logged_once():
    before = list(compat.APPLIED)
    compat.apply_all()
    assert compat.APPLIED == before
    import mmengine.runner.checkpoint as ckpt
    assert isinstance(ckpt.torch, compat._TorchWithTrustedLoad)
    assert ckpt.torch.float32 is torch.float32  # everything else is torch's


def test_import_order_does_not_matter_for_tools():
    """`import lspt_mm` after mmengine (as via custom_imports) still works."""
    code = ('import mmengine.runner; import lspt_mm, mmseg.models, '
            'mmpretrain.models; from mmseg.registry import MODELS; '
            "print(MODELS.get('mmpretrain.PromptedViT').__name__)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == 'PromptedViT'

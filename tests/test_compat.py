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
    assert isinstance(ckpt.torch, compat._TorchWithSafeLoad)
    assert ckpt.torch.float32 is torch.float32  # everything else is torch's


def test_import_order_does_not_matter_for_tools():
    """`import lspt_mm` after mmengine (as via custom_imports) still works."""
    code = ('import mmengine.runner; import lspt_mm, mmseg.models, '
            'mmpretrain.models; from mmseg.registry import MODELS; '
            "print(MODELS.get('mmpretrain.PromptedViT').__name__)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == 'PromptedViT'


DDP_SCRIPT = '''
import os, sys, torch
import lspt_mm
from mmengine.dist import init_dist, get_rank, get_world_size
from mmengine.model import MMDistributedDataParallel
from lspt_mm.models import PromptedViT
init_dist('pytorch', backend='nccl')  # what the configs ask for on GPUs
torch.manual_seed(0)
vit = PromptedViT(arch=dict(embed_dims=16, num_layers=2, num_heads=2,
                            feedforward_channels=32), img_size=16,
                  patch_size=8, prompt_method='lspt', num_prompts=2,
                  prompt_dropout=0.)
ddp = MMDistributedDataParallel(vit, device_ids=[0])
torch.manual_seed(1 + get_rank())  # each rank its own images
ddp(torch.randn(2, 3, 16, 16))[0].sum().backward()
grad = vit.prompt_method.prompts.grad.clone()
torch.distributed.all_reduce(grad)
same = torch.allclose(grad / get_world_size(), vit.prompt_method.prompts.grad)
print(f'rank {get_rank()} of {get_world_size()} backend '
      f'{torch.distributed.get_backend()} grads synced {same}', flush=True)
torch.distributed.barrier()  # no rank leaves while another still talks
# a gloo group still alive at interpreter exit can abort the process
# ("terminate called without an active exception"); tools/ close it too
torch.distributed.destroy_process_group()
'''


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_ddp_runs_on_cpu_with_gloo(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('CUDA present: mmengine defaults apply')
    script = tmp_path / 'ddp.py'
    script.write_text(DDP_SCRIPT)
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={free_port()}', str(script)], capture_output=True,
        text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for rank in (0, 1):
        assert f'rank {rank} of 2 backend gloo grads synced True' in \
            proc.stdout

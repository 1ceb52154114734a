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
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    iou = boxes.box_iou(a, b)
    # overlap of a0 and b0 is 1x1; union 4 + 1 - 1
    assert torch.allclose(iou, torch.tensor([[0.25, 0.0], [1 / 6, 0.0]]))
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
    import mmcv._ext as ext
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)

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
    code = (
        'import mmengine.runner; import lspt_mm, mmseg.models, '
        'mmpretrain.models; from mmseg.registry import MODELS; '
        "print(MODELS.get('mmpretrain.PromptedViT').__name__)"
    )
    out = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == 'PromptedViT'


DDP_SCRIPT = """
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
"""


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
    # a second try only when a rank died by a signal (a gloo abort seen
    # once, rank 1 SIGABRT, on a 2-core machine at load 4); any other failure,
    # or the same one twice, fails
    for attempt in range(2):
        proc = subprocess.run(
            [
                sys.executable,
                '-m',
                'torch.distributed.run',
                '--nproc_per_node=2',
                f'--master_port={free_port()}',
                str(script),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode == 0 or 'Signal ' not in proc.stderr:
            break
    assert proc.returncode == 0, (
        f'stdout:\n{proc.stdout[-1500:]}\nstderr (start):\n'
        f'{proc.stderr[:1500]}\nstderr (end):\n{proc.stderr[-1500:]}'
    )
    for rank in (0, 1):
        assert (
            f'rank {rank} of 2 backend gloo grads synced True' in proc.stdout
        )


# ------------------------------------------- checkpoint hook (files, pointer)
class _Log:
    """A runner logger that records what it is told."""

    def __init__(self):
        self.lines = []

    def log(self, level, fmt, *args):
        self.lines.append(fmt % args)

    def info(self, msg):
        self.lines.append(msg)

    warning = info


class _FakeRunner:
    """What CheckpointHook uses of a runner; saves like mmengine's
    Runner.save_checkpoint (backend_args passed on)."""

    def __init__(self, work_dir, name):
        from mmengine.logging import MessageHub

        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(name)
        self.logger = _Log()

    def save_checkpoint(self, out_dir, filename, *args, meta=None, **kw):
        from mmengine.runner.checkpoint import save_checkpoint

        save_checkpoint(
            {'meta': meta, 'state_dict': {'w': torch.ones(2)}},
            f'{out_dir}/{filename}',
            backend_args=kw.get('backend_args'),
        )


def _without(*names):
    return [a for a in compat.APPLIED if a not in names]


def test_checkpoint_pointer_copy_behaves_as_upstream(tmp_path, monkeypatch):
    """On this mmengine the copy of _save_checkpoint_with_step does what
    the original does (files kept / removed, message hub, pointer text),
    step by step, with max_keep_ckpts; it says so once."""
    import os

    from lspt_mm.engine import AtomicCheckpointHook

    from mmengine.hooks import CheckpointHook

    monkeypatch.setattr(compat, 'APPLIED', _without('checkpoint_pointer'))
    runs = {}
    for kind, cls in (
        ('upstream', CheckpointHook),
        ('copy', AtomicCheckpointHook),
    ):
        work = tmp_path / kind
        work.mkdir()
        runner = _FakeRunner(work, f'pointer_{kind}')
        hook = cls(interval=1, by_epoch=False, max_keep_ckpts=2)
        hook.before_train(runner)
        states = []
        for step in (1, 2, 3, 3, 4):
            hook._save_checkpoint_with_step(runner, step, dict(iter=step))
            pointer = (work / 'last_checkpoint').read_text()
            states.append(
                (
                    sorted(os.listdir(work)),
                    pointer.replace(str(work), '<w>'),
                    list(hook.keep_ckpt_ids),
                    runner.message_hub.get_info('keep_ckpt_ids'),
                    runner.message_hub.get_info('last_ckpt').replace(
                        str(work), '<w>'
                    ),
                    hook.last_ckpt.replace(str(work), '<w>'),
                )
            )
        runs[kind] = (states, runner.logger.lines)
    assert runs['copy'][0] == runs['upstream'][0]
    assert runs['copy'][0][-1][0] == [
        'iter_3.pth',
        'iter_4.pth',
        'last_checkpoint',
    ]
    notes = [line for line in runs['copy'][1] if 'compat' in line]
    assert len(notes) == 1 and 'last_checkpoint atomically' in notes[0]
    assert 'checkpoint_pointer' in compat.APPLIED


def test_checkpoint_pointer_copy_is_version_guarded(tmp_path, monkeypatch):
    """Another mmengine: its own method runs, then the pointer is written
    again atomically; a note says so once."""
    import lspt_mm.engine.checkpoint_hook as ch

    import mmengine

    monkeypatch.setattr(
        compat, 'APPLIED', _without('checkpoint_pointer_skipped')
    )
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    writes = []

    def pointer(path, text):
        writes.append(path)
        ch.atomic_write_text(path, text)

    runner = _FakeRunner(tmp_path, 'pointer_guard')
    hook = ch.AtomicCheckpointHook(interval=1, by_epoch=False)
    hook.before_train(runner)
    for step in (1, 2):
        compat.save_checkpoint_with_step(
            hook, runner, step, dict(iter=step), write_pointer=pointer
        )
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_2.pth'
    )
    assert writes == [str(tmp_path / 'last_checkpoint')] * 2
    notes = [line for line in runner.logger.lines if 'compat' in line]
    assert len(notes) == 1 and 'mmengine 0.11.0' in notes[0]
    assert 'checkpoint_pointer_skipped' in compat.APPLIED


def test_checkpoint_files_use_the_registered_atomic_backend():
    from lspt_mm.engine import AtomicCheckpointHook
    from lspt_mm.engine.checkpoint_hook import AtomicLocalBackend

    from mmengine.fileio import get_file_backend

    hook = AtomicCheckpointHook(interval=1)
    assert hook.backend_args == dict(backend='atomic_local')
    assert (
        type(get_file_backend('/x', backend_args=hook.backend_args))
        is AtomicLocalBackend
    )
    # given backend_args are kept (the files are then that backend's)
    other = AtomicCheckpointHook(
        interval=1, backend_args=dict(backend='local')
    )
    assert other.backend_args == dict(backend='local')


TOY = """
import sys, torch
from torch.utils.data import DataLoader
import lspt_mm
import lspt_mm.engine.checkpoint_hook as ch
from mmengine.model import BaseModel
from mmengine.runner import Runner

class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.w(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

real_replace = ch.os.replace
def replace(src, dst):  # killed while iter_2.pth gets its name
    if dst.endswith('iter_2.pth'):
        raise KeyboardInterrupt('killed')
    real_replace(src, dst)
ch.os.replace = replace
data = [dict(inputs=torch.randn(2)) for _ in range(8)]
runner = Runner(
    model=Toy(), work_dir=sys.argv[1],
    train_dataloader=DataLoader(data, batch_size=2),
    train_cfg=dict(by_epoch=False, max_iters=3),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
    default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook',
                                       interval=1, by_epoch=False)))
try:
    runner.train()
except KeyboardInterrupt:
    print('interrupted', flush=True)
"""


def test_real_runner_saves_through_the_atomic_backend(tmp_path):
    """mmengine's own Runner passes the hook's backend_args to
    save_checkpoint: a save killed before its rename leaves no partial
    iter_2.pth, no temporary file, and last_checkpoint on iter_1.pth."""
    import os

    out = subprocess.run(
        [sys.executable, '-c', TOY, str(tmp_path)],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    assert 'interrupted' in out.stdout, out.stdout + out.stderr[-3000:]
    files = sorted(n for n in os.listdir(tmp_path) if not n[0].isdigit())
    assert files == ['iter_1.pth', 'last_checkpoint'], files
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'iter_1.pth'
    )
    state = torch.load(tmp_path / 'iter_1.pth', weights_only=False)
    assert state['meta']['iter'] == 1


# --------------------------------------- optimiser constructor's warnings
def _frozen_model():
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2)
    )
    for p in list(model.parameters())[:4]:
        p.requires_grad = False
    return model  # 4 frozen tensors (18 parameters), 2 trainable


class _Records:
    def __init__(self, log):
        import logging

        self.records = []
        self.handler = logging.Handler()
        self.handler.emit = self.records.append
        self.log = log

    def __enter__(self):
        self.log.addHandler(self.handler)
        return self

    def __exit__(self, *exc):
        self.log.removeHandler(self.handler)

    def messages(self):
        return [r.getMessage() for r in self.records]


def _mm_logger():
    from mmengine.logging import MMLogger

    return MMLogger.get_instance('compat_optim_test', log_level='INFO')


def test_frozen_param_warnings_match_mmengine_and_are_dropped(monkeypatch):
    """mmengine 0.10 logs one warning per frozen tensor; the filter drops
    exactly those (a changed upstream wording fails the count), and
    PromptTuningOptimWrapperConstructor leaves one summary line."""
    from lspt_mm.engine import PromptTuningOptimWrapperConstructor

    from mmengine.optim import DefaultOptimWrapperConstructor

    monkeypatch.setattr(compat, 'APPLIED', _without('frozen_param_warning'))
    log = _mm_logger()
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))
    paramwise = dict(norm_decay_mult=0.0)
    with _Records(log) as plain:
        DefaultOptimWrapperConstructor(cfg, paramwise)(_frozen_model())
    per_tensor = [
        m for m in plain.messages() if compat.FROZEN_PARAM_WARNING in m
    ]
    assert len(per_tensor) == 4
    with (
        _Records(log) as dropped,
        compat.frozen_param_warnings_dropped(log) as drop,
    ):
        DefaultOptimWrapperConstructor(cfg, paramwise)(_frozen_model())
    assert drop.count == 4
    assert not [
        m for m in dropped.messages() if compat.FROZEN_PARAM_WARNING in m
    ]
    assert len([m for m in dropped.messages() if 'compat' in m]) == 1
    with _Records(log) as ours:
        wrapper = PromptTuningOptimWrapperConstructor(cfg, paramwise)(
            _frozen_model()
        )
    messages = ours.messages()
    assert not [m for m in messages if compat.FROZEN_PARAM_WARNING in m]
    assert (
        'optimizer: 4 frozen tensors (18 parameters, requires_grad='
        'False) are not trained' in messages
    )
    assert not [m for m in messages if 'compat' in m]  # said once before
    groups = wrapper.optimizer.param_groups
    assert sum(len(g['params']) for g in groups) == 2  # frozen left out


def test_frozen_param_warnings_filter_is_version_guarded(monkeypatch):
    import mmengine
    from mmengine.optim import DefaultOptimWrapperConstructor

    monkeypatch.setattr(
        compat, 'APPLIED', _without('frozen_param_warning_skipped')
    )
    monkeypatch.setattr(mmengine, '__version__', '0.11.0')
    log = _mm_logger()
    cfg = dict(optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4))
    paramwise = dict(norm_decay_mult=0.0)
    with (
        _Records(log) as seen,
        compat.frozen_param_warnings_dropped(log) as drop,
    ):
        DefaultOptimWrapperConstructor(cfg, paramwise)(_frozen_model())
    assert drop.count == 0
    assert (
        len([m for m in seen.messages() if compat.FROZEN_PARAM_WARNING in m])
        == 4
    )
    assert 'frozen_param_warning_skipped' in compat.APPLIED


# ------------------------------------------------- tools/train.py, configs
def test_train_tool_keeps_the_configs_checkpoint_hook(tmp_path):
    """No quiet swap: a config's plain CheckpointHook stays (with a
    warning); every committed config names AtomicCheckpointHook."""
    import glob
    import importlib.util
    import os.path as osp

    from mmengine.config import Config

    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    spec = importlib.util.spec_from_file_location(
        'train_tool', osp.join(root, 'tools', 'train.py')
    )
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    demo = osp.join(
        root,
        'configs',
        'segmentation',
        'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
    )
    log = _mm_logger()
    args = train.parse_args(
        [
            demo,
            '--work-dir',
            str(tmp_path),
            '--cfg-options',
            'default_hooks.checkpoint.type=CheckpointHook',
        ]
    )
    with _Records(log) as seen:
        cfg = train.merge_args(Config.fromfile(demo), args)
    assert cfg.default_hooks.checkpoint.type == 'CheckpointHook'
    assert any('AtomicCheckpointHook' in m for m in seen.messages())
    configs = [
        p
        for p in glob.glob(
            osp.join(root, 'configs', '**', '*.py'), recursive=True
        )
        if '_base_' not in p
    ]
    assert len(configs) > 20
    for path in configs:
        hooks = Config.fromfile(path).get('default_hooks', {})
        assert (
            hooks.get('checkpoint', {}).get('type') == 'AtomicCheckpointHook'
        ), path

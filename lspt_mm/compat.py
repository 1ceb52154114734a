"""Compatibility fixes for the OpenMMLab stack on current PyTorch.

Imported first by ``import lspt_mm`` (and so by the tools and by every config's
``custom_imports``). Each fix activates only when the real thing is missing or
broken, logs once what it did, and never edits site-packages:

1. ``torchvision`` stand-in: mmpretrain 1.2.0 imports torchvision at module level,
   but there is no working CPU torchvision wheel for torch 2.13. When no working
   torchvision imports, a minimal stand-in offers what those imports use.
2. ``mmcv._ext`` stand-in: mmseg 1.2.2 imports ``mmcv.ops`` everywhere; with
   ``mmcv-lite`` the compiled extension is absent. A stand-in module is registered
   whose functions raise a clear error only when a compiled op is *called*.
3. mmengine 0.10 calls ``torch.load`` without ``weights_only`` (and
   torch.hub's full-unpickle ``load_url``): on torch >= 2.6 its runner
   checkpoints then fail to load, and a full unpickle would run any code a
   downloaded file holds. Inside ``mmengine.runner.checkpoint`` only, both
   read with ``weights_only=True`` plus an allow-list of the objects mmengine
   writes (:func:`lspt_mm.models.checkpoint.safe_load`); a full unpickle
   needs ``LSPT_MM_TRUST_CHECKPOINTS=1``.
4. Distributed training without CUDA (``torchrun`` on CPU, gloo): mmengine calls
   ``torch.cuda.set_device`` and passes ``device_ids`` to DDP; both are skipped
   when CUDA is unavailable.

Two fixes act only when the code that needs them runs (and log once then):

5. :func:`save_checkpoint_with_step`: mmengine 0.10's
   ``CheckpointHook._save_checkpoint_with_step`` writes the ``last_checkpoint``
   pointer with a plain ``open(..., 'w')`` (a kill mid-write leaves it empty);
   ``AtomicCheckpointHook`` runs a copy of that method whose pointer write is
   atomic. (The checkpoint files themselves go through mmengine's file-backend
   registry: ``AtomicLocalBackend``, no patch.)
6. :func:`frozen_param_warnings_dropped`: mmengine 0.10's
   ``DefaultOptimWrapperConstructor.add_params`` logs one warning per frozen
   tensor (about 150 for a frozen ViT-B);
   ``PromptTuningOptimWrapperConstructor`` drops them and logs one summary
   line.

Each is guarded by the upstream version it was written against
(:data:`UPSTREAM_CHECKED`); on another version the upstream behaviour is kept
and a note says so.
"""

import contextlib
import importlib
import importlib.machinery
import logging
import os.path as osp
import sys
import types

import torch

logger = logging.getLogger('lspt_mm.compat')
APPLIED = []  # names of the fixes that activated in this process


def _note(name, message, log=None, level=logging.WARNING):
    """Log ``message`` once per process (to ``log``, default this module's
    logger) and record ``name`` in :data:`APPLIED`."""
    if name not in APPLIED:
        APPLIED.append(name)
        (log or logger).log(level, 'lspt_mm.compat: %s', message)


def _module(name, **attrs):
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, loader=None)
    mod.__dict__.update(attrs)
    return mod


# ----------------------------------------------------------------- torchvision
def _torchvision_works():
    if 'torchvision' in sys.modules:  # real one, or our stand-in
        return True
    try:
        import torchvision  # noqa: F401
        import torchvision.ops.boxes  # noqa: F401
        import torchvision.transforms.functional  # noqa: F401

        return True
    except Exception:  # missing, or installed but broken (CUDA-only _C.so)
        for key in [
            k for k in sys.modules if k.split('.')[0] == 'torchvision'
        ]:
            del sys.modules[key]
        return False


def _box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _upcast(t):
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _box_inter_union(boxes1, boxes2):
    area1, area2 = _box_area(boxes1), _box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[:, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = _upcast(rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter, area1[:, None] + area2 - inter


def _box_iou(boxes1, boxes2):
    inter, union = _box_inter_union(boxes1, boxes2)
    return inter / union


def _generalized_box_iou(boxes1, boxes2):
    inter, union = _box_inter_union(boxes1, boxes2)
    iou = inter / union
    lti = torch.min(boxes1[:, None, :2], boxes2[:, :2])
    rbi = torch.max(boxes1[:, None, 2:], boxes2[:, 2:])
    whi = _upcast(rbi - lti).clamp(min=0)
    areai = whi[..., 0] * whi[..., 1]
    return iou - (areai - union) / areai


def _unavailable(what):
    def fail(*args, **kwargs):
        raise RuntimeError(
            f'{what} needs a working torchvision, which is not installed here '
            '(lspt_mm registered a minimal stand-in). Install torchvision '
            'matching your torch build to use it.'
        )

    return fail


def _install_torchvision_stand_in():
    import enum

    class InterpolationMode(enum.Enum):
        NEAREST = 'nearest'
        NEAREST_EXACT = 'nearest-exact'
        BILINEAR = 'bilinear'
        BICUBIC = 'bicubic'
        BOX = 'box'
        HAMMING = 'hamming'
        LANCZOS = 'lanczos'

    class RandomResizedCrop(torch.nn.Module):
        """Base class only: mmpretrain subclasses it (MAERandomResizedCrop)."""

        def __init__(self, *args, **kwargs):
            _unavailable('torchvision.transforms.RandomResizedCrop')()

    def pil_to_tensor(pic):
        import numpy as np

        arr = np.array(pic, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()

    functional = _module(
        'torchvision.transforms.functional',
        pil_to_tensor=pil_to_tensor,
        resized_crop=_unavailable('torchvision resized_crop'),
    )
    tt = _module(
        'torchvision.transforms.transforms',
        InterpolationMode=InterpolationMode,
        RandomResizedCrop=RandomResizedCrop,
    )
    transforms = _module(
        'torchvision.transforms',
        functional=functional,
        transforms=tt,
        InterpolationMode=InterpolationMode,
        RandomResizedCrop=RandomResizedCrop,
    )
    boxes = _module(
        'torchvision.ops.boxes',
        box_area=_box_area,
        box_iou=_box_iou,
        generalized_box_iou=_generalized_box_iou,
        _upcast=_upcast,
    )
    ops = _module(
        'torchvision.ops',
        boxes=boxes,
        box_area=_box_area,
        box_iou=_box_iou,
        generalized_box_iou=_generalized_box_iou,
    )
    tv = _module(
        'torchvision',
        transforms=transforms,
        ops=ops,
        __version__='0.0.0+lspt_mm_stand_in',
        _lspt_stand_in=True,
    )
    sys.modules.update(
        {
            'torchvision': tv,
            'torchvision.transforms': transforms,
            'torchvision.transforms.functional': functional,
            'torchvision.transforms.transforms': tt,
            'torchvision.ops': ops,
            'torchvision.ops.boxes': boxes,
        }
    )


def ensure_torchvision():
    if not _torchvision_works():
        _install_torchvision_stand_in()
        _note(
            'torchvision',
            'no working torchvision: registered a minimal '
            'stand-in (box ops, InterpolationMode, pil_to_tensor); '
            'torchvision-wrapped transforms raise if used',
        )


# ------------------------------------------------------------------- mmcv._ext
class _MissingExt(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)

        def fail(*args, **kwargs):
            raise RuntimeError(
                f'mmcv compiled op `{name}` was called, but mmcv-lite has no '
                'compiled ops. Install full mmcv (docs/get_started.md, '
                '"Full mmcv") '
                'to use it.'
            )

        fail.__name__ = name
        return fail


def ensure_mmcv_ext():
    try:
        importlib.import_module('mmcv._ext')
        return
    except ImportError:
        pass
    except Exception:  # a broken build: fall through to the stand-in
        pass
    ext = _MissingExt('mmcv._ext')
    ext.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', loader=None)
    sys.modules['mmcv._ext'] = ext
    _note(
        'mmcv_ext',
        'mmcv has no compiled ops (mmcv-lite): registered a '
        'stand-in mmcv._ext whose ops raise only when called',
    )


# ------------------------------------------------------- torch.load in mmengine
_MMENGINE_PATCHED_VERSIONS = ((0, 10),)  # checked on 0.10.7


class _TorchWithSafeLoad(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module: ``load`` reads
    through :func:`lspt_mm.models.checkpoint.safe_load` (``weights_only=True``
    plus the globals mmengine itself writes; a full unpickle only with
    ``LSPT_MM_TRUST_CHECKPOINTS=1``); every other attribute is torch's own."""

    def __init__(self):
        super().__init__('torch')

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        # imported when called: this module runs before any mm library
        # import, and lspt_mm.models imports mmpretrain (an order, no circle)
        from lspt_mm.models.checkpoint import safe_load

        return safe_load(f, map_location=map_location, **kwargs)


def _safe_load_url(*args, **kwargs):
    """mmengine's ``load_url`` (``http(s)://``, ``torchvision://``,
    ``open-mmlab://``), read by :func:`lspt_mm.models.checkpoint.safe_load_url`
    instead of torch.hub's full unpickle."""
    from lspt_mm.models.checkpoint import safe_load_url  # (as above)

    return safe_load_url(*args, **kwargs)


def _version_tuple(version):
    parts = version.split('+')[0].split('.')
    return tuple(int(p) for p in parts[:2] if p.isdigit())


def ensure_safe_checkpoint_loading():
    """mmengine 0.10's checkpoint module calls ``torch.load`` without
    ``weights_only`` (on torch >= 2.6 runner checkpoints then fail to load; on
    older torch any file is fully unpickled) and torch.hub's ``load_url``
    (a full unpickle of downloads). Inside that module only, both read
    through :mod:`lspt_mm.models.checkpoint`'s allow-list."""
    import mmengine

    if _version_tuple(mmengine.__version__) not in _MMENGINE_PATCHED_VERSIONS:
        _note(
            'safe_load_skipped',
            f'mmengine {mmengine.__version__} is not '
            'the 0.10 line whose checkpoint loading lspt_mm routes through '
            'its allow-list; mmengine loads checkpoints its own way',
        )
        return
    ckpt = importlib.import_module('mmengine.runner.checkpoint')
    if not isinstance(ckpt.torch, _TorchWithSafeLoad):
        ckpt.torch = _TorchWithSafeLoad()
        ckpt.load_url = _safe_load_url
        _note(
            'safe_load',
            f'mmengine {mmengine.__version__}: checkpoints '
            'loaded by mmengine (load_from, --resume, init_cfg=Pretrained) '
            "are read with torch's weights_only loader (on torch < 2.6 "
            "lspt_mm's restricted unpickler) and an allow-list of the "
            'objects mmengine writes; LSPT_MM_TRUST_CHECKPOINTS=1 allows a '
            'full unpickle of other files',
        )


# --------------------------------------------- CheckpointHook pointer write
# mmengine minor versions whose CheckpointHook._save_checkpoint_with_step
# save_checkpoint_with_step copies, and whose
# DefaultOptimWrapperConstructor.add_params logs FROZEN_PARAM_WARNING
UPSTREAM_CHECKED = dict(
    checkpoint_hook=((0, 10),),  # copied from 0.10.7
    frozen_param_warning=((0, 10),),
)


def _mmengine_version():
    import mmengine

    return mmengine.__version__


def save_checkpoint_with_step(hook, runner, step, meta, write_pointer):
    """``CheckpointHook._save_checkpoint_with_step`` (mmengine 0.10.7) with
    two changes: ``hook.last_ckpt`` is set once the file is complete, and
    the ``<work_dir>/last_checkpoint`` pointer is written by
    ``write_pointer(path, text)`` (an atomic write) instead of
    ``open(path, 'w')``. On another mmengine version: that version's own
    method, then the pointer written again by ``write_pointer``."""
    from mmengine.dist import is_main_process
    from mmengine.hooks import CheckpointHook

    version = _mmengine_version()
    if _version_tuple(version) not in UPSTREAM_CHECKED['checkpoint_hook']:
        _note(
            'checkpoint_pointer_skipped',
            f'mmengine {version}: '
            "AtomicCheckpointHook uses mmengine's own "
            'CheckpointHook._save_checkpoint_with_step (its copy targets '
            '0.10) and rewrites last_checkpoint atomically after it',
            log=runner.logger,
        )
        CheckpointHook._save_checkpoint_with_step(hook, runner, step, meta)
        if is_main_process():
            write_pointer(
                osp.join(runner.work_dir, 'last_checkpoint'), hook.last_ckpt
            )
        return
    _note(
        'checkpoint_pointer',
        f'mmengine {version}: AtomicCheckpointHook '
        'writes last_checkpoint atomically (its copy of '
        'CheckpointHook._save_checkpoint_with_step)',
        log=runner.logger,
        level=logging.INFO,
    )
    if hook.max_keep_ckpts > 0:
        if len(hook.keep_ckpt_ids) > 0 and hook.keep_ckpt_ids[-1] == step:
            pass
        else:
            if len(hook.keep_ckpt_ids) == hook.max_keep_ckpts:
                _step = hook.keep_ckpt_ids.popleft()
                if is_main_process():
                    ckpt_path = hook.file_backend.join_path(
                        hook.out_dir, hook.filename_tmpl.format(_step)
                    )
                    if hook.file_backend.isfile(ckpt_path):
                        hook.file_backend.remove(ckpt_path)
                    elif hook.file_backend.isdir(ckpt_path):
                        hook.file_backend.rmtree(ckpt_path)
            hook.keep_ckpt_ids.append(step)
            runner.message_hub.update_info(
                'keep_ckpt_ids', list(hook.keep_ckpt_ids)
            )

    ckpt_filename = hook.filename_tmpl.format(step)
    last_ckpt = hook.file_backend.join_path(hook.out_dir, ckpt_filename)
    runner.message_hub.update_info('last_ckpt', last_ckpt)
    runner.save_checkpoint(
        hook.out_dir,
        ckpt_filename,
        hook.file_client_args,
        save_optimizer=hook.save_optimizer,
        save_param_scheduler=hook.save_param_scheduler,
        meta=meta,
        by_epoch=hook.by_epoch,
        backend_args=hook.backend_args,
        **hook.args,
    )
    # only now is the new file complete under its final name
    hook.last_ckpt = last_ckpt
    if not is_main_process():
        return
    write_pointer(osp.join(runner.work_dir, 'last_checkpoint'), hook.last_ckpt)


# ------------------------------------------ optimiser constructor warnings
FROZEN_PARAM_WARNING = 'is skipped since its requires_grad=False'


class _DropFrozenParamWarnings(logging.Filter):
    """Drops (and counts) mmengine 0.10's per-tensor record
    ``<name> is skipped since its requires_grad=False``."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record):
        if (
            record.levelno == logging.WARNING
            and FROZEN_PARAM_WARNING in record.getMessage()
        ):
            self.count += 1
            return False
        return True


@contextlib.contextmanager
def frozen_param_warnings_dropped(log):
    """Within the block, ``log`` (an ``MMLogger``) drops the one warning per
    frozen tensor that mmengine 0.10's
    ``DefaultOptimWrapperConstructor.add_params`` writes; yields the filter
    (``.count``: how many were dropped). On another mmengine version nothing
    is dropped (its records may read differently)."""
    version = _mmengine_version()
    drop = _DropFrozenParamWarnings()
    if _version_tuple(version) not in UPSTREAM_CHECKED['frozen_param_warning']:
        _note(
            'frozen_param_warning_skipped',
            f'mmengine {version}: its '
            'optimiser constructor\'s per-tensor "requires_grad=False" '
            'warnings are shown as they are (lspt_mm collapses them on '
            '0.10 only)',
            log=log,
        )
        yield drop
        return
    _note(
        'frozen_param_warning',
        f'mmengine {version}: per-tensor '
        '"requires_grad=False" warnings of the optimiser constructor are '
        'collapsed into one line',
        log=log,
        level=logging.INFO,
    )
    log.addFilter(drop)
    try:
        yield drop
    finally:
        log.removeFilter(drop)


# ------------------------------------------- matplotlib adjust_bbox (browse)
@contextlib.contextmanager
def adjust_bbox_renderer_optional():
    """mmpretrain 1.2's ``tools/visualization/browse_dataset.py`` calls
    ``matplotlib._tight_bbox.adjust_bbox(fig, bbox)``; newer matplotlib
    (3.11 here) requires a third argument, ``renderer`` (``TypeError:
    adjust_bbox() missing 1 required positional argument: 'renderer'``).
    Within the block, a matplotlib whose ``adjust_bbox`` requires it gets
    one that takes the figure canvas's renderer when none is given; with
    an ``adjust_bbox`` that does not require it nothing changes."""
    import inspect

    try:
        from matplotlib import _tight_bbox as module
    except ImportError:  # matplotlib < 3.6: tight_bbox, the old signature
        yield
        return
    original = module.adjust_bbox
    param = inspect.signature(original).parameters.get('renderer')
    if param is None or param.default is not inspect.Parameter.empty:
        yield
        return

    def adjust_bbox(fig, bbox_inches, renderer=None, fixed_dpi=None):
        if renderer is None:
            renderer = fig.canvas.get_renderer()
        return original(fig, bbox_inches, renderer, fixed_dpi)

    import matplotlib

    _note(
        'adjust_bbox_renderer',
        f'matplotlib {matplotlib.__version__}: adjust_bbox needs a renderer '
        "that mmpretrain 1.2's browse_dataset does not pass; it gets the "
        "figure canvas's",
        level=logging.INFO,
    )
    module.adjust_bbox = adjust_bbox
    try:
        yield
    finally:
        module.adjust_bbox = original


# ------------------------------------------------- torch.compiler.is_compiling
def resolve_is_compiling():
    """``torch.compiler.is_compiling`` (torch >= 2.3); on torch 2.0 - 2.2
    (no ``torch.compiler``, or one without it) ``torch._dynamo``'s
    ``is_compiling``, and when dynamo was never imported a function
    returning False (nothing can be compiling then)."""
    found = getattr(getattr(torch, 'compiler', None), 'is_compiling', None)
    if found is not None:
        return found
    dynamo = sys.modules.get('torch._dynamo')
    found = getattr(dynamo, 'is_compiling', None)
    if found is not None:
        return found

    def is_compiling():
        dynamo = sys.modules.get('torch._dynamo')  # imported later?
        found = getattr(dynamo, 'is_compiling', None)
        return bool(found()) if found is not None else False

    return is_compiling


is_compiling = resolve_is_compiling()


# --------------------------------------------------------------- DDP on CPU
def ensure_cpu_distributed():
    if torch.cuda.is_available():
        return
    import mmengine.dist.utils as dist_utils
    from mmengine.model import MMDistributedDataParallel

    if getattr(dist_utils, '_lspt_cpu_patch', False):
        return

    original_init_pytorch = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        import os

        if backend == 'nccl':
            backend = 'gloo'
        if init_backend != 'torch':
            return original_init_pytorch(backend, init_backend, **kwargs)
        torch.distributed.init_process_group(
            backend=backend,
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']),
            **kwargs,
        )

    original_ddp_init = MMDistributedDataParallel.__init__

    def ddp_init(self, module, detect_anomalous_params=False, **kwargs):
        kwargs['device_ids'] = None  # CPU modules take no device ids
        original_ddp_init(self, module, detect_anomalous_params, **kwargs)

    dist_utils._init_dist_pytorch = _init_dist_pytorch
    MMDistributedDataParallel.__init__ = ddp_init
    dist_utils._lspt_cpu_patch = True
    APPLIED.append('cpu_distributed')


def apply_all():
    ensure_torchvision()
    ensure_mmcv_ext()
    ensure_safe_checkpoint_loading()
    ensure_cpu_distributed()


apply_all()

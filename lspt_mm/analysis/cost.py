"""What one training / inference step of a method costs, measured on the
model and optimiser its config builds.

A *job* is one ``(method, task, img_size, num_prompts, batch)``; its model
comes from a real config (``configs/segmentation/*.py``, the classification
configs) with the method's backbone settings, and its optimiser from
mmengine's ``build_optim_wrapper`` on the config's ``optim_wrapper`` (the
constructor, ``paramwise_cfg`` and optimiser users train with). One train
step is ``model.train_step(data, optim_wrapper)``, as mmengine's train loop
runs it; inference is the forward without the post-processing
(``mode='tensor'`` for classifiers, ``encode_decode`` for segmentors).

:func:`run_job` measures, per job:

- trainable / total parameters;
- FLOPs of inference and of a train step, counted
  (:func:`lspt_mm.analysis.flops.count_flops`) and analytic
  (:func:`lspt_mm.analysis.flops.analytic_flops`);
- train-step and inference times (median of ``repeats`` after ``warmup``);
- peak training memory (CUDA ``max_memory_allocated``; CPU peak RSS above
  the process before the model was built, and the profiler's peak of live
  tensors) and its terms: parameter, gradient and optimiser-state bytes,
  and the bytes autograd saves for backward (:class:`SavedActivations`);
- frozen checks: no frozen parameter has a gradient or optimiser state
  (asserted), and how many sit in the optimiser's parameter groups;
- segmentation: the neck + heads' share of step time and FLOPs;
- with ``with_cp`` / ``compile`` (settings, or per job for side-by-side
  *variants*): the saved activations of the backbone alone, the first
  (compiling) call's time, with an empty inductor cache of the job's own,
  and the compiled inference output's deviation from eager;
- with ``op_shares``: the train step's operator time by class (matrix
  products, attention, convolutions, the rest: :func:`op_time_shares`).

:func:`run_interleaved` times several jobs round-robin in one process, so a
changing machine load hits all of them alike. :func:`run_in_subprocess`
runs either in a fresh process (``python -m lspt_mm.analysis.cost``), so
that peak memory is per job. Tables and targets:
:mod:`lspt_mm.analysis.cost_report`.
"""

import argparse
import copy
import dataclasses
import json
import math
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from lspt_mm import count_parameters
from lspt_mm.engine.console import file_only
from lspt_mm.engine.runner_utils import (
    compile_options as runner_compile_options,
)
from lspt_mm.models.methods import METHODS, get_method
from lspt_mm.models.methods import method_of_backbone as table_method
from lspt_mm.recipes import apply_task, is_benchmark_config

from .flops import arch_settings, count_flops, model_flops

TASKS = ('cls', 'seg')
TINY_ARCH = dict(
    embed_dims=64, num_layers=4, num_heads=2, feedforward_channels=128
)
RESULT_TAG = 'COST_RESULT '


class CostError(ValueError):
    """A job or setting the cost tool cannot measure (names what to fix)."""


# ================================================================= methods
def method_names():
    """Every method of the method table
    (:data:`lspt_mm.models.methods.METHODS`), in its order."""

    return list(METHODS)


def method_spec(method):
    """The method table's :class:`~lspt_mm.models.methods.MethodSpec`."""

    try:
        return get_method(method)
    except KeyError as err:
        raise CostError(err.args[0]) from None


def uses_prompts(method):
    return method_spec(method).uses_prompts


def inner_vit(backbone):
    """The PromptedViT config inside ``backbone`` (a wrapper's
    ``module``, e.g. LoRA's) or ``backbone`` itself."""
    return backbone['module'] if 'module' in backbone else backbone


def method_of_backbone(backbone):
    """The method of the table a backbone config trains; raises
    :class:`CostError` when it is none of them."""

    try:
        name = table_method(backbone)
    except (KeyError, TypeError, ValueError) as err:
        raise CostError(str(err)) from None
    if name not in METHODS:
        raise CostError(f'{name!r} is not in the method table')
    return name


def method_configs(paths):
    """``{method: config path}`` for configs used as they are, each
    config's method read from its ``model.backbone``."""
    from mmengine.config import Config

    found = {}
    for path in paths:
        backbone = Config.fromfile(path).model.get('backbone', {})
        try:
            method = method_of_backbone(backbone)
        except CostError as err:
            raise CostError(
                f'{path}: its backbone is none of the methods '
                f'{method_names()} ({err}); leave it out'
            ) from None
        if method in found:
            raise CostError(
                f'two configs train {method!r}: {found[method]} '
                f'and {path}; pass one of them'
            )
        found[method] = path
    return found


# ================================================================ settings
@dataclasses.dataclass
class CostSettings:
    """How every job of a run is built and measured.

    Args:
        configs (dict): task -> config every method of the task is built
            from (with the method's backbone settings).
        method_configs (dict): task -> {method: config} used as they are
            (see :func:`method_configs`).
        cfg_options (dict): task -> ``--cfg-options`` applied last.
        arch (str | dict, optional): backbone arch (mmpretrain name,
            ``'tiny'`` or an arch dict); neck / head widths and the
            segmentation ``out_indices`` follow it. None: the config's.
        patch_size (int, optional): None: the config's.
        seg_norm (str): ``auto`` (the config's norm; SyncBN becomes BN on one
            device as mmengine's ``Runner`` does; GN when the batch is 1),
            ``config``, ``BN`` or ``GN``.
        amp (bool): mixed precision as ``tools/train.py --amp`` sets it up:
            ``AmpOptimWrapper`` (fp16, loss scaling) on CUDA,
            ``AutocastOptimWrapper`` (bf16 autocast) on CPU; inference under
            autocast (fp16 / bf16).
        with_cp (bool | int | list, optional): the backbone's ``with_cp``
            (activation checkpointing of blocks); None: the config's.
        compile (bool | dict, optional): ``torch.compile`` the model as the
            ``compile`` config key does with ``tools/train.py`` /
            ``tools/test.py`` (:func:`lspt_mm.engine.runner_utils.
            compile_model`; a dict: torch.compile options). FLOPs and saved
            activations are counted on the eager model, times and peaks on
            the compiled one.
        op_shares (bool): profile one more train step and split its time
            by operator class (:func:`op_time_shares`).
        A job may carry ``with_cp`` / ``compile`` itself (and a ``variant``
        label): it then overrides these for that job.
    """

    configs: dict = dataclasses.field(default_factory=dict)
    method_configs: dict = dataclasses.field(default_factory=dict)
    cfg_options: dict = dataclasses.field(default_factory=dict)
    arch: object = None
    patch_size: int = None
    seg_norm: str = 'auto'
    device: str = None
    amp: bool = False
    threads: int = None
    repeats: int = 5
    warmup: int = 2
    alloc_peak: bool = True
    op_shares: bool = False
    with_cp: object = None
    compile: object = None

    def option(self, job, key):
        """``job[key]`` if the job sets it (a variant), else the
        setting."""
        return job[key] if key in job else getattr(self, key)

    def to_json(self):
        return json.dumps(_tag_tuples(dataclasses.asdict(self)))

    @classmethod
    def from_json(cls, text):
        return cls(**_untag_tuples(json.loads(text)))

    def config_path(self, job):
        task = job['task']
        path = self.method_configs.get(task, {}).get(
            job['method']
        ) or self.configs.get(task)
        if not path:
            raise CostError(
                f'no config for task {task!r}: pass --{task}-config'
            )
        return path


def _tag_tuples(obj):  # JSON keeps lists; configs may need tuples
    if isinstance(obj, tuple):
        return {'__tuple__': [_tag_tuples(v) for v in obj]}
    if isinstance(obj, list):
        return [_tag_tuples(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _tag_tuples(v) for k, v in obj.items()}
    return obj


def _untag_tuples(obj):
    if isinstance(obj, dict):
        if set(obj) == {'__tuple__'}:
            return tuple(_untag_tuples(v) for v in obj['__tuple__'])
        return {k: _untag_tuples(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untag_tuples(v) for v in obj]
    return obj


def resolve_arch(arch):
    """``'tiny'``, an mmpretrain arch name, a JSON dict string or a dict."""
    if isinstance(arch, str) and arch == 'tiny':
        return dict(TINY_ARCH)
    if isinstance(arch, str) and arch.strip().startswith('{'):
        return json.loads(arch)
    return arch


def seg_out_indices(num_layers):
    """[3, 5, 7, 11] for 12 blocks (the configs'), spread alike for other
    depths."""
    if num_layers < 4:
        raise CostError(f'segmentation needs >= 4 blocks, got {num_layers}')
    idx = [num_layers * f // 12 - 1 for f in (4, 6, 8, 12)]
    if len(set(idx)) < 4 or min(idx) < 0:
        idx = list(range(num_layers - 4, num_layers))
    return idx


def _norm_layers_cfg(model):
    return [
        m
        for m in (
            model.get('neck'),
            model.get('decode_head'),
            model.get('auxiliary_head'),
        )
        if m
    ]


def job_config(job, settings):
    """The config of ``job``: the method's own config, or the task's config
    with the method selected as users select it (a benchmark config's
    ``method`` setting, filled by
    :func:`lspt_mm.recipes.apply_task` with the recipe of its
    ``task``; other configs: :meth:`MethodSpec.apply`); the size of the job
    (``img_size``, ``num_prompts``, arch); random weights
    (``pretrained=None``: cost does not depend on them); the task's
    ``cfg_options``; then ``seg_norm``."""

    from mmengine.config import Config, ConfigDict

    path = settings.config_path(job)
    if not osp.isfile(path):
        raise CostError(f'config {path} (task {job["task"]}) does not exist')
    cfg = Config.fromfile(path)
    spec = method_spec(job['method'])
    own = settings.method_configs.get(job['task'], {}).get(job['method'])
    if is_benchmark_config(cfg):  # task=... (an option), method, recipe
        if not own:
            cfg.method = spec.name
        cfg.merge_from_dict(settings.cfg_options.get(job['task']) or {})
        apply_task(cfg, log=False)
    elif not own:
        cfg.model.backbone = ConfigDict(
            spec.apply(
                inner_vit(cfg.model.backbone), scope=cfg.get('default_scope')
            )
        )
    model = cfg.model  # (merge_from_dict replaces the dicts it merges into)
    vit = inner_vit(model.backbone)
    if spec.uses_prompts and job['num_prompts']:
        vit.num_prompts = job['num_prompts']
    vit.img_size = job['img_size']
    vit.pretrained = None
    if settings.option(job, 'with_cp') is not None:
        vit.with_cp = settings.option(job, 'with_cp')
    if vit.get('init_cfg'):
        vit.init_cfg = None
    if settings.patch_size:
        vit.patch_size = settings.patch_size
    if settings.arch is not None:
        arch = resolve_arch(settings.arch)
        vit.arch = arch
        D, L, _, _ = arch_settings(arch)
        if job['task'] == 'cls':
            model.head.in_channels = D
        else:
            vit.out_indices = seg_out_indices(L)
            if model.get('neck') and 'embed_dim' in model.neck:
                model.neck.embed_dim = D
            n_in = len(model.decode_head.in_channels)
            model.decode_head.in_channels = [D] * n_in
            if model.get('auxiliary_head'):
                model.auxiliary_head.in_channels = D
    if job['task'] == 'seg':
        size = (job['img_size'], job['img_size'])
        if model.get('data_preprocessor'):
            model.data_preprocessor.size = size
        elif cfg.get('data_preprocessor'):
            cfg.data_preprocessor.size = size
    if settings.cfg_options.get(job['task']):
        cfg.merge_from_dict(settings.cfg_options[job['task']])
    if job['task'] == 'seg':  # on the final widths
        _set_seg_norm(cfg, job, settings)
    return cfg


def _set_seg_norm(cfg, job, settings):
    name = settings.seg_norm
    if name == 'auto':
        name = 'GN' if job['batch'] == 1 else 'config'
    if name == 'config':
        return
    if name not in ('BN', 'GN', 'SyncBN'):
        raise CostError(
            f'seg_norm={name!r}: choose auto, config, BN, GN or SyncBN'
        )
    parts = _norm_layers_cfg(cfg.model)
    norm = dict(type=name, requires_grad=True)
    if name == 'GN':  # 32 groups, fewer when a layer is narrower
        widths = [cfg.model.decode_head.channels]
        widths += [p['channels'] for p in parts if 'channels' in p]
        widths += [p['embed_dim'] for p in parts if 'embed_dim' in p]
        norm['num_groups'] = math.gcd(32, *widths)
    for part in parts:
        part.norm_cfg = dict(norm)


# ==================================================================== case
def rss_mb():
    """Resident set size of this process (MiB)."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def maxrss_mb():
    """Peak resident set size of this process so far (MiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def tensor_mb(tensors):
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


class SavedActivations:
    """Bytes of the tensors autograd saves for backward (parameters
    excluded, each storage counted once), collected with
    ``torch.autograd.graph.saved_tensors_hooks``.

    ``parts`` (``{name: module}``, e.g. ``dict(backbone=model.backbone)``)
    attributes each storage to the module whose forward saved it first
    (:meth:`mb_of`). Inside a checkpointed block (``with_cp``) only the
    block's inputs are saved, which this counts; the recomputation in
    backward saves under checkpoint's own hooks, as it frees them at once.
    """

    def __init__(self, model, parts=None):
        self.param_ptrs = {
            p.untyped_storage().data_ptr() for p in model.parameters()
        }
        self.storages = {}
        self.part_of = {}
        self._inside = []
        self._handles = []
        for name, module in (parts or {}).items():
            self._handles += [
                module.register_forward_pre_hook(
                    lambda *a, n=name: self._enter(n)
                ),
                module.register_forward_hook(lambda *a: self._leave()),
            ]

    def _enter(self, name):  # (hooks return None: inputs, outputs kept)
        self._inside.append(name)

    def _leave(self):
        self._inside.pop()

    def pack(self, t):
        try:
            s = t.untyped_storage()
        except Exception:  # noqa: BLE001 - e.g. tensor subclasses
            return t
        ptr = s.data_ptr()
        if ptr and ptr not in self.param_ptrs:
            self.storages[ptr] = max(self.storages.get(ptr, 0), s.nbytes())
            self.part_of.setdefault(
                ptr, self._inside[-1] if self._inside else None
            )
        return t

    def mb_of(self, part):
        """MiB saved inside the forward of ``part`` (a ``parts`` name)."""
        return (
            sum(
                n
                for p, n in self.storages.items()
                if self.part_of.get(p) == part
            )
            / 2**20
        )

    def remove(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def context(self):
        import torch

        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)

    @property
    def mb(self):
        return sum(self.storages.values()) / 2**20


def synthetic_data(task, batch, size, num_classes, seed=0):
    """One batch as a dataloader gives it to ``model.train_step``: uint8
    images and data samples with labels (``cls``) or label maps (``seg``)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
        for _ in range(batch)
    ]
    if task == 'cls':
        from mmpretrain.structures import DataSample

        samples = [
            DataSample().set_gt_label(i % num_classes) for i in range(batch)
        ]
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample

        samples = []
        for _ in range(batch):
            s = SegDataSample(
                metainfo=dict(img_shape=(size, size), ori_shape=(size, size))
            )
            s.gt_sem_seg = PixelData(
                data=torch.randint(
                    0, num_classes, (1, size, size), generator=g
                )
            )
            samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


class CostCase:
    """One job built from its config: ``model`` (on ``device``),
    ``optim_wrapper`` (mmengine's ``build_optim_wrapper`` on the config's
    ``optim_wrapper``), a synthetic batch; ``train_step()`` and
    ``infer()`` run what a user's training and inference run."""

    def __init__(self, job, settings):
        import torch

        from mmengine.logging import MMLogger
        from mmengine.model import revert_sync_batchnorm
        from mmengine.optim import build_optim_wrapper
        from mmengine.registry import MODELS, init_default_scope

        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.job, self.settings = job, settings
        self.device = torch.device(
            settings.device or ('cuda' if torch.cuda.is_available() else 'cpu')
        )
        self.cuda = self.device.type == 'cuda'
        self.cfg = cfg = job_config(job, settings)
        init_default_scope(cfg.get('default_scope', 'mmengine'))
        model_cfg = copy.deepcopy(cfg.model)
        if cfg.get('data_preprocessor'):  # as mmengine's Runner
            model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
        optim_cfg = copy.deepcopy(cfg.optim_wrapper)
        if settings.amp:  # as tools/train.py --amp
            if optim_cfg.get('type', 'OptimWrapper') == 'OptimWrapper':
                if self.cuda:
                    optim_cfg.type = 'AmpOptimWrapper'
                    optim_cfg.setdefault('loss_scale', 'dynamic')
                else:
                    optim_cfg.type = 'AutocastOptimWrapper'
                    optim_cfg.setdefault('dtype', 'bfloat16')
        torch.manual_seed(0)
        # mmengine's INFO reports (weight init, per-parameter optimiser
        # settings) are not what is measured: warnings only
        with file_only(MMLogger.get_current_instance()):
            model = MODELS.build(model_cfg)
            model.init_weights()
            # one device, not distributed: as mmengine's Runner.wrap_model
            model = revert_sync_batchnorm(model).to(self.device)
            self.optim_wrapper = build_optim_wrapper(model, optim_cfg)
        self.model = model
        # the PromptedViT (inside a wrapper such as LoRAModel, if any)
        self.vit = getattr(model.backbone, 'module', model.backbone)
        head = model.head if job['task'] == 'cls' else model.decode_head
        self.data = synthetic_data(
            job['task'], job['batch'], job['img_size'], head.num_classes
        )
        self.prepared = model.data_preprocessor(self.data, True)
        self.grads = None  # gradients seen by the last optimiser step
        self.optim_wrapper.optimizer.register_step_pre_hook(self._see_grads)
        self.compile_options = compile_options(settings.option(job, 'compile'))
        self.compiled = False
        self._encode_decode = None

    def enable_compile(self):
        """``torch.compile`` the model as ``compile=...`` in a config does
        (:func:`lspt_mm.engine.runner_utils.compile_model`: every model call,
        training and inference); segmentation inference here calls
        ``encode_decode``, compiled alike. Graphs are built at first use."""
        import torch

        if self.compile_options is None or self.compiled:
            return
        self.model.compile(**self.compile_options)
        if self.job['task'] == 'seg':
            self._encode_decode = torch.compile(
                self.model.encode_decode, **self.compile_options
            )
        self.compiled = True

    # ------------------------------------------------------------ steps
    def _see_grads(self, optimizer, args, kwargs):
        if self.grads is None:
            self.grads = {id(p): p.grad for p in self.model.parameters()}

    def autocast(self):
        """Nothing: with ``amp`` the optimiser wrapper's ``optim_context``
        autocasts the training forward (``AmpOptimWrapper`` fp16 on CUDA,
        ``AutocastOptimWrapper`` bf16 on CPU), as in training runs."""
        import contextlib

        return contextlib.nullcontext()

    def infer_autocast(self):
        import torch

        dtype = torch.float16 if self.cuda else torch.bfloat16
        return torch.autocast(
            self.device.type, dtype=dtype, enabled=self.settings.amp
        )

    def train_step(self):
        """One step of mmengine's train loop: ``model.train_step``."""
        self.model.train()
        with self.autocast():
            return self.model.train_step(self.data, self.optim_wrapper)

    def _forward(self):
        inputs = self.prepared['inputs']
        if self.job['task'] == 'cls':
            return self.model(inputs, mode='tensor')
        metas = [s.metainfo for s in self.prepared['data_samples']]
        return (self._encode_decode or self.model.encode_decode)(inputs, metas)

    def infer(self, grad=False):
        """The forward of inference (eval mode, ``no_grad`` unless
        ``grad``: the FLOP count runs it with autograd on, same ops)."""
        import torch

        self.model.eval()
        with torch.set_grad_enabled(grad), self.infer_autocast():
            return self._forward()

    def sync(self):
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def timed(self, fn, n):
        """Wall times (ms) of ``n`` calls of ``fn``."""
        times = []
        for _ in range(n):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t) * 1e3)
        return times

    # ------------------------------------------------------- inspection
    def frozen_report(self):
        """Counts over frozen (``requires_grad=False``) parameters: with a
        gradient at the last optimiser step, with optimiser state, in the
        optimiser's parameter groups; and trainable ones without gradient."""
        import torch

        opt = self.optim_wrapper.optimizer
        params = list(self.model.parameters())
        frozen = [p for p in params if not p.requires_grad]
        trainable = [p for p in params if p.requires_grad]
        grads = self.grads or {}
        in_groups = {id(p) for g in opt.param_groups for p in g['params']}

        def has_state(p):
            return any(
                torch.is_tensor(v) for v in opt.state.get(p, {}).values()
            )

        return dict(
            frozen_params=sum(p.numel() for p in frozen),
            frozen_with_grad=sum(
                grads.get(id(p)) is not None or p.grad is not None
                for p in frozen
            ),
            frozen_with_state=sum(has_state(p) for p in frozen),
            frozen_in_param_groups=sum(id(p) in in_groups for p in frozen),
            trainable_without_grad=sum(
                grads.get(id(p)) is None for p in trainable
            ),
        )

    def memory_terms(self):
        """Parameter, gradient (at the last optimiser step) and
        optimiser-state MiB, of the whole model and (``backbone_*``) of the
        backbone's tensors alone."""
        import torch

        opt = self.optim_wrapper.optimizer
        grads = self.grads or {}
        terms = {}
        for prefix, module in (
            ('', self.model),
            ('backbone_', self.model.backbone),
        ):
            params = list(module.parameters())
            state = [
                t
                for p in params
                for t in opt.state.get(p, {}).values()
                if torch.is_tensor(t)
            ]
            terms.update(
                {
                    prefix + 'param_mb': tensor_mb(params),
                    prefix + 'grad_mb': tensor_mb(
                        [
                            grads[id(p)]
                            for p in params
                            if grads.get(id(p)) is not None
                        ]
                    ),
                    prefix + 'optim_state_mb': tensor_mb(state),
                }
            )
        return terms

    def head_step_fns(self):
        """Segmentation: a train step and a forward of the neck and heads
        alone, on the backbone's features of the batch."""
        import torch

        model = self.model
        with torch.no_grad(), self.infer_autocast():
            model.train()
            feats = [
                f.float() for f in model.backbone(self.prepared['inputs'])
            ]
        needs_grad = any(p.requires_grad for p in model.backbone.parameters())
        feats = [f.detach().requires_grad_(needs_grad) for f in feats]
        samples = self.prepared['data_samples']

        def head_step():
            model.train()
            with self.autocast(), self.optim_wrapper.optim_context(model):
                x = model.neck(feats) if model.with_neck else feats
                losses = model._decode_head_forward_train(x, samples)
                if model.with_auxiliary_head:
                    losses.update(
                        model._auxiliary_head_forward_train(x, samples)
                    )
            loss, _ = model.parse_losses(losses)
            self.optim_wrapper.update_params(loss)

        def head_forward(auxiliary=True):
            model.eval()
            with torch.no_grad(), self.infer_autocast():
                x = model.neck(feats) if model.with_neck else feats
                model.decode_head(x)
                if auxiliary and model.with_auxiliary_head:
                    model.auxiliary_head(x)

        return head_step, head_forward


def norm_name(model):
    """The norm layer type of a segmentor's decode head (BN / GN / SyncBN)."""
    import torch

    for m in model.decode_head.modules():
        if isinstance(m, torch.nn.SyncBatchNorm):
            return 'SyncBN'
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            return 'BN'
        if isinstance(m, torch.nn.GroupNorm):
            return 'GN'
    return 'none'


def allocation_peak(step):
    """Peak of live tensor memory during ``step()`` on CPU (what
    ``torch.cuda.max_memory_allocated`` is on CUDA), from the profiler's
    memory timeline, with the split by category at that moment.
    Returns ``(peak_mb, {category: mb})`` or ``(None, None)``."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import (
            _CATEGORY_TO_INDEX,
            MemoryProfileTimeline,
        )

        with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True,
        ) as prof:
            step()
        timeline = MemoryProfileTimeline(prof._memory_profile())
        _, sizes = timeline._coalesce_timeline(torch.device('cpu'))
        totals = [sum(row) for row in sizes]
        at = max(range(len(totals)), key=totals.__getitem__)
        split = {
            ('other' if c is None else c.name.lower()): sizes[at][i + 1]
            / 2**20
            for c, i in _CATEGORY_TO_INDEX.items()
        }
        return totals[at] / 2**20, split
    except Exception as e:  # noqa: BLE001 - private API: report, go on
        print(f'allocation peak not measured: {e!r}', file=sys.stderr)
        return None, None


# Operator classes of :func:`op_class`, by aten name. Matrix
# products, fused attention and convolutions run in vendor kernels (MKL /
# oneDNN, cuBLAS / cuDNN) that ``torch.compile`` calls as they are; the rest
# (element-wise, norms, reductions, copies, the optimiser) is what its fusion
# can shorten.
MATMUL_OPS = frozenset(
    (
        'aten::mm',
        'aten::addmm',
        'aten::bmm',
        'aten::baddbmm',
        'aten::addbmm',
        'aten::_addmm_activation',
    )
)
OP_NAME_PARTS = (
    (
        'attention',
        (
            'scaled_dot_product',
            'flash_attention',
            'efficient_attention',
            'cudnn_attention',
        ),
    ),
    (
        'convolution',
        ('convolution', 'conv2d', 'conv_depthwise', 'mkldnn_conv'),
    ),
)


def op_class(name):
    """``matmul`` (exactly the aten products; ``aten::matmul`` and
    ``aten::linear`` are composites of them), ``attention``,
    ``convolution`` (by part of the name) or ``other``."""
    if name in MATMUL_OPS:
        return 'matmul'
    for cls, parts in OP_NAME_PARTS:
        if any(part in name for part in parts):
            return cls
    return 'other'


def op_time_shares(step, cuda=False):
    """Shares of one ``step()``'s operator self time (CPU, or the device's
    on CUDA) by :func:`op_class`, plus ``total_ms``: what fusion could at
    most remove is the ``other`` share. The profiler's own overhead lands
    mostly on the many small ops, so ``other`` is an upper bound. On CUDA
    each aten op is charged the device time of the kernels it launched
    (kernel entries themselves are skipped; not yet run on a GPU here)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as prof:
        step()
    times = dict(matmul=0.0, attention=0.0, convolution=0.0, other=0.0)
    for evt in prof.key_averages():
        if getattr(evt, 'device_type', DeviceType.CPU) != DeviceType.CPU:
            continue  # a kernel: counted with the aten op that launched it
        t = evt.self_device_time_total if cuda else evt.self_cpu_time_total
        times[op_class(evt.key)] += t
    total = sum(times.values()) or 1.0
    out = {k: v / total for k, v in times.items()}
    out['total_ms'] = total / 1e3
    return out


def _shown(path):
    """``path`` relative to the repository when inside it."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    rel = osp.relpath(osp.abspath(path), root)
    return path if rel.startswith('..') else rel


def job_key(job):
    key = '{method}|{task}|{img_size}|{num_prompts}|{batch}'.format(**job)
    return key + f'|{job["variant"]}' if job.get('variant') else key


def compile_options(value):
    """``torch.compile`` options of a ``compile`` value (None: eager), read
    as the ``compile`` config key is
    (:func:`lspt_mm.engine.runner_utils.compile_options`)."""
    return runner_compile_options({'compile': value})


def _max_diff(a, b):
    """Largest absolute difference of two (nested) outputs, and of ``a``."""
    if isinstance(a, (list, tuple)):
        pairs = [_max_diff(x, y) for x, y in zip(a, b)]
        return max(p[0] for p in pairs), max(p[1] for p in pairs)
    a, b = a.float(), b.float()
    return (a - b).abs().max().item(), a.abs().max().item()


# ================================================================ measure
def run_job(job, settings):
    """Measure one job; returns its record (a JSON-able dict). Raises
    ``AssertionError`` when a frozen weight got a gradient or optimiser
    state."""
    import torch

    rss0 = rss_mb()
    case = CostCase(job, settings)
    model, cuda = case.model, case.cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    vit = case.vit
    trainable_params, total_params = count_parameters(model)
    opt = case.optim_wrapper.optimizer
    rec = dict(job)
    rec.update(
        job=dict(job),
        config=_shown(settings.config_path(job)),
        optimizer=type(opt).__name__,
        optim_constructor=case.cfg.optim_wrapper.get(
            'constructor', 'DefaultOptimWrapperConstructor'
        ),
        param_groups=len(opt.param_groups),
        device=str(case.device),
        amp=bool(settings.amp),
        with_cp=vit.with_cp,
        compile=case.compile_options,
        arch=vit.arch_settings,
        patch_size=vit.patch_size,
        load_avg_1min=os.getloadavg()[0],
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        trainable_params=trainable_params,
        total_params=total_params,
        backbone_trainable_params=count_parameters(model.backbone)[0],
        prompt_method_params=sum(
            p.numel() for p in vit.prompt_method.parameters()
        ),
    )
    if job['task'] == 'seg':
        rec['seg_norm'] = norm_name(model)

    # ---------------------------------------------------------- training
    saved = SavedActivations(model, parts=dict(backbone=model.backbone))

    def counted_step():
        with saved.context():
            return case.train_step()

    _, train_flops = count_flops(counted_step)
    for _ in range(10):  # AMP: a step skipped for inf gradients sees none
        if case.grads is not None:
            break
        case.train_step()
    frozen = case.frozen_report()
    rec.update(frozen)
    rec.update(case.memory_terms())
    rec['activation_mb'] = saved.mb
    rec['backbone_activation_mb'] = saved.mb_of('backbone')
    saved.remove()
    if frozen['frozen_with_grad']:
        raise AssertionError(
            f'{job_key(job)}: {frozen["frozen_with_grad"]} '
            'frozen weights got a gradient'
        )
    if frozen['frozen_with_state']:
        raise AssertionError(
            f'{job_key(job)}: {frozen["frozen_with_state"]} frozen weights '
            'have optimiser state (a frozen weight is optimised)'
        )
    # inference FLOPs on the eager model (before any compile)
    _, fwd_flops = count_flops(lambda: case.infer(grad=True))
    if case.compile_options is not None:
        with torch.no_grad():
            eager_out = case.infer()
        case.enable_compile()
        # first calls compile; inference first: same weights as eager_out
        rec['compile_infer_first_ms'] = case.timed(case.infer, 1)[0]
        with torch.no_grad():
            rec['compile_max_abs_diff'], rec['compile_max_abs_out'] = (
                _max_diff(case.infer(), eager_out)
            )
        del eager_out
        rec['compile_train_first_ms'] = case.timed(case.train_step, 1)[0]
        rec['compile_cache'] = (
            'cold'
            if os.environ.get('LSPT_MM_COLD_COMPILE_CACHE')
            else 'as found'
        )
    case.timed(case.train_step, max(settings.warmup - 1, 0))
    train_times = case.timed(case.train_step, settings.repeats)
    case.sync()
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**20
        rec['peak_mem_above_model_mb'] = peak - mem0 / 2**20
        rec['alloc_peak_mb'] = peak
    else:
        peak = max(maxrss_mb() - rss0, 0.0)  # 0 if an earlier peak hides it
        if settings.alloc_peak:  # one more (steady-state) step, profiled
            rec['alloc_peak_mb'], rec['alloc_peak_split_mb'] = allocation_peak(
                case.train_step
            )
    if settings.op_shares:
        rec['op_time_shares'] = op_time_shares(case.train_step, cuda)

    # ------------------------------------------------ head alone (seg)
    if job['task'] == 'seg':
        head_step, head_forward = case.head_step_fns()
        _, head_flops = count_flops(head_step)
        case.timed(head_step, max(settings.warmup - 1, 0))
        rec['head_train_step_ms'] = statistics.median(
            case.timed(head_step, settings.repeats)
        )
        rec['head_train_gflops'] = head_flops / 1e9 / job['batch']
        # training runs the auxiliary head, inference does not
        _, head_fwd_flops = count_flops(head_forward)
        _, head_infer_flops = count_flops(lambda: head_forward(False))
    else:
        fc = model.head.fc
        head_fwd_flops = head_infer_flops = (
            2 * fc.in_features * fc.out_features * job['batch']
        )

    # ---------------------------------------------------------- inference
    case.timed(case.infer, max(settings.warmup - 1, 0))
    infer_times = case.timed(case.infer, settings.repeats)

    def analytic(head_flops):
        return model_flops(
            vit,
            job['batch'],
            job['img_size'],
            job['method'],
            head_fwd_flops=head_flops,
        )

    ana = analytic(head_fwd_flops)
    B = job['batch']
    rec.update(
        tokens=ana['tokens'],
        gflops=fwd_flops / 1e9 / B,
        train_gflops=train_flops / 1e9 / B,
        analytic_gflops=analytic(head_infer_flops)['fwd'] / 1e9 / B,
        analytic_train_gflops=ana['total'] / 1e9 / B,
        analytic_method_gflops=ana['method_fwd'] / 1e9 / B,
        analytic_lstm_gflops=ana['method_fwd'] / 1e9 / B,  # older name
        head_gflops=head_fwd_flops / 1e9 / B,
        train_step_ms=statistics.median(train_times),
        train_step_ms_all=train_times,
        train_step_ms_min=min(train_times),
        infer_ms=statistics.median(infer_times),
        infer_ms_all=infer_times,
        infer_ms_min=min(infer_times),
        peak_mem_mb=peak,
    )
    if job['task'] == 'seg':
        rec['head_share_of_step'] = (
            rec['head_train_step_ms'] / rec['train_step_ms']
        )
        rec['head_share_of_train_flops'] = (
            rec['head_train_gflops'] / rec['train_gflops']
        )
    if 'compile_train_first_ms' in rec:  # compile time beyond a step
        rec['compile_train_s'] = (
            rec['compile_train_first_ms'] - rec['train_step_ms']
        ) / 1e3
        rec['compile_infer_s'] = (
            rec['compile_infer_first_ms'] - rec['infer_ms']
        ) / 1e3
    return rec


def run_interleaved(jobs, settings):
    """Time several jobs in one process, round-robin; returns
    ``{job_key: dict(train=[ms, ...], infer=[ms, ...])}``."""
    cases = [CostCase(job, settings) for job in jobs]
    if any(c.compile_options is not None for c in cases):
        import torch._dynamo  # each model (and mode) is a cache entry

        torch._dynamo.config.cache_size_limit = max(
            torch._dynamo.config.cache_size_limit, 4 * len(cases)
        )
    times = {job_key(c.job): dict(train=[], infer=[]) for c in cases}
    for c in cases:  # warm-up (compiled jobs: the first call compiles)
        c.enable_compile()
        t = times[job_key(c.job)]
        t['first_train'] = c.timed(c.train_step, 1)[0]
        t['first_infer'] = c.timed(c.infer, 1)[0]
        for _ in range(max(settings.warmup, 1) - 1):
            c.train_step()
            c.infer()
    for _ in range(settings.repeats):
        for c in cases:
            times[job_key(c.job)]['train'] += c.timed(c.train_step, 1)
    for _ in range(settings.repeats):
        for c in cases:
            times[job_key(c.job)]['infer'] += c.timed(c.infer, 1)
    return times


def merge_interleaved(records, times):
    """Make the interleaved medians the headline ``train_step_ms`` /
    ``infer_ms``; the per-process ones stay as ``*_per_process``."""
    for r in records:
        tt = times[job_key(r)]
        if r.get('compile') is not None:  # (inductor's cache is warm now:
            # the per-process compile_*_s stay the cold figures)
            for name in ('train', 'infer'):
                r[f'compile_{name}_s_interleaved'] = (
                    tt[f'first_{name}'] - statistics.median(tt[name])
                ) / 1e3
        for name, key in (('train', 'train_step_ms'), ('infer', 'infer_ms')):
            r[f'{key}_per_process'] = r[key]
            r[f'{key}_per_process_all'] = r[f'{key}_all']
            r[f'{key}_all'] = tt[name]
            r[key] = statistics.median(tt[name])
            r[f'{key}_min'] = min(tt[name])
        r['timing'] = 'interleaved'
        if 'head_train_step_ms' in r:
            r['head_share_of_step'] = (
                r['head_train_step_ms'] / r['train_step_ms']
            )
    return records


# ============================================================ processes
def run_in_subprocess(kind, payload, settings, timeout=3600):
    """Run :func:`run_job` (``kind='job'``, payload a job) or
    :func:`run_interleaved` (``kind='interleaved'``, payload a list of
    jobs) in a fresh Python process; returns its result."""
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    cache = None
    if (
        kind == 'job'
        and compile_options(settings.option(payload, 'compile')) is not None
    ):
        # an empty inductor (and triton) cache: the first step's compile
        # time is the one a user's first run pays, not a cache hit of an
        # earlier measurement
        cache = tempfile.mkdtemp(prefix='lspt_mm_inductor_')
        env.update(
            TORCHINDUCTOR_CACHE_DIR=cache,
            TRITON_CACHE_DIR=osp.join(cache, 'triton'),
            LSPT_MM_COLD_COMPILE_CACHE='1',
        )
    if settings.threads:  # inductor's compile workers too (they would take
        # the cores of a measurement running beside this one)
        env.setdefault('TORCHINDUCTOR_COMPILE_THREADS', str(settings.threads))
    cmd = [
        sys.executable,
        '-m',
        'lspt_mm.analysis.cost',
        kind,
        json.dumps(payload),
        settings.to_json(),
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env
        )
    finally:
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    raise RuntimeError(
        f'cost measurement of {payload} failed (exit {proc.returncode}):\n'
        f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}'
    )


def _worker(argv=None):
    p = argparse.ArgumentParser(
        description='one cost measurement (run by run_in_subprocess)'
    )
    p.add_argument('kind', choices=['job', 'interleaved'])
    p.add_argument('payload')
    p.add_argument('settings')
    args = p.parse_args(argv)
    settings = CostSettings.from_json(args.settings)
    payload = json.loads(args.payload)
    run = run_job if args.kind == 'job' else run_interleaved
    print(RESULT_TAG + json.dumps(run(payload, settings)), flush=True)


if __name__ == '__main__':
    _worker()

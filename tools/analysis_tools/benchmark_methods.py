"""Cost of every prompt-tuning method, measured side by side.

For each (method, task, image size, prompt count) the driver starts a fresh
Python process (so peak memory is per method), which builds the model
(ViT + linear head for ``cls``, ViT + Feature2Pyramid + UPerNet + FCN aux
head for ``seg``), and measures

- trainable / total parameters,
- forward FLOPs and forward+backward FLOPs, counted (``FlopCounterMode``,
  CPU fused attention included) and analytic (``lspt_mm.analysis.flops``),
- training step time (forward, backward, optimiser step; SGD momentum for
  cls, AdamW for seg, built over trainable parameters only), inference
  time, each the median of ``--repeats`` runs after ``--warmup`` runs,
- peak training memory (CUDA: ``max_memory_allocated``; CPU: peak RSS of the
  process minus its RSS before the model was built) with a breakdown:
  parameters, gradients, optimiser state, activations saved for backward,
- for ``seg``: the step time and FLOPs of the neck + heads alone,

and checks that frozen weights got no gradient and no optimiser state.

It prints markdown tables (each figure also as a ratio to VPT-deep and to
full fine-tuning, an LSPT sweep over prompt count and image size, and the
issue-5 targets as PASS/FAIL) and writes the records as JSON (``--out``).

Examples::

    # the full grid (GPU: add --amp)
    python tools/analysis_tools/benchmark_methods.py --out bench.json
    # a small CPU run
    python tools/analysis_tools/benchmark_methods.py --tasks cls \\
        --batch 2 --num-prompts 10 100 --repeats 2 --out bench.json
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ALL_METHODS = ['linear', 'full', 'vpt_shallow', 'vpt_deep', 'gapt', 'lspt']
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=2,
                 feedforward_channels=128)
RESULT_TAG = 'BENCHMARK_RESULT '


# ====================================================================== args
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Measure parameters, FLOPs, train-step time, inference '
        'time and peak memory of each prompt method (one process each).')
    p.add_argument('--methods', nargs='+', default=ALL_METHODS,
                   help='benchmark methods: linear (frozen, no prompts), '
                   'full (full fine-tune), vpt_shallow, vpt_deep, gapt, '
                   'lspt, lspt_lpc_only, lspt_gspc_only')
    p.add_argument('--tasks', nargs='+', default=['cls', 'seg'],
                   choices=['cls', 'seg'])
    p.add_argument('--arch', default='base',
                   help="mmpretrain ViT arch name, 'tiny' (64 wide, 4 "
                   'layers) or a JSON dict')
    p.add_argument('--patch-size', type=int, default=16)
    p.add_argument('--cls-size', type=int, nargs='+', default=[224])
    p.add_argument('--seg-size', type=int, nargs='+', default=[512])
    p.add_argument('--batch', type=int, default=8, help='cls batch size')
    p.add_argument('--seg-batch', type=int, default=2)
    p.add_argument('--num-prompts', type=int, nargs='+', default=[10, 100])
    p.add_argument('--seg-num-prompts', type=int, nargs='+', default=[100])
    p.add_argument('--num-classes', type=int, default=100)
    p.add_argument('--seg-channels', type=int, default=512,
                   help='UPerNet channels (FCN aux: half)')
    p.add_argument('--seg-norm', default='auto', choices=['auto', 'BN', 'GN',
                                                            'SyncBN'],
                   help='norm of neck and heads; auto: BN (as mmseg, SyncBN '
                   'on one device), GN(32) when --seg-batch is 1 (BN cannot '
                   'train the 1x1 pyramid pooling on one image)')
    p.add_argument('--sweep-method', default='lspt',
                   help="method swept over --sweep-prompts x --sweep-sizes "
                   "(cls); 'none' disables the sweep")
    p.add_argument('--sweep-prompts', type=int, nargs='*',
                   default=[10, 50, 100, 200])
    p.add_argument('--sweep-sizes', type=int, nargs='*', default=[224, 384])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2,
                   help='untimed runs first; the first is the counted one '
                   '(FLOPs, saved activations)')
    p.add_argument('--device', default=None,
                   help='cpu or cuda (default: cuda when available)')
    p.add_argument('--amp', action='store_true',
                   help='mixed precision (fp16 + GradScaler on CUDA, bf16 '
                   'autocast on CPU)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch CPU threads (default: torch default)')
    p.add_argument('--no-alloc-peak', dest='alloc_peak',
                   action='store_false',
                   help='CPU: skip the profiled extra train step that gives '
                   'the peak of live tensor memory (alloc_peak_mb)')
    p.add_argument('--out', help='write the records as JSON here')
    p.add_argument('--markdown', help='also write the tables to this file')
    p.add_argument('--timeout', type=float, default=3600,
                   help='seconds per method process')
    p.add_argument('--in-process', action='store_true',
                   help='run every job in this process (debugging; peak '
                   'memory is then not per method)')
    p.add_argument('--no-interleave', dest='interleave', action='store_false',
                   help='skip the interleaved timing pass: then step and '
                   'inference times come from the per-method processes')
    p.add_argument('--report', nargs='+', metavar='JSON',
                   help='only print the tables and targets of saved --out '
                   'files (several are merged); runs nothing')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    p.add_argument('--interleave-worker', help=argparse.SUPPRESS)
    return p.parse_args(argv)


def resolve_arch(arch):
    if arch == 'tiny':
        return dict(TINY_ARCH)
    if arch.strip().startswith('{'):
        return json.loads(arch)
    return arch


def make_jobs(args):
    """The (method, task, size, prompts, batch) grid, duplicates removed."""
    jobs, seen = [], set()

    def add(method, task, size, n_p, batch):
        if method in ('linear', 'full'):
            n_p = 0
        key = (method, task, size, n_p, batch)
        if key not in seen:
            seen.add(key)
            jobs.append(dict(method=method, task=task, img_size=size,
                             num_prompts=n_p, batch=batch))

    for task in args.tasks:
        sizes = args.cls_size if task == 'cls' else args.seg_size
        prompts = args.num_prompts if task == 'cls' else args.seg_num_prompts
        batch = args.batch if task == 'cls' else args.seg_batch
        for size in sizes:
            for n_p in prompts:
                for method in args.methods:
                    add(method, task, size, n_p, batch)
    if args.sweep_method != 'none' and 'cls' in args.tasks:
        for size in args.sweep_sizes:
            for n_p in args.sweep_prompts:
                add(args.sweep_method, 'cls', size, n_p, args.batch)
    return jobs


# ==================================================================== worker
def _rss_mb():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def _maxrss_mb():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.


def seg_out_indices(num_layers):
    """[3, 5, 7, 11] for 12 blocks, spread alike for other depths."""
    if num_layers < 4:
        raise ValueError(f'seg needs >= 4 blocks, got {num_layers}')
    idx = [num_layers * f // 12 - 1 for f in (4, 6, 8, 12)]
    if len(set(idx)) < 4 or min(idx) < 0:
        idx = list(range(num_layers - 4, num_layers))
    return idx


def seg_norm_cfg(args, batch):
    name = args.seg_norm
    if name == 'auto':
        name = 'GN' if batch == 1 else 'BN'
    if name == 'GN':  # 32 groups (fewer when a tiny head is narrower)
        groups = math.gcd(32, args.seg_channels // 2)
        return dict(type='GN', num_groups=groups, requires_grad=True)
    return dict(type=name, requires_grad=True)


def build_model(job, args):
    """ViT + linear head (cls) or ViT + UPerNet (seg), on CPU."""
    from mmengine.registry import init_default_scope

    from lspt_mm.analysis.flops import METHOD_SPECS, arch_settings
    prompt_method, frozen = METHOD_SPECS[job['method']]
    arch = resolve_arch(args.arch)
    D, L, _, _ = arch_settings(arch)
    backbone = dict(
        type='PromptedViT', arch=arch, img_size=job['img_size'],
        patch_size=args.patch_size, prompt_method=prompt_method,
        num_prompts=max(job['num_prompts'], 1), freeze_backbone=frozen,
        drop_path_rate=0.1)
    if job['task'] == 'cls':
        init_default_scope('mmpretrain')
        from mmpretrain.registry import MODELS
        cfg = dict(
            type='ImageClassifier', backbone=dict(backbone,
                                                  out_type='avg_token'),
            head=dict(type='LinearClsHead', num_classes=args.num_classes,
                      in_channels=D, loss=dict(type='CrossEntropyLoss')))
    else:
        init_default_scope('mmseg')
        from mmseg.registry import MODELS
        norm = seg_norm_cfg(args, job['batch'])
        ch = args.seg_channels
        backbone.update(type='mmpretrain.PromptedViT', out_type='featmap',
                        out_indices=seg_out_indices(L), final_norm=False)
        cfg = dict(
            type='EncoderDecoder', backbone=backbone,
            neck=dict(type='Feature2Pyramid', embed_dim=D,
                      rescales=[4, 2, 1, 0.5], norm_cfg=norm),
            decode_head=dict(
                type='UPerHead', in_channels=[D] * 4, in_index=[0, 1, 2, 3],
                pool_scales=(1, 2, 3, 6), channels=ch, dropout_ratio=0.1,
                num_classes=150, norm_cfg=norm, align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=1.0)),
            auxiliary_head=dict(
                type='FCNHead', in_channels=D, in_index=2, channels=ch // 2,
                num_convs=1, concat_input=False, dropout_ratio=0.1,
                num_classes=150, norm_cfg=norm, align_corners=False,
                loss_decode=dict(type='CrossEntropyLoss', loss_weight=0.4)),
            train_cfg=dict(), test_cfg=dict(mode='whole'))
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def synthetic_batch(job, args, device):
    import torch
    B, S = job['batch'], job['img_size']
    g = torch.Generator().manual_seed(0)
    inputs = torch.randn(B, 3, S, S, generator=g).to(device)
    if job['task'] == 'cls':
        from mmpretrain.structures import DataSample
        samples = [DataSample().set_gt_label(i % args.num_classes)
                   for i in range(B)]
    else:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        samples = []
        for _ in range(B):
            s = SegDataSample(metainfo=dict(img_shape=(S, S), pad_shape=(S, S),
                                            ori_shape=(S, S)))
            s.gt_sem_seg = PixelData(data=torch.randint(
                0, 150, (1, S, S), generator=g).to(device))
            samples.append(s)
    return inputs, samples


def build_optimizer(model, task):
    """Only trainable parameters: frozen weights get no optimiser state."""
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    if task == 'cls':  # GaPT/VPT recipe
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    return torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)


def _tensor_mb(tensors):
    return sum(t.numel() * t.element_size() for t in tensors) / 2**20


class SavedActivations:
    """Bytes of the tensors autograd saves for backward (parameters
    excluded, each storage counted once)."""

    def __init__(self, model):
        self.param_ptrs = {p.untyped_storage().data_ptr()
                           for p in model.parameters()}
        self.storages = {}

    def pack(self, t):
        try:
            s = t.untyped_storage()
        except Exception:  # noqa: BLE001 - e.g. tensor subclasses
            return t
        ptr = s.data_ptr()
        if ptr and ptr not in self.param_ptrs:
            self.storages[ptr] = max(self.storages.get(ptr, 0), s.nbytes())
        return t

    def context(self):
        import torch
        return torch.autograd.graph.saved_tensors_hooks(self.pack,
                                                        lambda t: t)

    @property
    def mb(self):
        return sum(self.storages.values()) / 2**20


class Runner:
    """One method's model, synthetic batch, optimiser and timed steps."""

    def __init__(self, job, args):
        import torch

        import lspt_mm  # noqa: F401  (compat fixes, registers PromptedViT)
        if args.threads:
            torch.set_num_threads(args.threads)
        self.job, self.args = job, args
        self.device = device = torch.device(args.device or (
            'cuda' if torch.cuda.is_available() else 'cpu'))
        self.cuda = device.type == 'cuda'
        if job['task'] == 'seg':
            import mmseg.models  # noqa: F401  (registers mmseg modules)
        torch.manual_seed(0)
        self.model = build_model(job, args).to(device)
        self.inputs, self.samples = synthetic_batch(job, args, device)
        self.optimizer = build_optimizer(self.model, job['task'])
        self.amp_dtype = torch.float16 if self.cuda else torch.bfloat16
        self.scaler = torch.amp.GradScaler('cuda') if (
            args.amp and self.cuda) else None

    def autocast(self):
        import torch
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.args.amp)

    def sync(self):
        if self.cuda:
            import torch
            torch.cuda.synchronize()

    def train_step(self):
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.model.loss(self.inputs, self.samples)
            loss = sum(v for k, v in losses.items() if 'loss' in k)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss

    def infer(self):
        import torch
        self.model.eval()
        with torch.no_grad(), self.autocast():
            return self._infer()

    def _infer(self):
        if self.job['task'] == 'cls':
            return self.model(self.inputs, mode='tensor')
        metas = [s.metainfo for s in self.samples]
        return self.model.encode_decode(self.inputs, metas)

    def timed(self, fn, n):
        times = []
        for _ in range(n):
            self.sync()
            t = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t) * 1e3)
        return times


def run_interleaved(jobs, args):
    """Time several methods in one process, round-robin, so that a changing
    load on a shared machine hits all of them alike; returns
    ``{job key: dict(train=[ms...], infer=[ms...])}``."""
    runners = [Runner(job, args) for job in jobs]
    for r in runners:  # warm-up
        for _ in range(max(args.warmup, 1)):
            r.train_step()
            r.infer()
    times = {job_key(r.job): dict(train=[], infer=[]) for r in runners}
    for _ in range(args.repeats):
        for r in runners:
            times[job_key(r.job)]['train'] += r.timed(r.train_step, 1)
    for _ in range(args.repeats):
        for r in runners:
            times[job_key(r.job)]['infer'] += r.timed(r.infer, 1)
    return times


def job_key(job):
    return '{method}|{task}|{img_size}|{num_prompts}|{batch}'.format(**job)


def allocation_peak(step):
    """Peak of live tensor memory during ``step()`` on CPU (what
    ``torch.cuda.max_memory_allocated`` is on CUDA), from the profiler's
    memory timeline, with the split by category at that moment.
    Returns ``(peak_mb, {category: mb})`` or ``(None, None)``."""
    try:
        import torch
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import (_CATEGORY_TO_INDEX,
                                                     MemoryProfileTimeline)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                     record_shapes=True, with_stack=True) as prof:
            step()
        timeline = MemoryProfileTimeline(prof._memory_profile())
        _, sizes = timeline._coalesce_timeline(torch.device('cpu'))
        totals = [sum(row) for row in sizes]
        at = max(range(len(totals)), key=totals.__getitem__)
        split = {('other' if c is None else c.name.lower()):
                 sizes[at][i + 1] / 2**20
                 for c, i in _CATEGORY_TO_INDEX.items()}
        return totals[at] / 2**20, split
    except Exception as e:  # noqa: BLE001 - private API: report, go on
        print(f'allocation peak not measured: {e!r}', file=sys.stderr)
        return None, None


def run_job(job, args):
    """Measure one (method, task, size, prompts, batch); returns a record."""
    import torch

    from lspt_mm import count_parameters
    from lspt_mm.analysis.flops import analytic_flops, count_flops
    rss0 = _rss_mb()
    runner = Runner(job, args)
    model, optimizer = runner.model, runner.optimizer
    inputs, samples = runner.inputs, runner.samples
    device, cuda = runner.device, runner.cuda
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        mem0 = torch.cuda.memory_allocated()
    train_step, timed, sync = runner.train_step, runner.timed, runner.sync
    autocast = runner.autocast

    def infer():
        with autocast():
            return runner._infer()

    trainable = [p for p in model.parameters() if p.requires_grad]
    frozen = [p for p in model.parameters() if not p.requires_grad]
    backbone = model.backbone
    trainable_params, total_params = count_parameters(model)
    rec = dict(job)
    if job['task'] == 'seg':
        rec['seg_norm'] = seg_norm_cfg(args, job['batch'])['type']
    rec.update(
        device=str(device), amp=bool(args.amp), arch=args.arch,
        load_avg_1min=os.getloadavg()[0],
        threads=torch.get_num_threads(), torch=torch.__version__,
        trainable_params=trainable_params,
        total_params=total_params,
        backbone_trainable_params=count_parameters(backbone)[0],
        prompt_method_params=sum(
            p.numel() for p in backbone.prompt_method.parameters()))

    # ---------------------------------------------------------- training
    model.train()
    saved = SavedActivations(model)

    def counted_step():
        with saved.context():
            return train_step()

    _, train_flops = count_flops(counted_step)
    timed(train_step, max(args.warmup - 1, 0))
    train_times = timed(train_step, args.repeats)
    sync()
    if cuda:
        peak = (torch.cuda.max_memory_allocated()) / 2**20
        rec['peak_mem_above_model_mb'] = peak - mem0 / 2**20
        rec['alloc_peak_mb'] = peak
    else:
        peak = max(_maxrss_mb() - rss0, 0.)  # 0 if an earlier peak hides it
        if args.alloc_peak:  # one more (steady-state) step, profiled
            rec['alloc_peak_mb'], rec['alloc_peak_split_mb'] = \
                allocation_peak(train_step)
    # frozen weights: no gradient buffer, no optimiser state
    opt_params = {id(p) for g in optimizer.param_groups for p in g['params']}
    state_tensors = [t for s in optimizer.state.values() for t in s.values()
                     if torch.is_tensor(t)]
    rec.update(
        frozen_params=sum(p.numel() for p in frozen),
        frozen_with_grad=sum(p.grad is not None for p in frozen),
        frozen_in_optimizer=sum(id(p) in opt_params or p in optimizer.state
                                for p in frozen),
        trainable_without_grad=sum(p.grad is None for p in trainable),
        param_mb=_tensor_mb(list(model.parameters())),
        grad_mb=_tensor_mb([p.grad for p in model.parameters()
                            if p.grad is not None]),
        optim_state_mb=_tensor_mb(state_tensors),
        activation_mb=saved.mb)
    assert rec['frozen_with_grad'] == 0, 'a frozen weight got a gradient'
    assert rec['frozen_in_optimizer'] == 0, 'a frozen weight is optimised'

    # ------------------------------------------------ head alone (seg)
    if job['task'] == 'seg':
        with torch.no_grad(), autocast():
            feats = [f.float() for f in model.backbone(inputs)]
        needs_grad = bool(rec['backbone_trainable_params'])
        feats = [f.detach().requires_grad_(needs_grad) for f in feats]

        def head_step():
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                x = model.neck(feats)
                losses = model.decode_head.loss(x, samples, model.train_cfg)
                losses.update(model.auxiliary_head.loss(
                    x, samples, model.train_cfg))
                loss = sum(v for k, v in losses.items() if 'loss' in k)
            loss.backward()
            optimizer.step()

        _, head_flops = count_flops(head_step)
        timed(head_step, max(args.warmup - 1, 0))
        rec['head_train_step_ms'] = statistics.median(
            timed(head_step, args.repeats))
        rec['head_train_gflops'] = head_flops / 1e9 / job['batch']

        def head_fwd():
            with torch.no_grad(), autocast():
                x = model.neck(feats)
                model.decode_head(x)
                model.auxiliary_head(x)

        _, head_fwd_flops = count_flops(head_fwd)
        del feats
    else:
        head = model.head.fc
        head_fwd_flops = 2 * head.in_features * head.out_features * \
            job['batch']

    # ---------------------------------------------------------- inference
    model.eval()
    _, fwd_flops = count_flops(infer)  # grad enabled: same ops, counted
    with torch.no_grad():
        timed(infer, max(args.warmup - 1, 0))
        infer_times = timed(infer, args.repeats)

    ana = analytic_flops(job['method'], resolve_arch(args.arch),
                         job['img_size'], args.patch_size, job['num_prompts'],
                         job['batch'], head_fwd_flops=head_fwd_flops)
    B = job['batch']
    rec.update(
        tokens=ana['tokens'],
        gflops=fwd_flops / 1e9 / B,
        train_gflops=train_flops / 1e9 / B,
        analytic_gflops=ana['fwd'] / 1e9 / B,
        analytic_train_gflops=ana['total'] / 1e9 / B,
        analytic_lstm_gflops=ana['lstm_fwd'] / 1e9 / B,
        head_gflops=head_fwd_flops / 1e9 / B,
        train_step_ms=statistics.median(train_times),
        train_step_ms_all=train_times,
        train_step_ms_min=min(train_times),
        infer_ms=statistics.median(infer_times),
        infer_ms_all=infer_times,
        infer_ms_min=min(infer_times),
        peak_mem_mb=peak)
    if job['task'] == 'seg':
        rec['head_share_of_step'] = rec['head_train_step_ms'] / \
            rec['train_step_ms']
        rec['head_share_of_train_flops'] = rec['head_train_gflops'] / \
            rec['train_gflops']
    return rec


# ==================================================================== driver
def run_in_subprocess(job, args, argv, flag='--worker'):
    cmd = [sys.executable, osp.abspath(__file__), *argv, flag,
           json.dumps(job)]
    env = dict(os.environ)
    root = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          timeout=args.timeout, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise RuntimeError(
        f'benchmark of {job} failed (exit {proc.returncode}):\n'
        f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')


RATIO_KEYS = ('trainable_params', 'gflops', 'train_gflops',
              'analytic_train_gflops', 'train_step_ms', 'infer_ms',
              'peak_mem_mb')
METHOD_ORDER = ALL_METHODS + ['lspt_lpc_only', 'lspt_gspc_only']


def groups(records):
    """Comparison groups: same task, image size and batch, one prompt count;
    the prompt-free methods (linear, full) join every group of their
    setting. Yields ``(task, size, batch, num_prompts, rows)``."""
    settings = sorted({(r['task'], r['img_size'], r['batch'])
                       for r in records})
    for task, size, batch in settings:
        rows = [r for r in records if (r['task'], r['img_size'],
                                       r['batch']) == (task, size, batch)]
        shared = [r for r in rows if not r['num_prompts']]
        counts = sorted({r['num_prompts'] for r in rows if r['num_prompts']})
        for n_p in counts or [0]:
            group = shared + [r for r in rows if r['num_prompts'] == n_p]
            group.sort(key=lambda r: METHOD_ORDER.index(r['method'])
                       if r['method'] in METHOD_ORDER else 99)
            yield task, size, batch, n_p, group


def _ratios(r, ref):
    if ref is None:
        return None
    return {k: (r[k] / ref[k] if ref.get(k) else None) for k in RATIO_KEYS}


def interleave(records, args, argv):
    """Second timing pass: per (task, size, batch), one process times all
    its methods round-robin. Its medians become ``train_step_ms`` /
    ``infer_ms``; the per-process ones stay as ``*_per_process``."""
    settings = sorted({(r['task'], r['img_size'], r['batch'])
                       for r in records})
    for setting in settings:
        rows = [r for r in records
                if (r['task'], r['img_size'], r['batch']) == setting]
        jobs = [{k: r[k] for k in ('method', 'task', 'img_size',
                                   'num_prompts', 'batch')} for r in rows]
        t = time.time()
        print(f'[interleaved] {setting}: {len(jobs)} methods',
              file=sys.stderr, flush=True)
        times = run_in_subprocess(jobs, args, argv, '--interleave-worker')
        print(f'    ({time.time() - t:.0f} s)', file=sys.stderr, flush=True)
        for r, job in zip(rows, jobs):
            tt = times[job_key(job)]
            for name, key in (('train', 'train_step_ms'),
                              ('infer', 'infer_ms')):
                r[f'{key}_per_process'] = r[key]
                r[f'{key}_per_process_all'] = r[f'{key}_all']
                r[f'{key}_all'] = tt[name]
                r[key] = statistics.median(tt[name])
                r[f'{key}_min'] = min(tt[name])
            r['timing'] = 'interleaved'


def add_ratios(records):
    """Each figure as a ratio to VPT-deep (same task, size, batch and prompt
    count) and to full fine-tuning (same task, size, batch). Prompt-free
    methods get one VPT-deep ratio per prompt count:
    ``ratio_to_vpt_deep_by_num_prompts``."""
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        for r in rows:
            r['ratio_to_full'] = _ratios(r, by.get('full'))
            vpt = _ratios(r, by.get('vpt_deep'))
            if r['num_prompts']:
                r['ratio_to_vpt_deep'] = vpt
            else:
                r.setdefault('ratio_to_vpt_deep_by_num_prompts',
                             {})[str(n_p)] = vpt
    return records


def _ratio(r, ref, key, ref_row):
    if ref_row is None or not ref_row.get(key):
        return '-'
    return f'{r[key] / ref_row[key]:.2f}'


def main_table(records):
    head = ('| task | size | batch | N_p | method | trainable params | total '
            'params | GFLOPs fwd | GFLOPs fwd+bwd counted / analytic | '
            '×VPT-deep (analytic) | train step ms | ×VPT-deep | ×full | '
            'infer ms | ×VPT-deep | ×full | peak train MB | ×full |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full = by.get('vpt_deep'), by.get('full')
        for r in rows:
            lines.append(
                f"| {task} | {size} | {batch} | {n_p or '-'} | "
                f"{r['method']} | {r['trainable_params']:,} | "
                f"{r['total_params']:,} | {r['gflops']:.2f} | "
                f"{r['train_gflops']:.1f} / {r['analytic_train_gflops']:.1f} "
                f"| {_ratio(r, 'v', 'analytic_train_gflops', vpt)} | "
                f"{r['train_step_ms']:.0f} | "
                f"{_ratio(r, 'v', 'train_step_ms', vpt)} | "
                f"{_ratio(r, 'f', 'train_step_ms', full)} | "
                f"{r['infer_ms']:.0f} | {_ratio(r, 'v', 'infer_ms', vpt)} | "
                f"{_ratio(r, 'f', 'infer_ms', full)} | "
                f"{r['peak_mem_mb']:.0f} | "
                f"{_ratio(r, 'f', 'peak_mem_mb', full)} |")
    return '\n'.join(lines)


def breakdown_table(records):
    head = ('| task | size | batch | N_p | method | params MB | grads MB | '
            'optimiser MB | saved activations MB | peak train MB (tensors) | '
            'frozen '
            'params with grad / in optimiser | load avg |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(records, key=lambda r: (r['task'], r['img_size'],
                                            r['batch'], r['num_prompts'])):
        lines.append(
            f"| {r['task']} | {r['img_size']} | {r['batch']} | "
            f"{r['num_prompts'] or '-'} | {r['method']} | "
            f"{r['param_mb']:.0f} | {r['grad_mb']:.0f} | "
            f"{r['optim_state_mb']:.0f} | {r['activation_mb']:.0f} | "
            f"{r['peak_mem_mb']:.0f} ({_mb(r.get('alloc_peak_mb'))}) | "
            f"{r['frozen_with_grad']} / "
            f"{r['frozen_in_optimizer']} | {r['load_avg_1min']:.1f} |")
    seg = [r for r in records if 'head_train_step_ms' in r]
    if seg:
        lines += ['', '| seg size | batch | N_p | method | neck+heads train '
                  'step ms | share of step | share of train FLOPs |',
                  '|---|---|---|---|---|---|---|']
        for r in seg:
            lines.append(
                f"| {r['img_size']} | {r['batch']} | "
                f"{r['num_prompts'] or '-'} | {r['method']} | "
                f"{r['head_train_step_ms']:.0f} | "
                f"{r['head_share_of_step']:.0%} | "
                f"{r['head_share_of_train_flops']:.0%} |")
    return '\n'.join(lines)


def sweep_table(records, method):
    rs = [r for r in records if r['method'] == method and r['task'] == 'cls']
    if len(rs) < 2:
        return ''
    head = ('| size | batch | N_p | tokens | GFLOPs fwd | of which LSTM '
            '(analytic) | GFLOPs fwd+bwd | train step ms | infer ms | peak '
            'train MB |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(rs, key=lambda r: (r['img_size'], r['batch'],
                                       r['num_prompts'])):
        lines.append(
            f"| {r['img_size']} | {r['batch']} | {r['num_prompts']} | "
            f"{r['tokens']} | {r['gflops']:.2f} | "
            f"{r['analytic_lstm_gflops']:.2f} | {r['train_gflops']:.1f} | "
            f"{r['train_step_ms']:.0f} | {r['infer_ms']:.0f} | "
            f"{r['peak_mem_mb']:.0f} |")
    return '\n'.join(lines)


def _mb(x):
    return '-' if x is None else f'{x:.0f}'


def accounted_mb(r):
    return (r['param_mb'] + r['grad_mb'] + r['optim_state_mb'] +
            r['activation_mb'])


def evaluate_targets(records):
    """The issue-5 targets the records can decide: a list of
    ``(target, passed, detail)``."""
    out = []
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full, lspt = by.get('vpt_deep'), by.get('full'), by.get('lspt')
        tag = f'{task} {size}px batch {batch} N_p={n_p}'
        # 1. no wasted work
        if vpt:
            for r in rows:
                if r is vpt:
                    continue
                t = r['train_step_ms'] / vpt['train_step_ms']
                f = r['analytic_train_gflops'] / vpt['analytic_train_gflops']
                out.append((f"{tag}: {r['method']} train time / VPT-deep <= "
                            '1.05 x FLOP ratio', t <= 1.05 * f,
                            f'time ratio {t:.3f}, FLOP ratio {f:.3f} '
                            f'(limit {1.05 * f:.3f})'))
        # 2. segmentation
        if task == 'seg' and n_p == 100 and lspt and vpt:
            ratio = lspt['train_step_ms'] / vpt['train_step_ms']
            out.append((f'{tag}: LSPT train step <= 1.05 x VPT-deep',
                        ratio <= 1.05, f'ratio {ratio:.3f}'))
        if task == 'seg' and lspt and full:
            need = 3 * 4 * lspt['frozen_params'] / 2**20
            saved = full['peak_mem_mb'] - lspt['peak_mem_mb']
            terms = accounted_mb(full) - accounted_mb(lspt)
            what = 'peak process memory'
            if full.get('alloc_peak_mb') and lspt.get('alloc_peak_mb'):
                what = 'peak tensor memory'
                alloc = full['alloc_peak_mb'] - lspt['alloc_peak_mb']
                extra = (f"; peak process memory {full['peak_mem_mb']:.0f} - "
                         f"{lspt['peak_mem_mb']:.0f} = {saved:.0f} MB")
                saved_used = alloc
                head = (f"full {full['alloc_peak_mb']:.0f} MB - LSPT "
                        f"{lspt['alloc_peak_mb']:.0f} MB = {alloc:.0f} MB")
            else:
                extra, saved_used = '', saved
                head = (f"full {full['peak_mem_mb']:.0f} MB - LSPT "
                        f"{lspt['peak_mem_mb']:.0f} MB = {saved:.0f} MB")
            out.append((
                f'{tag}: LSPT {what} in training below full fine-tune by '
                '>= frozen grads + AdamW state', saved_used >= need,
                f'{head}, need {need:.0f} MB{extra} (measured terms params '
                '+ grads + optimiser + saved activations differ by '
                f'{terms:.0f} MB); '
                f"LSPT/full memory "
                f"{lspt['peak_mem_mb'] / full['peak_mem_mb']:.2f}, step "
                f"{lspt['train_step_ms'] / full['train_step_ms']:.2f}; "
                'neck+heads take '
                f"{lspt['head_share_of_step']:.0%} of the LSPT step"))
        # 3. classification
        if task == 'cls' and size == 224 and n_p == 100 and lspt and vpt:
            ratio = lspt['infer_ms'] / vpt['infer_ms']
            out.append((f'{tag}: LSPT inference <= 1.12 x VPT-deep',
                        ratio <= 1.12, f'ratio {ratio:.3f}'))
        if task == 'cls' and size == 224 and n_p == 10 and lspt and full:
            ratio = lspt['train_step_ms'] / full['train_step_ms']
            out.append((f'{tag}: LSPT train step <= 0.80 x full fine-tune',
                        ratio <= 0.80, f'ratio {ratio:.3f}'))
    # 4. frozen weights
    bad = [r['method'] for r in records
           if r['frozen_with_grad'] or r['frozen_in_optimizer']]
    out.append(('frozen weights: no gradient buffer, no optimiser state '
                f'({len(records)} runs)', not bad,
                'violations: ' + (', '.join(bad) or 'none')))
    return out


def report(records, args):
    parts = ['### Cost per method', '', main_table(records), '',
             '### Memory breakdown', '', breakdown_table(records), '']
    sweep = sweep_table(records, args.sweep_method)
    if sweep:
        parts += [f'### {args.sweep_method}: prompt count and image size',
                  '', sweep, '']
    parts += ['### Targets', '']
    for name, ok, detail in evaluate_targets(records):
        parts.append(f"- **{'PASS' if ok else 'FAIL'}** {name}: {detail}")
    r0 = records[0]
    parts += ['', f"device {r0['device']}, amp {r0['amp']}, torch "
              f"{r0['torch']}, {r0['threads']} threads; times are medians of "
              f"{len(r0['train_step_ms_all'])} runs after warm-up, "
              f"{r0.get('timing', 'one process per method')} (all runs, "
              'minima and per-process times in the JSON); FLOPs per image (1 multiply-add = 2 '
              'FLOPs); peak train memory: CUDA max allocated, CPU peak RSS '
              'above the process before the model was built']
    return '\n'.join(parts)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.interleave_worker:
        jobs = json.loads(args.interleave_worker)
        times = run_interleaved(jobs, args)
        print(RESULT_TAG + json.dumps(times), flush=True)
        return
    if args.worker:
        rec = run_job(json.loads(args.worker), args)
        print(RESULT_TAG + json.dumps(rec), flush=True)
        return
    if args.report:
        records = []
        for path in args.report:
            records += json.load(open(path))
        text = report(add_ratios(records), args)
        print(text)
        if args.markdown:
            with open(args.markdown, 'w') as f:
                f.write(text + '\n')
        return
    jobs = make_jobs(args)
    records = []
    start = time.time()
    for i, job in enumerate(jobs):
        t = time.time()
        print(f'[{i + 1}/{len(jobs)}] {job}', file=sys.stderr, flush=True)
        if args.in_process:
            rec = run_job(job, args)
        else:
            rec = run_in_subprocess(job, args, argv)
        records.append(rec)
        print(f"    train {rec['train_step_ms']:.0f} ms, infer "
              f"{rec['infer_ms']:.0f} ms, peak {rec['peak_mem_mb']:.0f} MB "
              f'({time.time() - t:.0f} s)', file=sys.stderr, flush=True)
    if args.interleave and not args.in_process:
        interleave(records, args, argv)
    add_ratios(records)
    text = report(records, args)
    print(text)
    print(f'\n(total {time.time() - start:.0f} s)', file=sys.stderr)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(records, f, indent=1)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()

"""Cost of every method side by side, on the models and optimisers the
configs build (measurement: :mod:`lspt_mm.analysis.cost`; tables and
targets: :mod:`lspt_mm.analysis.cost_report`).

Every (method, task, image size, prompt count, batch) is measured in a fresh
process (peak memory per method), then the methods of each setting are
timed again round-robin in one process. Prints markdown tables and the
targets as PASS/FAIL lines; ``--out`` writes the records as JSON,
``--report`` re-renders saved ones.

Examples::

    # the full grid (GPU: add --amp)
    python tools/analysis_tools/benchmark_methods.py --out bench.json
    # a small CPU run
    python tools/analysis_tools/benchmark_methods.py --tasks cls \\
        --batch 2 --num-prompts 10 100 --repeats 2 --out bench.json
    # ViT-L/16 instead of the configs' ViT-B/16
    python tools/analysis_tools/benchmark_methods.py --arch large ...
    # LSPT segmentation with and without activation checkpointing and
    # torch.compile, side by side (same process for the timings)
    python tools/analysis_tools/benchmark_methods.py --tasks seg \
        --methods lspt full --compare with_cp compile --threads 1
    # the whole grid on a GPU with AMP and torch.compile
    python tools/analysis_tools/benchmark_methods.py --device cuda --amp \
        --compile --compare with_cp --out bench_cuda.json
"""

import argparse
import glob
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, ROOT)
# lspt_mm must come before any mm import: it installs the compat fixes.
from lspt_mm.analysis import cost, cost_report  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

CLS_CONFIG = osp.join('configs', 'classification', 'lspt_vit-b16-mae_fgvc.py')
CLS_TASK = 'cub'  # the benchmark config's task (--cls-cfg-options task=...)
SEG_CONFIG = osp.join(
    'configs',
    'segmentation',
    'lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py',
)
SEG_METHOD_CONFIGS = osp.join(
    'configs', 'segmentation', '*-mae-base_upernet_8xb2-160k_ade20k-512x512.py'
)


# variants of a job (--compare): the job options each one sets
VARIANTS = {
    'with_cp': dict(with_cp=True),
    'compile': dict(compile=True),
    'with_cp+compile': dict(with_cp=True, compile=True),
}


def _with_cp(text):
    """--with-cp: true / false / k / a comma list of block indices."""
    low = text.strip().lower()
    if low in ('true', 'false'):
        return low == 'true'
    try:
        return [int(b) for b in low.split(',')] if ',' in low else int(low)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'--with-cp {text!r}: give true, false, an int k or a comma '
            'list of block indices'
        ) from None


def _compile_options(text):
    """--compile-options JSON: a dict of torch.compile options."""
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f'--compile-options {text!r}: give a JSON dict of torch.compile '
            'options, e.g. \'{"backend": "inductor"}\''
        )
    return value


def compile_value(args):
    """The ``compile`` value of compiled jobs: the options or True."""
    return args.compile_options if args.compile_options else True


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Measure parameters, FLOPs, train-step time, inference '
        'time and memory of each method, built from the configs.'
    )
    p.add_argument(
        '--methods',
        nargs='+',
        default=cost.method_names(),
        choices=cost.method_names(),
        metavar='METHOD',
        help=f'default: all ({", ".join(cost.method_names())})',
    )
    p.add_argument(
        '--tasks', nargs='+', default=['cls', 'seg'], choices=cost.TASKS
    )
    p.add_argument(
        '--cls-config',
        default=CLS_CONFIG,
        help='classification config every method is built from; '
        'a benchmark config gets the method as its `method` '
        'setting and its task from --cls-cfg-options task=NAME '
        f'(default {CLS_TASK}), filled from the recipe table',
    )
    p.add_argument(
        '--seg-config',
        default=SEG_CONFIG,
        help='segmentation config every method without a config '
        'of its own is built from',
    )
    p.add_argument(
        '--cls-method-configs',
        nargs='*',
        default=[],
        metavar='CONFIG',
        help='classification configs used as '
        'they are for the method their backbone sets',
    )
    p.add_argument(
        '--seg-method-configs',
        nargs='*',
        default=None,
        metavar='CONFIG',
        help='segmentation configs used as '
        'they are for the method their backbone sets (default: '
        f'{SEG_METHOD_CONFIGS}; none: give the option alone)',
    )
    p.add_argument(
        '--cls-cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='key=value overrides of every '
        'classification config (applied last)',
    )
    p.add_argument(
        '--seg-cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='key=value overrides of every segmentation config (applied last)',
    )
    p.add_argument(
        '--arch',
        help='backbone arch for every config: '
        "mmpretrain name, 'tiny' (64 wide, 4 layers) or a JSON "
        "dict; neck/head widths follow (default: the configs')",
    )
    p.add_argument('--patch-size', type=int)
    p.add_argument('--cls-size', type=int, nargs='+', default=[224])
    p.add_argument('--seg-size', type=int, nargs='+', default=[512])
    p.add_argument('--batch', type=int, default=8, help='cls batch size')
    p.add_argument('--seg-batch', type=int, default=2)
    p.add_argument('--num-prompts', type=int, nargs='+', default=[10, 100])
    p.add_argument('--seg-num-prompts', type=int, nargs='+', default=[100])
    p.add_argument(
        '--seg-norm',
        default='auto',
        choices=['auto', 'config', 'BN', 'GN', 'SyncBN'],
        help="norm of neck and heads; auto: the config's (SyncBN "
        "is BN on one device, as mmengine's Runner makes it), "
        'GN(32) when --seg-batch is 1 (BN cannot train the 1x1 '
        'pyramid pooling on one image)',
    )
    p.add_argument(
        '--sweep-method',
        default='lspt',
        help='method swept over --sweep-prompts x --sweep-sizes '
        "(cls); 'none' disables the sweep",
    )
    p.add_argument(
        '--sweep-prompts', type=int, nargs='*', default=[10, 50, 100, 200]
    )
    p.add_argument('--sweep-sizes', type=int, nargs='*', default=[224, 384])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument(
        '--warmup',
        type=int,
        default=2,
        help='untimed runs first; the first is the counted one '
        '(FLOPs, saved activations)',
    )
    p.add_argument(
        '--device', help='cpu or cuda (default: cuda when available)'
    )
    p.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (CUDA: AmpOptimWrapper as '
        'tools/train.py --amp; CPU: bf16 autocast)',
    )
    p.add_argument('--threads', type=int, help='torch CPU threads')
    p.add_argument(
        '--with-cp',
        type=_with_cp,
        metavar='VALUE',
        help="every backbone's with_cp (activation "
        'checkpointing): true, false, k (every k-th block) or '
        "a comma list of blocks (default: the configs')",
    )
    p.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile every model as the `compile` config '
        'key does with tools/train.py; FLOPs and saved '
        'activations are still counted on the eager model',
    )
    p.add_argument(
        '--compile-options',
        type=_compile_options,
        metavar='JSON',
        help='torch.compile options of --compile '
        'and of the compile variants, e.g. \'{"mode": '
        '"max-autotune"}\' (default: torch.compile\'s)',
    )
    p.add_argument(
        '--compare',
        nargs='+',
        default=[],
        choices=sorted(VARIANTS),
        metavar='VARIANT',
        help='also measure these variants of the jobs of '
        '--compare-methods, timed in the same process as the '
        f'plain jobs: {", ".join(sorted(VARIANTS))}',
    )
    p.add_argument(
        '--compare-methods',
        nargs='+',
        default=['lspt', 'vpt_deep'],
        choices=cost.method_names(),
        metavar='METHOD',
        help='methods whose jobs get the --compare variants '
        '(default: lspt vpt_deep)',
    )
    p.add_argument(
        '--no-alloc-peak',
        dest='alloc_peak',
        action='store_false',
        help='CPU: skip the profiled extra train step that gives '
        'the peak of live tensor memory (alloc_peak_mb)',
    )
    p.add_argument(
        '--op-shares',
        action='store_true',
        help='profile one more train step per job and split its '
        'time into matrix products, attention, convolutions and '
        'the rest (what torch.compile can fuse)',
    )
    p.add_argument('--out', help='write the records as JSON here')
    p.add_argument('--markdown', help='also write the tables to this file')
    p.add_argument(
        '--timeout',
        type=float,
        default=3600,
        help='seconds per measuring process',
    )
    p.add_argument(
        '--in-process',
        action='store_true',
        help='run every job in this process (debugging; peak '
        'memory is then not per method)',
    )
    p.add_argument(
        '--no-interleave',
        dest='interleave',
        action='store_false',
        help='skip the interleaved timing pass: then step and '
        'inference times come from the per-method processes',
    )
    p.add_argument(
        '--report',
        nargs='+',
        metavar='JSON',
        help='only print the tables and targets of saved --out '
        'files (several are merged); runs nothing',
    )
    args = p.parse_args(argv)
    if (
        args.sweep_method != 'none'
        and args.sweep_method not in cost.method_names()
    ):
        p.error(
            f'--sweep-method {args.sweep_method}: not a method '
            f'({", ".join(cost.method_names())}) or none'
        )
    return args


def _path(path):
    """A config path as given, else relative to the repository."""
    return path if osp.exists(path) else osp.join(ROOT, path)


def settings_from(args):
    seg_methods = args.seg_method_configs
    if seg_methods is None:
        seg_methods = sorted(glob.glob(osp.join(ROOT, SEG_METHOD_CONFIGS)))
    method_configs = dict(
        cls=cost.method_configs([_path(c) for c in args.cls_method_configs])
        if 'cls' in args.tasks
        else {},
        seg=cost.method_configs([_path(c) for c in seg_methods])
        if 'seg' in args.tasks
        else {},
    )
    return cost.CostSettings(
        configs=dict(cls=_path(args.cls_config), seg=_path(args.seg_config)),
        method_configs=method_configs,
        cfg_options=dict(
            cls={'task': CLS_TASK, **args.cls_cfg_options},
            seg=dict(args.seg_cfg_options),
        ),
        arch=args.arch,
        patch_size=args.patch_size,
        seg_norm=args.seg_norm,
        device=args.device,
        amp=args.amp,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        alloc_peak=args.alloc_peak,
        op_shares=args.op_shares,
        with_cp=args.with_cp,
        compile=compile_value(args) if args.compile else None,
    )


def make_jobs(args):
    """The (method, task, size, prompts, batch) grid, duplicates removed."""
    jobs, seen = [], set()

    def add(method, task, size, n_p, batch):
        if not cost.uses_prompts(method):
            n_p = 0
        key = (method, task, size, n_p, batch)
        if key not in seen:
            seen.add(key)
            jobs.append(
                dict(
                    method=method,
                    task=task,
                    img_size=size,
                    num_prompts=n_p,
                    batch=batch,
                )
            )

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
    variants = []
    for job in jobs:
        if job['method'] not in args.compare_methods:
            continue
        for name in args.compare:
            options = dict(VARIANTS[name])
            if 'compile' in options:
                options['compile'] = compile_value(args)
            variants.append(dict(job, variant=name, **options))
    return jobs + variants


def measure(jobs, settings, args):
    records = []
    for i, job in enumerate(jobs):
        t = time.time()
        print(f'[{i + 1}/{len(jobs)}] {job}', file=sys.stderr, flush=True)
        if args.in_process:
            rec = cost.run_job(job, settings)
        else:
            rec = cost.run_in_subprocess('job', job, settings, args.timeout)
        records.append(rec)
        print(
            f'    train {rec["train_step_ms"]:.0f} ms, infer '
            f'{rec["infer_ms"]:.0f} ms, peak {rec["peak_mem_mb"]:.0f} MB '
            f'({time.time() - t:.0f} s)',
            file=sys.stderr,
            flush=True,
        )
    if args.interleave and not args.in_process:
        for setting in sorted(
            {(r['task'], r['img_size'], r['batch']) for r in records}
        ):
            rows = [
                r
                for r in records
                if (r['task'], r['img_size'], r['batch']) == setting
            ]
            print(
                f'[interleaved] {setting}: {len(rows)} methods',
                file=sys.stderr,
                flush=True,
            )
            batch = [r['job'] for r in rows]
            times = cost.run_in_subprocess(
                'interleaved', batch, settings, args.timeout
            )
            cost.merge_interleaved(rows, times)
    return records


def write(text, records, args):
    print(text)
    if args.out and records is not None:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(records, f, indent=1)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(text + '\n')


def main(argv=None):
    args = parse_args(argv)
    sweep = None if args.sweep_method == 'none' else args.sweep_method
    if args.report:
        records = []
        for path in args.report:
            with open(path) as f:
                # one file, one run: variants pair with their own plain jobs
                records += [
                    dict(r, run=r.get('run', path)) for r in json.load(f)
                ]
        write(
            cost_report.report(cost_report.add_ratios(records), sweep),
            None,
            args,
        )
        return
    start = time.time()
    records = measure(make_jobs(args), settings_from(args), args)
    for r in records:
        r['run'] = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(start))
    cost_report.add_ratios(records)
    write(cost_report.report(records, sweep), records, args)
    print(f'\n(total {time.time() - start:.0f} s)', file=sys.stderr)


if __name__ == '__main__':
    main()

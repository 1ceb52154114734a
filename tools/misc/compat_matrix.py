#!/usr/bin/env python
"""Build a venv per torch version and run this project's doors in it: the
measured compatibility matrix of docs/get_started.md.

    python tools/misc/compat_matrix.py --torch 2.1.2 --torch 2.4.1 \
        --torch current \
        [--venv-root /tmp/lspt_compat/matrix] [--mmcv mmcv-lite==2.1.0] \
        [--doors import,train_test_resume,...] [--reuse] \
        [--out <venv-root>/compat_matrix.json]

Per torch version ``X``:

1. ``python -m venv <venv-root>/torch-X``; ``pip install torch==X`` (from
   PyPI: the CUDA build and its ``nvidia-*`` wheels, 2-4 GB, so give it the
   disk), then ``pip install <mmcv> .`` of this checkout (not editable),
   under requirements/constraints.txt without torch and the packages torch
   itself pins (sympy, networkx, ...), so pip keeps that torch. With
   ``--reuse`` an existing venv is kept and only this project reinstalled.
2. The doors, each in that venv, from the checkout (``OMP_NUM_THREADS=1``):

   - ``import``: ``import lspt_mm`` and the versions;
   - ``train_test_resume``: the classification demo config on generated
     CUB-layout data: ``tools/train.py`` (2 epochs), ``tools/test.py`` on
     the checkpoint, ``tools/train.py --resume`` from epoch 1 in another
     work dir, ending with the same epoch-2 weights;
   - ``safe_loading``: tests/test_safe_loading.py, tests/test_torch_versions.py
     (booby-trapped files run no code; runner checkpoints load);
   - ``pretrained``: tests/test_checkpoints.py,
     tests/test_real_checkpoint_layouts.py (every published layout);
   - ``apis``: tests/test_entry_points.py (mmseg / mmpretrain APIs and
     inferencers, demo/image_demo.py, Runner.from_cfg),
     tests/test_wrong_registry.py;
   - ``methods``: tests/test_backbone.py, tests/test_peft_baselines.py
     (every method's forward and backward);
   - ``with_cp``: tests/test_with_cp.py; ``amp``: tests/test_amp.py.

Run it with this project's environment (it writes the generated data
itself); ``--torch current`` runs the doors in that environment as it is.
Prints one line per door and writes ``--out`` (JSON: versions, per-door
result, seconds, the failure's last lines). Exit status 1 if any door
failed.
"""

import argparse
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# what torch's wheels pin themselves: left out of the constraints
TORCH_DEPS = (
    'sympy',
    'mpmath',
    'networkx',
    'filelock',
    'fsspec',
    'jinja2',
    'markupsafe',
    'typing_extensions',
    'triton',
    'nvidia',
    'torch',
)
PYTEST = {
    'safe_loading': [
        'tests/test_safe_loading.py',
        'tests/test_torch_versions.py',
    ],
    'pretrained': [
        'tests/test_checkpoints.py',
        'tests/test_real_checkpoint_layouts.py',
    ],
    'apis': ['tests/test_entry_points.py', 'tests/test_wrong_registry.py'],
    'methods': ['tests/test_backbone.py', 'tests/test_peft_baselines.py'],
    'with_cp': ['tests/test_with_cp.py'],
    'amp': ['tests/test_amp.py'],
}
DOORS = ['import', 'train_test_resume'] + list(PYTEST)
CLS_DEMO = 'configs/classification/lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py'
VERSIONS = (
    'import sys, torch, mmcv, mmengine, mmpretrain, mmseg, numpy, lspt_mm; '
    'print(sys.version.split()[0], torch.__version__, mmcv.__version__, '
    'mmengine.__version__, mmpretrain.__version__, mmseg.__version__, '
    'numpy.__version__, lspt_mm.__version__)'
)


def run(cmd, log, timeout, env=None, cwd=ROOT):
    """Run ``cmd``; returns ``(ok, seconds, tail of its output)``."""
    start = time.time()
    with open(log, 'a') as f:
        f.write('$ ' + ' '.join(cmd) + '\n')
        f.flush()
        try:
            proc = subprocess.run(
                cmd,
                cwd=cwd,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            f.write(f'\n(timed out after {timeout} s)\n')
            ok = False
    with open(log) as f:
        tail = f.read().splitlines()[-15:]
    return ok, round(time.time() - start), tail


def constraints(path):
    """requirements/constraints.txt without torch and what torch pins."""
    with open(osp.join(ROOT, 'requirements', 'constraints.txt')) as f:
        lines = [
            line
            for line in f
            if not line.lower().startswith(TORCH_DEPS)
            and not line.startswith('#')
        ]
    with open(path, 'w') as f:
        f.writelines(lines)
    return path


def build(version, venv, mmcv, reuse, log):
    """The venv of torch ``version``; returns ``(ok, seconds)``."""
    python = osp.join(venv, 'bin', 'python')
    start = time.time()
    env = dict(os.environ, PIP_CONSTRAINT='')  # the machine's own cap
    steps = []
    if not (reuse and osp.isfile(python)):
        if osp.isdir(venv):
            shutil.rmtree(venv)
        steps += [
            [sys.executable, '-m', 'venv', venv],
            [python, '-m', 'pip', 'install', '-q', f'torch=={version}'],
        ]
    cons = constraints(osp.join(tempfile.mkdtemp(), 'constraints.txt'))
    steps.append(
        [python, '-m', 'pip', 'install', '-q', '--force-reinstall']
        + ['--no-deps', '.']
        if reuse and osp.isfile(python)
        else [python, '-m', 'pip', 'install', '-q', '-c', cons, mmcv, '.']
    )
    if not (reuse and osp.isfile(python)):
        steps.append([python, '-m', 'pip', 'install', '-q', 'pytest'])
    for cmd in steps:
        ok, _, _ = run(cmd, log, 3600, env=env)
        if not ok:
            return False, round(time.time() - start)
    return True, round(time.time() - start)


RESUME_CHECK = (
    'import sys, torch, lspt_mm; '
    'from lspt_mm.models.checkpoint import safe_load; '
    "a, b = (safe_load(p)['state_dict'] for p in sys.argv[1:]); "
    'bad = [k for k in a if not torch.equal(a[k], b[k])]; '
    "sys.exit(f'resumed weights differ: {bad[:3]}' if bad else 0)"
)


def train_test_resume(python, work, log, env):
    """The classification demo config on generated data: train 2 epochs,
    tools/test.py on the checkpoint, and --resume from epoch 1 in another
    work dir, which must end with the same epoch-2 weights."""
    sys.path.insert(0, osp.join(ROOT, 'tests'))
    from fault_cases import demo_options, make_small_cub

    root = make_small_cub(osp.join(work, 'data'))
    w, w2 = osp.join(work, 'w'), osp.join(work, 'w2')
    opts = demo_options(root, epochs=2, max_keep=2)
    steps = [
        ['tools/train.py', CLS_DEMO, '--work-dir', w] + opts,
        ['tools/test.py', CLS_DEMO, osp.join(w, 'epoch_2.pth')]
        + ['--work-dir', osp.join(work, 't')]
        + opts,
        ['tools/train.py', CLS_DEMO, '--work-dir', w2]
        + ['--resume', osp.join(w, 'epoch_1.pth')]
        + opts,
        ['-c', RESUME_CHECK, osp.join(w, 'epoch_2.pth')]
        + [osp.join(w2, 'epoch_2.pth')],
    ]
    total, tail = 0, []
    for cmd in steps:
        ok, seconds, tail = run([python] + cmd, log, 900, env=env)
        total += seconds
        if not ok:
            return False, total, tail
    return True, total, ['trained, tested, resumed to the same weights']


def doors(python, names, work, log):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env.pop('PYTHONPATH', None)
    results = {}
    for name in names:
        if name == 'import':
            ok, seconds, tail = run(
                [python, '-c', VERSIONS], log, 600, env=env, cwd=work
            )
        elif name == 'train_test_resume':
            ok, seconds, tail = train_test_resume(python, work, log, env)
        else:
            ok, seconds, tail = run(
                [python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider']
                + PYTEST[name],
                log,
                1800,
                env=env,
            )
            tail = [x for x in tail if 'passed' in x or 'failed' in x] + (
                [] if ok else tail
            )
        results[name] = dict(ok=ok, seconds=seconds, tail=tail)
        print(
            f'  {name:<18} {"pass" if ok else "FAIL"}  {seconds:5d} s  '
            f'{tail[-1] if tail else ""}',
            flush=True,
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--torch',
        action='append',
        required=True,
        help="a torch version from PyPI, or 'current': this interpreter's "
        'environment, not rebuilt',
    )
    parser.add_argument(
        '--venv-root',
        default=osp.join(tempfile.gettempdir(), 'lspt_compat', 'matrix'),
    )
    parser.add_argument('--mmcv', default='mmcv-lite==2.1.0')
    parser.add_argument('--doors', default=','.join(DOORS))
    parser.add_argument('--reuse', action='store_true')
    parser.add_argument(
        '--out', default=None, help='default: <venv-root>/compat_matrix.json'
    )
    args = parser.parse_args(argv)
    names = args.doors.split(',')
    args.out = args.out or osp.join(args.venv_root, 'compat_matrix.json')
    unknown = [n for n in names if n not in DOORS]
    if unknown:
        parser.error(f'unknown doors {unknown}; known: {",".join(DOORS)}')
    free = shutil.disk_usage(
        osp.dirname(osp.abspath(args.venv_root))
        if not osp.isdir(args.venv_root)
        else args.venv_root
    ).free
    builds = [v for v in args.torch if v != 'current']
    if free < 15e9 and builds and not args.reuse:
        sys.exit(
            f'error: {args.venv_root} has {free / 1e9:.1f} GB free; a torch '
            'venv from PyPI takes 2-5 GB (its CUDA wheels): free 15 GB'
        )
    os.makedirs(args.venv_root, exist_ok=True)
    matrix = []
    for version in args.torch:
        log = osp.join(args.venv_root, f'torch-{version}.log')
        open(log, 'w').close()
        if version == 'current':  # this interpreter's environment, as is
            venv, python = sys.prefix, sys.executable
            ok, seconds = True, 0
        else:
            venv = osp.join(args.venv_root, f'torch-{version}')
            python = osp.join(venv, 'bin', 'python')
            print(f'torch {version}: building {venv} (log: {log})', flush=True)
            ok, seconds = build(version, venv, args.mmcv, args.reuse, log)
            print(
                f'  {"build":<18} {"pass" if ok else "FAIL"}  {seconds:5d} s'
            )
        row = dict(torch=version, venv=venv, build_ok=ok, build_s=seconds)
        if ok:
            work = tempfile.mkdtemp(prefix=f'lspt_matrix_{version}_')
            row['doors'] = doors(python, names, work, log)
            versions = row['doors'].get('import', {}).get('tail', [])
            row['versions'] = versions[-1] if versions else None
        matrix.append(row)
        with open(args.out, 'w') as f:
            json.dump(matrix, f, indent=1)
    failed = [
        r['torch']
        for r in matrix
        if not r['build_ok'] or not all(d['ok'] for d in r['doors'].values())
    ]
    print(
        f'wrote {args.out}; ' + (f'failed: {failed}' if failed else 'all pass')
    )
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())

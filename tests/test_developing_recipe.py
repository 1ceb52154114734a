"""docs/DEVELOPING.md's recipe for adding a tuning method, followed
literally: its blocks are applied to a copy of the package and the tests,
and the new method's tests run there (no edit the recipe does not name)."""

import os
import os.path as osp
import re
import shutil
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
STEP = re.compile(r'<!-- recipe: (.+?) -->\s*```python\n(.*?)```', re.S)
WHERE = re.compile(r'(after|before) the line "(.+)" in (\S+)$')


def recipe_steps():
    text = open(osp.join(ROOT, 'docs', 'DEVELOPING.md')).read()
    return STEP.findall(text)


def apply_step(tree, where, block):
    """Write a new file, or insert ``block`` after / before a line."""
    if where.startswith('new file '):
        path = osp.join(tree, where[len('new file ') :])
        assert not osp.exists(path), f'{where}: the file exists already'
        with open(path, 'w') as f:
            f.write(block)
        return
    match = WHERE.match(where)
    assert match, (
        f'recipe step {where!r}: not "new file" / "after|before '
        'the line ... in FILE"'
    )
    side, anchor, rel = match.groups()
    path = osp.join(tree, rel)
    lines = open(path).read().split('\n')
    hits = [
        i for i, line in enumerate(lines) if line.strip() == anchor.strip()
    ]
    assert len(hits) == 1, (
        f'{rel}: the line {anchor!r} occurs '
        f'{len(hits)} times (the recipe must name one)'
    )
    at = hits[0] + (side == 'after')
    lines[at:at] = block.rstrip('\n').split('\n')
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def test_recipe_names_every_step():
    wheres = [w for w, _ in recipe_steps()]
    assert len(wheres) == 5, wheres
    assert wheres[0].startswith('new file lspt_mm/models/')
    assert sum('lspt_mm/models/methods.py' in w for w in wheres) == 1
    assert sum('tests/test_backbone.py' in w for w in wheres) == 3


def test_following_the_recipe_gives_a_tested_method(tmp_path):
    tree = str(tmp_path / 'repo')
    ignore = shutil.ignore_patterns('__pycache__', '*.pyc')
    for folder in ('lspt_mm', 'tests', 'configs'):
        shutil.copytree(
            osp.join(ROOT, folder), osp.join(tree, folder), ignore=ignore
        )
    shutil.copy(osp.join(ROOT, 'pyproject.toml'), tree)
    for where, block in recipe_steps():
        apply_step(tree, where, block)
    # the copy, not the installed checkout, is imported in the subprocess
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS='1')
    code = (
        'import lspt_mm, sys; from lspt_mm.models import METHODS; '
        'assert lspt_mm.__file__.startswith(sys.argv[1]), '
        'lspt_mm.__file__; print(METHODS["scaled_vpt"].component_class)'
    )
    proc = subprocess.run(
        [sys.executable, '-c', code, tree],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'ScaledVPT' in proc.stdout
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'pytest',
            '-q',
            '-p',
            'no:cacheprovider',
            'tests/test_backbone.py',
            'tests/test_peft_baselines.py',
            '-k',
            'scaled_vpt',
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    passed = int(re.search(r'(\d+) passed', out).group(1))
    # forward vs reference, trainable tensors, FLOPs, benchmark config
    assert passed >= 4, out[-2000:]

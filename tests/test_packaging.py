"""Packaging: version, model index of the shipped configs (mmpretrain's
get_model / list_models), the wheel's mim data and dependency ranges, a
dry-run install into a user's stack (torch 2.4.0 + full mmcv 2.1.0 stay),
and .ci/run doing what README.md says."""

import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import yaml

import lspt_mm
from lspt_mm import model_index

import mmpretrain

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _configs():
    """Config stems -> paths of every config users can run (not _base_)."""
    out = {}
    for p in sorted(
        glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    ):
        rel = osp.relpath(p, ROOT)
        if '_base_' not in rel.split(os.sep):
            out[osp.basename(p)[:-3]] = rel
    return out


def _index_entries():
    """(name, config) of every model in model-index.yml's metafiles."""
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        imports = yaml.safe_load(f)['Import']
    entries = []
    for meta in imports:
        with open(osp.join(ROOT, meta)) as f:
            for m in yaml.safe_load(f)['Models']:
                entries.append((m['Name'], m['Config'], meta))
    return entries


def test_version_is_one_value_everywhere():
    with open(osp.join(ROOT, 'pyproject.toml')) as f:
        pyproject = f.read()
    assert 'lspt_mm.version.__version__' in pyproject
    v = lspt_mm.__version__
    assert re.fullmatch(r'\d+\.\d+\.\d+', v)
    with open(osp.join(ROOT, 'CHANGELOG.md')) as f:
        first = re.search(r'^## \[(\d+\.\d+\.\d+)\]', f.read(), re.M)
    assert first and first.group(1) == v, 'CHANGELOG.md top entry'
    with open(osp.join(ROOT, 'CITATION.cff')) as f:
        assert str(yaml.safe_load(f)['version']) == v, 'CITATION.cff'
    with open(osp.join(ROOT, 'LICENSE')) as f:
        assert 'Apache License' in f.read(2000)


def test_model_index_lists_every_config_once():
    configs = _configs()
    entries = _index_entries()
    names = [n for n, _, _ in entries]
    assert len(names) == len(set(n.lower() for n in names)), 'duplicate name'
    for name, cfg, meta in entries:
        assert osp.isfile(osp.join(ROOT, cfg)), (
            f'{meta}: model {name!r} names a config that does not exist: {cfg}'
        )
        assert name == osp.basename(cfg)[:-3], (
            f'{meta}: model {name!r} should be named after its config {cfg}'
        )
    missing = sorted(set(configs.values()) - {c for _, c, _ in entries})
    assert not missing, (
        'configs without a model-index entry (commit them, then run '
        f'python tools/misc/update_model_index.py): {missing}'
    )


def test_mmpretrain_finds_the_shipped_configs():
    # the mim layout: lspt_mm/.mim/{configs,model-index.yml} are the
    # repository's (links in a checkout, copies in a wheel)
    assert osp.samefile(
        osp.join(model_index.MIM_DIR, 'configs'), osp.join(ROOT, 'configs')
    )
    lspt = {n for n in _configs() if 'lspt' in n}
    assert set(mmpretrain.list_models('*lspt*')) == lspt
    assert set(lspt_mm.model_index.list_models()) == set(_configs())
    # registering again (a second import path, a reload) is harmless
    lspt_mm.model_index.register_model_index()

    name = 'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo'
    model = mmpretrain.get_model(name)
    assert type(model.backbone).__name__ == 'PromptedViT'
    assert type(model.backbone.prompt_method).__name__ == 'LSPT'
    assert model._config.filename.startswith(model_index.MIM_DIR)

    seg = model_index.config_path('lspt_vitb_ade20k')
    assert osp.samefile(seg, osp.join(ROOT, 'configs', 'lspt_vitb_ade20k.py'))
    with pytest.raises(ValueError, match="No lspt_mm config named 'nope'"):
        model_index.config_path('nope')


def _source_copy(tmp_path):
    """The files a build reads, copied (so nothing is written into the
    checkout that others work in); the .mim links stay links."""
    src = tmp_path / 'src'
    src.mkdir()
    for name in ('pyproject.toml', 'README.md', 'LICENSE', 'model-index.yml'):
        shutil.copy(osp.join(ROOT, name), src / name)
    ignore = shutil.ignore_patterns('__pycache__', '*.egg-info')
    for name in ('configs', 'tools', 'lspt_mm'):
        shutil.copytree(
            osp.join(ROOT, name), src / name, symlinks=True, ignore=ignore
        )
    return src


def _pip(*args, timeout=300):
    return subprocess.run(
        [sys.executable, '-m', 'pip', *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_wheel_ships_configs_and_declares_ranges(tmp_path):
    src = _source_copy(tmp_path)
    r = _pip(
        'wheel', '--no-deps', '-q', '-w', str(tmp_path / 'dist'), str(src)
    )
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = glob.glob(str(tmp_path / 'dist' / '*.whl'))
    z = zipfile.ZipFile(whl)
    names = set(z.namelist())
    assert 'lspt_mm/.mim/model-index.yml' in names
    for cfg in _configs().values():
        assert 'lspt_mm/.mim/' + cfg.replace(os.sep, '/') in names, cfg
    # `mim train lspt_mm` / `mim test lspt_mm` run these on .mim/configs
    assert 'lspt_mm/.mim/tools/train.py' in names
    assert 'lspt_mm/.mim/tools/test.py' in names
    meta = z.read(next(n for n in names if n.endswith('/METADATA'))).decode()
    req = [
        line.split(':', 1)[1].strip()
        for line in meta.splitlines()
        if line.startswith('Requires-Dist:') and 'extra ==' not in line
    ]
    byname = {re.split(r'[<>=!~;\[ ]', r, 1)[0].lower(): r for r in req}
    assert byname['torch'] == 'torch>=2.1'  # the measured range
    for pkg, spec in (
        ('mmengine', ('<0.11', '>=0.10')),
        ('mmpretrain', ('<1.3', '>=1.2')),
        ('mmsegmentation', ('<1.3', '>=1.2')),
        ('numpy', ('<2',)),
    ):
        assert all(s in byname[pkg] for s in spec), byname[pkg]
    # no exact pins and no mmcv of either kind among the runtime deps
    assert not [r for r in req if '==' in r]
    assert not [n for n in byname if n.startswith('mmcv')]
    extras = set(re.findall(r'^Provides-Extra: (\S+)', meta, re.M))
    assert {'onnx', 'safetensors', 'tests', 'lint', 'mim'} <= extras
    # openmim's pandas kept at 2.x: pandas 3 needs numpy 2 (docs, "OpenMIM")
    mim = {
        re.split(r'[<>=!~;\[ ]', r, 1)[0].lower(): r.split(';')[0]
        for r in re.findall(
            r'^Requires-Dist: (.*extra == "mim".*)$', meta, re.M
        )
    }
    assert set(mim) == {'openmim', 'pandas'}, mim
    assert '<3' in mim['pandas'] and '<0.4' in mim['openmim'], mim


def _stub(site, name, version, *requires):
    d = osp.join(site, f'{name}-{version}.dist-info')
    os.makedirs(d)
    with open(osp.join(d, 'METADATA'), 'w') as f:
        f.write(f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n')
        f.writelines(f'Requires-Dist: {r}\n' for r in requires)
    for fn, text in (('INSTALLER', 'pip\n'), ('RECORD', '')):
        with open(osp.join(d, fn), 'w') as f:
            f.write(text)


def test_dry_run_install_keeps_a_users_torch_and_full_mmcv(tmp_path):
    """`pip install .` into a user's environment (torch 2.4.0, full mmcv
    2.1.0: metadata stubs) would install neither another torch nor
    mmcv-lite over mmcv; the rest resolves from the index as it would."""
    venv = tmp_path / 'userenv'
    subprocess.run(
        [sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True
    )
    py = str(venv / 'bin' / 'python')
    site = subprocess.run(
        [
            py,
            '-c',
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _stub(site, 'torch', '2.4.0', 'filelock', 'typing-extensions')
    _stub(
        site,
        'mmcv',
        '2.1.0',
        'addict',
        'mmengine>=0.3.0',
        'numpy',
        'packaging',
        'Pillow',
        'pyyaml',
        'yapf',
        'opencv-python',
    )
    report = tmp_path / 'report.json'
    r = _pip(
        '--python',
        py,
        'install',
        '--dry-run',
        '-q',
        '--report',
        str(report),
        str(_source_copy(tmp_path)),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    with open(report) as f:
        install = {
            i['metadata']['name'].lower(): i['metadata']['version']
            for i in json.load(f)['install']
        }
    assert 'lspt_mm' in install or 'lspt-mm' in install
    assert 'torch' not in install
    assert not [n for n in install if n.startswith(('mmcv', 'nvidia-'))]
    assert install['numpy'].startswith('1.')
    assert {'mmengine', 'mmpretrain', 'mmsegmentation'} <= set(install)


def _readme_commands():
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    quick = text.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```bash\n(.*?)\n```', quick, re.S)


def test_ci_installs_and_tests_as_readme_says():
    install_run, install_test = _readme_commands()[:2]
    assert install_run.endswith('python tools/demo_ade20k.py')
    assert install_test.endswith('&& pytest')
    with open(osp.join(ROOT, '.ci', 'run')) as f:
        ci = [
            line.strip()
            for line in f
            if line.strip() and not line.lstrip().startswith('#')
        ]
    steps = [s.strip() for s in install_test.split('&&')]
    pos = [ci.index(s) for s in steps]  # each README step is a CI line
    assert pos == sorted(pos), 'README.md order'
    assert ci[-1] == 'pytest'
    assert 'ruff check .' in ci and 'ruff format --check .' in ci
    # the demo command installs the same set
    assert install_run.startswith(' && '.join(steps[:3]))


def test_requirements_install_the_exact_cpu_set():
    with open(osp.join(ROOT, 'requirements.txt')) as f:
        req = [line.split('#')[0].strip() for line in f]
    req = [r for r in req if r]
    assert req[0] == '-c requirements/constraints.txt'
    assert 'torch==2.13.0' in req
    with open(osp.join(ROOT, 'requirements', 'constraints.txt')) as f:
        pins = dict(
            line.strip().split('==')
            for line in f
            if '==' in line and not line.startswith('#')
        )
    for pkg, version in (
        ('torch', '2.13.0'),
        ('mmengine', '0.10.7'),
        ('mmcv-lite', '2.1.0'),
        ('mmpretrain', '1.2.0'),
        ('mmsegmentation', '1.2.2'),
        ('numpy', '1.26.4'),
        ('setuptools', '80.9.0'),
    ):
        assert pins.get(pkg) == version, pkg
    # every pin is exact (nothing may admit a newer torch)
    assert all(re.fullmatch(r'[\w.]+', v) for v in pins.values())


def test_update_model_index_writes_entries(tmp_path):
    (tmp_path / 'configs' / 'segmentation').mkdir(parents=True)
    (tmp_path / 'configs' / 'classification').mkdir(parents=True)
    metas = model_index.write_model_index(
        str(tmp_path),
        [
            'configs/_base_/seg_runtime.py',
            'configs/segmentation/lspt-mocov3-base_upernet_8xb2-160k_ade20k-'
            '512x512.py',
            'configs/classification/lspt_vit-b14-dinov2_vtab1k.py',
        ],
    )
    assert metas == [
        'configs/classification/metafile.yml',
        'configs/segmentation/metafile.yml',
    ]
    with open(tmp_path / metas[0]) as f:
        (m,) = yaml.safe_load(f)['Models']
    assert m['Name'] == 'lspt_vit-b14-dinov2_vtab1k'
    assert m['Metadata'] == {
        'Training Data': 'VTAB-1k',
        'Backbone': 'DINOv2 ViT-B/14',
    }
    assert m['Results'][0]['Task'] == 'Image Classification'
    with open(tmp_path / 'model-index.yml') as f:
        assert yaml.safe_load(f) == {'Import': metas}

"""tools/misc/compat_matrix.py without building a venv: its constraints keep
a venv's torch, bad doors and a small disk are refused, and ``--torch
current`` runs a door in this environment and records it."""

import importlib.util
import json
import os.path as osp
from collections import namedtuple

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location(
        '_compat_matrix', osp.join(ROOT, 'tools', 'misc', 'compat_matrix.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_constraints_leave_torch_and_its_pins_out(tmp_path):
    tool = _tool()
    pins = open(tool.constraints(str(tmp_path / 'c.txt'))).read().lower()
    for kept in ('mmengine==', 'mmsegmentation==', 'numpy==', 'mmcv-lite=='):
        assert kept in pins, kept
    for dropped in ('torch==', 'sympy==', 'networkx==', 'jinja2=='):
        assert dropped not in pins, dropped


def test_bad_doors_and_small_disk_are_refused(tmp_path, monkeypatch, capsys):
    tool = _tool()
    with pytest.raises(SystemExit):
        tool.main(['--torch', '2.4.1', '--doors', 'import,nope'])
    assert "unknown doors ['nope']" in capsys.readouterr().err
    usage = namedtuple('usage', 'total used free')
    monkeypatch.setattr(
        tool.shutil, 'disk_usage', lambda path: usage(0, 0, int(3e9))
    )
    with pytest.raises(SystemExit, match='3.0 GB free.*free 15 GB'):
        tool.main(['--torch', '2.4.1', '--venv-root', str(tmp_path / 'v')])


def test_current_environment_import_door(tmp_path):
    import torch

    import lspt_mm

    tool = _tool()
    out = tmp_path / 'm.json'
    status = tool.main(
        ['--torch', 'current', '--doors', 'import']
        + ['--venv-root', str(tmp_path), '--out', str(out)]
    )
    assert status == 0
    (row,) = json.loads(out.read_text())
    assert row['doors']['import']['ok'] and row['build_ok']
    assert torch.__version__ in row['versions']
    assert lspt_mm.__version__ in row['versions']

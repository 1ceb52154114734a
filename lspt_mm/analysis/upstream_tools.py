"""Run mmpretrain's / mmseg's own analysis tools (shipped in their pip
packages under ``<library>/.mim/tools``) on this project's configs and work
dirs, instead of rewriting them.

:func:`run_tool` imports ``lspt_mm`` first (its compatibility fixes and
registries), picks the library from the config's ``default_scope``
(``mmseg`` for segmentation configs, else ``mmpretrain``), re-resolves a
benchmark config's task / method after ``--cfg-options`` as
``tools/train.py`` does, and runs the upstream script as ``__main__``.
"""

import contextlib
import glob
import os.path as osp
import runpy
import sys

from lspt_mm import compat
from lspt_mm.recipes import apply_task, is_benchmark_config

# tool -> {library: script under <library>/.mim/tools}
UPSTREAM = {
    'analyze_logs': {'mmpretrain': 'analysis_tools/analyze_logs.py'},
    'print_config': {'mmpretrain': 'misc/print_config.py'},
    'browse_dataset': {
        'mmpretrain': 'visualization/browse_dataset.py',
        'mmseg': 'misc/browse_dataset.py',
    },
    'confusion_matrix': {'mmpretrain': 'analysis_tools/confusion_matrix.py'},
}


def tool_path(tool, library):
    """Path of ``library``'s script for ``tool``; a clear error when the
    library does not ship it."""
    import importlib

    scripts = UPSTREAM[tool]
    if library not in scripts:
        raise ValueError(
            f'{tool}: {library} configs are not supported (only '
            f'{", ".join(sorted(scripts))} ships this tool)'
        )
    root = osp.dirname(importlib.import_module(library).__file__)
    path = osp.join(root, '.mim', 'tools', scripts[library])
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{tool}: {path} is missing from the installed {library} '
            'package (its .mim/tools); reinstall it from PyPI'
        )
    return path


def library_of(config):
    """``'mmseg'`` or ``'mmpretrain'``, from the config's default_scope."""
    from mmengine.config import Config

    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config!r}')
    scope = Config.fromfile(config).get('default_scope', 'mmpretrain')
    return 'mmseg' if scope == 'mmseg' else 'mmpretrain'


@contextlib.contextmanager
def resolving_cfg_options():
    """While active, ``Config.merge_from_dict`` on a benchmark config
    re-resolves its task / method (``task=dtd`` in ``--cfg-options``)."""

    from mmengine.config import Config

    merge = Config.merge_from_dict

    def merge_and_resolve(self, options, *args, **kwargs):
        merge(self, options, *args, **kwargs)
        if is_benchmark_config(self):
            apply_task(self, log=False)

    Config.merge_from_dict = merge_and_resolve
    try:
        yield
    finally:
        Config.merge_from_dict = merge


@contextlib.contextmanager
def contiguous_seg_images():
    """mmseg 1.2's ``browse_dataset.py`` hands the visualizer a transposed
    (not C-contiguous) image, which OpenCV refuses when it draws the class
    labels; while active, ``SegLocalVisualizer.add_datasample`` gets a
    contiguous copy."""
    import numpy as np

    from mmseg.visualization import SegLocalVisualizer

    add = SegLocalVisualizer.add_datasample

    def add_contiguous(self, name, image, *args, **kwargs):
        return add(self, name, np.ascontiguousarray(image), *args, **kwargs)

    SegLocalVisualizer.add_datasample = add_contiguous
    try:
        yield
    finally:
        SegLocalVisualizer.add_datasample = add


@contextlib.contextmanager
def own_visualizer(tool):
    """While active, ``Config.fromfile`` gives the config's visualizer a
    name of its own: mmengine keeps one visualizer per name per process
    (``ManagerMixin``), so a tool run after a runner in the same process
    would otherwise get that runner's visualizer and its ``save_dir``."""
    import itertools

    from mmengine.config import Config

    fromfile = Config.fromfile
    counter = itertools.count()

    def fromfile_own_visualizer(*args, **kwargs):
        cfg = fromfile(*args, **kwargs)
        if isinstance(cfg.get('visualizer', None), dict):
            cfg.visualizer.name = f'lspt_mm_{tool}_{id(cfg)}_{next(counter)}'
        return cfg

    Config.fromfile = staticmethod(fromfile_own_visualizer)
    try:
        yield
    finally:
        Config.fromfile = staticmethod(fromfile)


def run_tool(tool, argv, library=None):
    """Run ``tool`` with command-line ``argv`` (its first positional
    argument is the config, except for ``analyze_logs``)."""

    if library is None:
        library = (
            'mmpretrain'
            if tool == 'analyze_logs'
            else library_of(next(a for a in argv if not a.startswith('-')))
        )
    path = tool_path(tool, library)
    old_argv = sys.argv
    sys.argv = [path] + list(argv)
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(resolving_cfg_options())
            stack.enter_context(own_visualizer(tool))
            if library == 'mmseg' and tool == 'browse_dataset':
                stack.enter_context(contiguous_seg_images())
            if library == 'mmpretrain' and tool == 'browse_dataset':
                stack.enter_context(compat.adjust_bbox_renderer_optional())
            runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = old_argv


def find_json_logs(paths):
    """Each path as a JSON scalar log: a ``.json`` file as it is; a work
    dir (or one run's timestamp dir) as the newest run's
    ``vis_data/<timestamp>.json`` (mmengine's metrics per logged step)."""
    out = []
    for path in paths:
        if osp.isfile(path):
            out.append(path)
            continue
        if not osp.isdir(path):
            raise FileNotFoundError(f'no such log file or work dir: {path!r}')
        found = [
            p
            for p in glob.glob(osp.join(path, '*', 'vis_data', '*.json'))
            + glob.glob(osp.join(path, 'vis_data', '*.json'))
            if osp.basename(p) != 'scalars.json'
        ]
        if not found:
            raise FileNotFoundError(
                f'{path!r} holds no training log: expected '
                '<work_dir>/<timestamp>/vis_data/<timestamp>.json, which '
                "mmengine writes for every run (visualizer's LocalVisBackend)"
            )
        out.append(max(found, key=lambda p: osp.basename(p)))
    return out

#!/usr/bin/env python
"""Confusion matrix of a classification checkpoint on the config's test
split (or of a saved ``--out`` results pickle): mmpretrain's
``confusion_matrix.py``. Library: ``lspt_mm/analysis/upstream_tools.py``.

    python tools/analysis_tools/confusion_matrix.py \
        configs/classification/lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py \
        work_dirs/demo_cls/epoch_10.pth --show-path cm.png --include-values
"""

import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
from lspt_mm.analysis.upstream_tools import run_tool  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    import matplotlib

    if '--show' not in argv:
        matplotlib.use('Agg')
    try:
        run_tool('confusion_matrix', argv)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()

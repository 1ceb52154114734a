#!/usr/bin/env python
"""Pictures of a config's training samples after its pipeline: mmseg's
``browse_dataset.py`` for segmentation configs (image with its label
painted), mmpretrain's for classification ones (``--phase``,
``--show-number``, ``--mode``). Library:
``lspt_mm/analysis/upstream_tools.py``.

    python tools/misc/browse_dataset.py \
        configs/segmentation/lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py \
        --output-dir work_dirs/browse --not-show
    python tools/misc/browse_dataset.py configs/classification/lspt_vit-b16-mae_fgvc.py \
        --cfg-options task=cub --output-dir work_dirs/browse --not-show -n 20
"""

import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
from lspt_mm.analysis.upstream_tools import run_tool  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--not-show' in argv:
        import matplotlib

        matplotlib.use('Agg')
    try:
        run_tool('browse_dataset', argv)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()

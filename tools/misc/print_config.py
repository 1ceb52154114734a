#!/usr/bin/env python
"""Print the whole config as it runs (bases merged, ``--cfg-options``
applied, a benchmark config's task / method resolved): mmpretrain's
``print_config.py``. Library: ``lspt_mm/analysis/upstream_tools.py``.

    python tools/misc/print_config.py configs/lspt_vitb_ade20k.py
    python tools/misc/print_config.py configs/classification/lspt_vit-b16-mae_vtab1k.py \
        --cfg-options task=dtd method=gapt
"""

import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
from lspt_mm.analysis.upstream_tools import run_tool  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        run_tool('print_config', argv, library='mmpretrain')
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')


if __name__ == '__main__':
    main()

"""The segmentation quick start: ``python tools/demo_ade20k.py`` is
``python tools/demo.py segmentation`` (see tools/demo.py)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from demo import main, save_untrained  # noqa: E402,F401

if __name__ == '__main__':
    main(task='segmentation')

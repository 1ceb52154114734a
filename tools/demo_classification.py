"""The classification quick start: ``python tools/demo_classification.py``
is ``python tools/demo.py classification`` (see tools/demo.py)."""

import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from demo import main  # noqa: E402

if __name__ == '__main__':
    main(task='classification')

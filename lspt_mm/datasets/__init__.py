"""Datasets of the classification benchmarks (registered in mmpretrain's
DATASETS): ``VTAB1k`` and ``FGVC``; ADE20K (mmseg's registries); synthetic
data in those layouts (``synthetic``); ``DataFileError``, raised by every
data check."""
from .benchmarks import (FGVC_DATASETS, VTAB_GROUPS, VTAB_NUM_CLASSES,  # noqa
                         VTAB_TASKS)
from .errors import DataFileError  # noqa: F401
from .fashion_mnist import FashionMNISTSubset  # noqa: F401
from .fgvc import FGVC  # noqa: F401
from .vtab import VTAB1k  # noqa: F401
from . import ade20k  # noqa: F401,E402  (ADE20K, mmseg registries)
from . import camvid  # noqa: F401,E402  (CamVid, mmseg registries)

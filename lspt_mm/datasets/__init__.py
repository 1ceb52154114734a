"""Datasets of the classification benchmarks (registered in mmpretrain's
DATASETS): ``VTAB1k`` and ``FGVC``; ADE20K and CamVid (mmseg's registries);
synthetic data in those layouts (``synthetic``); ``DataFileError``, raised
by every data check."""

from . import ade20k, camvid  # (ADE20K, CamVid: mmseg registries)
from .benchmarks import (
    FGVC_DATASETS,
    VTAB_GROUPS,
    VTAB_NUM_CLASSES,
    VTAB_TASKS,
)
from .errors import DataFileError
from .fashion_mnist import FashionMNISTSubset
from .fgvc import FGVC
from .vtab import VTAB1k

__all__ = [
    'ade20k',
    'camvid',
    'FGVC_DATASETS',
    'VTAB_GROUPS',
    'VTAB_NUM_CLASSES',
    'VTAB_TASKS',
    'DataFileError',
    'FashionMNISTSubset',
    'FGVC',
    'VTAB1k',
]

"""This package's configs in mmpretrain's model index.

The configs ship inside the package in OpenMMLab's mim layout
(``lspt_mm/.mim/configs`` with ``lspt_mm/.mim/model-index.yml``, as
mmpretrain's own ``mmpretrain/.mim``). ``import lspt_mm`` registers that
index with mmpretrain's ``ModelHub``, so ``mmpretrain.list_models('*lspt*')``
lists the shipped configs by name and ``mmpretrain.get_model(name)`` builds a
classification one (segmentation models are mmseg's: build them with
``mmseg.apis.init_model(config_path(name))``).
"""
import os.path as osp

MIM_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')
MODEL_INDEX = osp.join(MIM_DIR, 'model-index.yml')

_registered = []


def register_model_index(missing_ok=False):
    """Register the package's model index with mmpretrain's ``ModelHub``
    (once per process); returns the names registered."""
    if _registered:
        return list(_registered)
    if not osp.isfile(MODEL_INDEX):
        if missing_ok:
            return []
        raise FileNotFoundError(
            f'lspt_mm model index not found: {MODEL_INDEX!r}. The package '
            'is installed without its mim data (lspt_mm/.mim); reinstall it '
            'with `pip install .` from a full checkout.')
    from modelindex.load_model_index import load
    from mmpretrain.apis.model import ModelHub

    index = load(MODEL_INDEX)
    index.build_models_with_collections()
    names = [m.name.lower() for m in index.models]
    if not any(ModelHub.has(n) for n in names):
        ModelHub.register_model_index(MODEL_INDEX, config_prefix=MIM_DIR)
    _registered.extend(names)
    return list(_registered)


def list_models(pattern=None):
    """Names of this package's configs (``fnmatch`` ``pattern``, optional)."""
    import fnmatch
    names = sorted(register_model_index())
    return fnmatch.filter(names, pattern) if pattern else names


def config_path(name):
    """The shipped config file of model ``name`` (a config stem)."""
    from mmpretrain.apis.model import ModelHub
    register_model_index()
    if not ModelHub.has(name.lower()):
        raise ValueError(
            f'No lspt_mm config named {name!r}; known: '
            f'{", ".join(list_models())}')
    return ModelHub._models_dict[name.lower()].config

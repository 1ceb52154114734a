"""Layer-wise lr decay for segmentors with a ViT backbone.

mmpretrain's ``LearningRateDecayOptimWrapperConstructor`` asks the model for
``get_layer_depth``; mmpretrain classifiers have it, mmseg's
``EncoderDecoder`` does not, and mmseg's own ``LayerDecayOptimizerConstructor``
only accepts its BEiT/MAE/ConvNeXt classes by class name. This constructor
takes the depth from ``model.backbone.get_layer_depth(name, 'backbone.')``
(mmpretrain's ViT and so ``PromptedViT``): patch/position embedding and CLS
at depth 0, block i at i + 1, all other parameters (prompt method, neck,
heads) at the top depth with the full lr. Frozen parameters are left out.
"""
from functools import partial

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor

from lspt_mm import compat


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SegLayerDecayOptimWrapperConstructor(
        LearningRateDecayOptimWrapperConstructor):
    """``paramwise_cfg``: ``layer_decay_rate`` plus mmpretrain's
    ``norm_decay_mult`` / ``bias_decay_mult`` / ``flat_decay_mult`` /
    ``custom_keys``."""

    def add_params(self, params, module, prefix='', get_layer_depth=None,
                   **kwargs):
        if get_layer_depth is None and prefix == '':
            backbone = getattr(module, 'backbone', None)
            if backbone is None or not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    'SegLayerDecayOptimWrapperConstructor needs a model with '
                    'a `backbone` that has `get_layer_depth` (mmpretrain '
                    f'ViT); got {type(module).__name__}')
            get_layer_depth = partial(backbone.get_layer_depth,
                                      prefix='backbone.')
        super().add_params(params, module, prefix=prefix,
                           get_layer_depth=get_layer_depth, **kwargs)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PromptTuningOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``paramwise_cfg`` as usual), with one
    summary line about the frozen parameters instead of one warning per
    frozen tensor (about 150 for a frozen ViT-B; the version-guarded filter
    is :func:`lspt_mm.compat.frozen_param_warnings_dropped`). With a
    ``paramwise_cfg`` frozen parameters are left out of the optimiser;
    without one mmengine passes every parameter, and the frozen ones get no
    gradient, so the optimiser never updates them and keeps no state."""

    def add_params(self, params, module, prefix='', **kwargs):
        if prefix:
            return super().add_params(params, module, prefix, **kwargs)
        with compat.frozen_param_warnings_dropped(
                MMLogger.get_current_instance()):
            super().add_params(params, module, prefix, **kwargs)
        frozen = [p for p in module.parameters() if not p.requires_grad]
        print_log(f'optimizer: {len(frozen)} frozen tensors '
                  f'({sum(p.numel() for p in frozen):,} parameters, '
                  'requires_grad=False) are not trained', logger='current')

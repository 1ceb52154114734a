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

from lspt_mm import compat

from mmengine.logging import MMLogger, print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.engine.optimizers import (
    LearningRateDecayOptimWrapperConstructor,
)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SegLayerDecayOptimWrapperConstructor(
    LearningRateDecayOptimWrapperConstructor
):
    """``paramwise_cfg``: ``layer_decay_rate`` plus mmpretrain's
    ``norm_decay_mult`` / ``bias_decay_mult`` / ``flat_decay_mult`` /
    ``custom_keys``."""

    def add_params(
        self, params, module, prefix='', get_layer_depth=None, **kwargs
    ):
        if get_layer_depth is None and prefix == '':
            backbone = getattr(module, 'backbone', None)
            if backbone is None or not hasattr(backbone, 'get_layer_depth'):
                raise TypeError(
                    'SegLayerDecayOptimWrapperConstructor needs a model with '
                    'a `backbone` that has `get_layer_depth` (mmpretrain '
                    f'ViT); got {type(module).__name__}'
                )
            get_layer_depth = partial(
                backbone.get_layer_depth, prefix='backbone.'
            )
        super().add_params(
            params,
            module,
            prefix=prefix,
            get_layer_depth=get_layer_depth,
            **kwargs,
        )


def check_module_lr_mult(mults):
    """``paramwise_cfg.module_lr_mult`` checked: a dict of module-name
    prefix (``'backbone'``, ``'decode_head'``, ``'backbone.prompt_method'``)
    to a positive lr factor, or None (off)."""
    if mults is None:
        return {}
    if not isinstance(mults, dict) or not all(
        isinstance(k, str)
        and k
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and v > 0
        for k, v in mults.items()
    ):
        raise ValueError(
            'paramwise_cfg.module_lr_mult must map module-name prefixes '
            "(e.g. 'decode_head', 'backbone') to positive numbers; got "
            f'{mults!r}'
        )
    return dict(mults)


def apply_module_lr_mult(params, module, mults, base_lr):
    """Multiply the lr of each parameter group (one parameter each, as
    mmengine's paramwise groups are) by the factor of the longest prefix of
    ``mults`` its parameter name starts with (``name == prefix`` or
    ``name.startswith(prefix + '.')``), on top of any ``custom_keys``
    ``lr_mult``. A prefix that matches no parameter at all is an error (a
    misspelt module name would otherwise silently do nothing); one that
    matches only frozen parameters (``backbone`` of a linear probe) is
    not."""
    names = {id(p): n for n, p in module.named_parameters()}
    order = sorted(mults, key=len, reverse=True)
    used = set()
    for group in params:
        group_params = group['params']
        if len(group_params) != 1:
            continue
        name = names.get(id(group_params[0]), '')
        for prefix in order:
            if name == prefix or name.startswith(prefix + '.'):
                group['lr'] = group.get('lr', base_lr) * mults[prefix]
                used.add(prefix)
                break
    unknown = [
        p
        for p in mults
        if p not in used
        and not any(n == p or n.startswith(p + '.') for n in names.values())
    ]
    if unknown:
        raise ValueError(
            f'paramwise_cfg.module_lr_mult: {unknown} match(es) no '
            'parameter of the model (top-level modules: '
            f'{[n for n, _ in module.named_children()]})'
        )
    print_log(
        'optimizer: lr multipliers by module: '
        + ', '.join(f'{k} x{v:g}' for k, v in mults.items()),
        logger='current',
    )


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PromptTuningOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor (``paramwise_cfg`` as usual, plus
    ``module_lr_mult``: a separate lr for the decode head, neck or the
    tuned backbone parts, e.g. ``dict(decode_head=10., auxiliary_head=10.,
    neck=10.)``; off by default; see :func:`apply_module_lr_mult`), with one
    summary line about the frozen parameters instead of one warning per
    frozen tensor (about 150 for a frozen ViT-B; the version-guarded filter
    is :func:`lspt_mm.compat.frozen_param_warnings_dropped`). With a
    ``paramwise_cfg`` frozen parameters are left out of the optimiser;
    without one mmengine passes every parameter, and the frozen ones get no
    gradient, so the optimiser never updates them and keeps no state."""

    def __init__(self, optim_wrapper_cfg, paramwise_cfg=None):
        paramwise_cfg = dict(paramwise_cfg or {})
        self.module_lr_mult = check_module_lr_mult(
            paramwise_cfg.pop('module_lr_mult', None)
        )
        if self.module_lr_mult and not paramwise_cfg:
            # mmengine builds per-parameter groups only for a non-empty one
            paramwise_cfg = dict(custom_keys={})
        super().__init__(optim_wrapper_cfg, paramwise_cfg or None)

    def add_params(self, params, module, prefix='', **kwargs):
        if prefix:
            return super().add_params(params, module, prefix, **kwargs)
        with compat.frozen_param_warnings_dropped(
            MMLogger.get_current_instance()
        ):
            super().add_params(params, module, prefix, **kwargs)
        if self.module_lr_mult:
            apply_module_lr_mult(
                params, module, self.module_lr_mult, self.base_lr
            )
        frozen = [p for p in module.parameters() if not p.requires_grad]
        print_log(
            f'optimizer: {len(frozen)} frozen tensors '
            f'({sum(p.numel() for p in frozen):,} parameters, '
            'requires_grad=False) are not trained',
            logger='current',
        )

"""The task models of the shipped configs: mmseg's ``EncoderDecoder`` and
mmpretrain's ``ImageClassifier`` under the checkpoint policy.

Every way OpenMMLab loads weights into a built model ends in the model's
``_load_from_state_dict``: mmengine's ``load_checkpoint`` (used by mmseg's
``init_model`` and ``MMSegInferencer``, mmpretrain's ``get_model`` and
inferencers, the runner's ``load_from`` / ``--resume``) and torch's
``load_state_dict``. There, mmengine and torch load with ``strict=False``
and only warn about a head of another class count or a prompt coder left
random. These two models check the whole state dict against themselves
first (:func:`~lspt_mm.models.checkpoint_policy.check_state_dict`) and
refuse a checkpoint that does not fit, with one message naming what does
not fit. Otherwise they are mmseg's and mmpretrain's classes unchanged
(same state-dict keys, same outputs).

``PromptedImageClassifier`` also says what task it does (mmpretrain's
``inference_model`` picks its inferencer from a model's ``_metainfo``, which
only models of mmpretrain's model zoo have).
"""

from types import SimpleNamespace

from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS as PRETRAIN_MODELS
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS as SEG_MODELS

from .checkpoint_policy import check_state_dict


class _CheckedLoad:
    """Check a whole-model state dict (prefix ``''``: this model is the
    root of the load) against the model before loading it."""

    def _load_from_state_dict(
        self,
        state_dict,
        prefix,
        local_metadata,
        strict,
        missing_keys,
        unexpected_keys,
        error_msgs,
    ):
        if prefix == '':
            check_state_dict(self, state_dict, 'being loaded')
        super()._load_from_state_dict(
            state_dict,
            prefix,
            local_metadata,
            strict,
            missing_keys,
            unexpected_keys,
            error_msgs,
        )


@SEG_MODELS.register_module()
class PromptedEncoderDecoder(_CheckedLoad, EncoderDecoder):
    """mmseg's ``EncoderDecoder`` that refuses a checkpoint that does not fit
    it (module docstring)."""


_CLASSIFICATION = SimpleNamespace(
    results=[SimpleNamespace(task='Image Classification')]
)


@PRETRAIN_MODELS.register_module()
class PromptedImageClassifier(_CheckedLoad, ImageClassifier):
    """mmpretrain's ``ImageClassifier`` that refuses a checkpoint that does
    not fit it and tells ``mmpretrain.apis.inference_model`` that it
    classifies images (module docstring)."""

    @property
    def _metainfo(self):
        found = self.__dict__.get('_metainfo_', None)
        return found if found is not None else _CLASSIFICATION

    @_metainfo.setter
    def _metainfo(self, value):  # mmpretrain's get_model sets it (None)
        self.__dict__['_metainfo_'] = value


# ------------------------------------------------ the other kind's registry
class WrongRegistryError(KeyError):
    """A model type written for the other library's registry (a
    ``KeyError``, as the registry's own "not in the registry" error);
    its message says what to write instead."""

    def __str__(self):  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ''


def _prompted_vit_in_mmseg(**kwargs):
    raise WrongRegistryError(
        "type='PromptedViT' in an mmseg model config: PromptedViT is "
        "registered in mmpretrain's MODELS, not in mmseg's. Write "
        "type='mmpretrain.PromptedViT' (as the shipped segmentation "
        'configs do, e.g. configs/segmentation/'
        'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py).'
    )


def _segmentor_in_mmpretrain(**kwargs):
    raise WrongRegistryError(
        'PromptedEncoderDecoder is an mmseg segmentor: this is a '
        'segmentation config, which mmpretrain (get_model, its inferencers, '
        'its registry) cannot build. Build it with mmseg: '
        'mmseg.apis.init_model(config, checkpoint) (a shipped config by '
        'name: mmseg.apis.init_model(lspt_mm.model_index.config_path(name)))'
        ', or lspt_mm.apis.init_model(config, checkpoint), which picks the '
        "library from the config's default_scope; "
        "lspt_mm.model_index.list_models(task='segmentation') lists them."
    )


SEG_MODELS.register_module('PromptedViT', module=_prompted_vit_in_mmseg)
PRETRAIN_MODELS.register_module(
    'PromptedEncoderDecoder', module=_segmentor_in_mmpretrain
)

"""A model type written for the other library's registry says what to
write instead (issue 29, item 5), and what happens when mmseg is imported
before lspt_mm on mmcv-lite is what docs/api.md says."""

import os
import os.path as osp
import subprocess
import sys

import pytest

import lspt_mm
from lspt_mm import model_index
from lspt_mm.models.task_models import WrongRegistryError

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG_NAME = 'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo'
CLS_NAME = 'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo'
SEG_DEMO = osp.join(ROOT, 'configs', 'segmentation', SEG_NAME + '.py')


def test_prompted_vit_without_prefix_in_an_mmseg_config():
    """Before: KeyError 'PromptedViT is not in the mmseg::model registry.
    Please check whether the value of `PromptedViT` is correct ...'."""
    from mmengine.config import Config
    from mmseg.apis import init_model

    cfg = Config.fromfile(SEG_DEMO)
    assert cfg.model.backbone.type == 'mmpretrain.PromptedViT'
    cfg.model.backbone.type = 'PromptedViT'
    with pytest.raises(KeyError) as err:
        init_model(cfg)
    assert isinstance(err.value, WrongRegistryError)
    msg = str(err.value)
    assert "Write type='mmpretrain.PromptedViT'" in msg
    assert "type='PromptedViT' in an mmseg model config" in msg


def test_the_right_registries_are_unchanged():
    from lspt_mm.models import PromptedViT
    from lspt_mm.models.task_models import PromptedEncoderDecoder

    from mmpretrain.registry import MODELS as PRETRAIN
    from mmseg.registry import MODELS as SEG

    assert SEG.get('PromptedEncoderDecoder') is PromptedEncoderDecoder
    assert SEG.get('mmpretrain.PromptedViT') is PromptedViT
    assert PRETRAIN.get('PromptedViT') is PromptedViT


def test_get_model_of_a_segmentation_config():
    """Before: KeyError 'PromptedEncoderDecoder is not in the
    mmpretrain::model registry. ...'."""
    import mmpretrain

    with pytest.raises(KeyError) as err:
        mmpretrain.get_model(SEG_NAME)
    msg = str(err.value)
    assert isinstance(err.value, WrongRegistryError)
    assert 'is an mmseg segmentor: this is a segmentation config' in msg
    assert 'mmseg.apis.init_model(lspt_mm.model_index.config_path' in msg
    # what the message says to do works
    from mmseg.apis import init_model

    model = init_model(model_index.config_path(SEG_NAME), device='cpu')
    assert type(model).__name__ == 'PromptedEncoderDecoder'


def test_list_models_tells_the_two_kinds_apart():
    seg = model_index.list_models(task='segmentation')
    cls = model_index.list_models(task='classification')
    assert SEG_NAME in seg and CLS_NAME in cls
    assert not set(seg) & set(cls)
    assert sorted(seg + cls) == model_index.list_models()
    assert model_index.list_models('*demo*', task='classification') == [
        n for n in cls if 'demo' in n
    ]
    assert model_index.task_of(SEG_NAME) == 'segmentation'
    with pytest.raises(ValueError, match="one of \\['classification'"):
        model_index.list_models(task='detection')


def _python(code):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    return subprocess.run(
        [sys.executable, '-c', code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_mmseg_imported_before_lspt_mm_on_mmcv_lite():
    """docs/api.md: on mmcv-lite, ``import lspt_mm`` comes before any mmseg
    import (mmseg imports mmcv.ops at import; lspt_mm.compat registers the
    stand-in for its compiled ops). Imported first, mmseg fails with
    ``No module named 'mmcv._ext'`` before any lspt_mm code can run;
    importing lspt_mm first makes the same import work."""
    from lspt_mm import compat

    if 'mmcv_ext' not in compat.APPLIED:
        pytest.skip('full mmcv: its compiled ops import in either order')
    first = _python('from mmseg.apis import init_model')
    assert first.returncode != 0
    assert "No module named 'mmcv._ext'" in first.stderr
    docs = open(osp.join(ROOT, 'docs', 'api.md')).read()
    assert "No module named 'mmcv._ext'" in docs  # what the docs explain
    second = _python(
        'import lspt_mm; from mmseg.apis import init_model, inference_model'
    )
    assert second.returncode == 0, second.stderr[-2000:]
    assert lspt_mm.__version__

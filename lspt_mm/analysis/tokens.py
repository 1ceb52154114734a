"""Load a model from any config, feed it an image, and read what each
PromptedViT block does with prompts and patches (attention maps, block
outputs). Used by ``tools/analysis_tools/visualize_attention.py`` and
``tools/analysis_tools/prompt_patch_similarity.py``."""

import contextlib
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F

from lspt_mm.models import PromptedViT, checkpoint_policy
from lspt_mm.recipes import apply_task

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
IMG_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def load_model(config, checkpoint=None, cfg_options=None, device='cpu'):
    """Build ``cfg.model`` (an mmpretrain classifier, an mmseg segmentor or
    any model with a ``backbone``) in the config's default scope, load
    ``checkpoint`` (``None`` / ``'none'``: initial weights) and return it
    in eval mode. Returns ``(model, cfg)``.

    The checkpoint is read without running code from it and must fit the
    model (:mod:`lspt_mm.models.checkpoint_policy`, as ``tools/test.py``):
    a checkpoint of another method, ``N_p`` or head is an error, never a
    model with random parts."""

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    apply_task(cfg)  # a benchmark config: its task's recipe (task=...)
    has_checkpoint = checkpoint and str(checkpoint).lower() != 'none'
    if has_checkpoint:
        checkpoint_policy.skip_pretrained_if_checkpoint_has_backbone(
            cfg, checkpoint
        )
    scope = cfg.get('default_scope', None) or 'mmpretrain'
    init_default_scope(scope)
    if scope == 'mmseg':
        import mmseg.models  # noqa: F401
        from mmseg.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    model = MODELS.build(cfg.model)
    if has_checkpoint:
        checkpoint_policy.load_checkpoint(
            model, checkpoint, map_location='cpu'
        )
    else:
        model.init_weights()
    return model.to(device).eval(), cfg


def find_backbone(model):
    """The PromptedViT of ``model`` (its ``backbone``, or the ``module`` a
    wrapper such as mmpretrain's ``LoRAModel`` holds)."""

    backbone = getattr(model, 'backbone', model)
    while not isinstance(backbone, PromptedViT) and isinstance(
        getattr(backbone, 'module', None), torch.nn.Module
    ):
        backbone = backbone.module
    if not isinstance(backbone, PromptedViT):
        raise TypeError(
            f'model.backbone is a {type(backbone).__name__}, not a PromptedViT'
        )
    return backbone


def backbone_input_size(backbone):
    """(H, W) the backbone was built for."""
    return tuple(r * backbone.patch_size for r in backbone.patch_resolution)


def list_images(paths, max_images=None):
    files = []
    for path in paths:
        if osp.isdir(path):
            import os

            files += sorted(
                osp.join(path, f)
                for f in os.listdir(path)
                if f.lower().endswith(IMG_EXTS)
            )
        else:
            files.append(path)
    if not files:
        raise FileNotFoundError(f'no images in {paths}')
    return files[:max_images] if max_images else files


def load_image(path, size):
    """RGB uint8 array resized to ``size`` (H, W)."""
    from PIL import Image

    img = (
        Image.open(path)
        .convert('RGB')
        .resize((size[1], size[0]), Image.BILINEAR)
    )
    return np.asarray(img)


def normalise(model, images):
    """uint8 RGB (B, H, W, 3) array -> normalised float tensor with the
    model's data-preprocessor mean/std (ImageNet's if it has none)."""
    pre = getattr(model, 'data_preprocessor', None)
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    mean = torch.as_tensor(
        IMAGENET_MEAN if mean is None else mean.flatten().tolist()
    ).view(1, 3, 1, 1)
    std = torch.as_tensor(
        IMAGENET_STD if std is None else std.flatten().tolist()
    ).view(1, 3, 1, 1)
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2)
    return (x.float() - mean) / std


@contextlib.contextmanager
def record_block_outputs(backbone):
    """Collect every block's output tokens (B, T, D), before any prompt
    replacement of the next block. Hooks ``layer.ffn``: its output is the
    block output in both of PromptedViT's paths (``layer(x)`` and GaPT's
    temperature path, which does not call ``layer.forward``)."""
    outputs = []
    handles = [
        layer.ffn.register_forward_hook(
            lambda m, args, out: outputs.append(out.detach())
        )
        for layer in backbone.layers
    ]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def attention_summary(backbone, x):
    """Per-block attention of the first image of ``x``.

    Returns a dict of numpy arrays (L blocks, patch grid h×w):
    ``cls_to_patch`` (L, h, w): CLS row, head mean, over patches;
    ``prompt_to_patch`` (L, h, w): mean over prompts and heads (NaN without
    prompts); ``cls_mass`` / ``prompt_mass`` / ``patch_mass`` (L, 3):
    attention mass of the CLS row / the prompt rows / the patch rows on
    [prefix (CLS and any register tokens), prompts, patches] (rows sum to
    1; prompt and patch rows averaged). ``patch_mass[:, 1]`` is how much
    the patch tokens, which a dense head reads, take from the prompts.
    Token groups come from the backbone's layout
    (``PromptedViT.split_tokens``). Prompts that are no tokens of the
    self-attention (CVPT, LSPT-CA) have no rows or columns here: their
    prompt entries are nan (they reach the patches through the method's
    cross-attention; :func:`feature_change` measures what that moves).
    """
    n_p = backbone.num_prompt_tokens
    if backbone.cls_token is None:
        raise ValueError(
            'attention_summary reads the CLS row; this '
            'backbone has no CLS token (with_cls_token=False)'
        )
    with backbone.record_attention() as maps:
        backbone(x[:1])
    h, w = (
        -(-x.shape[-2] // backbone.patch_size),
        -(-x.shape[-1] // backbone.patch_size),
    )
    cls_maps, prompt_maps, cls_mass, prompt_mass = [], [], [], []
    patch_mass = []

    def mass(rows):  # rows: (R, T) -> [prefix, prompts, patches]
        return torch.stack(
            [
                part.sum(-1).mean()
                for part in backbone.split_tokens(rows, dim=-1)
            ]
        )

    for a in maps:
        a = a[0].float().mean(0)  # head mean (T, T)
        prefix_rows, prompt_rows, patch_rows = backbone.split_tokens(a, dim=0)
        patch_mass.append(mass(patch_rows))
        cls_row = prefix_rows[:1]  # CLS comes first in the prefix
        cls_maps.append(
            backbone.split_tokens(cls_row, dim=-1)[2].reshape(h, w)
        )
        cls_mass.append(mass(cls_row))
        if n_p:
            to_patches = backbone.split_tokens(prompt_rows, dim=-1)[2]
            prompt_maps.append(to_patches.mean(0).reshape(h, w))
            prompt_mass.append(mass(prompt_rows))
        else:
            prompt_maps.append(torch.full((h, w), float('nan')))
            prompt_mass.append(torch.full((3,), float('nan')))
    return dict(
        cls_to_patch=torch.stack(cls_maps).numpy(),
        prompt_to_patch=torch.stack(prompt_maps).numpy(),
        cls_mass=torch.stack(cls_mass).numpy(),
        prompt_mass=torch.stack(prompt_mass).numpy(),
        patch_mass=torch.stack(patch_mass).numpy(),
    )


@torch.no_grad()
def prompt_patch_cosine(backbone, x):
    """Mean cosine similarity between every prompt token and every patch
    token of each block's output, per image: array (B, L)."""
    n_p = backbone.num_prompt_tokens
    if not n_p:
        raise ValueError(
            'this backbone has no prompt tokens in its blocks '
            f'(prompt_method={backbone.method_name})'
        )
    with record_block_outputs(backbone) as outs:
        backbone(x)
    sims = []
    for tokens in outs:
        _, prompts, patches = backbone.split_tokens(tokens.float())
        prompts = F.normalize(prompts, dim=-1)
        patches = F.normalize(patches, dim=-1)
        sims.append((prompts @ patches.transpose(1, 2)).mean((1, 2)))
    return torch.stack(sims, dim=1).numpy()


SCALE_COLUMNS = (
    'out_prompts',
    'patches',
    'patch_mean',
    'next_prompts',
    'next_prompts_max_abs',
)


@torch.no_grad()
def prompt_token_scales(backbone, x):
    """How large the prompts are against the patch tokens, after each block
    l < L: mean L2 norm of the block's output prompts ``X̂_P^l``, of its
    patch tokens ``X^l``, of their mean (GSPC's term), of the prompts the
    method passes on ``X_P^l`` (LSPT: the LSTM output, tanh-bounded), and
    the largest ``|entry|`` of those (1.0: a saturated LSTM). Array
    (L-1, 5) in the order of :data:`SCALE_COLUMNS`."""
    method = backbone.prompt_method
    if not backbone.num_prompts:
        raise ValueError('this backbone has no prompt tokens')
    rows, step = [], method.next_prompts

    def spy(index, in_prompts, out_prompts, patches, state):
        prompts, state = step(index, in_prompts, out_prompts, patches, state)
        rows.append(
            [
                out_prompts.norm(dim=-1).mean(),
                patches.norm(dim=-1).mean(),
                patches.mean(1).norm(dim=-1).mean(),
                prompts.norm(dim=-1).mean(),
                prompts.abs().max(),
            ]
        )
        return prompts, state

    method.next_prompts = spy
    try:
        backbone(x)
    finally:
        del method.next_prompts  # back to the class's method
    return torch.tensor(rows).numpy()


@torch.no_grad()
def feature_change(model, reference, x):
    """How much a tuned model moves the features its head reads: per output
    map of the backbone (``out_indices``), ``‖f − f₀‖ / ‖f₀‖`` over the
    batch ``x``, with ``f`` the tuned backbone's output and ``f₀`` the
    ``reference`` (the frozen ViT, e.g. the linear probe's model). Array
    (len(out_indices),)."""
    ours = model.backbone(x) if hasattr(model, 'backbone') else model(x)
    theirs = (
        reference.backbone(x)
        if hasattr(reference, 'backbone')
        else reference(x)
    )
    return np.array(
        [
            float((a - b).norm() / b.norm().clamp_min(1e-12))
            for a, b in zip(ours, theirs)
        ]
    )

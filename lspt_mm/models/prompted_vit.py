"""PromptedViT: mmpretrain's VisionTransformer with a prompt method.

One backbone expresses LSPT, its ablations and every baseline of the method
table (:mod:`lspt_mm.models.methods`: linear probe, full fine-tune,
partial-k, bias, adapter, LoRA, VPT-shallow, VPT-deep, GaPT); the method is
a registered component chosen by name or built from config.
Parameter names are mmpretrain's, so mmpretrain / converted MAE and MoCo v3
weights load unchanged; method state lives under ``prompt_method.``.
"""

import contextlib

import torch
import torch.nn as nn
import torch.utils.checkpoint

from mmpretrain.models.backbones.vision_transformer import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from mmpretrain.registry import MODELS

from . import checkpoint_policy, methods
from .prompt_init import build_prompt_init
from .vit_blocks import attention_weights, block_forward, checkpoint_blocks

BACKBONE_MODULES = (
    'patch_embed',
    'drop_after_pos',
    'pre_norm',
    'layers',
    'ln1',
    'ln2',
)


@MODELS.register_module()
class PromptedViT(VisionTransformer):
    """Vision Transformer with visual prompt tuning (LSPT and baselines).

    Token layout inside the blocks: ``[prefix; N_p prompts; N patches]``,
    where the prefix is the CLS token (if ``with_cls_token``) followed by
    ``num_register_tokens`` DINOv2 register tokens. Prompts and registers
    carry no position embedding; every method treats registers like CLS
    (never replaced, never in feature maps). All arguments of mmpretrain's
    ``VisionTransformer`` are accepted (``arch`` table, ``img_size``,
    ``patch_size``, ``out_indices``, ``with_cls_token``, ``drop_path_rate``,
    ...); inputs whose sides are not a multiple of the patch size are padded
    at the bottom / right as in mmpretrain.

    Args:
        arch (str | dict): an mmpretrain arch (``'base'``, ``'large'``, ...)
            or ``'dinov2-small' | 'dinov2-base' | 'dinov2-large'``, which
            default to patch 14 and LayerScale (init 1e-5).
        prompt_method (str): a name of the method table
            (:data:`lspt_mm.models.methods.METHODS`: ``linear``, ``full``,
            ``partial``, ``bias``, ``adapter``, ``vpt_shallow``,
            ``vpt_deep``, ``gapt``, ``lspt``, ``lspt_lpc_only``,
            ``lspt_gspc_only``; ``lora`` wraps this backbone instead), a
            registered component type, or ``none`` (no prompts: linear
            probe, or full fine-tune with ``freeze_backbone=False``).
            Defaults to ``lspt`` unless ``prompt`` is given.
        num_prompts (int): ``N_p`` prompt tokens per block (>= 1 for every
            method with prompts). Defaults to 10.
        prompt_dropout (float): dropout on inserted prompts. Defaults to 0.1.
        compose (list, optional): methods without prompts combined with the
            prompt method in this backbone (a general mechanism, not a list
            of pairs): table names ``'bias'``, ``'adapter'``, ``'lora'`` or
            component configs (``dict(type='MLPAdapter', reduction=16)``),
            e.g. ``prompt_method='vpt_deep', compose=['lora']``. The
            method table's ``lspt_bias`` and ``lspt_lora`` are such
            composites.
        prompt_cfg (dict, optional): extra method options, e.g.
            ``dict(gate_init=10., temperature_range=(0.01, 10.))`` for GaPT,
            ``dict(k=2)`` for partial, ``dict(reduction=16)`` for adapter.
        prompt (dict, optional): the method as a component config instead
            of ``prompt_method``, e.g. ``dict(type='LSPT', num_prompts=100)``
            or a user's own registered subclass of ``PromptMethod``; its
            ``num_prompts`` / ``prompt_dropout`` override the arguments.
        prompt_init (str | dict, optional): where the prompts start, for
            every method with prompts (:mod:`lspt_mm.models.prompt_init`):
            ``'uniform'`` (VPT's init, drawn here; the default),
            ``'spt_random'``, ``'spt_mean'``, ``'spt_max'``,
            ``'spt_kmeans'`` (SPT) or ``'vipamin'``, or ``dict(type=<one
            of them>, **options)`` (e.g. ``dict(type='vipamin', k=8,
            lam=0.5)``). The data-driven values are computed from training
            images by :class:`lspt_mm.engine.PromptInitHook` before
            training starts (``tools/train.py`` adds it when the config
            lacks it); nothing else of the model depends on the choice.
        prompt_init_cfg (dict, optional): options added to ``prompt_init``.
        with_cp (bool | int | list): activation checkpointing of blocks
            (mmseg's name): in training, a checkpointed block keeps only
            its input tokens (and ``τ_l``) for backward and recomputes its
            forward there (``torch.utils.checkpoint``, non-reentrant, RNG
            state restored, so dropout / drop-path masks repeat). ``True``:
            every block; an int ``k``: blocks 0, k, 2k, ...; a list: those
            0-based blocks. Outputs and gradients are those of the plain
            step; the backward costs one more forward of each such block.
            Defaults to False.
        num_register_tokens (int): DINOv2 register tokens inserted after CLS
            *after* the position embedding is added (4 in the ``_reg4``
            files). Defaults to 0.
        freeze_backbone (bool, optional): freeze the ViT but what the
            method trains (its own tensors and, e.g. for bias tuning, some
            ViT ones); frozen modules stay in eval mode. False trains
            everything. Defaults to the method table's (False only for
            ``full``; True with ``prompt=``).
        out_type (str): ``avg_token`` (MAE protocol: mean of prompt and patch
            tokens of the last block, then the final norm), ``cls_token``
            (final-norm CLS, MoCo v3 / DINOv2 protocol), ``featmap`` (patch
            tokens as (B, D, H/p, W/p) maps, prefix and prompts dropped; for
            dense tasks), ``avg_featmap`` or ``raw`` (all tokens). Defaults
            to ``avg_token``.
        pretrained (str, optional): official MAE / MoCo v3 / DINOv2 file,
            Hugging Face DINOv2, timm-style or mmpretrain checkpoint, loaded
            at construction (so test-time models have it too). Every
            backbone key must be found.
        save_trainable_only (bool, optional): leave the frozen ViT out of
            saved state dicts (checkpoints); loading such a checkpoint
            takes it from ``pretrained``
            (:mod:`~lspt_mm.models.checkpoint_policy`). None (default):
            True when the ViT is frozen and comes from a ``pretrained``
            file (it can be refilled from there: LSPT on ViT-B saves ~23
            MB instead of ~370 MB), else False (a random or trained ViT is
            saved whole). False: full checkpoints.

    Note:
        Position embeddings are resized with mmpretrain's
        ``resize_pos_embed`` (bicubic to the exact target grid, CLS kept
        apart) for every arch, DINOv2 included. DINOv2's own code
        interpolates with ``scale_factor=(n + 0.1) / N`` (an offset working
        around a float rounding bug in older PyTorch); both give the target
        grid exactly, and at the native grid (518 px for DINOv2) neither
        changes the table. Using one routine keeps checkpoints resized on
        load identical to those resized in ``forward``.
    """

    OUT_TYPES = VisionTransformer.OUT_TYPES | {'avg_token'}
    arch_zoo = {
        **VisionTransformer.arch_zoo,
        **dict.fromkeys(
            ['dinov2-b', 'dinov2-base'],
            {
                'embed_dims': 768,
                'num_layers': 12,
                'num_heads': 12,
                'feedforward_channels': 768 * 4,
            },
        ),
        **dict.fromkeys(
            ['dinov2-l', 'dinov2-large'],
            {
                'embed_dims': 1024,
                'num_layers': 24,
                'num_heads': 16,
                'feedforward_channels': 1024 * 4,
            },
        ),
    }
    # arch name prefix -> defaults of arguments left as None
    ARCH_DEFAULTS = {
        'dinov2-': dict(patch_size=14, layer_scale_init_value=1e-5),
        '': dict(patch_size=16, layer_scale_init_value=0.0),
    }

    def __init__(
        self,
        arch='base',
        img_size=224,
        patch_size=None,
        prompt_method=None,
        num_prompts=10,
        prompt_dropout=0.1,
        prompt_cfg=None,
        compose=None,
        num_register_tokens=0,
        freeze_backbone=None,
        out_type='avg_token',
        pretrained=None,
        save_trainable_only=None,
        layer_scale_init_value=None,
        init_cfg=None,
        prompt=None,
        prompt_init=None,
        prompt_init_cfg=None,
        with_cp=False,
        **kwargs,
    ):
        if isinstance(arch, str) and arch.lower() == 'dinov2-giant':
            raise ValueError(
                "arch='dinov2-giant' (SwiGLU FFN) is not "
                'supported; use dinov2-small/base/large'
            )
        name = arch.lower() if isinstance(arch, str) else ''
        defaults = next(
            d for key, d in self.ARCH_DEFAULTS.items() if name.startswith(key)
        )
        if patch_size is None:
            patch_size = defaults['patch_size']
        if layer_scale_init_value is None:
            layer_scale_init_value = defaults['layer_scale_init_value']
        method_name, method_cfg, freeze_backbone = methods.resolve(
            prompt_method, prompt_cfg, freeze_backbone, prompt, compose=compose
        )
        # a plain attribute (no tensors, nothing in state dicts)
        init = build_prompt_init(prompt_init, prompt_init_cfg)
        if not isinstance(num_register_tokens, int) or num_register_tokens < 0:
            raise ValueError(
                'num_register_tokens must be an int >= 0, got '
                f'{num_register_tokens!r}'
            )
        if out_type not in self.OUT_TYPES:
            raise ValueError(
                f'out_type={out_type!r} is unknown; choose one '
                f'of {sorted(self.OUT_TYPES)}'
            )
        if (
            isinstance(init_cfg, dict)
            and init_cfg.get('type') == 'Pretrained'
            and pretrained is None
        ):
            # route through the converting, key-checking loader
            pretrained, init_cfg = init_cfg['checkpoint'], None
        super().__init__(
            arch=arch,
            img_size=img_size,
            patch_size=patch_size,
            out_type='raw' if out_type == 'avg_token' else out_type,
            layer_scale_init_value=layer_scale_init_value,
            init_cfg=init_cfg,
            **kwargs,
        )
        self.out_type = out_type
        self.patch_size = patch_size
        if num_register_tokens:
            self.register_tokens = nn.Parameter(
                torch.zeros(1, num_register_tokens, self.embed_dims)
            )
        else:
            self.register_tokens = None
        # CLS (if any) and registers: the tokens before the prompts
        self.num_prefix_tokens = self.num_extra_tokens + num_register_tokens
        self.prompt_method = methods.build_method(
            method_cfg,
            method_name,
            num_prompts=num_prompts,
            embed_dims=self.embed_dims,
            num_layers=self.num_layers,
            patch_size=patch_size,
            prompt_dropout=prompt_dropout,
        )
        self.freeze_backbone = freeze_backbone
        if save_trainable_only is None:  # refillable from `pretrained`
            save_trainable_only = (
                bool(freeze_backbone) and pretrained is not None
            )
        self.save_trainable_only = bool(save_trainable_only)
        self.pretrained = pretrained
        self.backbone_loaded = False  # set once `pretrained` is loaded
        self._attention_record = None
        self._block_input_watch = None
        self.prompt_init = init
        self.with_cp = with_cp
        self._cp_blocks = checkpoint_blocks(with_cp, self.num_layers)
        for module in self.modules():  # np.float64 rates from np.linspace:
            # torch.compile would trace them as tensors and break the graph
            # at DropPath's `if drop_prob == 0.` in every block
            if type(getattr(module, 'drop_prob', None)).__module__ == 'numpy':
                module.drop_prob = float(module.drop_prob)
        if freeze_backbone:  # the method's tensors and what it trains
            for name, param in self.named_parameters():
                if not name.startswith('prompt_method.'):
                    param.requires_grad = self.prompt_method.trains_param(name)
        self._register_load_state_dict_pre_hook(self._fill_frozen_weights)
        self._register_state_dict_hook(PromptedViT._drop_frozen_weights)
        if pretrained is not None:
            self.load_pretrained(pretrained)
        for part in self.prompt_method.components():
            part.attach(self)  # e.g. LoRA's layers, once the ViT is loaded
            part.backbone_weights_ready(self)
        self.train()

    # ------------------------------------------------------------ structure
    @property
    def num_prompts(self):
        """``N_p``, prompts per block."""
        return self.prompt_method.num_prompts

    @property
    def num_prompt_tokens(self):
        """Prompt tokens in the blocks' token sequence: ``N_p``, or 0 when
        the method's prompts are read only by its per-token update
        (CVPT)."""
        method = self.prompt_method
        return method.num_prompts if method.prompts_in_attention else 0

    def backbone_modules(self):
        """The pretrained ViT's modules (frozen unless full fine-tuning)."""
        return [getattr(self, n) for n in BACKBONE_MODULES if hasattr(self, n)]

    @property
    def method_name(self):
        """The method's name (table name or registry type)."""
        return self.prompt_method.method_name

    def is_backbone_key(self, key):
        """Whether state-dict ``key`` belongs to the pretrained ViT."""
        return key.split('.')[0] in BACKBONE_MODULES or key in (
            'cls_token',
            'pos_embed',
            'register_tokens',
        )

    def is_frozen_key(self, key):
        """Whether state-dict ``key`` is a frozen pretrained ViT tensor:
        left out of trainable-only checkpoints and taken from
        ``pretrained`` when a checkpoint lacks it. Decided by
        ``requires_grad``, so ViT tensors a method trains (biases, the last
        blocks, LoRA's ``lora_`` layers inserted by a wrapper) are not."""
        if not self.freeze_backbone or not self.is_backbone_key(key):
            return False
        try:
            return not self.get_parameter(key).requires_grad
        except AttributeError:  # a buffer
            return True

    def train(self, mode=True):
        """Frozen ViT modules stay in eval mode (no dropout, no drop-path);
        with a frozen backbone, a module holding trained tensors (e.g. the
        last blocks of partial-k, LoRA layers) and its parameter-free
        children (dropout, drop-path) follow ``mode``."""
        super().train(mode)
        if self.freeze_backbone:
            for module in self.backbone_modules():
                self._set_frozen_mode(module, mode)
        return self

    @staticmethod
    def _set_frozen_mode(module, mode, parent_trains=False):
        trains = any(p.requires_grad for p in module.parameters())
        has_params = next(module.parameters(), None) is not None
        module.training = mode and (
            trains or (parent_trains and not has_params)
        )
        for child in module.children():
            PromptedViT._set_frozen_mode(child, mode, module.training)

    # ------------------------------------------------------------ weights
    def load_pretrained(self, path):
        """Load pretrained ViT weights; any backbone key missing is an error,
        prompt-method keys are new unless the file has exactly this
        model's (rules: :mod:`lspt_mm.models.checkpoint_policy`)."""
        checkpoint_policy.load_pretrained(self, path)
        self.backbone_loaded = True

    def init_weights(self):
        if self.backbone_loaded:
            # weights came from `pretrained` at construction; only the
            # prompt method (initialised in its constructor) is new
            self._is_init = True
            return
        super().init_weights()
        for part in self.prompt_method.components():
            part.backbone_weights_ready(self)

    def _drop_frozen_weights(self, state_dict, prefix, local_metadata):
        """State-dict hook: records this backbone's setup (method, N_p,
        arch) in the metadata; leaves the frozen ViT out with
        ``save_trainable_only``."""
        return checkpoint_policy.on_state_dict(
            self, state_dict, prefix, local_metadata
        )

    def _fill_frozen_weights(
        self, state_dict, prefix, local_metadata, *args, **kwargs
    ):
        """A checkpoint holding only trainable tensors gets the frozen
        backbone from ``pretrained`` (never a random one)."""
        checkpoint_policy.fill_frozen_weights(
            self, state_dict, prefix, local_metadata
        )

    # ------------------------------------------------------------ forward
    @contextlib.contextmanager
    def record_attention(self):
        """Collect each block's attention weights (B, heads, T, T) during a
        forward: ``with vit.record_attention() as maps: vit(x)``."""
        self._attention_record = []
        try:
            yield self._attention_record
        finally:
            self._attention_record = None

    @contextlib.contextmanager
    def watch_block_inputs(self, fn):
        """Call ``fn(l, x)`` with the tokens ``x`` (``[prefix; prompts;
        patches]``) entering every block ``l`` during forwards inside the
        block (the data-driven prompt inits read them)."""
        self._block_input_watch = fn
        try:
            yield
        finally:
            self._block_input_watch = None

    # ------------------------------------------------------------ tokens
    def split_tokens(self, x, dim=1):
        """``[prefix; prompts; patches]`` -> the three parts (one split, so
        its backward is one cat, not three zero-filled slice gradients).
        ``dim``: the token axis (e.g. -1 for the key axis of attention
        maps)."""
        n_pre, n_p = self.num_prefix_tokens, self.num_prompt_tokens
        return x.split((n_pre, n_p, x.shape[dim] - n_pre - n_p), dim=dim)

    def num_tokens(self, patch_resolution):
        """``T`` inside the blocks: prefix + prompt tokens + ``h·w``
        patches."""
        h, w = patch_resolution
        return self.num_prefix_tokens + self.num_prompt_tokens + h * w

    @staticmethod
    def join_tokens(prefix, prompts, patches):
        """Inverse of :meth:`split_tokens` (``prompts`` may be ``None``)."""
        if prompts is None:
            return torch.cat((prefix, patches), dim=1)
        return torch.cat((prefix, prompts, patches), dim=1)

    def embed_tokens(self, x):
        """Image -> ``[CLS; registers; patches]`` (+ position embedding on
        CLS and patches) and the patch grid (h, w)."""
        B = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)
        x = x + resize_pos_embed(
            self.pos_embed,
            self.patch_resolution,
            patch_resolution,
            mode=self.interpolate_mode,
            num_extra_tokens=self.num_extra_tokens,
        )
        if self.register_tokens is not None:  # after pos. embedding, none
            n_cls = self.num_extra_tokens
            x = torch.cat(
                (
                    x[:, :n_cls],
                    self.register_tokens.expand(B, -1, -1),
                    x[:, n_cls:],
                ),
                dim=1,
            )
        return self.pre_norm(self.drop_after_pos(x)), patch_resolution

    def forward(self, x):
        B = x.shape[0]
        x, patch_resolution = self.embed_tokens(x)
        method = self.prompt_method
        n_p, in_seq = method.num_prompts, method.prompts_in_attention
        n_pre = self.num_prefix_tokens
        prompts = method.first_prompts(B)  # X_P^0
        if prompts is not None and in_seq:
            x = self.join_tokens(x[:, :n_pre], prompts, x[:, n_pre:])

        outs, state, last = [], None, len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            temperature = method.temperature(i)
            if self._block_input_watch is not None:
                self._block_input_watch(i, x)
            if self._attention_record is not None:
                self._attention_record.append(
                    attention_weights(layer, x, temperature).detach()
                )
            x = self._run_block(
                i,
                layer,
                x,
                temperature,
                method.block_mlp_adapter(i),
                self._patch_update(i, layer, prompts),
            )
            if i == last and self.final_norm and self.out_type != 'avg_token':
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
            if n_p and i < last:
                # `prompts` are this block's input prompts; prompts outside
                # the self-attention leave the block as they entered it
                if in_seq:
                    prefix, out_prompts, patches = self.split_tokens(x)
                else:
                    out_prompts = prompts
                    prefix, patches = x[:, :n_pre], x[:, n_pre:]
                prompts, state = method.next_prompts(
                    i, prompts, out_prompts, patches, state
                )
                x = self.join_tokens(
                    prefix, prompts if in_seq else None, patches
                )
        return tuple(outs)

    def _patch_update(self, i, layer, prompts):
        """The method's per-token update of block ``i`` (None: none), with
        the prompt tokens of the sequence (if any) left out of it."""
        if prompts is None:
            return None
        update = self.prompt_method.patch_update(i, layer, prompts)
        n_p = self.num_prompt_tokens
        if update is None or not n_p:
            return update
        n_pre = self.num_prefix_tokens

        def update_all_but_prompts(x):
            prefix, in_prompts, patches = x.split(
                (n_pre, n_p, x.shape[1] - n_pre - n_p), dim=1
            )
            delta = update(torch.cat((prefix, patches), dim=1))
            zero = torch.zeros_like(in_prompts)
            return torch.cat((delta[:, :n_pre], zero, delta[:, n_pre:]), 1)

        return update_all_but_prompts

    def _run_block(self, i, layer, x, temperature, mlp_adapter, update=None):
        """Block ``i`` on tokens ``x``, checkpointed when ``with_cp``
        selects it and its backward is needed (autograd records and the
        tokens, ``τ_l``, the prompts of a per-token ``update`` or a tensor
        of the block, adapter or update need gradients; a linear probe's
        blocks save nothing anyway)."""
        position = self.prompt_method.update_position
        if (
            i in self._cp_blocks
            and torch.is_grad_enabled()
            and (
                x.requires_grad
                or update is not None
                or (temperature is not None and temperature.requires_grad)
                or any(p.requires_grad for p in layer.parameters())
                or (
                    mlp_adapter is not None
                    and any(p.requires_grad for p in mlp_adapter.parameters())
                )
            )
        ):
            return torch.utils.checkpoint.checkpoint(
                block_forward,
                layer,
                x,
                temperature,
                mlp_adapter,
                update,
                position,
                use_reentrant=False,
            )
        return block_forward(
            layer, x, temperature, mlp_adapter, update, position
        )

    def _format_output(self, x, hw):
        if self.out_type == 'raw':
            return x
        if self.out_type == 'cls_token':
            return x[:, 0]
        if self.out_type == 'avg_token':  # mean of prompts + patches, norm
            x = x[:, self.num_prefix_tokens :].mean(dim=1)
            return self.ln1(x) if self.final_norm else x
        patches = x[:, self.num_prefix_tokens + self.num_prompt_tokens :]
        if self.out_type == 'featmap':
            return patches.reshape(x.size(0), *hw, -1).permute(0, 3, 1, 2)
        return self.ln2(patches.mean(dim=1))  # avg_featmap

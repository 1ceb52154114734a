"""The one table of tuning methods (:data:`METHODS`) and how a
:class:`~lspt_mm.models.PromptedViT` resolves and builds its method.

Every tool reads this table: the task resolver (a config's ``method=``
setting), the FLOP model (:mod:`lspt_mm.analysis.flops`), the cost benchmark,
the methods table of the tuning protocol (row titles) and the tests. A
method is

- a component class registered in mmpretrain's ``MODELS`` (a child of
  mmengine's ``MODELS``), subclassing
  :class:`~lspt_mm.models.prompt_methods.PromptMethod`: it holds the
  method's own tensors (``prompt_method.*`` in state dicts) and says which
  pretrained ViT tensors train; and
- one :class:`MethodSpec` line below: short name, display title, what
  trains, the component and its default options, the backbone setting, and
  (LoRA) the wrapper around the backbone.

A component needs no table line to be used: ``PromptedViT(prompt=dict(
type='MyMethod', ...))`` builds any registered subclass, looked up in the
registry of the current default scope (mmpretrain, mmseg or a user's
package, each searching mmengine's root too) and then in mmpretrain's. The
recipe for adding one: ``docs/DEVELOPING.md``.
"""

import copy
import warnings
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, Optional

from mmpretrain.registry import MODELS

from . import baselines, dense_prompts, lora, prompt_methods  # noqa: F401
from .prompt_methods import PromptMethod, tensor_pattern


@dataclass(frozen=True)
class MethodSpec:
    """One row of the method table.

    Attributes:
        name (str): short name: ``prompt_method=`` value, result tables,
            config file names (written with ``-`` there).
        title (str): display title in reports and tables.
        trains (str): what trains besides the task head (method.md
            symbols).
        component (str): registry type of the method component.
        options (dict): the component's default options (``prompt_cfg`` /
            ``prompt=dict(...)`` keys override them).
        freeze_backbone (bool): False: every ViT parameter trains.
        uses_prompts (bool): whether ``num_prompts`` applies (read from the
            component class).
        wrapper (dict, optional): a module config wrapping the backbone
            (``type``, options); the backbone becomes its ``module``.
        cost (callable, optional): FLOP-model terms when the component's
            ``cost_terms`` does not describe the method (wrappers).
        compose (tuple): names of methods without prompts (rows of this
            table, :func:`add_on_table`) composed with the component in one
            backbone (``PromptedViT(compose=...)``).
        add_on (str, optional): for a wrapper row, the component that does
            the same inside the backbone when the method is composed.
        source (str): the paper / code the method follows.
    """

    name: str
    title: str
    trains: str
    component: str
    options: Mapping = field(default_factory=dict)
    freeze_backbone: bool = True
    wrapper: Optional[Mapping] = None
    cost: Optional[Callable] = None
    compose: tuple = ()
    add_on: Optional[str] = None
    source: str = ''

    @property
    def component_class(self):
        return method_class(self.component)

    @property
    def uses_prompts(self):
        return bool(self.component_class.num_prompt_sets)

    def prompts_in_attention(self, **overrides):
        """Whether the prompts are tokens of the self-attention (False:
        read only by the method's per-token update, e.g. CVPT)."""
        options = {**self.options, **overrides}
        return bool(
            options.get(
                'prompts_in_attention',
                self.component_class.prompts_in_attention,
            )
        )

    def backbone_options(self, num_prompts=None):
        """PromptedViT arguments selecting this method (for the module
        inside the wrapper, if any): its name (which also says whether the
        ViT trains) and ``num_prompts``."""
        opts = dict(prompt_method='linear' if self.wrapper else self.name)
        if self.uses_prompts and num_prompts is not None:
            opts['num_prompts'] = num_prompts
        return opts

    def apply(self, backbone, num_prompts=None, scope='mmpretrain'):
        """The backbone config of this method built on ``backbone`` (a
        PromptedViT config dict): its method settings replaced, and wrapped
        (LoRA: ``LoRAModel`` with ``module=backbone``). ``scope``:
        ``'mmseg'`` prefixes the wrapper type with ``mmpretrain.``."""
        cfg = copy.deepcopy(dict(backbone))
        for key in ('prompt', 'prompt_cfg', 'freeze_backbone'):
            cfg.pop(key, None)
        cfg.update(self.backbone_options(num_prompts))
        if not self.uses_prompts:
            cfg.pop('num_prompts', None)
            cfg.pop('prompt_dropout', None)
        if not self.wrapper:
            return cfg
        # the wrapper saves only its own tensors: say so in the metadata
        cfg['save_trainable_only'] = True
        wrapper = copy.deepcopy(dict(self.wrapper))
        if scope != 'mmpretrain' and '.' not in wrapper['type']:
            wrapper['type'] = 'mmpretrain.' + wrapper['type']
        return dict(wrapper, module=cfg)

    def saves(self, names, num_sets):
        """Whether this method's component saves tensors named ``names``
        (:func:`~lspt_mm.models.prompt_methods.tensor_pattern` patterns)
        with ``num_sets`` prompt sets (``prompts.shape[0]``, 0 without
        prompts)."""
        own, sets = self.component_class.state_signature(**self.options)
        for name, part in add_on_specs(self.compose).items():
            part_own, _ = part.component_class.state_signature(**part.options)
            own = own | {f'composed.{name}.{k}' for k in part_own}
        if own != names:
            return False
        if sets == 'per_block':
            return num_sets > 1
        return num_sets == (sets or 0)

    def cost_terms(self, shape, **overrides):
        """FLOP-model terms (``PromptMethod.cost_terms``) for
        :class:`lspt_mm.analysis.flops.ViTShape` ``shape``."""
        options = {**self.options, **(self.wrapper or {}), **overrides}
        options.pop('type', None)
        if self.cost is not None:
            return self.cost(shape, **options)
        terms = self.component_class.cost_terms(shape, **options)
        # the add-ons' first block passes gradients when prompts enter it
        prompted = self.prompts_in_attention(**overrides)
        return compose_cost_terms(
            terms,
            [
                p.cost_terms(shape, first_block_grad=prompted)
                for p in add_on_specs(self.compose).values()
            ],
        )


def compose_cost_terms(terms, add_on_terms):
    """FLOP-model terms of a composite: the methods' own products add up;
    the ViT blocks' backward is the widest of the parts' (a prompt method
    already passes gradients through every block; bias and LoRA add their
    weight gradients as method terms or sums)."""
    terms = dict(terms)
    for extra in add_on_terms:
        terms['method_fwd'] += extra['method_fwd']
        terms['method_bwd'] += extra['method_bwd']
        terms['blocks_bwd'] = max(terms['blocks_bwd'], extra['blocks_bwd'])
    return terms


def add_on_specs(names):
    """Table rows of the composed methods ``names`` (name -> MethodSpec);
    each must be a method without prompts and without a wrapper."""
    specs = {}
    for name in names:
        spec = add_on_table().get(str(name).replace('-', '_'))
        if spec is None:
            raise ValueError(
                f'compose: {name!r} is no method without prompts of the '
                f'table; compose with {list(add_on_table())} or give a component '
                "config, e.g. dict(type='MLPAdapter', reduction=16)"
            )
        specs[spec.name] = spec
    return specs


_VPT = 'VPT (Jia et al. 2022), github.com/KMnP/vpt'
_LORA = {k: v for k, v in lora.DEFAULT_LORA.items()}

# the order of the paper's tables: baselines, prompt methods, LSPT and its
# ablations last
METHODS = {
    spec.name: spec
    for spec in (
        MethodSpec(
            'linear',
            'Linear probe',
            'nothing of the ViT',
            'NoPrompt',
            source=_VPT,
        ),
        MethodSpec(
            'full',
            'Full fine-tuning',
            'every ViT parameter',
            'NoPrompt',
            freeze_backbone=False,
            source=_VPT,
        ),
        MethodSpec(
            'partial',
            'Partial-1',
            'the last k blocks (k=1) and the final norm',
            'PartialTuning',
            options=dict(k=1),
            source=_VPT + ': partial-k',
        ),
        MethodSpec(
            'bias',
            'Bias',
            'every bias of the ViT',
            'BiasTuning',
            source=_VPT + ': tinytl-bias (BitFit)',
        ),
        MethodSpec(
            'adapter',
            'Adapter',
            "a bottleneck MLP D -> D/8 -> D after every block's MLP",
            'MLPAdapter',
            options=dict(reduction=8),
            source=_VPT + ': Pfeiffer adapter, reduction 8',
        ),
        MethodSpec(
            'lora',
            'LoRA',
            'rank-16 updates A, B of every qkv projection',
            'NoPrompt',
            wrapper=_LORA,
            cost=lora.cost_terms,
            add_on='LoRATuning',
            source="mmpretrain's LoRAModel (Hu et al. 2022), its ViT "
            'recipe: alpha 16, rank 16, dropout 0.1, qkv',
        ),
        MethodSpec(
            'vpt_shallow',
            'VPT-shallow',
            'prompts P^0',
            'VPTShallow',
            source=_VPT,
        ),
        MethodSpec(
            'vpt_deep',
            'VPT-deep',
            'prompts P^0..P^{L-1}',
            'VPTDeep',
            source=_VPT,
        ),
        MethodSpec(
            'gapt',
            'GaPT',
            'prompts P^0, gates g_l, temperatures tau_l',
            'GaPT',
            source='GaPT (Yoo et al. 2023)',
        ),
        MethodSpec(
            'lspt',
            'LSPT',
            'prompts P^0..P^{L-1}, the shared LSTM cell',
            'LSPT',
            source='LSPT (method.md)',
        ),
        MethodSpec(
            'lspt_lpc_only',
            'LSPT, LPC only',
            'as LSPT (no GSPC)',
            'LSPTLPCOnly',
            source='LSPT ablation',
        ),
        MethodSpec(
            'lspt_gspc_only',
            'LSPT, GSPC only',
            'prompts P^0 (no LSTM)',
            'LSPTGSPCOnly',
            source='LSPT ablation',
        ),
        MethodSpec(
            'cvpt',
            'CVPT',
            'prompts P^0..P^{L-1}, read through the frozen cross-attention',
            'CVPT',
            source='CVPT (Huang et al., ICCV 2025), github.com/Lingyun0419/'
            'CVPT: CvptBlock insert=3, cross-attention from the block',
        ),
        MethodSpec(
            'lspt_ca',
            'LSPT-CA',
            'as LSPT, read through the frozen cross-attention, scales s_l',
            'LSPTCrossAttention',
            source="this project's extension (docs/lspt_ca.md): LSPT's "
            "prompts through CVPT's cross-attention",
        ),
        MethodSpec(
            'lspt_bias',
            'LSPT + bias',
            'as LSPT, and every bias of the ViT',
            'LSPT',
            compose=('bias',),
            source='DA-VPT+ (CVPR 2025) recipe, prompts + bias tuning, '
            'on LSPT',
        ),
        MethodSpec(
            'lspt_lora',
            'LSPT + LoRA',
            'as LSPT, and rank-16 LoRA updates of every qkv',
            'LSPT',
            compose=('lora',),
            source='LSPT composed with LoRA (mmpretrain LoRALinear, its '
            'ViT recipe)',
        ),
        # a new method's MethodSpec line goes here (docs/DEVELOPING.md)
    )
}


def get_method(name):
    """The :class:`MethodSpec` of ``name`` (``-`` or ``_`` spelling)."""
    key = str(name).replace('-', '_')
    if key not in METHODS:
        raise KeyError(
            f'unknown method {name!r}; the method table '
            f'(lspt_mm/models/methods.py) has {list(METHODS)}'
        )
    return METHODS[key]


def method_class(type_name):
    """The component class registered as ``type_name``: looked up in the
    registry of the current default scope (and its parents, mmengine's root
    included), then in mmpretrain's ``MODELS``. Scoped names
    (``'my_pkg.MyMethod'``) work as in any mmengine config."""
    if isinstance(type_name, type):
        cls = type_name
    else:
        with MODELS.switch_scope_and_registry(None) as registry:
            cls = registry.get(type_name)
        if cls is None:
            cls = MODELS.get(type_name)
        if cls is None:
            raise KeyError(
                f'prompt type {type_name!r} is not registered in the '
                "default scope's MODELS nor in mmpretrain's; register the "
                'class (@MODELS.register_module()) and import its module '
                '(custom_imports), or pick a method of the table: '
                f'{list(METHODS)}'
            )
    if not (isinstance(cls, type) and issubclass(cls, PromptMethod)):
        raise TypeError(
            f'prompt type {type_name!r} is {cls!r}, not a '
            'subclass of lspt_mm.models.prompt_methods.'
            'PromptMethod'
        )
    return cls


def _write_instead(prompt, prompt_method, prompt_cfg, freeze_backbone):
    """The old spellings of a method choice in the one documented way,
    ``prompt_method=`` + ``prompt_cfg=``: ``(prompt_method, prompt_cfg,
    freeze_backbone, advice)``, ``advice`` saying what to write (None when
    the arguments were written that way)."""
    if prompt is not None:
        if prompt_method is not None or prompt_cfg:
            raise ValueError(
                'PromptedViT: give the method either as prompt_method= / '
                'prompt_cfg= or as the deprecated prompt=dict(type=...), '
                'not both'
            )
        if not isinstance(prompt, Mapping) or 'type' not in prompt:
            raise ValueError(
                f'PromptedViT: prompt must be a dict with a '
                f"'type' key, got {prompt!r}"
            )
        options = {k: v for k, v in prompt.items() if k != 'type'}
        kind = prompt['type']
        name = kind if isinstance(kind, str) else kind.__name__
        advice = f'prompt_method={name!r}' + (
            f', prompt_cfg={options!r}' if options else ''
        )
        return kind, options, freeze_backbone, advice
    if prompt_method == 'none':
        name = 'full' if freeze_backbone is False else 'linear'
        return name, prompt_cfg, None, f'prompt_method={name!r}'
    return prompt_method, prompt_cfg, freeze_backbone, None


def resolve(
    prompt_method=None,
    prompt_cfg=None,
    freeze_backbone=None,
    prompt=None,
    warn=True,
    compose=None,
):
    """What a PromptedViT's method arguments select.

    The one way to choose a method: ``prompt_method``, a name of the table
    (:data:`METHODS`, which also says whether the ViT trains) or a
    registered :class:`PromptMethod` type, and ``prompt_cfg``, the
    component's options. ``freeze_backbone`` only matters for a registered
    type that is no row of the table (``False``: prompts on a trained ViT);
    for a table name it must agree with the table. The old spellings
    (``prompt=dict(type=...)``, ``prompt_method='none'``, a
    ``freeze_backbone`` the table implies) still work, with a
    ``FutureWarning`` (``warn``) saying what to write.

    ``compose`` (or ``prompt_cfg['compose']``): methods without prompts
    combined with it (:meth:`PromptMethod.compose`); the name becomes the
    table row of that composite if there is one (``lspt`` + ``['bias']``
    is ``lspt_bias``), else ``'<method>+<add-on>+...'``.

    Returns:
        tuple: ``(name, component config, freeze_backbone)``; the config's
        ``compose`` lists the composed methods.
    """
    name, extra, freeze, advice = _write_instead(
        prompt, prompt_method, prompt_cfg, freeze_backbone
    )
    name = 'lspt' if name is None else name
    extra = dict(extra or {})
    key = str(name).replace('-', '_') if isinstance(name, str) else None
    spec = METHODS.get(key)
    if spec is not None:
        if spec.wrapper:
            raise ValueError(
                f'prompt_method={name!r} wraps the backbone in '
                f"{spec.wrapper['type']}: set the config's backbone to "
                f'lspt_mm.models.methods.METHODS[{key!r}].apply(<backbone>) '
                '(see configs/segmentation/lora-*.py), whose module has '
                "prompt_method='linear'"
            )
        if freeze is not None:
            if bool(freeze) != spec.freeze_backbone:
                raise ValueError(
                    f'prompt_method={name!r} means freeze_backbone='
                    f'{spec.freeze_backbone}, the config says '
                    f'freeze_backbone={freeze}; drop freeze_backbone (the '
                    'method table sets it; prompts on a trained ViT: a '
                    "registered type, e.g. prompt_method='VPTDeep', with "
                    'freeze_backbone=False)'
                )
            advice = advice or f'prompt_method={name!r}'
            advice += ' without freeze_backbone (the method table sets it)'
        result = (
            spec.name,
            dict(
                type=spec.component,
                **{**spec.options, **extra},
                **({'compose': list(spec.compose)} if spec.compose else {}),
            ),
            spec.freeze_backbone,
        )
    else:
        try:
            cls = method_class(name)
        except KeyError:
            if prompt is not None:
                raise
            raise ValueError(
                f'prompt_method={name!r} is unknown; choose one of '
                f'{list(METHODS)} (lspt_mm/models/methods.py) or a '
                'registered prompt type'
            ) from None
        frozen = True if freeze is None else bool(freeze)
        # the table's name when the component is one of its rows
        rows = [
            s
            for s in METHODS.values()
            if s.component_class is cls
            and not s.wrapper
            and s.freeze_backbone == frozen
        ]
        table_name = rows[0].name if rows else None
        result = (
            table_name or (name if isinstance(name, str) else cls.__name__),
            dict(type=name, **extra),
            frozen,
        )
        if table_name and (freeze is not None or advice):
            advice = f'prompt_method={table_name!r}' + (
                f', prompt_cfg={extra!r}' if extra else ''
            )
    if advice and warn:
        warnings.warn(
            f'PromptedViT: this way of choosing the method is deprecated; '
            f'write {advice} (docs/backbone.md)',
            FutureWarning,
            stacklevel=3,
        )
    return _with_compose(result, spec, compose)


def _with_compose(result, spec, compose):
    """``result`` of :func:`resolve` with the composed methods (the
    table's and ``compose``) in the component config, named as the table
    row of that composite, else ``'<method>+<add-on>+...'``."""
    name, cfg, freeze = result
    parts = list(cfg.pop('compose', None) or []) + list(compose or [])
    if not parts:
        return result
    if not freeze:
        raise ValueError(
            f'compose={parts!r}: composing needs a frozen ViT; '
            f'prompt_method={name!r} trains the whole ViT'
        )
    keys = tuple(
        dict.fromkeys(
            str(p).replace('-', '_') for p in parts if isinstance(p, str)
        )
    )
    configs = [p for p in parts if not isinstance(p, str)]
    base = name
    if spec is not None:
        same = [
            s
            for s in METHODS.values()
            if s.component == spec.component
            and s.options == spec.options
            and not s.wrapper
        ]
        rows = [s.name for s in same if s.compose == keys]
        if rows and not configs:
            return rows[0], dict(cfg, compose=list(keys)), freeze
        base = next((s.name for s in same if not s.compose), name)
    label = '+'.join(
        [base, *keys, *(str(c.get('type')).split('.')[-1] for c in configs)]
    )
    return label, dict(cfg, compose=[*keys, *configs]), freeze


def build_method(cfg, name, **backbone_args):
    """Build the component of ``cfg`` (``type`` + options) with the
    backbone's ``num_prompts``, ``prompt_dropout``, ``embed_dims``,
    ``num_layers`` and ``patch_size`` (``cfg`` overrides the first two);
    its ``method_name`` becomes ``name``."""
    cfg = dict(cfg)
    compose = cfg.pop('compose', None) or []
    cls = method_class(cfg.pop('type'))
    kwargs = {**backbone_args, **cfg}
    try:
        method = cls(**kwargs)
    except TypeError as err:
        raise TypeError(
            f'{cls.__name__} options {sorted(cfg)}: {err}'
        ) from err
    add_ons = {}
    for part in compose:
        if isinstance(part, str):
            key, spec = next(iter(add_on_specs([part]).items()))
            part_cfg = dict(type=spec.component, **spec.options)
        else:
            part_cfg = dict(part)
            key = str(part_cfg['type']).split('.')[-1].lower()
        add_ons[key] = build_method(part_cfg, key, **backbone_args)
    method.compose(add_ons)
    method.method_name = name
    return method


def method_of_backbone(backbone):
    """The method-table name a backbone config trains: its wrapper's (e.g.
    LoRA's ``LoRAModel``), or what its ``prompt`` / ``prompt_method``
    resolve to (``KeyError`` / ``ValueError`` when none)."""
    kind = str(backbone.get('type', '')).split('.')[-1]
    for spec in METHODS.values():
        if spec.wrapper and kind == spec.wrapper['type'].split('.')[-1]:
            return spec.name
    name, _, _ = resolve(
        prompt_method=backbone.get('prompt_method'),
        prompt_cfg=backbone.get('prompt_cfg'),
        freeze_backbone=backbone.get('freeze_backbone'),
        prompt=backbone.get('prompt'),
        warn=False,  # the build warns
    )
    return name


def methods_saving(own):
    """The table's methods whose component saves exactly the tensors
    ``own`` (a ``prompt_method.*`` state dict, prefix removed): the
    checkpoint policy's guess for checkpoints that recorded no setup. More
    than one when methods differ only in forward (e.g. VPT-shallow and
    LSPT's GSPC-only ablation; linear probe, full, partial and bias)."""
    names = frozenset(tensor_pattern(k) for k in own)
    prompts = own.get('prompts')
    num_sets = 0 if prompts is None else int(prompts.shape[0])
    return [
        spec.name
        for spec in METHODS.values()
        if not spec.wrapper and spec.saves(names, num_sets)
    ]


# the methods a prompt method can be composed with: the rows without
# prompts on a frozen ViT; a wrapper row (LoRA) is composed as the component
# its ``add_on`` names, with the wrapper's options. Read when asked (not at
# import: a component module registers after this table is built)
def add_on_table():
    """name -> MethodSpec of every method ``compose`` takes."""
    return {
        spec.name: (
            replace(
                spec,
                component=spec.add_on,
                options={k: v for k, v in spec.wrapper.items() if k != 'type'},
                wrapper=None,
                cost=None,
            )
            if spec.wrapper
            else spec
        )
        for spec in METHODS.values()
        if (spec.add_on or not spec.wrapper)
        and not spec.compose
        and spec.freeze_backbone
        and not spec.uses_prompts
    }

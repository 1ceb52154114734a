"""Tables and targets of cost records (:func:`lspt_mm.analysis.cost.run_job`).

- :func:`add_ratios`: each figure as a ratio to VPT-deep (same task, size,
  batch and prompt count) and to full fine-tuning (same task, size, batch);
- :func:`main_table`, :func:`breakdown_table`, :func:`sweep_table`:
  markdown tables;
- :func:`variant_table`: jobs measured with and without ``with_cp`` /
  ``compile`` side by side (records with a ``variant``), with the compile
  time and after how many steps it pays off;
- :func:`evaluate_targets`: the cost targets as ``(target, passed, detail)``
  (PASS/FAIL lines of :func:`report`).

Records from older runs (``frozen_in_optimizer`` instead of
``frozen_with_state`` / ``frozen_in_param_groups``) render too.
"""

from .cost import method_names

# The methods every figure is compared with, and the one the targets are
# about (names of the method table; the only place this module names
# methods): full fine-tuning (the costliest), VPT-deep (the prompt baseline)
# and LSPT. Record keys follow them (``ratio_to_full``, ``ratio_to_vpt_deep``).
FULL = 'full'
PROMPT_BASELINE = 'vpt_deep'
OURS = 'lspt'

RATIO_KEYS = (
    'trainable_params',
    'gflops',
    'train_gflops',
    'analytic_train_gflops',
    'train_step_ms',
    'infer_ms',
    'peak_mem_mb',
)


def _order(method):
    names = method_names()
    return names.index(method) if method in names else len(names)


def label(r):
    """Method name, plus the variant (``lspt +with_cp``) if any."""
    return r['method'] + (f' +{r["variant"]}' if r.get('variant') else '')


def groups(records):
    """Comparison groups: same task, image size and batch, one prompt count;
    the prompt-free methods (linear, full) join every group of their
    setting. Variants (records with a ``variant``) are left out. Yields
    ``(task, size, batch, num_prompts, rows)``."""
    records = [r for r in records if not r.get('variant')]
    settings = sorted(
        {(r['task'], r['img_size'], r['batch']) for r in records}
    )
    for task, size, batch in settings:
        rows = [
            r
            for r in records
            if (r['task'], r['img_size'], r['batch']) == (task, size, batch)
        ]
        shared = [r for r in rows if not r['num_prompts']]
        counts = sorted({r['num_prompts'] for r in rows if r['num_prompts']})
        for n_p in counts or [0]:
            group = shared + [r for r in rows if r['num_prompts'] == n_p]
            group.sort(key=lambda r: _order(r['method']))
            yield task, size, batch, n_p, group


def _ratios(r, ref):
    if ref is None:
        return None
    return {k: (r[k] / ref[k] if ref.get(k) else None) for k in RATIO_KEYS}


def add_ratios(records):
    """Each figure as a ratio to VPT-deep (same task, size, batch and prompt
    count) and to full fine-tuning (same task, size, batch). Prompt-free
    methods get one VPT-deep ratio per prompt count:
    ``ratio_to_vpt_deep_by_num_prompts``."""
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        for r in rows:
            r[f'ratio_to_{FULL}'] = _ratios(r, by.get(FULL))
            vpt = _ratios(r, by.get(PROMPT_BASELINE))
            if r['num_prompts']:
                r[f'ratio_to_{PROMPT_BASELINE}'] = vpt
            else:
                r.setdefault(f'ratio_to_{PROMPT_BASELINE}_by_num_prompts', {})[
                    str(n_p)
                ] = vpt
    return records


def _ratio(r, key, ref_row):
    if ref_row is None or not ref_row.get(key):
        return '-'
    return f'{r[key] / ref_row[key]:.2f}'


def _mb(x):
    return '-' if x is None else f'{x:.0f}'


def frozen_with_state(r):
    """Frozen tensors with optimiser state (older records: in the
    optimiser at all)."""
    return r.get('frozen_with_state', r.get('frozen_in_optimizer', 0))


def frozen_in_groups(r):
    return r.get('frozen_in_param_groups', r.get('frozen_in_optimizer', 0))


def main_table(records):
    head = (
        '| task | size | batch | N_p | method | trainable params | total '
        'params | GFLOPs fwd | GFLOPs fwd+bwd counted / analytic | '
        '×VPT-deep (analytic) | train step ms | ×VPT-deep | ×full | '
        'infer ms | ×VPT-deep | ×full | peak train MB | ×full |'
    )
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full = by.get(PROMPT_BASELINE), by.get(FULL)
        for r in rows:
            lines.append(
                f'| {task} | {size} | {batch} | {n_p or "-"} | '
                f'{r["method"]} | {r["trainable_params"]:,} | '
                f'{r["total_params"]:,} | {r["gflops"]:.2f} | '
                f'{r["train_gflops"]:.1f} / {r["analytic_train_gflops"]:.1f} '
                f'| {_ratio(r, "analytic_train_gflops", vpt)} | '
                f'{r["train_step_ms"]:.0f} | '
                f'{_ratio(r, "train_step_ms", vpt)} | '
                f'{_ratio(r, "train_step_ms", full)} | '
                f'{r["infer_ms"]:.0f} | {_ratio(r, "infer_ms", vpt)} | '
                f'{_ratio(r, "infer_ms", full)} | '
                f'{r["peak_mem_mb"]:.0f} | '
                f'{_ratio(r, "peak_mem_mb", full)} |'
            )
    return '\n'.join(lines)


def _full_of(records, r):
    """The plain full fine-tuning record of ``r``'s task, size and batch."""
    return next(
        (
            f
            for f in records
            if f['method'] == FULL
            and not f.get('variant')
            and (f['task'], f['img_size'], f['batch'])
            == (r['task'], r['img_size'], r['batch'])
        ),
        None,
    )


def grad_optim_mb(r, prefix=''):
    """Gradient + optimiser-state MiB (``prefix='backbone_'``: of the
    backbone's tensors; None for records without that split)."""
    if r.get(prefix + 'grad_mb') is None:
        return None
    return r[prefix + 'grad_mb'] + r[prefix + 'optim_state_mb']


def _share(x, ref):
    return '-' if x is None or not ref else f'{x / ref:.1%}'


def breakdown_table(records):
    head = (
        '| task | size | batch | N_p | method | optimiser | params MB | '
        'grads MB | optimiser MB | grads + optimiser: of full (backbone '
        'alone: of full) | saved activations MB (backbone) | peak train '
        'MB (tensors) | frozen params with grad / with optimiser state / '
        'in param groups | load avg |'
    )
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(
        records,
        key=lambda r: (
            r['task'],
            r['img_size'],
            r['batch'],
            r['num_prompts'],
            _order(r['method']),
            r.get('variant') or '',
        ),
    ):
        full, bb = _full_of(records, r) or {}, 'backbone_'
        lines.append(
            f'| {r["task"]} | {r["img_size"]} | {r["batch"]} | '
            f'{r["num_prompts"] or "-"} | {label(r)} | '
            f'{r.get("optimizer", "-")} | '
            f'{r["param_mb"]:.0f} | {r["grad_mb"]:.0f} | '
            f'{r["optim_state_mb"]:.0f} | '
            f'{_share(grad_optim_mb(r), grad_optim_mb(full))} '
            f'({_share(grad_optim_mb(r, bb), grad_optim_mb(full, bb))}) | '
            f'{r["activation_mb"]:.0f} '
            f'({_mb(r.get("backbone_activation_mb"))}) | '
            f'{r["peak_mem_mb"]:.0f} ({_mb(r.get("alloc_peak_mb"))}) | '
            f'{r["frozen_with_grad"]} / {frozen_with_state(r)} / '
            f'{frozen_in_groups(r)} | {r["load_avg_1min"]:.1f} |'
        )
    seg = [r for r in records if 'head_train_step_ms' in r]
    if seg:
        lines += [
            '',
            '| seg size | batch | N_p | method | neck+heads train '
            'step ms | share of step | share of train FLOPs |',
            '|---|---|---|---|---|---|---|',
        ]
        for r in seg:
            lines.append(
                f'| {r["img_size"]} | {r["batch"]} | '
                f'{r["num_prompts"] or "-"} | {label(r)} | '
                f'{r["head_train_step_ms"]:.0f} | '
                f'{r["head_share_of_step"]:.0%} | '
                f'{r["head_share_of_train_flops"]:.0%} |'
            )
    return '\n'.join(lines)


def sweep_table(records, method):
    rs = [r for r in records if r['method'] == method and r['task'] == 'cls']
    if len(rs) < 2:
        return ''
    head = (
        '| size | batch | N_p | tokens | GFLOPs fwd | of which LSTM '
        '(analytic) | GFLOPs fwd+bwd | train step ms | infer ms | peak '
        'train MB |'
    )
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(
        rs, key=lambda r: (r['img_size'], r['batch'], r['num_prompts'])
    ):
        lines.append(
            f'| {r["img_size"]} | {r["batch"]} | {r["num_prompts"]} | '
            f'{r["tokens"]} | {r["gflops"]:.2f} | '
            f'{r["analytic_lstm_gflops"]:.2f} | {r["train_gflops"]:.1f} | '
            f'{r["train_step_ms"]:.0f} | {r["infer_ms"]:.0f} | '
            f'{r["peak_mem_mb"]:.0f} |'
        )
    return '\n'.join(lines)


def variant_pairs(records):
    """``(plain, variant)`` record pairs: same job and run (records merged
    from several ``--out`` files pair within their file), one with a
    ``variant``."""

    def key(r):
        return (
            r['method'],
            r['task'],
            r['img_size'],
            r['num_prompts'],
            r['batch'],
            r.get('run'),
        )

    plain = {key(r): r for r in records if not r.get('variant')}
    for r in records:
        if r.get('variant'):
            base = plain.get(key(r))
            if base is not None:
                yield base, r


def payoff_steps(base, r):
    """Train steps after which the compile time is won back (None: no
    compile; inf: the compiled step is not faster)."""
    if r.get('compile_train_s') is None:
        return None
    gain = base['train_step_ms'] - r['train_step_ms']
    if gain <= 0:
        return float('inf')
    return max(r['compile_train_s'], 0.0) * 1e3 / gain


def variant_table(records):
    """Each variant against its plain job: times, the backbone's saved
    activations, peak tensor memory, compile time and pay-off."""
    head = (
        '| task | size | batch | N_p | method | variant | train step '
        'ms | ×plain | infer ms | ×plain | backbone saved activations '
        'MB | ×plain | peak train MB (tensors) | ×plain | compile s '
        'train / infer | pays off after steps | compiled - eager '
        'output (max abs / max) |'
    )
    lines = [head, '|' + '---|' * (head.count('|') - 1)]

    def ratio(key, base, r):
        if r.get(key) is None or not base.get(key):
            return '-'
        return f'{r[key] / base[key]:.2f}'

    for base, r in variant_pairs(records):
        steps = payoff_steps(base, r)
        comp = (
            '-'
            if r.get('compile_train_s') is None
            else f'{r["compile_train_s"]:.0f} / {r["compile_infer_s"]:.0f}'
        )
        diff = (
            '-'
            if r.get('compile_max_abs_diff') is None
            else f'{r["compile_max_abs_diff"]:.1e} / '
            f'{r["compile_max_abs_out"]:.1e}'
        )
        lines.append(
            f'| {r["task"]} | {r["img_size"]} | {r["batch"]} | '
            f'{r["num_prompts"] or "-"} | {r["method"]} | {r["variant"]} | '
            f'{base["train_step_ms"]:.0f} → {r["train_step_ms"]:.0f} | '
            f'{ratio("train_step_ms", base, r)} | '
            f'{base["infer_ms"]:.0f} → {r["infer_ms"]:.0f} | '
            f'{ratio("infer_ms", base, r)} | '
            f'{_mb(base.get("backbone_activation_mb"))} → '
            f'{_mb(r.get("backbone_activation_mb"))} | '
            f'{ratio("backbone_activation_mb", base, r)} | '
            f'{_mb(base.get("alloc_peak_mb"))} → '
            f'{_mb(r.get("alloc_peak_mb"))} | '
            f'{ratio("alloc_peak_mb", base, r)} | {comp} | '
            f'{"-" if steps is None else f"{steps:.0f}"} | {diff} |'
        )
    return '\n'.join(lines)


def op_share_table(records):
    """Where each job's train step spends its operator time
    (:func:`lspt_mm.analysis.cost.op_time_shares`)."""
    rs = [r for r in records if r.get('op_time_shares')]
    if not rs:
        return ''
    lines = [
        '| task | size | batch | N_p | method | profiled step ms | '
        'matrix products | attention | convolutions | other '
        '(element-wise, norms, copies, optimiser) |',
        '|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in rs:
        s = r['op_time_shares']
        lines.append(
            f'| {r["task"]} | {r["img_size"]} | {r["batch"]} | '
            f'{r["num_prompts"] or "-"} | {label(r)} | {s["total_ms"]:.0f} | '
            f'{s["matmul"]:.0%} | {s["attention"]:.0%} | '
            f'{s["convolution"]:.0%} | {s["other"]:.0%} |'
        )
    return '\n'.join(lines)


def peak_mb(r):
    """Peak tensor memory of a train step (CUDA max allocated, CPU the
    profiler's), else the process peak."""
    return r.get('alloc_peak_mb') or r['peak_mem_mb']


def evaluate_lean_targets(records):
    """The targets of lean training steps (activation checkpointing,
    compile, memory), decided on the records that have them."""
    out = []
    for base, r in variant_pairs(records):
        tag = (
            f'{r["task"]} {r["img_size"]}px batch {r["batch"]} '
            f'N_p={r["num_prompts"]}: {r["method"]} +{r["variant"]}'
        )
        if (
            r.get('with_cp')
            and not base.get('with_cp')
            and r['method'] == OURS
            and r['task'] == 'seg'
            and base.get('backbone_activation_mb')
        ):
            act = r['backbone_activation_mb'] / base['backbone_activation_mb']
            t = r['train_step_ms'] / base['train_step_ms']
            out.append(
                (
                    f'{tag}: backbone saved activations <= 0.25 x plain',
                    act <= 0.25,
                    f'{act:.3f}',
                )
            )
            out.append(
                (f'{tag}: train step <= 1.4 x plain', t <= 1.4, f'{t:.3f}')
            )
        if r.get('compile') is not None and base.get('compile') is None:
            t = r['train_step_ms'] / base['train_step_ms']
            steps = payoff_steps(base, r)
            cold = ' (cold cache)' if r.get('compile_cache') == 'cold' else ''
            other = (base.get('op_time_shares') or {}).get('other')
            fusable = (
                ''
                if other is None
                else f'; ops compile can fuse: {other:.0%} of the eager step'
            )
            out.append(
                (
                    f'{tag}: compiled train step <= 0.85 x eager',
                    t <= 0.85,
                    f'{t:.3f} (inference '
                    f'{r["infer_ms"] / base["infer_ms"]:.3f}; compile '
                    f'{r["compile_train_s"]:.0f} s{cold}, pays off '
                    f'after {steps:.0f} steps{fusable})',
                )
            )
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        full = by.get(FULL)
        if (
            task != 'seg'
            or full is None
            or grad_optim_mb(full, 'backbone_') is None
        ):
            continue
        tag = f'{task} {size}px batch {batch} N_p={n_p}'
        for prefix, what in (
            ('backbone_', "the backbone's"),
            ('', 'all (neck and heads included)'),
        ):
            ref = grad_optim_mb(full, prefix)
            shares = {
                r['method']: grad_optim_mb(r, prefix) / ref
                for r in rows
                if r['method'] != FULL
            }
            bad = {m: v for m, v in shares.items() if v >= 0.05}
            out.append(
                (
                    f'{tag}: gradient + optimiser bytes ({what} '
                    'tensors) of every frozen-backbone method < 5% of '
                    "full fine-tuning's",
                    not bad,
                    ', '.join(f'{m} {v:.1%}' for m, v in shares.items()),
                )
            )
        cp = [
            r
            for b, r in variant_pairs(records)
            if r['method'] == OURS
            and r.get('with_cp')
            and (r['task'], r['img_size'], r['batch'], r['num_prompts'])
            == (task, size, batch, n_p)
        ]
        for r in cp:
            ratio = peak_mb(r) / peak_mb(full)
            out.append(
                (
                    f'{tag}: LSPT +{r["variant"]} train-step peak < 0.5 '
                    "x full fine-tuning's",
                    ratio < 0.5,
                    f'{peak_mb(r):.0f} / {peak_mb(full):.0f} MB = {ratio:.3f}',
                )
            )
    return out


def accounted_mb(r):
    return (
        r['param_mb'] + r['grad_mb'] + r['optim_state_mb'] + r['activation_mb']
    )


def evaluate_targets(records):
    """The cost targets the records can decide: a list of
    ``(target, passed, detail)``."""
    out = []
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full, lspt = by.get(PROMPT_BASELINE), by.get(FULL), by.get(OURS)
        tag = f'{task} {size}px batch {batch} N_p={n_p}'
        # 1. no wasted work
        if vpt:
            for r in rows:
                if r is vpt:
                    continue
                t = r['train_step_ms'] / vpt['train_step_ms']
                f = r['analytic_train_gflops'] / vpt['analytic_train_gflops']
                out.append(
                    (
                        f'{tag}: {r["method"]} train time / VPT-deep <= '
                        '1.05 x FLOP ratio',
                        t <= 1.05 * f,
                        f'time ratio {t:.3f}, FLOP ratio {f:.3f} '
                        f'(limit {1.05 * f:.3f})',
                    )
                )
        # 2. segmentation
        if task == 'seg' and n_p == 100 and lspt and vpt:
            ratio = lspt['train_step_ms'] / vpt['train_step_ms']
            out.append(
                (
                    f'{tag}: LSPT train step <= 1.05 x VPT-deep',
                    ratio <= 1.05,
                    f'ratio {ratio:.3f}',
                )
            )
        if task == 'seg' and lspt and full:
            out.append(_seg_memory_target(tag, lspt, full))
        # 3. classification
        if task == 'cls' and size == 224 and n_p == 100 and lspt and vpt:
            ratio = lspt['infer_ms'] / vpt['infer_ms']
            out.append(
                (
                    f'{tag}: LSPT inference <= 1.12 x VPT-deep',
                    ratio <= 1.12,
                    f'ratio {ratio:.3f}',
                )
            )
        if task == 'cls' and size == 224 and n_p == 10 and lspt and full:
            ratio = lspt['train_step_ms'] / full['train_step_ms']
            out.append(
                (
                    f'{tag}: LSPT train step <= 0.80 x full fine-tune',
                    ratio <= 0.80,
                    f'ratio {ratio:.3f}',
                )
            )
    # 4. frozen weights
    bad = [
        r['method']
        for r in records
        if r['frozen_with_grad'] or frozen_with_state(r)
    ]
    out.append(
        (
            'frozen weights: no gradient buffer, no optimiser state '
            f'({len(records)} runs)',
            not bad,
            'violations: ' + (', '.join(bad) or 'none'),
        )
    )
    grouped = sorted(
        {f'{r["task"]} {r["method"]}' for r in records if frozen_in_groups(r)}
    )
    out.append(
        (
            "frozen weights: left out of the optimiser's parameter "
            f'groups ({len(records)} runs)',
            not grouped,
            'in the groups (no gradient, so never stepped): '
            + (', '.join(grouped) or 'none'),
        )
    )
    return out


def _seg_memory_target(tag, lspt, full):
    need = 3 * 4 * lspt['frozen_params'] / 2**20
    saved = full['peak_mem_mb'] - lspt['peak_mem_mb']
    terms = accounted_mb(full) - accounted_mb(lspt)
    what = 'peak process memory'
    if full.get('alloc_peak_mb') and lspt.get('alloc_peak_mb'):
        what = 'peak tensor memory'
        alloc = full['alloc_peak_mb'] - lspt['alloc_peak_mb']
        extra = (
            f'; peak process memory {full["peak_mem_mb"]:.0f} - '
            f'{lspt["peak_mem_mb"]:.0f} = {saved:.0f} MB'
        )
        saved_used = alloc
        head = (
            f'full {full["alloc_peak_mb"]:.0f} MB - LSPT '
            f'{lspt["alloc_peak_mb"]:.0f} MB = {alloc:.0f} MB'
        )
    else:
        extra, saved_used = '', saved
        head = (
            f'full {full["peak_mem_mb"]:.0f} MB - LSPT '
            f'{lspt["peak_mem_mb"]:.0f} MB = {saved:.0f} MB'
        )
    return (
        f'{tag}: LSPT {what} in training below full fine-tune by '
        '>= frozen grads + AdamW state',
        saved_used >= need,
        f'{head}, need {need:.0f} MB{extra} (measured terms params + grads '
        f'+ optimiser + saved activations differ by {terms:.0f} MB); '
        f'LSPT/full memory {lspt["peak_mem_mb"] / full["peak_mem_mb"]:.2f}, '
        f'step {lspt["train_step_ms"] / full["train_step_ms"]:.2f}; '
        f'neck+heads take {lspt["head_share_of_step"]:.0%} of the LSPT step',
    )


def report(records, sweep_method='lspt'):
    """The markdown report: cost, memory breakdown, the sweep of
    ``sweep_method`` (if measured), the variants (if measured), PASS/FAIL
    per target, the setting."""
    plain = [r for r in records if not r.get('variant')]
    parts = [
        '### Cost per method',
        '',
        main_table(plain),
        '',
        '### Memory breakdown',
        '',
        breakdown_table(records),
        '',
    ]
    sweep = sweep_table(plain, sweep_method) if sweep_method else ''
    if sweep:
        parts += [
            f'### {sweep_method}: prompt count and image size',
            '',
            sweep,
            '',
        ]
    if len(plain) < len(records):
        parts += [
            '### Variants: activation checkpointing, compile',
            '',
            variant_table(records),
            '',
        ]
    shares = op_share_table(records)
    if shares:
        parts += ['### Where the train step spends its time', '', shares, '']
    parts += ['### Targets', '']
    for name, ok, detail in evaluate_targets(records) + evaluate_lean_targets(
        records
    ):
        parts.append(f'- **{"PASS" if ok else "FAIL"}** {name}: {detail}')
    r0 = plain[0] if plain else records[0]
    configs = sorted({r['config'] for r in records if r.get('config')})
    parts += [
        '',
        f'device {r0["device"]}, amp {r0["amp"]}, with_cp '
        f'{r0.get("with_cp", False)}, compile {r0.get("compile")}, '
        f'torch {r0["torch"]}, {r0["threads"]} threads; times are '
        f'medians of {len(r0["train_step_ms_all"])} runs after '
        f'warm-up, {r0.get("timing", "one process per method")} (all '
        'runs, minima and per-process times in the JSON); FLOPs per '
        'image (1 multiply-add = 2 FLOPs); peak train memory: CUDA '
        'max allocated, CPU peak RSS above the process before the '
        'model was built (in brackets: peak of live tensors); FLOPs '
        'and saved activations are counted on the eager model',
    ]
    if configs:
        parts += ['', 'configs: ' + ', '.join(f'`{c}`' for c in configs)]
    return '\n'.join(parts)

"""Tables and targets of cost records (:func:`lspt_mm.analysis.cost.run_job`).

- :func:`add_ratios`: each figure as a ratio to VPT-deep (same task, size,
  batch and prompt count) and to full fine-tuning (same task, size, batch);
- :func:`main_table`, :func:`breakdown_table`, :func:`sweep_table`:
  markdown tables;
- :func:`evaluate_targets`: the cost targets as ``(target, passed, detail)``
  (PASS/FAIL lines of :func:`report`).

Records from older runs (``frozen_in_optimizer`` instead of
``frozen_with_state`` / ``frozen_in_param_groups``) render too.
"""
from .cost import method_names

RATIO_KEYS = ('trainable_params', 'gflops', 'train_gflops',
              'analytic_train_gflops', 'train_step_ms', 'infer_ms',
              'peak_mem_mb')


def _order(method):
    names = method_names()
    return names.index(method) if method in names else len(names)


def groups(records):
    """Comparison groups: same task, image size and batch, one prompt count;
    the prompt-free methods (linear, full) join every group of their
    setting. Yields ``(task, size, batch, num_prompts, rows)``."""
    settings = sorted({(r['task'], r['img_size'], r['batch'])
                       for r in records})
    for task, size, batch in settings:
        rows = [r for r in records if (r['task'], r['img_size'],
                                       r['batch']) == (task, size, batch)]
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
            r['ratio_to_full'] = _ratios(r, by.get('full'))
            vpt = _ratios(r, by.get('vpt_deep'))
            if r['num_prompts']:
                r['ratio_to_vpt_deep'] = vpt
            else:
                r.setdefault('ratio_to_vpt_deep_by_num_prompts',
                             {})[str(n_p)] = vpt
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
    head = ('| task | size | batch | N_p | method | trainable params | total '
            'params | GFLOPs fwd | GFLOPs fwd+bwd counted / analytic | '
            '×VPT-deep (analytic) | train step ms | ×VPT-deep | ×full | '
            'infer ms | ×VPT-deep | ×full | peak train MB | ×full |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full = by.get('vpt_deep'), by.get('full')
        for r in rows:
            lines.append(
                f"| {task} | {size} | {batch} | {n_p or '-'} | "
                f"{r['method']} | {r['trainable_params']:,} | "
                f"{r['total_params']:,} | {r['gflops']:.2f} | "
                f"{r['train_gflops']:.1f} / {r['analytic_train_gflops']:.1f} "
                f"| {_ratio(r, 'analytic_train_gflops', vpt)} | "
                f"{r['train_step_ms']:.0f} | "
                f"{_ratio(r, 'train_step_ms', vpt)} | "
                f"{_ratio(r, 'train_step_ms', full)} | "
                f"{r['infer_ms']:.0f} | {_ratio(r, 'infer_ms', vpt)} | "
                f"{_ratio(r, 'infer_ms', full)} | "
                f"{r['peak_mem_mb']:.0f} | "
                f"{_ratio(r, 'peak_mem_mb', full)} |")
    return '\n'.join(lines)


def breakdown_table(records):
    head = ('| task | size | batch | N_p | method | optimiser | params MB | '
            'grads MB | optimiser MB | saved activations MB | peak train MB '
            '(tensors) | frozen params with grad / with optimiser state / in '
            'param groups | load avg |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(records, key=lambda r: (r['task'], r['img_size'],
                                            r['batch'], r['num_prompts'],
                                            _order(r['method']))):
        lines.append(
            f"| {r['task']} | {r['img_size']} | {r['batch']} | "
            f"{r['num_prompts'] or '-'} | {r['method']} | "
            f"{r.get('optimizer', '-')} | "
            f"{r['param_mb']:.0f} | {r['grad_mb']:.0f} | "
            f"{r['optim_state_mb']:.0f} | {r['activation_mb']:.0f} | "
            f"{r['peak_mem_mb']:.0f} ({_mb(r.get('alloc_peak_mb'))}) | "
            f"{r['frozen_with_grad']} / {frozen_with_state(r)} / "
            f"{frozen_in_groups(r)} | {r['load_avg_1min']:.1f} |")
    seg = [r for r in records if 'head_train_step_ms' in r]
    if seg:
        lines += ['', '| seg size | batch | N_p | method | neck+heads train '
                  'step ms | share of step | share of train FLOPs |',
                  '|---|---|---|---|---|---|---|']
        for r in seg:
            lines.append(
                f"| {r['img_size']} | {r['batch']} | "
                f"{r['num_prompts'] or '-'} | {r['method']} | "
                f"{r['head_train_step_ms']:.0f} | "
                f"{r['head_share_of_step']:.0%} | "
                f"{r['head_share_of_train_flops']:.0%} |")
    return '\n'.join(lines)


def sweep_table(records, method):
    rs = [r for r in records if r['method'] == method and r['task'] == 'cls']
    if len(rs) < 2:
        return ''
    head = ('| size | batch | N_p | tokens | GFLOPs fwd | of which LSTM '
            '(analytic) | GFLOPs fwd+bwd | train step ms | infer ms | peak '
            'train MB |')
    lines = [head, '|' + '---|' * (head.count('|') - 1)]
    for r in sorted(rs, key=lambda r: (r['img_size'], r['batch'],
                                       r['num_prompts'])):
        lines.append(
            f"| {r['img_size']} | {r['batch']} | {r['num_prompts']} | "
            f"{r['tokens']} | {r['gflops']:.2f} | "
            f"{r['analytic_lstm_gflops']:.2f} | {r['train_gflops']:.1f} | "
            f"{r['train_step_ms']:.0f} | {r['infer_ms']:.0f} | "
            f"{r['peak_mem_mb']:.0f} |")
    return '\n'.join(lines)


def accounted_mb(r):
    return (r['param_mb'] + r['grad_mb'] + r['optim_state_mb'] +
            r['activation_mb'])


def evaluate_targets(records):
    """The cost targets the records can decide: a list of
    ``(target, passed, detail)``."""
    out = []
    for task, size, batch, n_p, rows in groups(records):
        by = {r['method']: r for r in rows}
        vpt, full, lspt = by.get('vpt_deep'), by.get('full'), by.get('lspt')
        tag = f'{task} {size}px batch {batch} N_p={n_p}'
        # 1. no wasted work
        if vpt:
            for r in rows:
                if r is vpt:
                    continue
                t = r['train_step_ms'] / vpt['train_step_ms']
                f = r['analytic_train_gflops'] / vpt['analytic_train_gflops']
                out.append((f"{tag}: {r['method']} train time / VPT-deep <= "
                            '1.05 x FLOP ratio', t <= 1.05 * f,
                            f'time ratio {t:.3f}, FLOP ratio {f:.3f} '
                            f'(limit {1.05 * f:.3f})'))
        # 2. segmentation
        if task == 'seg' and n_p == 100 and lspt and vpt:
            ratio = lspt['train_step_ms'] / vpt['train_step_ms']
            out.append((f'{tag}: LSPT train step <= 1.05 x VPT-deep',
                        ratio <= 1.05, f'ratio {ratio:.3f}'))
        if task == 'seg' and lspt and full:
            out.append(_seg_memory_target(tag, lspt, full))
        # 3. classification
        if task == 'cls' and size == 224 and n_p == 100 and lspt and vpt:
            ratio = lspt['infer_ms'] / vpt['infer_ms']
            out.append((f'{tag}: LSPT inference <= 1.12 x VPT-deep',
                        ratio <= 1.12, f'ratio {ratio:.3f}'))
        if task == 'cls' and size == 224 and n_p == 10 and lspt and full:
            ratio = lspt['train_step_ms'] / full['train_step_ms']
            out.append((f'{tag}: LSPT train step <= 0.80 x full fine-tune',
                        ratio <= 0.80, f'ratio {ratio:.3f}'))
    # 4. frozen weights
    bad = [r['method'] for r in records
           if r['frozen_with_grad'] or frozen_with_state(r)]
    out.append(('frozen weights: no gradient buffer, no optimiser state '
                f'({len(records)} runs)', not bad,
                'violations: ' + (', '.join(bad) or 'none')))
    grouped = sorted({f"{r['task']} {r['method']}" for r in records
                      if frozen_in_groups(r)})
    out.append(('frozen weights: left out of the optimiser\'s parameter '
                f'groups ({len(records)} runs)', not grouped,
                'in the groups (no gradient, so never stepped): ' +
                (', '.join(grouped) or 'none')))
    return out


def _seg_memory_target(tag, lspt, full):
    need = 3 * 4 * lspt['frozen_params'] / 2**20
    saved = full['peak_mem_mb'] - lspt['peak_mem_mb']
    terms = accounted_mb(full) - accounted_mb(lspt)
    what = 'peak process memory'
    if full.get('alloc_peak_mb') and lspt.get('alloc_peak_mb'):
        what = 'peak tensor memory'
        alloc = full['alloc_peak_mb'] - lspt['alloc_peak_mb']
        extra = (f"; peak process memory {full['peak_mem_mb']:.0f} - "
                 f"{lspt['peak_mem_mb']:.0f} = {saved:.0f} MB")
        saved_used = alloc
        head = (f"full {full['alloc_peak_mb']:.0f} MB - LSPT "
                f"{lspt['alloc_peak_mb']:.0f} MB = {alloc:.0f} MB")
    else:
        extra, saved_used = '', saved
        head = (f"full {full['peak_mem_mb']:.0f} MB - LSPT "
                f"{lspt['peak_mem_mb']:.0f} MB = {saved:.0f} MB")
    return (
        f'{tag}: LSPT {what} in training below full fine-tune by '
        '>= frozen grads + AdamW state', saved_used >= need,
        f'{head}, need {need:.0f} MB{extra} (measured terms params + grads '
        f'+ optimiser + saved activations differ by {terms:.0f} MB); '
        f"LSPT/full memory {lspt['peak_mem_mb'] / full['peak_mem_mb']:.2f}, "
        f"step {lspt['train_step_ms'] / full['train_step_ms']:.2f}; "
        f"neck+heads take {lspt['head_share_of_step']:.0%} of the LSPT step")


def report(records, sweep_method='lspt'):
    """The markdown report: cost, memory breakdown, the sweep of
    ``sweep_method`` (if measured), PASS/FAIL per target, the setting."""
    parts = ['### Cost per method', '', main_table(records), '',
             '### Memory breakdown', '', breakdown_table(records), '']
    sweep = sweep_table(records, sweep_method) if sweep_method else ''
    if sweep:
        parts += [f'### {sweep_method}: prompt count and image size', '',
                  sweep, '']
    parts += ['### Targets', '']
    for name, ok, detail in evaluate_targets(records):
        parts.append(f"- **{'PASS' if ok else 'FAIL'}** {name}: {detail}")
    r0 = records[0]
    configs = sorted({r['config'] for r in records if r.get('config')})
    parts += ['', f"device {r0['device']}, amp {r0['amp']}, torch "
              f"{r0['torch']}, {r0['threads']} threads; times are medians of "
              f"{len(r0['train_step_ms_all'])} runs after warm-up, "
              f"{r0.get('timing', 'one process per method')} (all runs, "
              'minima and per-process times in the JSON); FLOPs per image '
              '(1 multiply-add = 2 FLOPs); peak train memory: CUDA max '
              'allocated, CPU peak RSS above the process before the model '
              'was built']
    if configs:
        parts += ['', 'configs: ' + ', '.join(f'`{c}`' for c in configs)]
    return '\n'.join(parts)

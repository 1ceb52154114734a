"""The cost tool (tools/analysis_tools/benchmark_methods.py over
lspt_mm.analysis.cost / cost_report) on tiny archs built from the real
configs: its JSON records, FLOP accounting, memory terms, frozen-weight
checks, re-rendered reports."""

import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.analysis import cost, cost_report
from lspt_mm.analysis.flops import analytic_flops

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_methods.py')
sys.path.insert(0, osp.dirname(TOOL))

import benchmark_methods as bm  # noqa: E402

FIELDS = (
    'method',
    'img_size',
    'batch',
    'num_prompts',
    'trainable_params',
    'total_params',
    'gflops',
    'train_gflops',
    'train_step_ms',
    'infer_ms',
    'peak_mem_mb',
    'config',
    'optimizer',
)
D = cost.TINY_ARCH['embed_dims']
L = cost.TINY_ARCH['num_layers']
LSTM_PARAMS = 2 * 4 * D * D + 2 * 4 * D  # W_ih, W_hh, b_ih, b_hh
CLS_CONFIG = osp.join(ROOT, bm.CLS_CONFIG)
SEG_CONFIG = osp.join(ROOT, bm.SEG_CONFIG)
FINETUNE = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'finetune-mae-base_upernet_8xb2-160k_ade20k-512x512.py',
)
TINY_CLS = [
    '--arch',
    'tiny',
    '--patch-size',
    '8',
    '--threads',
    '1',
    '--repeats',
    '1',
    '--warmup',
    '1',
    '--cls-cfg-options',
    'model.head.num_classes=7',
]
TINY_SEG = [
    '--arch',
    'tiny',
    '--patch-size',
    '8',
    '--threads',
    '1',
    '--repeats',
    '1',
    '--warmup',
    '1',
    '--seg-cfg-options',
    'model.decode_head.channels=32',
    'model.auxiliary_head.channels=16',
]
PROMPT_METHODS = [m for m in cost.method_names() if cost.uses_prompts(m)]
NO_PROMPTS = [m for m in cost.method_names() if not cost.uses_prompts(m)]


@pytest.fixture(scope='module')
def cls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'cls.json'
    md = out.with_suffix('.md')
    bm.main(
        [
            '--in-process',
            '--tasks',
            'cls',
            '--cls-size',
            '32',
            '--batch',
            '2',
            '--num-prompts',
            '2',
            '6',
            '--sweep-prompts',
            '2',
            '6',
            '12',
            '--sweep-sizes',
            '32',
            '48',
            '--out',
            str(out),
            '--markdown',
            str(md),
        ]
        + TINY_CLS
    )
    return json.load(open(out)), md.read_text(), out


def find(records, method, n_p=None, size=32):
    rs = [
        r
        for r in records
        if r['method'] == method
        and r['img_size'] == size
        and (n_p is None or r['num_prompts'] == n_p)
    ]
    assert len(rs) == 1, (method, n_p, size, len(rs))
    return rs[0]


def test_records_fields_and_values(cls_run):
    records, _, _ = cls_run
    n_prompt = len(PROMPT_METHODS)
    # prompt-free + prompt methods x 2 prompt counts + sweep (12@32, 3@48)
    assert len(records) == len(NO_PROMPTS) + 2 * n_prompt + 1 + 3
    for r in records:
        for k in FIELDS:
            assert k in r, k
        for k in (
            'trainable_params',
            'total_params',
            'gflops',
            'train_gflops',
            'train_step_ms',
            'infer_ms',
            'analytic_gflops',
            'param_mb',
        ):
            assert r[k] > 0, (r['method'], k)
        assert r['batch'] == 2 and r['task'] == 'cls'
        assert r['frozen_with_grad'] == 0 and r['frozen_with_state'] == 0
        assert r['trainable_without_grad'] == 0
        assert r['peak_mem_mb'] >= 0
        # built from the real config, with its optimiser
        assert r['config'] == bm.CLS_CONFIG
        assert r['optimizer'] == 'SGD'
        assert r['arch'] == cost.TINY_ARCH and r['patch_size'] == 8
    for method in [m for m in cost.method_names() if m != 'full']:
        for r in records:
            if r['method'] == method:
                assert r['trainable_params'] < r['total_params']
                assert r['frozen_params'] > 0
    full = find(records, 'full')
    assert full['trainable_params'] == full['total_params']
    assert full['frozen_params'] == 0 == full['frozen_in_param_groups']
    for method in NO_PROMPTS:
        assert find(records, method)['num_prompts'] == 0


def test_parameter_counts(cls_run):
    records, _, _ = cls_run
    for n_p in (2, 6):
        lspt, vpt = find(records, 'lspt', n_p), find(records, 'vpt_deep', n_p)
        assert (
            lspt['trainable_params'] - vpt['trainable_params'] == LSTM_PARAMS
        )
        shallow = find(records, 'vpt_shallow', n_p)
        linear = find(records, 'linear')
        assert (
            shallow['trainable_params'] - linear['trainable_params'] == n_p * D
        )
        assert (
            vpt['trainable_params'] - linear['trainable_params'] == L * n_p * D
        )
        # GaPT: one prompt set + L-1 gates + L temperatures
        assert (
            find(records, 'gapt', n_p)['trainable_params']
            - shallow['trainable_params']
            == (L - 1) + L
        )
        assert (
            lspt['prompt_method_params'] == lspt['backbone_trainable_params']
        )
    # the config's SGD momentum: one buffer per trainable parameter; every
    # trainable parameter had a gradient at the optimiser step
    for r in records:
        assert r['optim_state_mb'] == pytest.approx(
            r['trainable_params'] * 4 / 2**20, rel=1e-6
        )
        assert r['grad_mb'] == pytest.approx(
            r['trainable_params'] * 4 / 2**20, rel=1e-6
        )
        assert r['param_mb'] == pytest.approx(
            r['total_params'] * 4 / 2**20, rel=1e-6
        )


def test_flops(cls_run):
    records, _, _ = cls_run
    for r in records:
        # counted forward FLOPs equal the analytic ones
        assert r['gflops'] == pytest.approx(r['analytic_gflops'], rel=1e-9)
        tol = 0.02 if r['method'] == 'linear' else 1e-9  # head bwd approx.
        assert r['train_gflops'] == pytest.approx(
            r['analytic_train_gflops'], rel=tol
        )
        assert r['train_gflops'] > r['gflops']
    sweep = sorted(
        (r for r in records if r['method'] == 'lspt' and r['img_size'] == 32),
        key=lambda r: r['num_prompts'],
    )
    assert [r['num_prompts'] for r in sweep] == [2, 6, 12]
    for a, b in zip(sweep, sweep[1:]):
        assert b['gflops'] > a['gflops']
        assert b['train_gflops'] > a['train_gflops']
        assert b['analytic_lstm_gflops'] > a['analytic_lstm_gflops']
    for n_p in (2, 6, 12):
        assert (
            find(records, 'lspt', n_p, 48)['gflops']
            > find(records, 'lspt', n_p, 32)['gflops']
        )
    # frozen prompt tuning: backward costs less than full fine-tuning's
    full, vpt = find(records, 'full'), find(records, 'vpt_deep', 2)
    assert (
        vpt['train_gflops'] - vpt['gflops']
        < full['train_gflops'] - full['gflops']
    )


def test_ratios_and_report(cls_run):
    records, md, _ = cls_run
    vpt = find(records, 'vpt_deep', 6)
    lspt = find(records, 'lspt', 6)
    assert vpt['ratio_to_vpt_deep']['train_step_ms'] == 1
    assert lspt['ratio_to_vpt_deep']['gflops'] == pytest.approx(
        lspt['gflops'] / vpt['gflops']
    )
    assert lspt['ratio_to_full']['train_step_ms'] == pytest.approx(
        lspt['train_step_ms'] / find(records, 'full')['train_step_ms']
    )
    by_np = find(records, 'full')['ratio_to_vpt_deep_by_num_prompts']
    assert set(by_np) == {'2', '6', '12'}  # 12: sweep only, no VPT-deep
    assert by_np['12'] is None and by_np['6']['train_step_ms'] > 0
    assert '| cls | 32 | 2 | 6 | lspt |' in md
    assert '### lspt: prompt count and image size' in md
    assert 'PASS** frozen weights: no gradient buffer' in md
    # every method but VPT-deep, at the two prompt counts VPT-deep has
    others = len(cost.method_names()) - 1
    assert md.count('train time / VPT-deep') == 2 * others
    # the main table lists the methods in the method table's order
    main = md.split('### Memory breakdown')[0]
    rows = [
        line.split('|')[5].strip()
        for line in main.splitlines()
        if line.startswith('| cls | 32 | 2 | 6 |')
    ]
    assert rows == cost.method_names()


def test_report_rerenders_saved_records(cls_run, capsys, tmp_path):
    """--report prints what the run printed, from the JSON alone; records
    of the older layout (frozen_in_optimizer) render too."""
    records, md, out = cls_run
    capsys.readouterr()
    bm.main(['--report', str(out)])
    assert capsys.readouterr().out == md
    old = []
    for r in json.load(open(out)):
        r['frozen_in_optimizer'] = 3 if r['method'] == 'gapt' else 0
        for k in (
            'frozen_with_state',
            'frozen_in_param_groups',
            'config',
            'optimizer',
        ):
            r.pop(k)
        old.append(r)
    path = tmp_path / 'old.json'
    path.write_text(json.dumps(old))
    bm.main(['--report', str(path), '--sweep-method', 'none'])
    text = capsys.readouterr().out
    assert '### lspt: prompt count' not in text
    assert (
        'FAIL** frozen weights: no gradient buffer, no optimiser state'
        f' ({len(old)} runs): violations: ' + ', '.join(['gapt'] * 2) in text
    )


def test_analytic_vit_base():
    """ViT-B/16 at 224: 17.56 GMACs; LSTM share ~10% at 224 px and ~2% at
    512 px with 100 prompts (per image, large batch)."""
    none = analytic_flops('full', 'base', 224, 16, 0, batch=1)
    assert none['fwd'] / 2e9 == pytest.approx(17.56, abs=0.02)
    for size, share in ((224, 0.10), (512, 0.02)):
        a = analytic_flops('lspt', 'base', size, 16, 100, batch=1000)
        lstm = a['lstm_fwd'] / (a['fwd'] - a['lstm_fwd'])
        assert lstm == pytest.approx(share, abs=0.005)
    # 297 tokens with 100 prompts; frozen backward < full backward
    vpt = analytic_flops('vpt_deep', 'base', 224, 16, 100)
    assert vpt['tokens'] == 297
    assert vpt['bwd'] < vpt['fwd'] * 1.2 < none['bwd']


def test_seg_in_subprocesses(tmp_path):
    """The default driver: one process per method plus the interleaved
    pass; each method from its own segmentation config (finetune config
    for full, with its layer-decay constructor), the ablation from the
    LSPT config."""
    out = tmp_path / 'seg.json'
    proc = subprocess.run(
        [
            sys.executable,
            TOOL,
            '--tasks',
            'seg',
            '--seg-size',
            '32',
            '--seg-batch',
            '2',
            '--seg-num-prompts',
            '3',
            '--methods',
            'full',
            'lspt',
            'lspt_gspc_only',
            '--out',
            str(out),
        ]
        + TINY_SEG,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.load(open(out))
    assert [r['method'] for r in records] == ['full', 'lspt', 'lspt_gspc_only']
    full, lspt, gspc = records
    assert full['config'] == osp.relpath(FINETUNE, ROOT)
    assert full['optim_constructor'] == 'SegLayerDecayOptimWrapperConstructor'
    assert lspt['config'] == gspc['config'] == bm.SEG_CONFIG
    assert lspt['optim_constructor'] == 'PromptTuningOptimWrapperConstructor'
    for r in records:
        assert r['task'] == 'seg' and r['seg_norm'] == 'BN'  # SyncBN, 1 dev
        assert r['timing'] == 'interleaved'
        assert len(r['train_step_ms_all']) == 1
        assert r['train_step_ms_per_process'] > 0
        assert 0 < r['head_share_of_step'] and r['head_train_step_ms'] > 0
        assert 0 < r['head_share_of_train_flops'] < 1
        # counted = analytic, forward (no auxiliary head) and train step
        assert r['gflops'] == pytest.approx(r['analytic_gflops'], rel=1e-9)
        assert r['train_gflops'] == pytest.approx(
            r['analytic_train_gflops'], rel=1e-9
        )
        # AdamW: two state tensors per trainable parameter (+ step counts)
        assert r['optim_state_mb'] == pytest.approx(
            2 * r['trainable_params'] * 4 / 2**20, rel=0.01
        )
        assert r['peak_mem_mb'] > 0
        # peak of live tensors (profiler timeline): at least the weights
        assert r['alloc_peak_mb'] >= r['param_mb']
        split = r['alloc_peak_split_mb']
        assert split['parameter'] >= 0.95 * r['param_mb']  # + buffers
        assert sum(split.values()) == pytest.approx(r['alloc_peak_mb'])
        assert r['frozen_in_param_groups'] == 0
    assert full['frozen_params'] == 0 < lspt['frozen_params']
    assert lspt['backbone_trainable_params'] == lspt['prompt_method_params']
    # layer decay: one parameter group per (depth, decay) pair, many
    assert full['param_groups'] > 2 * L
    assert 'Targets' in proc.stdout and '**PASS**' in proc.stdout


def test_seg_batch_one_uses_group_norm():
    """Batch 1: GroupNorm in the neck and heads (BN cannot train the 1x1
    pyramid pooling on one image), with a group count dividing every width
    (16 for heads 32 / 16 wide)."""
    settings = cost.CostSettings(
        configs=dict(seg=SEG_CONFIG),
        arch='tiny',
        patch_size=8,
        cfg_options=dict(
            seg={
                'model.decode_head.channels': 32,
                'model.auxiliary_head.channels': 16,
            }
        ),
        repeats=1,
        warmup=1,
        alloc_peak=False,
        threads=1,
    )
    job = dict(
        method='vpt_shallow', task='seg', img_size=32, num_prompts=2, batch=1
    )
    rec = cost.run_job(job, settings)
    assert rec['seg_norm'] == 'GN'
    groups = {
        m.num_groups
        for m in cost.CostCase(job, settings).model.modules()
        if isinstance(m, torch.nn.GroupNorm)
    }
    assert groups == {16}
    assert rec['trainable_without_grad'] == 0


def _cls_settings(**options):
    return cost.CostSettings(
        configs=dict(cls=CLS_CONFIG),
        arch='tiny',
        patch_size=8,
        cfg_options=dict(
            cls={'task': 'cub', 'model.head.num_classes': 5, **options}
        ),
        repeats=1,
        warmup=1,
        alloc_peak=False,
        threads=1,
    )


JOB = dict(method='vpt_deep', task='cls', img_size=16, num_prompts=2, batch=2)


# mmengine's default constructor with no paramwise_cfg: every parameter,
# frozen or not, in one group
PLAIN_CONSTRUCTOR = {
    'optim_wrapper.constructor': 'DefaultOptimWrapperConstructor',
    'optim_wrapper.paramwise_cfg': None,
}


def test_frozen_weight_with_optimiser_state_is_caught():
    """Adagrad keeps state for every parameter of its groups, gradient or
    not: with mmengine's default constructor (all parameters in one group)
    the frozen ViT gets state, and the measurement stops."""
    settings = _cls_settings(
        **{
            'optim_wrapper.optimizer._delete_': True,
            'optim_wrapper.optimizer.type': 'Adagrad',
            'optim_wrapper.optimizer.lr': 0.01,
            **PLAIN_CONSTRUCTOR,
        }
    )
    with pytest.raises(
        AssertionError, match='frozen weights have optimiser state'
    ):
        cost.run_job(JOB, settings)


def test_what_the_config_trains_is_measured():
    """The optimiser, its constructor and its parameter groups come from the
    config: AdamW keeps two buffers per trainable parameter where SGD
    momentum keeps one; the config's PromptTuningOptimWrapperConstructor
    leaves frozen tensors out of the groups, mmengine's default constructor
    puts them in its one group (reported as a FAIL)."""
    case = cost.CostCase(JOB, _cls_settings())
    n_frozen = sum(not p.requires_grad for p in case.model.parameters())
    assert n_frozen > 0
    sgd = cost.run_job(JOB, _cls_settings())
    assert sgd['optim_constructor'] == 'PromptTuningOptimWrapperConstructor'
    assert sgd['frozen_in_param_groups'] == 0
    plain = cost.run_job(JOB, _cls_settings(**PLAIN_CONSTRUCTOR))
    assert plain['frozen_in_param_groups'] == n_frozen
    assert plain['param_groups'] == 1
    assert plain['optim_state_mb'] == pytest.approx(sgd['optim_state_mb'])
    adamw = cost.run_job(
        JOB,
        _cls_settings(
            **{
                'optim_wrapper.optimizer._delete_': True,
                'optim_wrapper.optimizer.type': 'AdamW',
                'optim_wrapper.optimizer.lr': 1e-3,
                'optim_wrapper.optimizer.weight_decay': 0.01,
                'optim_wrapper.paramwise_cfg.bias_decay_mult': 0.0,
            }
        ),
    )
    assert adamw['optimizer'] == 'AdamW'
    assert adamw['optim_constructor'] == 'PromptTuningOptimWrapperConstructor'
    assert adamw['frozen_in_param_groups'] == 0
    assert adamw['trainable_params'] == sgd['trainable_params']
    assert adamw['optim_state_mb'] == pytest.approx(
        2 * sgd['optim_state_mb'], rel=0.01
    )
    text = cost_report.report(cost_report.add_ratios([plain]), None)
    assert (
        "FAIL** frozen weights: left out of the optimiser's parameter "
        'groups (1 runs): in the groups (no gradient, so never stepped): '
        'cls vpt_deep' in text
    )
    text = cost_report.report(cost_report.add_ratios([sgd]), None)
    assert (
        "PASS** frozen weights: left out of the optimiser's parameter "
        'groups' in text
    )


def test_benchmark_config_trains_the_tasks_recipe():
    """The classification config is a benchmark config: the method is its
    ``method`` setting and the task's recipe row fills it, as for users
    (NABirds, GaPT: lr 0.5, gate init 5 from GaPT's Table 5, not GaPT's
    default 10)."""
    job = dict(method='gapt', task='cls', img_size=16, num_prompts=2, batch=2)
    case = cost.CostCase(job, _cls_settings(task='nabirds'))
    assert case.cfg.method == 'gapt'
    assert {g['lr'] for g in case.optim_wrapper.optimizer.param_groups} == {
        0.5
    }
    gates = case.vit.prompt_method.gate_logits
    assert torch.equal(gates, torch.full_like(gates, -5.0))
    assert case.vit.num_prompts == 2  # the job's, over the recipe's 100
    # without task= the config's own (complete) default task runs
    default = cost.CostCase(
        job,
        cost.CostSettings(
            configs=dict(cls=CLS_CONFIG), arch='tiny', patch_size=8
        ),
    )
    assert default.cfg.task_recipe['task'] == default.cfg.task
    with pytest.raises(Exception, match="task='nope' is not a"):
        cost.CostCase(job, _cls_settings(task='nope'))


def test_method_configs_are_read_from_their_backbones(tmp_path):
    found = cost.method_configs([FINETUNE, SEG_CONFIG])
    assert found == {'full': FINETUNE, 'lspt': SEG_CONFIG}
    mocov3 = SEG_CONFIG.replace('lspt-mae', 'lspt-mocov3')
    with pytest.raises(cost.CostError, match='two configs train .lspt.'):
        cost.method_configs([SEG_CONFIG, mocov3])
    odd = tmp_path / 'odd.py'
    odd.write_text(
        f'_base_ = [{FINETUNE!r}]\n'
        "model = dict(backbone=dict(prompt_method='lspt', "
        'freeze_backbone=False))\n'
    )
    with pytest.raises(cost.CostError, match='odd.py: its backbone'):
        cost.method_configs([str(odd)])
    with pytest.raises(cost.CostError, match='unknown method'):
        cost.method_spec('vpt-deeep')


def test_settings_survive_the_process_boundary():
    s = cost.CostSettings(
        configs=dict(seg=SEG_CONFIG),
        arch=dict(cost.TINY_ARCH),
        cfg_options=dict(
            seg={
                'model.data_preprocessor.size': (32, 32),
                'model.neck.rescales': [4, 2, 1, 0.5],
            }
        ),
        method_configs=dict(seg={'full': FINETUNE}),
        amp=True,
        threads=1,
    )
    back = cost.CostSettings.from_json(s.to_json())
    assert back == s
    assert isinstance(
        back.cfg_options['seg']['model.data_preprocessor.size'], tuple
    )


def test_op_time_shares_split_a_step_by_operator_class():
    """--op-shares: the profiled step's self time is split into matrix
    products, fused attention, convolutions and the rest; shares add up."""
    assert cost.op_class('aten::addmm') == 'matmul'
    assert cost.op_class('aten::mm') == 'matmul'
    assert cost.op_class('aten::matmul') == 'other'  # composite: no self time
    assert (
        cost.op_class('aten::_scaled_dot_product_flash_attention_for_cpu')
        == 'attention'
    )
    assert cost.op_class('aten::convolution_backward') == 'convolution'
    assert cost.op_class('aten::mkldnn_convolution') == 'convolution'
    assert cost.op_class('aten::gelu') == 'other'
    torch.manual_seed(0)
    lin, conv = torch.nn.Linear(64, 64), torch.nn.Conv2d(4, 4, 3)
    x, img = torch.randn(2, 16, 64), torch.randn(2, 4, 16, 16)

    def step():
        q = lin(x).view(2, 4, 16, 16)
        y = torch.nn.functional.scaled_dot_product_attention(q, q, q)
        (torch.nn.functional.gelu(y).sum() + conv(img).sum()).backward()

    shares = cost.op_time_shares(step)
    parts = [
        shares[k] for k in ('matmul', 'attention', 'convolution', 'other')
    ]
    assert all(p > 0 for p in parts) and sum(parts) == pytest.approx(1.0)
    assert shares['total_ms'] > 0


def test_compiled_jobs_measure_a_cold_compile(monkeypatch):
    """A compiled job's process gets an empty inductor cache of its own
    (removed afterwards), so its first-step time is the compile a first run
    pays; eager jobs keep the environment."""
    seen = []

    def fake_run(cmd, env, **kwargs):
        cache = env.get('TORCHINDUCTOR_CACHE_DIR')
        fresh = 'LSPT_MM_COLD_COMPILE_CACHE' in env
        assert env['TORCHINDUCTOR_COMPILE_THREADS'] == '1'
        seen.append(
            (cache, fresh and osp.isdir(cache) and not any(os.scandir(cache)))
        )
        return subprocess.CompletedProcess(
            cmd, 0, stdout=cost.RESULT_TAG + '{"ok": 1}\n', stderr=''
        )

    monkeypatch.setattr(cost.subprocess, 'run', fake_run)
    monkeypatch.delenv('TORCHINDUCTOR_COMPILE_THREADS', raising=False)
    job = dict(method='lspt', task='cls', img_size=32, num_prompts=2, batch=2)
    plain = cost.CostSettings(threads=1)
    assert cost.run_in_subprocess('job', job, plain) == {'ok': 1}
    assert cost.run_in_subprocess(
        'job', dict(job, variant='compile', compile=True), plain
    ) == {'ok': 1}
    assert cost.run_in_subprocess(
        'job', job, cost.CostSettings(compile=True, threads=1)
    ) == {'ok': 1}
    (eager, _), (variant, fresh1), (setting, fresh2) = seen
    assert eager == os.environ.get('TORCHINDUCTOR_CACHE_DIR')
    assert fresh1 and fresh2 and variant != setting
    assert not osp.exists(variant) and not osp.exists(setting)


def test_variants_pair_with_the_plain_job_of_their_own_run():
    """Reports merged from several --out files compare each variant with
    the plain job timed beside it, not with another run's."""
    job = dict(
        method='lspt', task='cls', img_size=224, num_prompts=100, batch=4
    )
    runs = [
        [
            dict(job, run=run, train_step_ms=t),
            dict(job, run=run, variant='compile', train_step_ms=0.8 * t),
        ]
        for run, t in (('a.json', 100.0), ('b.json', 200.0))
    ]
    pairs = list(cost_report.variant_pairs(runs[0] + runs[1]))
    assert [(b['run'], v['run']) for b, v in pairs] == [
        ('a.json', 'a.json'),
        ('b.json', 'b.json'),
    ]
    assert all(
        v['train_step_ms'] / b['train_step_ms'] == pytest.approx(0.8)
        for b, v in pairs
    )

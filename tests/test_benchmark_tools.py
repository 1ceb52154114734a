"""benchmark_methods.py on tiny archs: its JSON records, FLOP accounting,
frozen-weight checks."""
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.analysis.flops import analytic_flops

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'benchmark_methods.py')
sys.path.insert(0, osp.dirname(TOOL))

import benchmark_methods as bm  # noqa: E402

FIELDS = ('method', 'img_size', 'batch', 'num_prompts', 'trainable_params',
          'total_params', 'gflops', 'train_step_ms', 'infer_ms',
          'peak_mem_mb')
D = bm.TINY_ARCH['embed_dims']
LSTM_PARAMS = 2 * 4 * D * D + 2 * 4 * D  # W_ih, W_hh, b_ih, b_hh


@pytest.fixture(scope='module')
def cls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'cls.json'
    md = out.with_suffix('.md')
    bm.main(['--in-process', '--tasks', 'cls', '--arch', 'tiny',
             '--cls-size', '32', '--patch-size', '8', '--batch', '2',
             '--num-prompts', '2', '6', '--sweep-prompts', '2', '6', '12',
             '--sweep-sizes', '32', '48', '--repeats', '1', '--warmup', '1',
             '--threads', '1', '--num-classes', '7', '--out', str(out),
             '--markdown', str(md)])
    return json.load(open(out)), md.read_text()


def find(records, method, n_p=None, size=32):
    rs = [r for r in records if r['method'] == method and
          r['img_size'] == size and (n_p is None or r['num_prompts'] == n_p)]
    assert len(rs) == 1, (method, n_p, size, len(rs))
    return rs[0]


def test_records_fields_and_values(cls_run):
    records, _ = cls_run
    # 2 prompt-free + 4 methods x 2 prompt counts + sweep (12@32, 3@48)
    assert len(records) == 2 + 8 + 1 + 3
    for r in records:
        for k in FIELDS:
            assert k in r, k
        for k in ('trainable_params', 'total_params', 'gflops',
                  'train_gflops', 'train_step_ms', 'infer_ms',
                  'analytic_gflops', 'param_mb'):
            assert r[k] > 0, (r['method'], k)
        assert r['batch'] == 2 and r['task'] == 'cls'
        assert r['frozen_with_grad'] == 0 and r['frozen_in_optimizer'] == 0
        assert r['trainable_without_grad'] == 0
        assert r['peak_mem_mb'] >= 0
    for method in ('linear', 'vpt_shallow', 'vpt_deep', 'gapt', 'lspt'):
        for r in records:
            if r['method'] == method:
                assert r['trainable_params'] < r['total_params']
                assert r['frozen_params'] > 0
    full = find(records, 'full')
    assert full['trainable_params'] == full['total_params']
    assert full['frozen_params'] == 0
    assert full['num_prompts'] == 0 and find(records, 'linear')[
        'num_prompts'] == 0


def test_parameter_counts(cls_run):
    records, _ = cls_run
    for n_p in (2, 6):
        lspt, vpt = find(records, 'lspt', n_p), find(records, 'vpt_deep',
                                                     n_p)
        assert lspt['trainable_params'] - vpt['trainable_params'] == \
            LSTM_PARAMS
        shallow = find(records, 'vpt_shallow', n_p)
        linear = find(records, 'linear')
        assert shallow['trainable_params'] - linear['trainable_params'] == \
            n_p * D
        assert vpt['trainable_params'] - linear['trainable_params'] == \
            4 * n_p * D
        # GaPT: one prompt set + L-1 gates + L temperatures
        assert find(records, 'gapt', n_p)['trainable_params'] - \
            shallow['trainable_params'] == 3 + 4
    # optimiser state: SGD momentum, one buffer per trainable parameter
    for r in records:
        assert r['optim_state_mb'] == pytest.approx(
            r['trainable_params'] * 4 / 2**20, rel=1e-6)
        assert r['grad_mb'] == pytest.approx(
            r['trainable_params'] * 4 / 2**20, rel=1e-6)


def test_flops(cls_run):
    records, _ = cls_run
    for r in records:
        # counted forward FLOPs equal the analytic ones
        assert r['gflops'] == pytest.approx(r['analytic_gflops'], rel=1e-9)
        tol = 0.02 if r['method'] == 'linear' else 1e-9  # head bwd approx.
        assert r['train_gflops'] == pytest.approx(r['analytic_train_gflops'],
                                                  rel=tol)
        assert r['train_gflops'] > r['gflops']
    sweep = sorted((r for r in records if r['method'] == 'lspt' and
                    r['img_size'] == 32), key=lambda r: r['num_prompts'])
    assert [r['num_prompts'] for r in sweep] == [2, 6, 12]
    for a, b in zip(sweep, sweep[1:]):
        assert b['gflops'] > a['gflops']
        assert b['train_gflops'] > a['train_gflops']
        assert b['analytic_lstm_gflops'] > a['analytic_lstm_gflops']
    for n_p in (2, 6, 12):
        assert find(records, 'lspt', n_p, 48)['gflops'] > find(
            records, 'lspt', n_p, 32)['gflops']
    # frozen prompt tuning: backward costs less than full fine-tuning's
    full, vpt = find(records, 'full'), find(records, 'vpt_deep', 2)
    assert vpt['train_gflops'] - vpt['gflops'] < \
        full['train_gflops'] - full['gflops']


def test_ratios_and_report(cls_run):
    records, md = cls_run
    vpt = find(records, 'vpt_deep', 6)
    lspt = find(records, 'lspt', 6)
    assert vpt['ratio_to_vpt_deep']['train_step_ms'] == 1
    assert lspt['ratio_to_vpt_deep']['gflops'] == pytest.approx(
        lspt['gflops'] / vpt['gflops'])
    assert lspt['ratio_to_full']['train_step_ms'] == pytest.approx(
        lspt['train_step_ms'] / find(records, 'full')['train_step_ms'])
    by_np = find(records, 'full')['ratio_to_vpt_deep_by_num_prompts']
    assert set(by_np) == {'2', '6', '12'}  # 12: sweep only, no VPT-deep
    assert by_np['12'] is None and by_np['6']['train_step_ms'] > 0
    assert '| cls | 32 | 2 | 6 | lspt |' in md
    assert '### lspt: prompt count and image size' in md
    assert 'PASS** frozen weights' in md
    assert md.count('train time / VPT-deep') == 2 * 5  # 5 methods, 2 N_p


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
    """The default driver: one process per method, seg model (UPerNet)."""
    out = tmp_path / 'seg.json'
    proc = subprocess.run(
        [sys.executable, TOOL, '--tasks', 'seg', '--arch', 'tiny',
         '--seg-size', '32', '--patch-size', '8', '--seg-batch', '2',
         '--seg-num-prompts', '3', '--methods', 'full', 'lspt',
         '--seg-channels', '32', '--repeats', '1', '--warmup', '1',
         '--threads', '1', '--out', str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = json.load(open(out))
    assert [r['method'] for r in records] == ['full', 'lspt']
    for r in records:
        assert r['task'] == 'seg' and r['seg_norm'] == 'BN'
        assert 0 < r['head_share_of_step'] and r['head_train_step_ms'] > 0
        assert 0 < r['head_share_of_train_flops'] < 1
        # AdamW: two state tensors per trainable parameter (+ step counts)
        assert r['optim_state_mb'] == pytest.approx(
            2 * r['trainable_params'] * 4 / 2**20, rel=0.01)
        assert r['peak_mem_mb'] > 0
        # peak of live tensors (profiler timeline): at least the weights
        assert r['alloc_peak_mb'] >= r['param_mb']
        split = r['alloc_peak_split_mb']
        assert split['parameter'] >= 0.95 * r['param_mb']  # + buffers
        assert sum(split.values()) == pytest.approx(r['alloc_peak_mb'])
    full, lspt = records
    assert full['frozen_params'] == 0 < lspt['frozen_params']
    assert lspt['backbone_trainable_params'] == \
        lspt['prompt_method_params']
    assert 'Targets' in proc.stdout


def test_frozen_weight_in_optimizer_is_caught(monkeypatch):
    def everything(model, task):
        return torch.optim.SGD(model.parameters(), lr=0.1)

    monkeypatch.setattr(bm, 'build_optimizer', everything)
    args = bm.parse_args(['--arch', 'tiny', '--patch-size', '8',
                          '--repeats', '1', '--warmup', '1'])
    job = dict(method='vpt_deep', task='cls', img_size=16, num_prompts=2,
               batch=2)
    with pytest.raises(AssertionError, match='optimised'):
        bm.run_job(job, args)

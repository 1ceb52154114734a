"""The tuning protocol (lspt_mm/tuning, tools/run_benchmark.py) end to end on
tiny synthetic data in the real VTAB-1k and FGVC layouts: 2-point lr grid,
2 seeds, tiny random ViT.

The planted grid point is ``lr=0``: SGD with learning rate 0 never changes
the random prompts and head, so it scores near chance on validation, while
``lr=0.5`` learns the task (class = colour) to 100%. The choice must follow
the recorded validation scores (checked by editing one), a killed sweep
must resume without rerunning finished runs, and shards in separate work
dirs must collect into the same result as one machine.
"""

import csv
import glob
import json
import os
import os.path as osp
import random
import signal
import subprocess
import sys
import time

import pytest

import lspt_mm  # noqa: F401
import lspt_mm.tuning.protocol as protocol_mod
from lspt_mm.datasets.benchmarks import FGVC_DATASETS
from lspt_mm.recipes import read_recipe_table
from lspt_mm.tuning import (
    RULE,
    Protocol,
    ProtocolError,
    Splits,
    Task,
    Unit,
    choose_point,
    grid_points,
    parse_shard,
    point_id,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tests'))
sys.path.insert(0, osp.join(REPO, 'tools'))
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))
import prepare_fgvc_splits as prep  # noqa: E402
import run_benchmark as rb  # noqa: E402
from synthetic_cls import as_cli, tiny_cfg_options  # noqa: E402

from lspt_mm.datasets.synthetic import FGVC_MAKERS, make_vtab  # noqa: E402

EPOCHS = 4
# one task of two VTAB groups (real class counts)
VTAB_TASKS = {'diabetic_retinopathy': 5, 'kitti': 4}
FGVC_TASKS = ('cub', 'oxford_flowers')
GRID = ['--lr', '0.0', '0.5']
FGVC_GRID = ['--lr', '0.0', '0.2']  # GaPT + CLS token: 0.5 is too high here


# ----------------------------------------------------------- pure logic
def test_choice_rule_and_its_ties():
    pts = grid_points(
        dict(num_prompts=[10, 1], lr=[0.5, 0.1], weight_decay=[0.01, 0.0])
    )
    # canonical axis order: lr, weight decay, prompts; last varies fastest
    assert list(pts[0]) == ['lr', 'weight_decay', 'num_prompts']
    assert point_id(pts[0]) == 'lr0.5_wd0.01_np10'
    score = {point_id(p): 70.0 for p in pts}
    score['lr0.5_wd0.01_np10'] = 80.0
    scored = [(p, score[point_id(p)]) for p in pts]
    assert point_id(choose_point(scored)) == 'lr0.5_wd0.01_np10'
    # ties (to 1e-6) go to the smaller lr, then weight decay, then prompts
    score['lr0.1_wd0.01_np1'] = 80.0 + 4e-7
    score['lr0.1_wd0.0_np10'] = 80.0 - 4e-7
    scored = [(p, score[point_id(p)]) for p in pts]
    for _ in range(5):  # not the input order
        random.Random(_).shuffle(scored)
        assert point_id(choose_point(scored)) == 'lr0.1_wd0.0_np10'
    score['lr0.1_wd0.0_np1'] = 80.0
    scored = [(p, score[point_id(p)]) for p in pts]
    assert point_id(choose_point(scored)) == 'lr0.1_wd0.0_np1'
    # a NaN validation score (diverged run) never wins
    scored = [(pts[0], float('nan')), (pts[1], 1.0)]
    assert choose_point(scored) is pts[1]
    assert 'smaller lr' in RULE


def test_shards_partition_the_units(tmp_path):
    config = rb.benchmark_config('mae', 'vtab1k')
    splits = Splits('a', 'b', 'c', 'd')
    tasks = [
        Task(
            name=n, config=config, splits=splits, grid=dict(lr=[0.1, 0.2, 0.3])
        )
        for n in ('t1', 't2', 't3')
    ]
    p = Protocol(tasks, str(tmp_path), seeds=[0, 1], tune_seeds=[0, 1])
    everything = p.plan()
    assert len(everything['tune']) == 3 * 3 * 2
    assert len(everything['final']) == 3 * 2
    for phase in ('tune', 'final'):
        shards = [p.plan(shard=(i, 4))[phase] for i in range(4)]
        ids = [
            str(u) if phase == 'tune' else (u[0].name, u[1])
            for s in shards
            for u in s
        ]
        want = [
            str(u) if phase == 'tune' else (u[0].name, u[1])
            for u in everything[phase]
        ]
        assert sorted(ids) == sorted(want) and len(set(ids)) == len(ids)
    assert parse_shard('2/4') == (2, 4)
    for bad in ('4/4', '1', 'a/b', '-1/2'):
        with pytest.raises(ProtocolError, match='shard'):
            parse_shard(bad)
    # a one-point grid tunes nothing: finals only
    single = Task(name='s', config=config, splits=splits, grid={})
    p = Protocol([single], str(tmp_path / 'single'))
    assert p.tune_units() == [] and p.choice(single)['point'] == {}
    with pytest.raises(ProtocolError, match='folder'):
        Task(name='a/b', config=config, splits=splits)


def test_unit_config(tmp_path):
    """The benchmark config resolved for the task (GaPT's MoCo v3 CUB
    row), splits, data root, grid point, seed, no validation loop; a run
    killed mid-training resumes from its checkpoint."""
    config = rb.benchmark_config('mocov3', 'fgvc')
    task = Task(
        name='cub',
        config=config,
        splits=Splits('train', 'val', 'trainval', 'test'),
        grid=dict(lr=[0.1, 0.2], num_prompts=[3]),
        data_root='/data/cub',
        cfg_options={'task': 'cub', 'method': 'gapt'},
    )
    p = Protocol(
        [task],
        str(tmp_path),
        cfg_options={
            'train_cfg.max_epochs': 3,
            'optim_wrapper.optimizer.lr': 9.0,
        },
    )
    unit = Unit(task, 'tune', dict(lr=0.2, num_prompts=3), 7)
    cfg = p.build_config(unit)
    assert cfg.train_dataloader.dataset.split == 'train'
    assert cfg.test_dataloader.dataset.split == 'val'
    assert cfg.train_dataloader.dataset.data_root == '/data/cub'
    assert cfg.val_dataloader is None and cfg.val_cfg is None
    assert cfg.optim_wrapper.optimizer.lr == 0.2  # the point wins
    assert cfg.model.backbone.num_prompts == 3
    # the rest is the task's recipe row: GaPT, MoCo v3, CUB
    assert cfg.model.backbone.prompt_cfg.gate_init == 5.0
    assert cfg.model.head.num_classes == 200
    assert cfg.train_dataloader.dataset.name == 'cub'
    assert cfg.train_dataloader.batch_size == 64
    assert cfg.train_cfg.max_epochs == 3 and cfg.randomness.seed == 7
    assert cfg.work_dir == osp.join(
        str(tmp_path), 'cub', 'tune', 'lr0.2_np3', 'seed7'
    )
    assert cfg.resume is False
    final = p.build_config(Unit(task, 'final', dict(lr=0.2), 0))
    assert final.train_dataloader.dataset.split == 'trainval'
    assert final.test_dataloader.dataset.split == 'test'
    os.makedirs(cfg.work_dir)
    open(osp.join(cfg.work_dir, 'last_checkpoint'), 'w').close()
    assert p.build_config(unit).resume is True


# ------------------------------------------------------------ end to end
@pytest.fixture(scope='module')
def vtab_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data') / 'vtab-1k')
    for i, (task, n) in enumerate(VTAB_TASKS.items()):
        make_vtab(root, task, num_classes=n, seed=i)
    return root


@pytest.fixture(scope='module')
def fgvc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data') / 'fgvc'
    for i, name in enumerate(FGVC_TASKS):
        folder = str(root / FGVC_DATASETS[name]['folder'])
        FGVC_MAKERS[name](folder, seed=i)
        prep.main([name, folder])
    return str(root)


def vtab_argv(root, work_dir, *extra):
    return [
        '--benchmark',
        'vtab1k',
        '--method',
        'lspt',
        '--backbone',
        'mae',
        '--tasks',
        *VTAB_TASKS,
        *GRID,
        '--seeds',
        '0',
        '1',
        '--data-root',
        root,
        '--work-dir',
        work_dir,
        *extra,
        '--cfg-options',
        *as_cli(tiny_cfg_options('vtab1k', epochs=EPOCHS)),
    ]


def results_in(work_dir):
    return {
        osp.relpath(p, work_dir): open(p).read()
        for p in glob.glob(
            osp.join(work_dir, '*', '*', '*', 'seed*', 'result.json')
        )
    }


def test_vtab_protocol_choice_follows_val_and_killed_sweep_resumes(
    vtab_root, tmp_path, monkeypatch
):
    work_dir = str(tmp_path / 'bench')
    argv = vtab_argv(vtab_root, work_dir, '--write-recipes')
    # 1. a sweep killed (SIGKILL) after its first results
    proc = subprocess.Popen(
        [sys.executable, 'tools/run_benchmark.py', *argv],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    deadline = time.time() + 300
    while len(results_in(work_dir)) < 2 and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = results_in(work_dir)
    total = 2 * 2 + 2 * 2  # per task: 2 grid points + 2 final seeds
    assert 2 <= len(before) < total, 'the sweep must be killed midway'

    # 2. the same command resumes: only the missing runs train
    calls = []
    real = protocol_mod.train_and_evaluate

    def counting(cfg):
        calls.append(cfg.work_dir)
        return real(cfg)

    monkeypatch.setattr(protocol_mod, 'train_and_evaluate', counting)
    rows = rb.main(argv)
    after = results_in(work_dir)
    assert len(after) == total and len(calls) == total - len(before)
    for rel, text in before.items():  # finished runs untouched
        assert after[rel] == text
    for path in calls:
        assert (
            osp.relpath(osp.join(path, 'result.json'), work_dir) not in before
        )

    # 3. the choice follows the validation scores: lr=0 (cannot learn)
    # loses everywhere, and each choice is the best recorded score
    by_task = {r['task']: r for r in rows}
    assert set(by_task) == set(VTAB_TASKS)
    for task, row in by_task.items():
        choice = json.load(open(osp.join(work_dir, task, 'choice.json')))
        assert choice['point'] == {'lr': 0.5}, (task, choice)
        val = {
            pid: json.load(
                open(
                    osp.join(
                        work_dir, task, 'tune', pid, 'seed0', 'result.json'
                    )
                )
            )['score']
            for pid in ('lr0.0', 'lr0.5')
        }
        assert choice['scores'] == val
        assert val['lr0.5'] == 100.0 and val['lr0.0'] < 60.0, (task, val)
        assert row['val_score'] == val['lr0.5']
        tests = [
            json.load(
                open(
                    osp.join(
                        work_dir,
                        task,
                        'final',
                        'lr0.5',
                        f'seed{s}',
                        'result.json',
                    )
                )
            )['score']
            for s in (0, 1)
        ]
        assert row['tests'] == {0: tests[0], 1: tests[1]}
        assert row['test_mean'] == pytest.approx(sum(tests) / 2)
        assert min(tests) > 70.0

    # 4. summary: per task, group means (1 of each group's tasks), the
    # mean over tasks and over group means, as markdown and CSV
    text = open(osp.join(work_dir, 'summary.md')).read()
    assert (
        '| Structured | kitti | lr=0.5 | 100.00 | 100.00 ± 0.00 | 2 | '
        'done |' in text
    )
    assert '| **Specialized** | mean of 1/4 tasks |' in text
    assert '| **all** | mean of 2/19 tasks |' in text
    assert '| **all** | mean of 2/3 group means |' in text
    assert '- kitti: lr0.0 ' in text and 'lr0.5 **100.00**' in text
    rows_csv = list(csv.DictReader(open(osp.join(work_dir, 'summary.csv'))))
    kitti = [r for r in rows_csv if r['task'] == 'kitti'][0]
    assert (kitti['group'], kitti['lr'], kitti['n_seeds']) == (
        'Structured',
        '0.5',
        '2',
    )
    assert float(kitti['val_score']) == 100.0
    tuning = list(csv.DictReader(open(osp.join(work_dir, 'tuning.csv'))))
    assert len(tuning) == 4 and sum(int(r['chosen']) for r in tuning) == 2

    # 5. the chosen points as a recipe table the benchmark config reads
    table = json.load(open(osp.join(work_dir, 'recipes.json')))
    assert table['method'] == 'lspt' and table['run_id'] and table['date']
    assert table['run_id'] in table['rows'][0]['source']
    recipes = read_recipe_table(osp.join(work_dir, 'recipes.json'), 'lspt')
    row = recipes[('mae', 'vtab1k', 'kitti')]
    assert row['lr'] == 0.5 and row['num_prompts'] == 5  # GaPT's, untuned
    from lspt_mm.recipes import apply_task

    from mmengine.config import Config

    cfg = Config.fromfile(rb.benchmark_config('mae', 'vtab1k'))
    cfg.merge_from_dict(
        {
            'task': 'kitti',
            'benchmark.recipes': osp.join(work_dir, 'recipes.json'),
        }
    )
    assert apply_task(cfg, log=False)['source'].startswith('tuned')
    assert cfg.optim_wrapper.optimizer.lr == 0.5

    # 6. edit one recorded val score: the choice follows it, and that
    # task's finals are now missing (nothing reruns with --collect)
    path = osp.join(work_dir, 'kitti', 'tune', 'lr0.0', 'seed0', 'result.json')
    res = json.load(open(path))
    res['score'] = 100.0  # a tie with lr=0.5: the smaller lr wins
    json.dump(res, open(path, 'w'))
    calls.clear()
    rows = {r['task']: r for r in rb.main(argv + ['--collect'])}
    assert calls == []
    assert rows['kitti']['choice']['point'] == {'lr': 0.0}
    assert rows['kitti']['status'] == 'final 0/2 seeds'
    assert rows['diabetic_retinopathy']['status'] == 'done'

    # 7. results made with other settings are never mixed in
    other = vtab_argv(vtab_root, work_dir)
    other[other.index('train_cfg.max_epochs=4')] = 'train_cfg.max_epochs=3'
    with pytest.raises(SystemExit, match='other settings.*cfg_options'):
        rb.main(other)


def fgvc_argv(root, work_dir, *extra):
    return [
        '--benchmark',
        'fgvc',
        '--method',
        'gapt',
        '--backbone',
        'mocov3',
        '--tasks',
        *FGVC_TASKS,
        *FGVC_GRID,
        '--seeds',
        '0',
        '1',
        '--data-root',
        root,
        '--work-dir',
        work_dir,
        *extra,
        '--cfg-options',
        *as_cli(tiny_cfg_options('fgvc', epochs=EPOCHS, num_classes=4)),
    ]


def test_fgvc_protocol_sharded_over_two_machines(fgvc_root, tmp_path):
    """Two work dirs (two machines): tune shards, collect, final shards,
    collect. The result equals the choice rule on all val scores, and no
    run is done twice."""
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    rb.main(fgvc_argv(fgvc_root, a, '--phase', 'tune', '--shard', '0/2'))
    rb.main(fgvc_argv(fgvc_root, b, '--phase', 'tune', '--shard', '1/2'))
    ra, rb_ = results_in(a), results_in(b)
    assert len(ra) == len(rb_) == 2 and not set(ra) & set(rb_)
    # finals wait while a task's tuning is in the other work dir
    rows = rb.main(
        fgvc_argv(fgvc_root, a, '--phase', 'final', '--shard', '0/2')
    )
    assert all(r['choice'] is None for r in rows)
    assert {r['status'] for r in rows} == {'tuning 1/2'}
    for dst, src in ((a, b), (b, a)):
        rb.main(fgvc_argv(fgvc_root, dst, '--collect', src))
    rb.main(fgvc_argv(fgvc_root, a, '--phase', 'final', '--shard', '0/2'))
    rb.main(fgvc_argv(fgvc_root, b, '--phase', 'final', '--shard', '1/2'))
    rows = rb.main(fgvc_argv(fgvc_root, a, '--collect', b))
    assert len(results_in(a)) == 2 * 2 + 2 * 2
    finals_a = [k for k in ra if '/final/' in k]
    assert finals_a == []
    for r in rows:
        assert r['status'] == 'done' and r['choice']['point'] == {'lr': 0.2}, r
        assert (
            r['choice']['scores']['lr0.0']
            < r['choice']['scores']['lr0.2']
            == 100.0
        )
        assert r['test_mean'] > 70.0
    text = open(osp.join(a, 'summary.md')).read()
    assert '| **all** | mean of 2/5 tasks |' in text
    # GaPT's recipe: 100 prompts and each task's gate init stay (not on the
    # grid): the runs' dumped configs, one benchmark config for all tasks
    for task, gate in (('cub', 5.0), ('oxford_flowers', 10.0)):
        dumped = glob.glob(
            osp.join(
                a,
                task,
                'tune',
                'lr0.2',
                'seed0',
                'lspt_vit-b16-mocov3_fgvc.py',
            )
        ) + glob.glob(
            osp.join(
                b,
                task,
                'tune',
                'lr0.2',
                'seed0',
                'lspt_vit-b16-mocov3_fgvc.py',
            )
        )
        text = open(dumped[0]).read()
        assert f'gate_init={gate}' in text and 'num_prompts=100' in text
        assert f"task = '{task}'" in text


def test_configs_as_tasks_several_methods_one_dataset(fgvc_root, tmp_path):
    """The generic use: a task file naming one task per method on one
    dataset (a config of its own, or one config with the method as a task
    option), its split names, an lr grid (one task its own) and seeds."""
    lspt = osp.join(tmp_path, 'cub_lspt.py')  # a config of its own
    with open(lspt, 'w') as f:
        f.write(
            f"_base_ = [r'{rb.benchmark_config('mae', 'fgvc')}']\n"
            "task = 'cub'\n"
        )
    bench = rb.benchmark_config('mae', 'fgvc')
    task_file = tmp_path / 'tasks.py'
    root = osp.join(fgvc_root, 'CUB_200_2011')
    task_file.write_text(f"""
common = dict(group='CUB', splits=['train', 'val', 'trainval', 'test'],
              data_root=r'{root}')
tasks = [
    dict(name='lspt', config=r'{lspt}', **common),
    dict(name='vpt-deep', config=r'{lspt}',
         cfg_options={{'model.backbone.prompt_method': 'vpt_deep'}},
         **common),
    dict(name='gapt', config=r'{bench}', grid=dict(lr=[0.0, 0.2]),
         cfg_options={{'task': 'cub', 'method': 'gapt'}}, **common),
]
grid = dict(lr=[0.0, 0.5])
seeds = [0, 1]
""")
    work_dir = str(tmp_path / 'w')
    rows = rb.main(
        [
            '--task-file',
            str(task_file),
            '--work-dir',
            work_dir,
            '--cfg-options',
            *as_cli(tiny_cfg_options('fgvc', epochs=EPOCHS, num_classes=4)),
        ]
    )
    assert [r['task'] for r in rows] == ['lspt', 'vpt-deep', 'gapt']
    for r in rows:
        lr = 0.2 if r['task'] == 'gapt' else 0.5
        assert r['choice']['point'] == {'lr': lr}, r['task']
        assert sorted(r['tests']) == [0, 1] and r['test_mean'] > 70.0
    assert len(results_in(work_dir)) == 3 * (2 + 2)
    dumped = glob.glob(
        osp.join(
            work_dir,
            'vpt-deep',
            'final',
            'lr0.5',
            'seed0',
            '*',
            'vis_data',
            'config.py',
        )
    ) + glob.glob(
        osp.join(work_dir, 'vpt-deep', 'final', 'lr0.5', 'seed0', '*.py')
    )
    assert dumped and "prompt_method='vpt_deep'" in open(dumped[0]).read()
    text = open(osp.join(work_dir, 'summary.md')).read()
    assert '| CUB | lspt | lr=0.5 |' in text
    assert '| **all** | mean of 3/3 tasks |' in text


def test_summary_means_from_result_files(tmp_path):
    """Group means, the mean over tasks and the mean of group means, with
    a missing seed and untouched groups, from the result files alone (a
    stand-in training function returns fixed scores)."""
    from lspt_mm.tuning import SPLIT_SCHEMES, write_summary

    scores = {
        'cifar': {0: 30.0},
        'eurosat': {0: 90.0, 1: 80.0},
        'kitti': {0: 50.0, 1: 60.0},
        'clevr_count': {0: 70.0, 1: 80.0},
    }
    groups = {
        'cifar': 'Natural',
        'eurosat': 'Specialized',
        'kitti': 'Structured',
        'clevr_count': 'Structured',
    }
    tasks = [
        Task(
            n,
            rb.benchmark_config('mae', 'vtab1k'),
            SPLIT_SCHEMES['vtab1k'],
            group=groups[n],
            cfg_options={'task': n},
        )
        for n in scores
    ]

    def fake(cfg):
        task, _, _, seed = cfg.work_dir.split(os.sep)[-4:]
        return {'accuracy/top1': scores[task][int(seed[4:])]}

    p = Protocol(
        tasks, str(tmp_path), seeds=[0, 1], run_unit=fake, log=lambda *a: None
    )
    with pytest.raises(KeyError):  # a run that crashes writes no result
        p.run()
    first = Unit(tasks[0], 'final', {}, 0)
    assert osp.isfile(first.result_path(p.work_dir))
    scores['cifar'][1] = 0.0
    p.run()  # resumes; then cifar seed 1 goes missing again
    os.remove(Unit(tasks[0], 'final', {}, 1).result_path(p.work_dir))
    sizes = {'Natural': 7, 'Specialized': 4, 'Structured': 8}
    rows, text = write_summary(p, 'VTAB-1k', sizes)
    assert (
        "| Structured | kitti | config's values | – | 55.00 ± 7.07 | 2 "
        '| done |' in text
    )
    assert (
        '| Natural | cifar | ' in text
        and '30.00 ± 0.00 | 1 | final 1/2 seeds |' in text
    )
    assert '| **Structured** | mean of 2/8 tasks | | | **65.00** |' in text
    assert '| **all** | mean of 4/19 tasks | | | **61.25** |' in text
    assert '| **all** | mean of 3/3 group means | | | **60.00** |' in text
    table = list(csv.DictReader(open(tmp_path / 'summary.csv')))
    by = {(r['group'], r['task']): r for r in table}
    assert by[('Specialized', 'eurosat')]['test_std'] == '7.0711'
    assert by[('all', 'mean_of_tasks')]['test_mean'] == '61.2500'
    assert by[('all', 'mean_of_groups')]['n_seeds'] == '3'

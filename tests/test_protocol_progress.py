"""The tuning protocol's overall progress line: N/M runs done, time
elapsed and about how long the rest takes."""

import os
import os.path as osp

import lspt_mm  # noqa: F401
from lspt_mm.tuning import SPLIT_SCHEMES, Protocol, Task
from lspt_mm.tuning.progress import Progress, format_duration

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(
    REPO, 'configs', 'classification', 'lspt_vit-b16-mae_vtab1k.py'
)


def test_progress_counts_and_estimates_time_left():
    now = [100.0]
    lines = []
    p = Progress(4, lines.append, clock=lambda: now[0])
    assert p.seconds_left() is None
    p.step(False, 0.0)  # a result already there: no time
    assert lines[-1] == (
        '[protocol] progress: 1/4 runs done (0 trained '
        'now, 1 had a result); 0 s elapsed, unknown until '
        'a run has trained left'
    )
    now[0] += 600
    p.step(True, 600.0)
    now[0] += 1200
    p.step(True, 1200.0)
    # mean of the trained runs (900 s) x the one run left
    assert p.seconds_left() == 900.0
    assert lines[-1] == (
        '[protocol] progress: 3/4 runs done (2 trained '
        'now, 1 had a result); 30 min elapsed, about 15 min '
        'left'
    )
    assert [format_duration(s) for s in (5, 59.4, 61, 3600, 7500)] == [
        '5 s',
        '59 s',
        '1 min',
        '1 h 00 min',
        '2 h 05 min',
    ]


def test_protocol_run_prints_overall_progress(tmp_path):
    tasks = [
        Task(n, CONFIG, SPLIT_SCHEMES['vtab1k'], cfg_options={'task': n})
        for n in ('cifar', 'dtd')
    ]

    def fake(cfg):
        return {'accuracy/top1': 50.0}

    lines = []
    p = Protocol(
        tasks, str(tmp_path), seeds=[0, 1], run_unit=fake, log=lines.append
    )
    p.run()
    progress = [x for x in lines if x.startswith('[protocol] progress:')]
    assert [x.split(' runs done')[0].rsplit(' ', 1)[1] for x in progress] == [
        '1/4',
        '2/4',
        '3/4',
        '4/4',
    ]
    assert progress[-1].endswith('about 0 s left')
    # a rerun skips every run (results exist) and says so
    lines.clear()
    p.run()
    last = [x for x in lines if x.startswith('[protocol] progress:')][-1]
    assert '4/4 runs done (0 trained now, 4 had a result)' in last
    assert os.listdir(tmp_path)

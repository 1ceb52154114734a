#!/usr/bin/env python
"""Training curves (PNG) or the mean iteration time from a run's log:
mmpretrain's ``analyze_logs.py`` (works for segmentation runs too), given
work dirs or JSON logs. Library: ``lspt_mm/analysis/upstream_tools.py``.

    python tools/analysis_tools/analyze_logs.py plot_curve work_dirs/demo_ade20k \
        --keys loss decode.acc_seg --out curves.png
    python tools/analysis_tools/analyze_logs.py plot_curve WORK_DIR --keys mIoU --out miou.png
    python tools/analysis_tools/analyze_logs.py cal_train_time WORK_DIR
"""

import os.path as osp
import sys

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
from lspt_mm.analysis.upstream_tools import find_json_logs, run_tool  # noqa: E402


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ('plot_curve', 'cal_train_time'):
        sys.exit(__doc__)
    if '--out' in argv:
        import matplotlib

        matplotlib.use('Agg')  # a file, no window
    # the positional logs follow the sub-command, up to the first option
    end = next(
        (i for i, a in enumerate(argv[1:], 1) if a.startswith('-')), len(argv)
    )
    try:
        logs = find_json_logs(argv[1:end])
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    run_tool('analyze_logs', [argv[0]] + logs + argv[end:])


if __name__ == '__main__':
    main()

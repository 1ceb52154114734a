"""tools/analysis_tools/{analyze_logs,confusion_matrix}.py and
tools/misc/{print_config,browse_dataset}.py: mmpretrain's / mmseg's own
tools run on this project's configs and work dirs."""

import json
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

import lspt_mm  # noqa: F401
from lspt_mm.analysis.upstream_tools import find_json_logs, tool_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
for sub in ('analysis_tools', 'misc', 'dataset_converters'):
    sys.path.insert(0, osp.join(ROOT, 'tools', sub))
import analyze_logs  # noqa: E402
import browse_dataset  # noqa: E402
import confusion_matrix  # noqa: E402
import print_config  # noqa: E402
from make_synthetic_ade20k import make_synthetic_ade20k  # noqa: E402

SEG_DEMO = osp.join(
    ROOT,
    'configs',
    'segmentation',
    'lspt-vit-tiny_upernet_1xb4-300iter_synthetic-ade20k-64x64_demo.py',
)
CLS_DEMO = osp.join(
    ROOT,
    'configs',
    'classification',
    'lspt-vit-tiny_1xb16-10e_synthetic-cub-32x32_demo.py',
)
PNG = b'\x89PNG'


def _work_dir(tmp_path):
    """A work dir as mmengine leaves it: two runs, metrics per step."""
    for ts, loss0 in (('20260101_000000', 9.0), ('20260102_000000', 5.0)):
        vis = tmp_path / 'work' / ts / 'vis_data'
        vis.mkdir(parents=True)
        with open(vis / f'{ts}.json', 'w') as f:
            for it in range(1, 6):
                f.write(
                    json.dumps(
                        dict(
                            lr=0.01,
                            loss=loss0 / it,
                            time=0.5,
                            data_time=0.1,
                            iter=it * 10,
                            step=it * 10,
                        )
                    )
                    + '\n'
                )
            f.write(json.dumps(dict(mIoU=40.5, aAcc=80.0, step=50)) + '\n')
        (vis / 'scalars.json').write_text('{}\n')
    return str(tmp_path / 'work')


def test_analyze_logs_curves_from_a_work_dir(tmp_path, capsys):
    work = _work_dir(tmp_path)
    (log,) = find_json_logs([work])
    assert log.endswith(
        osp.join('20260102_000000', 'vis_data', '20260102_000000.json')
    )  # newest run
    out = str(tmp_path / 'curves.png')
    analyze_logs.main(
        ['plot_curve', work, '--keys', 'loss', 'mIoU', '--out', out]
    )
    with open(out, 'rb') as f:
        assert f.read(4) == PNG
    analyze_logs.main(['cal_train_time', work])
    assert 'average iter time: 0.5000 s/iter' in capsys.readouterr().out
    with pytest.raises(SystemExit, match='holds no training log'):
        analyze_logs.main(['plot_curve', str(tmp_path), '--out', out])


def test_print_config_resolves_task_and_method(capsys):
    cfg = osp.join(
        ROOT, 'configs', 'classification', 'lspt_vit-b16-mae_vtab1k.py'
    )
    print_config.main([cfg, '--cfg-options', 'task=dtd', 'method=gapt'])
    text = capsys.readouterr().out
    assert "task='dtd'" in text or 'task = ' in text
    assert 'num_classes=47' in text  # DTD's class count, not the default's
    assert "prompt_method='gapt'" in text
    with pytest.raises(SystemExit, match='config file not found'):
        browse_dataset.main(['nope.py'])


def test_browse_dataset_segmentation(tmp_path):
    # a runner earlier in the same process left its visualizer (one per
    # name per process): the tool must still write under --output-dir
    from mmseg.visualization import SegLocalVisualizer

    SegLocalVisualizer.get_instance(
        'visualizer', save_dir=str(tmp_path / 'elsewhere')
    )
    data = tmp_path / 'ade'
    make_synthetic_ade20k(str(data), num_train=3, num_val=1)
    out = tmp_path / 'browse'
    root = data / 'ADEChallengeData2016'
    browse_dataset.main(
        [
            SEG_DEMO,
            '--output-dir',
            str(out),
            '--not-show',
            '--cfg-options',
            f'train_dataloader.dataset.data_root={root}',
        ]
    )
    pics = sorted(os.listdir(out / 'vis_data' / 'vis_image'))
    assert len(pics) == 3 and pics[0].startswith('ADE_train_')
    with open(out / 'vis_data' / 'vis_image' / pics[0], 'rb') as f:
        assert f.read(4) == PNG


def test_browse_dataset_classification(tmp_path):
    """mmpretrain 1.2's browse_dataset on a classification config. Before:
    ``TypeError: adjust_bbox() missing 1 required positional argument:
    'renderer'`` (matplotlib 3.11 requires it)."""
    from fault_cases import demo_options, make_small_cub

    root = make_small_cub(tmp_path / 'data')
    opts = demo_options(root, epochs=1)
    out = tmp_path / 'browse'
    browse_dataset.main(
        [
            CLS_DEMO,
            '--output-dir',
            str(out),
            '--not-show',
            '-n',
            '2',
        ]
        + opts
    )
    pics = sorted(os.listdir(out))
    assert len(pics) == 2 and all(p.endswith('.jpg') for p in pics)
    from PIL import Image

    with Image.open(out / pics[0]) as im:
        assert im.size[0] > 100 and im.size[1] > 100


def test_adjust_bbox_patch_is_scoped_and_signature_guarded(monkeypatch):
    """The renderer is supplied only inside the tool's run, and only to an
    adjust_bbox that requires one."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib import _tight_bbox, transforms

    from lspt_mm import compat

    calls = []

    def requires(fig, bbox_inches, renderer, fixed_dpi=None):
        calls.append(renderer)

    def optional(fig, bbox_inches, fixed_dpi=None):
        calls.append('old')

    fig = plt.figure()
    box = transforms.Bbox([[0, 0], [1, 1]])
    for fn, expect in ((requires, 'RendererAgg'), (optional, 'str')):
        monkeypatch.setattr(_tight_bbox, 'adjust_bbox', fn)
        with compat.adjust_bbox_renderer_optional():
            _tight_bbox.adjust_bbox(fig, box)  # mmpretrain 1.2's call
        assert [type(c).__name__ for c in calls] == [expect]
        calls.clear()
        assert _tight_bbox.adjust_bbox is fn  # restored
    plt.close(fig)


def test_confusion_matrix_of_saved_predictions(tmp_path):
    # tools/test.py --out writes this list for classification configs
    preds = [
        dict(
            pred_label=torch.tensor([p]),
            gt_label=torch.tensor([g]),
            pred_score=torch.eye(6)[p],
            num_classes=6,
        )
        for g, p in [(0, 0), (1, 1), (1, 2), (3, 3), (5, 4)]
    ]
    pkl = tmp_path / 'preds.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump(preds, f)
    out, png = tmp_path / 'cm.pkl', tmp_path / 'cm.png'
    confusion_matrix.main(
        [
            CLS_DEMO,
            str(pkl),
            '--out',
            str(out),
            '--show-path',
            str(png),
            '--include-values',
        ]
    )
    with open(out, 'rb') as f:
        cm = np.asarray(pickle.load(f))
    assert cm.shape == (6, 6) and cm.sum() == 5
    assert cm[1, 2] == 1 and cm[5, 4] == 1 and cm[1, 1] == 1
    with open(png, 'rb') as f:
        assert f.read(4) == PNG
    # segmentation configs: mmseg ships no such tool for checkpoints
    with pytest.raises(ValueError, match='mmseg configs are not supported'):
        tool_path('confusion_matrix', 'mmseg')

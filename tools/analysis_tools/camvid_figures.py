"""CamVid pictures and tables from finished runs (docs/camvid.md):
per-class IoU (from each test log's full table), training curves (training
loss and, for runs validated during training, val mIoU, from each run's
scalars.json), and image / ground truth / prediction panels.

    python tools/analysis_tools/camvid_figures.py CONFIG \
        --runs linear=work_dirs/camvid_table/linear ... \
        --images 0001TP_008550 Seq05VD_f02370 --out docs/figures

Each run folder holds iter_N.pth and test/<stamp>/<stamp>.log (tools/test.py
--work-dir RUN/test); the model is built from CONFIG with the run's
--cfg-options (--options NAME=key=value,...) and the frozen backbone loaded
from its `pretrained` file, then the (trainable-only) checkpoint on top.
"""

import argparse
import glob
import json
import os.path as osp
import re

import cv2
import numpy as np
import torch

import lspt_mm  # noqa: F401
from lspt_mm.datasets.camvid import CAMVID_CLASSES, CAMVID_PALETTE


def per_class_iou(run_dir):
    """{class: IoU} from the last test log of a run (mmseg's table)."""
    logs = sorted(glob.glob(osp.join(run_dir, 'test', '*', '*.log')))
    if not logs:
        raise FileNotFoundError(f'no test log under {run_dir}/test')
    text = open(logs[-1]).read()
    out = {}
    for name in CAMVID_CLASSES:
        m = re.findall(r'\|\s*' + name + r'\s*\|\s*([\d.]+|nan)\s*\|', text)
        if m:
            out[name] = float(m[-1])
    return out


def curve(run_dir, key):
    """(steps, values) of ``key`` (``loss``, or ``mIoU`` of the val passes)
    in the run's last scalars.json."""
    files = glob.glob(osp.join(run_dir, '*', 'vis_data', 'scalars.json'))
    its, values = [], []
    for line in open(sorted(files)[-1]):
        d = json.loads(line)
        if key in d:
            its.append(d['step'])
            values.append(d[key])
    return its, values


def last_checkpoint(run_dir):
    """The run's ``iter_N.pth`` with the largest N."""
    paths = glob.glob(osp.join(run_dir, 'iter_*.pth'))
    if not paths:
        raise FileNotFoundError(f'no iter_*.pth under {run_dir}')
    return max(paths, key=lambda p: int(re.findall(r'iter_(\d+)', p)[-1]))


def colour(seg):
    """Palette colours of a label / prediction map; void (11) black."""
    pal = np.array(CAMVID_PALETTE + [[0, 0, 0]] * 245, np.uint8)
    return pal[seg][..., ::-1]  # BGR for cv2


def predict(config, ckpt, options, img_paths):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmseg.apis import inference_model
    from mmseg.registry import MODELS

    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    # mmseg's inference drops 'LoadAnnotations' only by that exact name
    cfg.test_pipeline = [
        t for t in cfg.test_pipeline if 'Annotations' not in t['type']
    ]
    model = MODELS.build(cfg.model)
    model.init_weights()
    load_checkpoint(
        model, ckpt, map_location='cpu', strict=False, logger='silent'
    )
    model.cfg = cfg
    model.eval()
    with torch.no_grad():
        return [
            inference_model(model, p).pred_sem_seg.data[0].numpy()
            for p in img_paths
        ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('config')
    ap.add_argument(
        '--runs',
        nargs='+',
        required=True,
        help='TITLE=RUN_DIR[=key:value,key:value]',
    )
    ap.add_argument('--data-root', default='data/camvid')
    ap.add_argument('--images', nargs='+', default=[])
    ap.add_argument('--out', default='docs/figures')
    ap.add_argument('--width', type=int, default=240)
    args = ap.parse_args()
    runs = []
    for r in args.runs:
        title, run_dir, *opt = r.split('=')
        options = {}
        for kv in opt[0].split(',') if opt else []:
            k, v = kv.split(':')
            try:
                v = float(v) if '.' in v else int(v)
            except ValueError:
                pass
            options[k] = v
        runs.append((title, run_dir, options))
    table = {t: per_class_iou(d) for t, d, _ in runs}
    print('| class | ' + ' | '.join(table) + ' |')
    print('|---' * (len(table) + 1) + '|')
    for c in CAMVID_CLASSES:
        print(
            f'| {c} | '
            + ' | '.join(f'{table[t].get(c, float("nan")):.2f}' for t in table)
            + ' |'
        )
    print(
        '| mean | '
        + ' | '.join(f'{np.mean(list(table[t].values())):.2f}' for t in table)
        + ' |'
    )
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    validated = [(t, d) for t, d, _ in runs if curve(d, 'mIoU')[0]]
    fig, axes = plt.subplots(
        1, 2 if validated else 1, figsize=(10 if validated else 5, 3), dpi=100
    )
    ax = axes[0] if validated else axes
    for t, d, _ in runs:
        its, losses = curve(d, 'loss')
        k = 9  # running mean over 9 logged points
        sm = np.convolve(losses, np.ones(k) / k, mode='valid')
        ax.plot(its[k - 1 :], sm, label=t)
    ax.set_xlabel('iteration')
    ax.set_ylabel('training loss (decode + 0.4 aux)')
    ax.legend(fontsize=7)
    if validated:
        for t, d in validated:
            its, miou = curve(d, 'mIoU')
            axes[1].plot(its, miou, marker='o', label=t)
        axes[1].set_xlabel('iteration')
        axes[1].set_ylabel('val mIoU (%)')
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(osp.join(args.out, 'camvid_loss.png'))
    print('->', osp.join(args.out, 'camvid_loss.png'))
    if not args.images:
        return
    paths = [osp.join(args.data_root, 'test', n + '.png') for n in args.images]
    cols = [
        [cv2.imread(p) for p in paths],
        [
            colour(
                cv2.imread(
                    osp.join(args.data_root, 'testannot', n + '.png'),
                    cv2.IMREAD_UNCHANGED,
                )
            )
            for n in args.images
        ],
    ]
    titles = ['image', 'ground truth']
    for t, d, options in runs:
        ckpt = last_checkpoint(d)
        cols.append(
            [colour(s) for s in predict(args.config, ckpt, options, paths)]
        )
        titles.append(t)
    w = args.width
    h = w * 3 // 4
    rows = []
    for i in range(len(paths)):
        rows.append(
            np.concatenate(
                [
                    cv2.resize(c[i], (w, h), interpolation=cv2.INTER_NEAREST)
                    for c in cols
                ],
                1,
            )
        )
    head = np.full((22, w * len(cols), 3), 255, np.uint8)
    for j, t in enumerate(titles):
        cv2.putText(
            head,
            t,
            (j * w + 4, 16),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    grid = np.concatenate([head] + rows, 0)
    out = osp.join(args.out, 'camvid_predictions.jpg')
    cv2.imwrite(out, grid, [cv2.IMWRITE_JPEG_QUALITY, 80])
    print('->', out, grid.shape)


if __name__ == '__main__':
    main()

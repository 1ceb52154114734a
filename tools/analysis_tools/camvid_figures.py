"""CamVid pictures and tables from finished runs (docs/camvid.md):
per-class IoU (from each test log's full table), training curves (training
loss and, for runs validated during training, val mIoU, from each run's
scalars.json), and image / ground truth / prediction panels.

    python tools/analysis_tools/camvid_figures.py \
        --runs "head only=work_dirs/camvid/linear" "LSPT=work_dirs/camvid/lspt" \
        --images 0001TP_008550 Seq05VD_f02370 --out docs/figures

Each run folder is a ``tools/train.py`` work dir: iter_N.pth, the config
mmengine dumped there (the run's whole truth, its --cfg-options merged) and
test/<stamp>/<stamp>.log (``tools/test.py --work-dir RUN/test``). The model
is built from that config (or from CONFIG for a folder without one, plus
the run's ``key:value`` options) and loaded through the checkpoint policy
(``lspt_mm.apis.init_model``): the frozen backbone from its `pretrained`
file, then the (trainable-only) checkpoint; a checkpoint that does not fit
the config is refused, never drawn half random.
"""

import argparse
import glob
import json
import os.path as osp
import re

import cv2
import numpy as np
import torch

from lspt_mm.apis import inference, init_model
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


def run_config(run_dir, default):
    """The config mmengine dumped into the run's work dir, else ``default``."""
    dumped = glob.glob(osp.join(run_dir, '*.py'))
    if len(dumped) == 1:
        return dumped[0]
    if default is None:
        raise FileNotFoundError(
            f'{run_dir} holds {len(dumped)} config files (*.py), not one: '
            "give the run's config as CONFIG"
        )
    return default


def predict(config, ckpt, options, img_paths):
    """Predicted label maps of ``img_paths`` by the run's model."""
    model = init_model(config, ckpt, cfg_options=options)
    # mmseg's inference drops 'LoadAnnotations' only by that exact name
    model.cfg.test_pipeline = [
        t for t in model.cfg.test_pipeline if 'Annotations' not in t['type']
    ]
    with torch.no_grad():
        return [
            inference(model, p).pred_sem_seg.data[0].cpu().numpy()
            for p in img_paths
        ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        'config',
        nargs='?',
        help='config of run folders that hold none (tools/train.py dumps '
        'one into each work dir)',
    )
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
        runs.append(
            (title, run_dir, run_config(run_dir, args.config), options)
        )
    table = {t: per_class_iou(d) for t, d, _, _ in runs}
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
        + ' | '.join(
            f'{np.nanmean(list(table[t].values())):.2f}' for t in table
        )
        + ' |'
    )
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    validated = [(t, d) for t, d, _, _ in runs if curve(d, 'mIoU')[0]]
    fig, axes = plt.subplots(
        1, 2 if validated else 1, figsize=(10 if validated else 5, 3), dpi=100
    )
    ax = axes[0] if validated else axes
    for t, d, _, _ in runs:
        its, losses = curve(d, 'loss')
        k = max(1, min(9, len(losses)))  # running mean, 9 logged points
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
    for t, d, config, options in runs:
        ckpt = last_checkpoint(d)
        cols.append([colour(s) for s in predict(config, ckpt, options, paths)])
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

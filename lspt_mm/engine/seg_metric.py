"""``ConciseIoUMetric``: mmseg's ``IoUMetric`` with a short per-class
summary on the console and the full table in the log file."""

import numpy as np
from prettytable import PrettyTable

from mmengine.logging import MMLogger
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from .console import file_only


@METRICS.register_module()
class ConciseIoUMetric(IoUMetric):
    """mmseg's ``IoUMetric`` (same arguments, same metrics). Its per-class
    table of every class (150 rows for ADE20K, ``nan`` for each class that
    neither occurs nor is predicted) goes to the log file only. The console
    gets the classes with ground-truth pixels in the evaluated images, by
    IoU: all of them when there are at most ``2 * summary_rows``, else the
    best and worst ``summary_rows``; plus how many classes were predicted
    without occurring (IoU 0, they count in mIoU).

    Args:
        summary_rows (int): rows shown at each end of a long summary.
        per_class (bool): also return each class's IoU (%) as
            ``IoU.<class>`` (classes whose IoU is defined), so the tuning
            protocol records it and tabulates its mean over seeds. Off by
            default (ADE20K would add 150 keys to every log line).
    """

    def __init__(self, summary_rows=5, per_class=False, **kwargs):
        super().__init__(**kwargs)
        self.summary_rows = summary_rows
        self.per_class = per_class

    def compute_metrics(self, results):
        logger = MMLogger.get_current_instance()
        with file_only(logger):
            metrics = super().compute_metrics(results)
        if not self.format_only and results:
            logger.info(self.summary(results, logger.log_file))
            if self.per_class:
                metrics.update(self.class_ious(results))
        return metrics

    def class_ious(self, results):
        """``{'IoU.<class>': IoU in %}`` of per-image ``results``, classes
        with a defined IoU (occurring or predicted) only."""
        intersect, union = (sum(r) for r in list(zip(*results))[:2])
        iou = np.asarray(intersect, dtype=np.float64) / np.asarray(
            union, dtype=np.float64
        )
        return {
            f'IoU.{name}': round(float(v) * 100, 2)
            for name, v in zip(self.dataset_meta['classes'], iou)
            if np.isfinite(v)
        }

    def summary(self, results, log_file=None):
        """The console summary (a string) of per-image ``results``
        (intersection, union, predicted and labelled areas per class)."""
        intersect, union, pred, label = (sum(r) for r in zip(*results))
        per_class = self.total_area_to_metrics(
            intersect,
            union,
            pred,
            label,
            self.metrics,
            self.nan_to_num,
            self.beta,
        )
        per_class.pop('aAcc', None)
        names = self.dataset_meta['classes']
        label = np.asarray(label)
        pred = np.asarray(pred)
        present = np.flatnonzero(label > 0)
        key = 'IoU' if 'IoU' in per_class else next(iter(per_class))
        order = sorted(
            present,
            key=lambda i: (
                -np.nan_to_num(np.asarray(per_class[key])[i], nan=-1.0)
            ),
        )
        n = self.summary_rows
        shown = (
            order if len(order) <= 2 * n else order[:n] + [None] + order[-n:]
        )
        table = PrettyTable()
        table.field_names = ['Class'] + list(per_class)
        for i in shown:
            if i is None:
                table.add_row(['...'] + ['' for _ in per_class])
                continue
            table.add_row(
                [names[i]]
                + [
                    f'{np.round(float(v[i]) * 100, 2):.2f}'
                    for v in per_class.values()
                ]
            )
        predicted_only = int(((pred > 0) & (label == 0)).sum())
        head = (
            f'per class results: {len(present)} of {len(names)} classes '
            'occur in the ground truth'
            + (
                f' (best and worst {n} by {key} shown)'
                if len(order) > 2 * n
                else ''
            )
            + f'; full table in {log_file or "the log file"}'
        )
        tail = (
            f'{predicted_only} class(es) predicted but absent from the '
            f'ground truth (IoU 0, counted in mIoU)'
            if predicted_only
            else ''
        )
        return '\n'.join(x for x in (head, table.get_string(), tail) if x)

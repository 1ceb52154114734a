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
    """

    def __init__(self, summary_rows=5, **kwargs):
        super().__init__(**kwargs)
        self.summary_rows = summary_rows

    def compute_metrics(self, results):
        logger = MMLogger.get_current_instance()
        with file_only(logger):
            metrics = super().compute_metrics(results)
        if not self.format_only and results:
            logger.info(self.summary(results, logger.log_file))
        return metrics

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

"""VTAB-1k in the widely shared image-folder format."""

import os.path as osp

from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .benchmarks import VTAB_NUM_CLASSES, VTAB_SPLITS
from .errors import NamedFileErrorsMixin, check_on_error
from .listfile import (
    check_files_exist,
    check_label_range,
    read_split_list,
    require_dir,
)


@DATASETS.register_module()
class VTAB1k(NamedFileErrorsMixin, CustomDataset):
    """One VTAB-1k task in the image-folder release (NOAH / SSF style)::

        vtab-1k/                      <- data_root
        ├── caltech101/               <- task
        │   ├── images/...
        │   ├── train800.txt          lines "images/xxx.jpg 17"
        │   ├── val200.txt
        │   ├── train800val200.txt
        │   └── test.txt
        ├── cifar/
        └── ...

    Paths in the lists are relative to the task folder; labels are 0-based.
    On load: the root, the task folder and the list must exist (error naming
    each), every label must lie in ``[0, num_classes)`` (the task's class
    count, see ``lspt_mm.datasets.benchmarks.VTAB_NUM_CLASSES``; otherwise
    ``DataFileError`` naming the list, the values and the lines), and with
    ``check_files`` every listed image must exist.

    Args:
        data_root (str): the ``vtab-1k`` folder.
        task (str): task folder name, e.g. ``'caltech101'``.
        split (str): ``train800``, ``val200``, ``train800val200`` (the
            protocol's training set) or ``test``.
        num_classes (int, optional): overrides the task's class count (for a
            task not in the table, or tiny test data).
        check_files (bool): check that every listed image exists.
        on_error (str): ``'raise'`` (default): a label outside
            ``[0, num_classes)`` raises ``DataFileError``; ``'skip'``: such
            samples are left out, with a warning naming them.
    """

    def __init__(
        self,
        data_root,
        task,
        split='train800val200',
        num_classes=None,
        check_files=True,
        on_error='raise',
        metainfo=None,
        **kwargs,
    ):
        self.on_error = check_on_error(on_error)
        if split not in VTAB_SPLITS:
            raise ValueError(
                f'VTAB-1k split must be one of {VTAB_SPLITS}, got {split!r}'
            )
        if num_classes is None:
            if task not in VTAB_NUM_CLASSES:
                raise KeyError(
                    f'unknown VTAB-1k task {task!r}; known tasks: '
                    f'{sorted(VTAB_NUM_CLASSES)} (pass num_classes for '
                    'another task)'
                )
            num_classes = VTAB_NUM_CLASSES[task]
        elif (
            task in VTAB_NUM_CLASSES and num_classes != VTAB_NUM_CLASSES[task]
        ):
            # an explicit choice (a subset, tiny data): information, not a
            # warning; labels are still checked against it
            MMLogger.get_current_instance().info(
                f'VTAB1k: num_classes={num_classes} overrides the '
                f'{VTAB_NUM_CLASSES[task]} classes of task {task!r}'
            )
        require_dir(
            data_root,
            'VTAB-1k root',
            'Set data_root to the folder holding the task folders '
            '(e.g. data/vtab-1k).',
        )
        task_dir = osp.join(data_root, task)
        require_dir(
            task_dir,
            f'VTAB-1k task folder of {task!r}',
            f'Expected {data_root}/{task}/ with train800.txt, '
            'val200.txt, train800val200.txt, test.txt.',
        )
        self.task = task
        self.split = split
        self.num_classes = num_classes
        self.check_files = check_files
        metainfo = metainfo or dict(
            classes=tuple(str(i) for i in range(num_classes))
        )
        super().__init__(
            data_root=task_dir,
            data_prefix='',
            ann_file=f'{split}.txt',
            metainfo=metainfo,
            **kwargs,
        )

    def load_data_list(self):
        samples = check_label_range(
            read_split_list(self.ann_file, locations=True),
            self.num_classes,
            self.ann_file,
            f'VTAB-1k task {self.task!r} ({self.num_classes} classes)',
            self.on_error,
        )
        where = [loc for _, _, loc in samples]
        samples = [(rel, label) for rel, label, _ in samples]
        if self.check_files:
            check_files_exist(self.img_prefix, samples, self.ann_file)
        found = len({label for _, label in samples})
        if found < self.num_classes:
            MMLogger.get_current_instance().info(
                f'VTAB1k {self.task}/{self.split}: {found} of '
                f'{self.num_classes} classes occur in {self.ann_file}'
            )
        return [
            dict(
                img_path=osp.join(self.img_prefix, rel),
                gt_label=label,
                list_entry=loc,
            )
            for (rel, label), loc in zip(samples, where)
        ]

    def extra_repr(self):
        return [
            f'Task: \t{self.task}',
            f'Split: \t{self.split}',
            f'Task folder: \t{self.data_root}',
        ]

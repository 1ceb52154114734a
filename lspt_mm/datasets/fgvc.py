"""The five FGVC datasets (CUB-200-2011, NABirds, Oxford Flowers, Stanford
Dogs, Stanford Cars) as official archive folders plus VPT-style split lists.
"""

import os.path as osp

from mmengine.logging import MMLogger
from mmpretrain.datasets import CustomDataset
from mmpretrain.registry import DATASETS

from .benchmarks import FGVC_DATASETS, FGVC_SPLITS
from .errors import DataFileError, NamedFileErrorsMixin, check_on_error
from .listfile import (
    _short_list,
    check_files_exist,
    check_label_range,
    first_existing,
    read_split_list,
    require_dir,
)

PREPARE_HINT = (
    'Build the split lists from the official folders with '
    '`python tools/dataset_converters/prepare_fgvc_splits.py '
    "{name} {root}`, or copy VPT's train.json/val.json/"
    'test.json into {root}.'
)


def _class_names(name, num_classes):
    """Class names where they are known and complete, else '0'..'C-1'."""
    try:
        from mmpretrain.datasets import categories

        known = {
            'cub': categories.CUB_CATEGORIES,
            'stanford_cars': categories.STANFORDCARS_CATEGORIES,
        }.get(name)
    except ImportError:  # pragma: no cover
        known = None
    if known is not None and len(known) == num_classes:
        return tuple(known)
    return tuple(str(i) for i in range(num_classes))


@DATASETS.register_module()
class FGVC(NamedFileErrorsMixin, CustomDataset):
    """One FGVC dataset with train / val / test split lists, VPT style::

        CUB_200_2011/          <- data_root (the official archive's folder)
        ├── images/...         <- image folder (VPT's), see below
        ├── train.json         {"001.Black_footed_Albatross/x.jpg": 0}
        ├── val.json           (or train.txt / val.txt / test.txt with
        └── test.json           lines "relative/path label")

    Image paths in the lists are relative to the image folder VPT used:
    ``images/`` (CUB, NABirds), ``Images/`` (Stanford Dogs), the root
    itself (Oxford Flowers: ``jpg/...``; Stanford Cars: ``car_ims/...`` or
    ``cars_train/...``). ``tools/dataset_converters/prepare_fgvc_splits.py``
    writes the lists from the official files (fixed-seed 90/10 train/val
    split of the official train set where there is no official val).

    Labels: as VPT's loader does, label values are mapped to ``0..C-1`` in
    sorted order; the mapping is taken over all split lists in the folder,
    so every split shares it (0-based, 1-based and NABirds' sparse class
    ids all work). The number of distinct labels must equal the dataset's
    class count (CUB 200, NABirds 555, Flowers 102, Dogs 120, Cars 196).
    When there are more, and all but a few values form the class range
    ``0..C-1`` (or ``1..C``), those few are out of range: ``DataFileError``
    naming the lists, the values and their entries (``on_error='skip'``
    leaves those samples out, with a warning); any other count mismatch is
    a ``DataFileError`` naming the lists and the labels found.

    Args:
        data_root (str): the dataset's folder.
        name (str): one of ``cub``, ``nabirds``, ``oxford_flowers``,
            ``stanford_dogs``, ``stanford_cars``.
        split (str): ``train``, ``val``, ``trainval`` (train + val) or
            ``test``.
        ann_file (str, optional): a list to use instead of
            ``<data_root>/<split>.json`` (or ``.txt``).
        data_prefix (str, optional): image folder, relative to data_root;
            defaults to VPT's for ``name``.
        num_classes (int, optional): overrides the class count (tiny test
            data, other datasets in the same layout).
        check_files (bool): check that every listed image exists.
        on_error (str): ``'raise'`` (default) or ``'skip'`` for labels out
            of the class range (see above) and for unreadable images
            (``DataFileError`` naming the file and its list entry).
    """

    def __init__(
        self,
        data_root,
        name,
        split='train',
        ann_file=None,
        data_prefix=None,
        num_classes=None,
        check_files=True,
        on_error='raise',
        metainfo=None,
        lazy_init=False,
        **kwargs,
    ):
        self.on_error = check_on_error(on_error)
        if name not in FGVC_DATASETS:
            raise KeyError(
                f'unknown FGVC dataset {name!r}; known: '
                f'{sorted(FGVC_DATASETS)}'
            )
        if split not in FGVC_SPLITS:
            raise ValueError(
                f'FGVC split must be one of {FGVC_SPLITS}, got {split!r}'
            )
        spec = FGVC_DATASETS[name]
        if num_classes is None:
            num_classes = spec['num_classes']
        elif num_classes != spec['num_classes']:
            # an explicit choice (a subset, tiny data): information, not a
            # warning; labels are still checked against it
            MMLogger.get_current_instance().info(
                f'FGVC: num_classes={num_classes} overrides the '
                f'{spec["num_classes"]} classes of {spec["title"]}'
            )
        require_dir(
            data_root,
            f'{spec["title"]} root',
            f'Expected the official {spec["folder"]}/ folder.',
        )
        hint = PREPARE_HINT.format(name=name, root=data_root)
        self.name = name
        self.split = split
        self.num_classes = num_classes
        self.check_files = check_files
        # the split lists of this folder (the label mapping is shared)
        self.split_files = {}
        for s in ('train', 'val', 'test'):
            path = first_existing(data_root, [s])
            if path is not None:
                self.split_files[s] = path
        if ann_file is not None:
            ann_files = [
                ann_file
                if osp.isabs(ann_file)
                else osp.join(data_root, ann_file)
            ]
            if not osp.isfile(ann_files[0]):
                raise FileNotFoundError(
                    f'Split list {ann_files[0]!r} does not exist. {hint}'
                )
        else:
            parts = ('train', 'val') if split == 'trainval' else (split,)
            ann_files = []
            for s in parts:
                if s not in self.split_files:
                    raise FileNotFoundError(
                        f'Split list {osp.join(data_root, s)}.json (or '
                        f'.txt) does not exist. {hint}'
                    )
                ann_files.append(self.split_files[s])
        self.ann_files = ann_files
        if data_prefix is None:
            data_prefix = spec['img_dir']
        require_dir(
            osp.join(data_root, data_prefix), f'{spec["title"]} image folder'
        )
        super().__init__(
            data_root=data_root,
            data_prefix=data_prefix,
            ann_file=ann_files[0],
            metainfo=metainfo,
            lazy_init=True,
            **kwargs,
        )
        if metainfo is None:
            self._metainfo['classes'] = _class_names(name, num_classes)
        if not lazy_init:
            self.full_init()

    def load_data_list(self):
        lists = {p: read_split_list(p, locations=True) for p in self.ann_files}
        # the label mapping spans every split list of the folder
        others = {
            p: read_split_list(p, locations=True)
            for p in set(self.split_files.values()) - set(lists)
        }
        values = sorted(
            {s[1] for ss in (*lists.values(), *others.values()) for s in ss}
        )
        if len(values) != self.num_classes:
            values = self._check_out_of_range(lists, others, values)
        to_index = {v: i for i, v in enumerate(values)}
        data_list = []
        for path, samples in lists.items():
            if self.check_files:
                check_files_exist(self.img_prefix, samples, path)
            data_list.extend(
                dict(
                    img_path=osp.join(self.img_prefix, rel),
                    gt_label=to_index[label],
                    list_entry=where,
                )
                for rel, label, where in samples
                if label in to_index
            )
        return data_list

    def _check_out_of_range(self, lists, others, values):
        """More distinct labels than classes: when all but a few values
        form ``0..C-1`` (or ``1..C``), name those few (raise, or drop their
        samples from ``lists`` with ``on_error='skip'``); otherwise raise.
        Returns the label values kept."""
        num = self.num_classes
        where = sorted([*lists, *others])
        for base in (0, 1):
            inside = [v for v in values if base <= v < base + num]
            if len(inside) == num and len(values) > num:
                break
        else:
            raise DataFileError(
                f'{self.name}: the split lists {where} hold {len(values)} '
                f'distinct labels, but the dataset has {num} classes (labels '
                f'found: {_short_list(values)}). Wrong lists for this '
                'dataset, or set num_classes for a subset?'
            )
        mapped = (
            f'; labels 1..{num} are mapped to 0..{num - 1}' if base else ''
        )
        what = f'{FGVC_DATASETS[self.name]["title"]} ({num} classes{mapped})'
        for path, samples in {**others, **lists}.items():
            kept = check_label_range(
                samples, num, path, what, self.on_error, low=base
            )
            if path in lists:
                lists[path] = kept
        return inside

    def extra_repr(self):
        return [
            f'Dataset: \t{FGVC_DATASETS[self.name]["title"]}',
            f'Split: \t{self.split}',
            f'Lists: \t{self.ann_files}',
            f'Root of dataset: \t{self.data_root}',
        ]

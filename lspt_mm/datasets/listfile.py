"""Reading and checking split lists ("relative/path label" text lines or
VPT-style JSON ``{"relative/path": label}``)."""

import json
import logging
import os
import os.path as osp

from mmengine.logging import print_log

from .errors import DataFileError


def require_dir(path, what, hint=''):
    """Raise FileNotFoundError naming ``path`` unless it is a directory."""
    if not osp.isdir(path):
        raise FileNotFoundError(
            f'{what} {path!r} does not exist or is not a '
            f'directory.{" " + hint if hint else ""}'
        )


def require_file(path, what, hint=''):
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{what} {path!r} does not exist.{" " + hint if hint else ""}'
        )


def read_split_list(path, locations=False):
    """Returns ``[(relative_path, int_label), ...]`` from a text list (lines
    ``relative/path label``; the label is the last field) or a JSON file
    (an object mapping relative path to label, as VPT's FGVC splits).
    ``locations=True``: ``(relative_path, int_label, where)`` triples, where
    ``where`` is ``'list.txt:LINE'`` or ``"list.json: entry 'path'"``."""
    require_file(path, 'Split list')
    if path.endswith('.json'):
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}: not valid JSON ({e})') from None
        if not isinstance(data, dict):
            raise ValueError(
                f'{path}: expected a JSON object mapping image '
                f'path to label, got {type(data).__name__}'
            )
        items = list(data.items())
        where = [f'{path}: entry {k!r}' for k, _ in items]
    else:
        items, where = [], []
        with open(path) as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                parts = line.rsplit(maxsplit=1)
                if len(parts) != 2:
                    raise ValueError(
                        f'{path}:{lineno}: expected '
                        f'"relative/path label", got {line!r}'
                    )
                items.append((parts[0], parts[1]))
                where.append(f'{path}:{lineno}')
    samples = []
    for (rel, label), loc in zip(items, where):
        try:
            label = int(label)
        except (TypeError, ValueError):
            raise ValueError(
                f'{loc}: label {label!r} is not an integer'
            ) from None
        samples.append((rel, label, loc) if locations else (rel, label))
    if not samples:
        raise ValueError(f'Split list {path!r} is empty.')
    return samples


def check_label_range(
    samples, num_classes, list_path, what, on_error, low=0, max_shown=5
):
    """Labels must lie in ``[low, low + num_classes)`` (``low=0``: what the
    classification loss indexes). ``samples``: ``(relative_path, label,
    where)`` triples of ``list_path``; ``what`` names the dataset and its
    class count for the message. Out-of-range samples raise
    ``DataFileError`` naming the list, the offending values and the first
    entries (file:line), or with ``on_error='skip'`` are dropped with one
    warning saying the same.
    Returns the kept samples."""
    high = low + num_classes
    bad = [s for s in samples if not low <= s[1] < high]
    if not bad:
        return samples
    values = sorted({label for _, label, _ in bad})
    shown = '; '.join(
        f'{where}: {label}'
        if repr(rel) in where
        else f'{where} ({rel!r}): {label}'
        for rel, label, where in bad[:max_shown]
    )
    more = f'; and {len(bad) - max_shown} more' if len(bad) > max_shown else ''
    message = (
        f'{list_path}: {len(bad)} of {len(samples)} labels are outside '
        f'[{low}, {high}) for {what}: values {_short_list(values)}. '
        f'First: {shown}{more}'
    )
    if on_error == 'skip':
        print_log(
            f'{message}; skipping these {len(bad)} samples',
            logger='current',
            level=logging.WARNING,
        )
        return [s for s in samples if low <= s[1] < high]
    raise DataFileError(
        message + ". Fix the list, or set on_error='skip' "
        'on the dataset to leave these samples out.'
    )


def _short_list(values, n=10):
    text = ', '.join(str(v) for v in values[:n])
    return text + (f', ... ({len(values)} values)' if len(values) > n else '')


def check_files_exist(img_root, samples, list_path, max_shown=5):
    """Raise FileNotFoundError naming missing listed images (and the list)."""
    missing = [
        rel for rel, *_ in samples if not osp.isfile(osp.join(img_root, rel))
    ]
    if missing:
        shown = ', '.join(
            repr(osp.join(img_root, m)) for m in missing[:max_shown]
        )
        more = (
            f' and {len(missing) - max_shown} more'
            if len(missing) > max_shown
            else ''
        )
        raise FileNotFoundError(
            f'{len(missing)} of {len(samples)} images listed in '
            f'{list_path!r} do not exist: {shown}{more}. Paths in the list '
            f'are relative to {img_root!r}.'
        )


def first_existing(root, stems, exts=('.json', '.txt')):
    """First ``root/stem.ext`` that exists, else None."""
    for stem in stems:
        for ext in exts:
            path = osp.join(root, stem + ext)
            if os.path.isfile(path):
                return path
    return None

"""The error every data check raises, and the raise-or-skip policy shared by
the loaders (``on_error='raise'`` / ``'skip'``)."""

import logging

from mmengine.logging import print_log


class DataFileError(RuntimeError, ValueError):
    """A data file that cannot be used: unreadable, wrong size, or holding
    labels outside the class range. The message names the file(s) and the
    offending values. (A ``ValueError`` too, so code that caught the older
    label-range ``ValueError`` of ``VTAB1k`` still does.)"""


ON_ERROR = ('raise', 'skip')


def check_on_error(on_error):
    """``on_error`` itself, or a ``ValueError`` naming the option."""
    if on_error not in ON_ERROR:
        raise ValueError(
            f"on_error must be 'raise' or 'skip', got {on_error!r}"
        )
    return on_error


def fail(on_error, message):
    """``on_error='raise'``: raise ``DataFileError(message)``; ``'skip'``:
    log ``message`` as a warning (``...; skipping this sample``) and return
    None, the transforms' "drop this sample"."""
    if on_error == 'skip':
        print_log(
            f'{message}; skipping this sample',
            logger='current',
            level=logging.WARNING,
        )
        return None
    raise DataFileError(message)


def unreadable_image_reason(path):
    """Why the image file ``path`` cannot be decoded (``'empty file (0
    bytes)'``, ``'not a decodable image'``, ...), or None when it decodes."""
    import mmcv

    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        return f'cannot open it ({err.strerror or err})'
    if not data:
        return 'empty file (0 bytes)'
    try:
        img = mmcv.imfrombytes(data)
    except Exception as err:  # cv2.error on some corrupt files
        return f'not a decodable image ({type(err).__name__})'
    if img is None or img.size == 0:
        return 'not a decodable image'
    return None


class NamedFileErrorsMixin:
    """For list-based image datasets (``on_error``, ``img_path`` and an
    optional ``list_entry`` in each data info): a sample whose pipeline
    fails on an unreadable image raises ``DataFileError`` naming the file
    and its list entry (``on_error='skip'``: a warning, and mmengine fetches
    another sample), instead of the decoder's bare error. Errors of a
    readable file are re-raised unchanged."""

    def prepare_data(self, idx):
        try:
            return super().prepare_data(idx)
        except DataFileError:
            raise
        except Exception:
            info = self.get_data_info(idx)
            path = info.get('img_path')
            reason = unreadable_image_reason(path) if path else None
            if reason is None:
                raise
            entry = info.get('list_entry')
            where = f' (list entry {entry})' if entry else ''
            return fail(
                getattr(self, 'on_error', 'raise'),
                f'cannot read image {path!r}{where}: {reason}',
            )

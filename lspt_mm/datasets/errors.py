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
        raise ValueError(f"on_error must be 'raise' or 'skip', got "
                         f'{on_error!r}')
    return on_error


def fail(on_error, message):
    """``on_error='raise'``: raise ``DataFileError(message)``; ``'skip'``:
    log ``message`` as a warning (``...; skipping this sample``) and return
    None, the transforms' "drop this sample"."""
    if on_error == 'skip':
        print_log(f'{message}; skipping this sample', logger='current',
                  level=logging.WARNING)
        return None
    raise DataFileError(message)

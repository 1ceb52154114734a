"""``RunStoppedError``: the base of the errors with which this project's
hooks and runner stop (or refuse) a run on purpose. Their message says all
there is to say, so ``tools/train.py`` / ``tools/test.py`` print it alone
and exit with status 1 (:func:`lspt_mm.engine.runner_utils.
exit_on_checkpoint_error`), instead of a traceback."""


class RunStoppedError(RuntimeError):
    """A run stopped or refused on purpose; the message explains why."""

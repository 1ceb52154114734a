"""Overall progress of a protocol run: runs done of all, time left."""

import time


def format_duration(seconds):
    """``'40 s'``, ``'12 min'``, ``'2 h 05 min'``."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f'{seconds:.0f} s'
    minutes = int(round(seconds / 60.0))
    if minutes < 60:
        return f'{minutes} min'
    return f'{minutes // 60} h {minutes % 60:02d} min'


class Progress:
    """Counts a shard's runs (``total``) and logs after each one how many
    are done, how long it has taken and, from the mean time of the runs
    trained so far (runs skipped for an existing result take none), about
    how long the rest will take."""

    def __init__(self, total, log=print, clock=time.time):
        self.total = int(total)
        self.log = log
        self.clock = clock
        self.start = clock()
        self.done = self.ran = 0
        self.ran_seconds = 0.0

    def step(self, ran, seconds):
        """One run finished: trained (``ran``, in ``seconds``) or skipped."""
        self.done += 1
        if ran:
            self.ran += 1
            self.ran_seconds += seconds
        self.log(self.line())

    def seconds_left(self):
        """Estimated seconds for the runs not done; None before any ran."""
        if not self.ran:
            return None
        return self.ran_seconds / self.ran * (self.total - self.done)

    def line(self):
        left = self.seconds_left()
        left = (
            'unknown until a run has trained'
            if left is None
            else f'about {format_duration(left)}'
        )
        return (
            f'[protocol] progress: {self.done}/{self.total} runs done '
            f'({self.ran} trained now, {self.done - self.ran} had a '
            f'result); {format_duration(self.clock() - self.start)} '
            f'elapsed, {left} left'
        )

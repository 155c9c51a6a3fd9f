"""A one-line progress counter on stderr, drawn only on a terminal.

Keras' `Progbar` writes to stdout, where the apps print their results; this
counter keeps stdout for results and stays silent when stderr is a file or a
pipe (logs, tests).

Example:

>>> from keras_ldrop.inference.progress import Progress
>>> progress = Progress(total=3, label="images")
>>> progress.update(2)
>>> progress.close()
"""

import sys
import time

_WIDTH = 30
_INTERVAL_S = 0.1


class Progress:
    """Draws `label [=====>    ] done/total  rate/s` on stderr when it is a terminal.

    Args:
        total: the count at completion.
        label: what is counted, e.g. `"images"`.
        stream: where to draw; default `sys.stderr`.
        enabled: draw or not; default: whether `stream` is a terminal.
    """

    def __init__(self, total, label, stream=None, enabled=None):
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.start = time.monotonic()
        self.last_drawn = 0.0
        self.done = 0

    def update(self, done):
        """Sets the count reached so far and redraws at most every 0.1 s."""
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self.last_drawn >= _INTERVAL_S or done >= self.total):
            self.last_drawn = now
            filled = _WIDTH * done // max(self.total, 1)
            bar = "=" * filled + (">" if filled < _WIDTH else "") + " " * (_WIDTH - filled - 1)
            rate = done / max(now - self.start, 1e-9)
            self.stream.write(
                f"\r{self.label} [{bar[:_WIDTH]}] {done}/{self.total}  {rate:.1f}/s"
            )
            self.stream.flush()

    def close(self):
        """Ends the line (when drawn)."""
        if self.enabled:
            self.update(self.done)
            self.stream.write("\n")
            self.stream.flush()

"""A plain-text progress bar on stderr for long loads (no tqdm: fastconv depends on NumPy only)."""
import sys
import time


class ProgressBar:
    """``label [#######.......] 4000/16000  3.1 s``, redrawn in place on a terminal.

    On a terminal the line is redrawn at most ten times a second; elsewhere (a log file, CI) a
    line is written at every tenth of the work, so that logs stay short.  ``enabled=False``
    makes every call a no-op.
    """

    WIDTH = 30

    def __init__(self, total, label, enabled=True, stream=None):
        self.total = max(int(total), 1)
        self.label = label
        self.enabled = enabled
        self.stream = sys.stderr if stream is None else stream
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.done = 0
        self._last_draw = -1.0
        self._last_tenth = -1

    def update(self, n=1):
        self.done = min(self.done + n, self.total)
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.interactive:
            if now - self._last_draw >= 0.1 or self.done == self.total:
                self._last_draw = now
                self.stream.write("\r" + self._line(now))
                self.stream.flush()
        else:
            tenth = 10 * self.done // self.total
            if tenth > self._last_tenth:
                self._last_tenth = tenth
                self.stream.write(self._line(now) + "\n")
                self.stream.flush()

    def close(self):
        if self.enabled and self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _line(self, now):
        filled = self.WIDTH * self.done // self.total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{self.label} [{bar}] {self.done}/{self.total}  {now - self.start:.1f} s"

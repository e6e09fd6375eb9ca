"""Progress on the terminal for long knnsql work: index builds, large inserts, sampling and analytics.

Two displays, one line each on stderr:

- :class:`Bar` for work knnsql runs in steps from Python (a chunked index build, a large insert):
  ``building docs__emb [#########.....................] 30,000/100,000 rows  4.2 s``.
- :func:`watch` for one long SQL statement (``sampling.sample``, ``analytics.sql_*``). DuckDB's C
  extension API gives a table function or aggregate no way to report its own progress (see
  docs/PROGRESS.md), so the only figure there is DuckDB's query progress: the share of input rows read.
  The line shows that share, then "computing" with the elapsed time while the aggregate works on the
  rows it collected, which DuckDB's own bar would show as a bar stuck at 100%.

When it shows: stderr is a terminal, and progress is not switched off (:func:`enable`, then the
``KNNSQL_PROGRESS`` environment variable: ``0``, ``false``, ``off`` or ``no`` switch it off). Nothing is
ever written to a stream that is not a terminal. The display never changes the work: how a build or
insert is split into steps depends on its size only (:func:`parts`), so results are the same with
progress on or off.

tqdm is not used: one line of text covers both displays, needs no dependency, and behaves the same
everywhere (a notebook's stderr is not a terminal, so nothing shows there).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Optional

#: Set by enable(); None defers to the environment.
_switch: Optional[bool] = None
#: A statement under watch() shows its line only once it has run this long (seconds).
DELAY = 1.0
#: How often watch() reads DuckDB's query progress (seconds).
POLL = 0.25
WIDTH = 30
_OFF = ("0", "false", "off", "no")


def enable(on: Optional[bool] = True) -> None:
    """Switches progress on (``True``), off (``False``) for this process, or back to the environment's
    choice (``None``: on unless ``KNNSQL_PROGRESS`` says off). It still shows only on a terminal."""
    global _switch
    _switch = None if on is None else bool(on)


def active(stream=None) -> bool:
    """Whether progress shows now on ``stream`` (default: sys.stderr)."""
    on = _switch
    if on is None:
        on = os.environ.get("KNNSQL_PROGRESS", "").strip().lower() not in _OFF
    if not on:
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False


def parts(total: int, threshold: int) -> int:
    """Steps a job over ``total`` rows runs in: one up to ``threshold`` rows, else about 20 of at least
    ``threshold // 4`` rows each. It depends on the size only, never on whether progress shows."""
    if total <= threshold:
        return 1
    step = max(threshold // 4, 1, -(-total // 20))
    return -(-total // step)


def _bar(fraction: float) -> str:
    filled = int(WIDTH * min(max(fraction, 0.0), 1.0))
    return "#" * filled + "." * (WIDTH - filled)


class Bar:
    """A progress line over ``total`` rows; silent unless ``on`` (default: :func:`active`).

    Use as a context manager; call :meth:`advance` after each step. The line ends with a newline when
    the block ends, whether it completed or not."""

    def __init__(self, label: str, total: int, on: Optional[bool] = None, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.on = active(self.stream) if on is None else (bool(on) and active(self.stream))
        self.label, self.total, self.done = label, int(total), 0
        self.start = time.monotonic()

    def __enter__(self) -> "Bar":
        return self

    def advance(self, rows: int) -> None:
        self.done += int(rows)
        if self.on:
            self.stream.write(f"\r{self.label} [{_bar(self.done / max(self.total, 1))}] "
                              f"{self.done:,}/{self.total:,} rows  {time.monotonic() - self.start:.1f} s")
            self.stream.flush()

    def break_line(self) -> None:
        """Ends the line drawn so far, so that other output (a warning) does not land inside it; the next
        step draws a new line."""
        if self.on and self.done:
            self.stream.write("\n")
            self.stream.flush()

    def __exit__(self, *exc) -> None:
        self.break_line()


# Every statement is fetched to the end: DuckDB 2's Python client refuses other work on a connection while a
# result is unfinished.
def _settings(con) -> tuple:
    return tuple(con.execute("SELECT current_setting('enable_progress_bar'), "
                             "current_setting('enable_progress_bar_print')").fetchall()[0])


def _set(con, bar: bool, prints: bool) -> None:
    con.execute(f"SET enable_progress_bar = {str(bool(bar)).lower()}").fetchall()
    con.execute(f"SET enable_progress_bar_print = {str(bool(prints)).lower()}").fetchall()


class quiet:
    """Keeps DuckDB's own progress bar from printing during knnsql's statements on ``con``, then puts
    the connection's settings back. DuckDB's Python client prints its bar to stdout after
    ``progress_bar_time`` even when stdout is not a terminal, and on a terminal it would cross
    knnsql's line. ``track=True`` keeps DuckDB's tracking on, so ``con.query_progress()`` has values."""

    def __init__(self, con, track: bool = False):
        self.con, self.track, self.saved = con, track, None

    def __enter__(self) -> "quiet":
        saved = _settings(self.con)
        bar, prints = bool(saved[0]), bool(saved[1])
        if (not bar or prints) if self.track else bar:
            _set(self.con, self.track, False)
            self.saved = saved
        return self

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            try:
                _set(self.con, *self.saved)
            except Exception:   # e.g. an aborted transaction refuses SET; the original error matters more
                pass


class watch:
    """Shows the progress of the statements run on ``con`` inside the block (one long SQL call) once they
    have run :data:`DELAY` seconds: the share of input rows DuckDB has read, then "computing" and the
    elapsed time. ``on`` (default: :func:`active`) as for :class:`Bar`."""

    def __init__(self, con, label: str, on: Optional[bool] = None, stream=None):
        self.con, self.label = con, label
        self.stream = sys.stderr if stream is None else stream
        self.on = active(self.stream) if on is None else (bool(on) and active(self.stream))
        self.quiet = quiet(con, track=self.on)
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.start = 0.0

    def _line(self, text: str, end: str = "") -> None:
        self.stream.write(f"\r{self.label} {text}\x1b[K{end}")   # ESC[K: clear the rest of a longer line
        self.stream.flush()

    def _poll(self) -> None:
        while not self.stop.wait(POLL):
            elapsed = time.monotonic() - self.start
            if elapsed < DELAY:
                continue
            try:
                pct = float(self.con.query_progress())
            except Exception:   # the connection may be closing; the statement's own error is what counts
                return
            if pct < 0:
                self._line(f"{elapsed:.0f} s")
            elif pct < 99.9:
                self._line(f"[{_bar(pct / 100)}] {pct:.0f}% of rows read  {elapsed:.0f} s")
            else:
                self._line(f"[{_bar(1.0)}] rows read, computing  {elapsed:.0f} s")

    def __enter__(self) -> "watch":
        self.quiet.__enter__()
        self.start = time.monotonic()
        if self.on:
            self.thread = threading.Thread(target=self._poll, name="knnsql-progress", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.thread is not None:
                self.stop.set()
                self.thread.join()
                elapsed = time.monotonic() - self.start
                if elapsed >= DELAY:
                    self._line(f"{'failed' if exc[0] else 'done'} in {elapsed:.1f} s", "\n")
        finally:
            self.quiet.__exit__(*exc)

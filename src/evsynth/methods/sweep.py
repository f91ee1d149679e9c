"""Run many independent tasks: in-process, in local worker processes, or on any executor with
`submit` (concurrent.futures, a dask.distributed Client), with a progress line and results
appended to a JSON-lines file as they finish, so an interrupted sweep resumes where it stopped.

Nothing here knows about models: a task is (function, argument) and a record is a JSON-able dict
carrying a "key" (the scenario id) and a "fingerprint" (the settings every record of one file
must share).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

POLL_SECONDS = 0.05
WIDTH = 100  # terminal lines fit this many columns (as cli.common.WIDTH)


class SweepFileError(ValueError):
    """The results file belongs to a different sweep (other data, model or fit settings)."""


# ---- results file -------------------------------------------------------------------------

def _clean(value):
    """JSON has no NaN: write None, read back as NaN by pandas."""
    kind = type(value)  # the common exact types first (a sweep's records hold thousands of values)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value


def read_records(path, fingerprint: str | None = None) -> dict[str, dict]:
    """Finished records by key. A torn last line (interrupted write) is ignored; a record of a
    different sweep (fingerprint) is an error, so two sweeps never mix in one file."""
    path = Path(path)
    if not path.exists():
        return {}
    records = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption: that scenario simply runs again
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise SweepFileError(f"{path} line {number}: not a result record (a JSON object with a 'key'); "
                                 "this file was not written by an evsynth sweep: use another output folder")
        if fingerprint is not None and record.get("fingerprint") != fingerprint:
            raise SweepFileError(
                f"{path} line {number} was written by a sweep with other settings (data, outcome, measure, "
                f"model, fixed priors or fit options); use another output file or delete this one")
        records[record["key"]] = record
    return records


def _open_for_append(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torn = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    handle = path.open("a")
    if torn:
        handle.write("\n")  # never glue a new record onto a torn one
    return handle


# ---- progress -----------------------------------------------------------------------------

class Progress:
    """'sensitivity: 12/100 scenarios done (3 resumed from file), 1 FAIL, 2 not fitted, 8 s elapsed,
    ~55 s left' (FAIL: failed diagnostics; not fitted: too few studies left, never a diagnostic
    failure). Rewrites one line on a terminal or in a notebook, refreshed every second by
    start_ticker() so that it moves while the first scenario compiles; elsewhere (CI logs) prints
    a line about every 10%. The time left comes from the pace after the first finished scenario
    (which includes compiling the model), so it is not inflated by the compile time. Drawn by rich
    (a Live line on a terminal, cut to WIDTH columns with an ellipsis; plain lines elsewhere)."""

    def __init__(self, total: int, resumed: int, label: str, enabled: bool = True, stream=None,
                 clock=time.monotonic, compiles: bool = True):
        self.total, self.resumed, self.label, self.enabled = total, resumed, label, enabled
        self.compiles = compiles  # False (exact engine): the first scenario is not slower, say nothing of compiling
        self.stream = stream or sys.stderr
        self.clock = clock
        self.done, self.failed, self.not_fitted, self.start = resumed, 0, 0, clock()
        self.first_done = None  # when the first scenario of this run finished
        self.inline = getattr(self.stream, "isatty", lambda: False)() or "ipykernel" in sys.modules
        self.last_printed = -1
        self._lock = threading.RLock()
        self._stop = None
        self._live = None  # the rich Live line on a terminal, from the first show() to the last

    def text(self) -> str:
        now = self.clock()
        new = self.done - self.resumed
        parts = [f"{self.label}: {self.done}/{self.total} scenarios done"]
        if self.resumed:
            parts[0] += f" ({self.resumed} resumed from file)"
        if self.failed:
            parts.append(f"{self.failed} FAIL")
        if self.not_fitted:
            parts.append(f"{self.not_fitted} not fitted")
        parts.append(f"{now - self.start:.0f} s elapsed")
        if self.done < self.total:
            if new >= 2:
                pace = (now - self.first_done) / (new - 1)
                parts.append(f"~{(self.total - self.done) * pace:.0f} s left")
            else:
                parts.append("estimating the time left" if new or not self.compiles
                             else "first scenario (includes compiling)")
        return ", ".join(parts)

    def update(self, failed: bool = False, not_fitted: bool = False) -> None:
        with self._lock:
            self.done += 1
            if self.first_done is None and self.done > self.resumed:
                self.first_done = self.clock()
            self.not_fitted += int(not_fitted)
            self.failed += int(failed and not not_fitted)
            self.show()

    def start_ticker(self, every: float = 1.0) -> None:
        """Refresh the line every `every` seconds (terminals and notebooks only) until stop_ticker()."""
        if not (self.enabled and self.inline) or self._stop is not None:
            return
        self._stop = threading.Event()

        def tick(stop=self._stop):
            while not stop.wait(every):
                self.show()

        threading.Thread(target=tick, daemon=True, name="evsynth-progress").start()

    def stop_ticker(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._stop = None

    def __rich__(self):
        """The line as rich draws it: one line, cut with an ellipsis beyond the console's width."""
        from rich.text import Text

        return Text(self.text(), no_wrap=True, overflow="ellipsis")

    def _console(self, terminal: bool):
        from rich.console import Console

        return Console(file=self.stream, width=WIDTH, highlight=False, force_terminal=terminal,
                       force_jupyter=False, soft_wrap=False)

    def show(self, final: bool = False) -> None:
        if not self.enabled:
            return
        with self._lock:
            if self.inline:
                if self._live is None:
                    if final and self.last_printed == self.done:
                        return  # already closed (the line ended with a newline)
                    from rich.live import Live

                    self._live = Live(self, console=self._console(True), auto_refresh=False,
                                      redirect_stdout=False, redirect_stderr=False)
                    self._live.start()
                if final:
                    self.close()  # its last refresh draws the final state
                else:
                    self._live.refresh()
                return
            step = max(1, self.total // 10)
            if not (final or self.done // step > self.last_printed // step or self.done == self.total):
                return
            if final and self.last_printed == self.done:
                return
            self._console(False).print(self, crop=True, no_wrap=True, overflow="ellipsis")
            self.last_printed = self.done
            self.stream.flush()

    def close(self) -> None:
        """End the terminal line (a newline after its last state) and show the cursor again."""
        with self._lock:
            self.stop_ticker()
            if self._live is not None:
                self._live.stop()
                self._live = None
                self.last_printed = self.done


@contextmanager
def spinner(message: str, enabled: bool = True, stream=None):
    """A spinner with the elapsed time on one line of `stream` (stderr) while the block runs
    (compiling and sampling show nothing of their own), drawn by rich; silent when not enabled
    (--quiet) or when the stream is not a terminal, and the line is erased afterwards (transient).
    The message is cut to fit 100 columns with the spinner and the time."""
    stream = sys.stderr if stream is None else stream
    if not enabled or not getattr(stream, "isatty", lambda: False)():
        yield
        return
    from rich.console import Console
    from rich.progress import Progress as RichProgress, SpinnerColumn, TextColumn, TimeElapsedColumn

    text = message if len(message) <= 80 else message[:79] + "~"
    console = Console(file=stream, force_terminal=True, width=100, highlight=False)
    with RichProgress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
        bar.add_task(text, total=None)
        yield


# ---- running ------------------------------------------------------------------------------

def local_executor(n_jobs: int, threads: bool = False):
    """Threads, for tasks that spend their time outside the GIL and share a cache (a compiled
    model sampled by nutpie); otherwise worker processes started fresh ('spawn'): forking a
    process that already runs sampler threads can deadlock. As with any spawn pool, a script
    must start the sweep under `if __name__ == "__main__":` (notebooks and the CLI need nothing)."""
    if threads:
        return ThreadPoolExecutor(max_workers=n_jobs, thread_name_prefix="evsynth-sweep")
    return ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("spawn"))


def run_tasks(function, tasks: dict, *, out=None, fingerprint: str = "", n_jobs: int = 1, executor=None,
              threads: bool = False, progress: bool = True, label: str = "sweep",
              failed=lambda record: False, not_fitted=lambda record: False,
              compiles: bool = True) -> dict[str, dict]:
    """Run function(task) for each task (dict key -> argument) not already finished in `out`.

    Returns every record by key (resumed ones included). Each record is written to `out` as soon
    as it arrives; on interruption (Ctrl-C) the pending tasks are cancelled and the finished ones
    stay in the file. `executor`: anything with submit(fn, arg) -> future (.done/.result/.cancel),
    e.g. a dask.distributed Client; otherwise n_jobs local processes (threads with threads=True),
    or this process for n_jobs=1. compiles=False: the tasks compile nothing (the progress line
    does not say the first one includes compiling).
    """
    out = Path(out) if out is not None else None
    records = {k: r for k, r in (read_records(out, fingerprint) if out else {}).items() if k in tasks}
    todo = [key for key in tasks if key not in records]
    meter = Progress(len(tasks), len(records), label, progress, compiles=compiles)
    handle = _open_for_append(out) if out and todo else None
    meter.show()
    meter.start_ticker()

    def accept(record: dict) -> None:
        record = _clean(dict(record, fingerprint=fingerprint))
        records[record["key"]] = record
        if handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        meter.update(failed(record), not_fitted(record))

    own = executor is None and n_jobs > 1 and len(todo) > 1
    pool = local_executor(min(n_jobs, len(todo)), threads) if own else executor
    futures = {}
    try:
        if pool is None:
            for key in todo:
                accept(function(tasks[key]))
        else:
            futures = {pool.submit(function, tasks[key]): key for key in todo}
            while futures:
                finished = [f for f in futures if f.done()]
                if not finished:
                    time.sleep(POLL_SECONDS)
                for future in finished:
                    del futures[future]
                    try:
                        record = future.result()
                    except BrokenProcessPool as exc:
                        raise RuntimeError(
                            f"{label}: a worker process died ({exc}). From a script, start the sweep under "
                            "`if __name__ == '__main__':` (worker processes re-import the main module)") from exc
                    accept(record)
    except BaseException:
        for future in futures:
            future.cancel()
        meter.close()  # end the progress line before the message
        if progress:
            where = f"; {len(records)} finished scenario(s) kept in {out}, re-run to resume" if out else ""
            sys.stderr.write(f"{label}: stopped{where}\n")
        raise
    finally:
        meter.stop_ticker()
        if own:
            pool.shutdown(wait=False, cancel_futures=True)
        if handle:
            handle.close()
    meter.show(final=True)
    return records


"""Progress a person can read: one bgeft-owned bar per long step (encode, mine, score, evaluation, training).

::

    with progress(len(texts), "encode", "passages") as bar:
        for batch in batches:
            ...
            bar.update(len(batch))

* On a terminal: a tqdm bar on stderr that disappears when the step ends.
* Elsewhere (a pipe, a file, CI, a pod log): a plain line after ``settings.interval`` seconds (30), then
  at doubling intervals up to ``settings.max_interval`` (5 min), so a long step stays a handful of lines:
  ``encode 1,200/4,917 passages, 310/s, ETA 12 s``, and one closing line when the step took that long;
  no ``\\r``, no ANSI codes.
* ``bgeft --no-progress``: nothing. ``NO_COLOR`` or ``TERM=dumb``: plain lines on a terminal too.

FlagEmbedding makes its own bars (``pre tokenize``, ``Inference Embeddings``, ``Compute Scores``) with
``from tqdm import tqdm, trange`` at the top of its inference modules; :func:`quiet_library_bars` swaps
those names for always-disabled bars, so only bgeft's bar for the step is shown.

Training: the worker's :func:`trainer_callback` prints ``bgeft.train: step 4/8 loss=1.36 lr=1.4e-05`` at
every logging step; the launcher turns those lines into the same bar / plain lines (:class:`TrainLines`).
"""
from __future__ import annotations

import os
import re
import sys
import time

from bgeft.console import ANSI, say, settings, stream, translate


def interactive() -> bool:
    """A bar (tqdm with \\r) only on a terminal that did not ask for plain output."""
    try:
        tty = stream().isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


class Progress:
    """One step's progress; ``min_total``: steps smaller than this show nothing (not worth a bar);
    ``summary``: always end with the closing line (training: the loss it ended at)."""

    def __init__(self, total: int | None, desc: str, unit: str = "", *, enabled: bool = True, min_total: int = 0,
                 start: int = 0, summary: bool = False):
        self.summary = summary
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.first = start
        self.postfix = ""
        self.started = time.monotonic()
        self.gap = settings.interval
        self.next_at = self.started + self.gap
        self.lines = 0
        self.on = enabled and settings.progress and (total is None or total >= min_total)
        self.bar = None
        if self.on and interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit=f" {unit}" if unit else "it",
                            file=stream(), dynamic_ncols=True, leave=False)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        if self.bar is not None:
            if postfix is not None:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update(n)
        elif self.on:
            now = time.monotonic()
            if now >= self.next_at and self.first < self.n != self.total:  # close() prints the last one
                self.gap = min(self.gap * 2, settings.max_interval)
                self.next_at = now + self.gap
                self.lines += 1
                say(self.line(now))

    def line(self, now: float | None = None, final: bool = False) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.started, 1e-9)
        rate = (self.n - self.first) / elapsed
        count = f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        parts = [f"{self.desc} {count}" + (f" {self.unit}" if self.unit else "")]
        if self.postfix:
            parts.append(self.postfix)
        parts.append(f"{_rate(rate)}/s")
        if final:
            parts.append(f"took {duration(elapsed)}")
        elif self.total and rate > 0:
            parts.append(f"ETA {duration((self.total - self.n) / rate)}")
        return ", ".join(parts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            if self.summary:
                say(self.line(final=True))
        elif self.on and (self.summary or self.lines or time.monotonic() - self.started >= settings.interval):
            self.lines += 1
            say(self.line(final=True))
        self.on = False

    def say(self, text: str) -> None:
        """A line of its own while the bar is shown (the bar is redrawn under it)."""
        if self.bar is not None:
            self.bar.clear()
            say(text)
            self.bar.refresh()
        else:
            say(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(total: int | None, desc: str, unit: str = "", **kwargs) -> Progress:
    return Progress(total, desc, unit, **kwargs)


def track(items, desc: str, unit: str = "", total: int | None = None, **kwargs):
    """``for item in track(rows, "select negatives", "rows"):`` - the items, counted by one Progress."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with Progress(total, desc, unit, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()


def _quiet_tqdm(*args, **kwargs):
    from tqdm import tqdm

    kwargs["disable"] = True
    return tqdm(*args, **kwargs)


def _quiet_trange(*args, **kwargs):
    return _quiet_tqdm(range(*args), **kwargs)


def quiet_library_bars() -> None:
    """Disable the bars of every imported FlagEmbedding module (call after importing FlagEmbedding)."""
    from tqdm import tqdm, trange

    for name, module in list(sys.modules.items()):
        if name.startswith("FlagEmbedding") and module is not None:
            if getattr(module, "tqdm", None) is tqdm:
                module.tqdm = _quiet_tqdm
            if getattr(module, "trange", None) is trange:
                module.trange = _quiet_trange


TRAIN_LINE = re.compile(r"^bgeft\.train: step (\d+)/(\d+)(?: (.*))?$")


def trainer_callback():
    """For the worker (rank 0 prints): ``bgeft.train: step N/TOTAL loss=… lr=…`` at every logging step."""
    from transformers import TrainerCallback

    class ConsoleCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:   # after a resume global_step is the checkpoint's
                print(f"bgeft.train: step {state.global_step}/{state.max_steps}", flush=True)
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return control
            fields = [f"loss={float(logs['loss']):.4g}"]
            if "learning_rate" in logs:
                fields.append(f"lr={float(logs['learning_rate']):.2g}")
            print(f"bgeft.train: step {state.global_step}/{state.max_steps} {' '.join(fields)}", flush=True)
            return control

    return ConsoleCallback()


class TrainLines:
    """The launcher's side: ``bgeft.train: step`` lines from the worker become one progress bar / plain lines."""

    def __init__(self):
        self.bar: Progress | None = None

    def feed(self, line: str) -> bool:
        """True when ``line`` was a step line (rendered here), False for any other line."""
        m = TRAIN_LINE.match(line)
        if not m:
            return False
        step, total = int(m.group(1)), int(m.group(2))
        postfix = ", ".join(part.replace("=", " ") for part in (m.group(3) or "").split())
        if self.bar is None:  # the worker's first line comes before the first step (no fields)
            self.bar = Progress(total, "train", "steps", start=step if m.group(3) is None else step - 1, summary=True)
        self.bar.update(step - self.bar.n, postfix=postfix)
        return True

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class WorkerLines(TrainLines):
    """What the launcher shows of the worker's output (all of which goes to ``train.log`` first): step lines
    as progress, the other ``bgeft…`` lines (``bgeft.worker:``, ``bgeft.eval:``) as they are, known
    warnings translated; with ``bgeft -v`` everything, as it came."""

    KEYS = ("out-of-memory", "disk-full")   # a reranker built for training lacks its head on purpose

    def __init__(self):
        super().__init__()
        self.pending = b""

    def write(self, data: bytes) -> None:
        if settings.verbose:
            out = stream()
            out.write(data.decode("utf-8", "replace"))
            out.flush()
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, raw: bytes) -> None:
        for frame in raw.split(b"\r"):
            text = ANSI.sub("", frame.decode("utf-8", "replace")).rstrip()
            if not text.strip():
                continue
            translate(text, self.KEYS)
            if settings.verbose or self.feed(text) or not text.startswith("bgeft"):
                continue
            if self.bar is not None:
                self.bar.say(text)
            else:
                say(text)

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = b""
        super().close()

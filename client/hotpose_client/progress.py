"""Progress bars for everything in hotpose that takes more than a few seconds: the SDK's upload and
processing, and the `hotpose` commands (run, detect2d on a video, eval-lifter, train-lifter,
fetch-weights, bench). One library (tqdm) drawn one way, on stderr.

A bar is drawn only on a terminal: with stderr redirected to a file or a pipe, or with `quiet`
(the commands' `--quiet`), nothing is written, so logs and JSON output stay clean.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")

__all__ = ["StageBars", "bar", "track"]


def bar(total: float | None, desc: str, *, unit: str = "it", quiet: bool = False, **options: Any) -> tqdm[Any]:
    """A bar of `total` steps (None: a counter), drawn only on a terminal and unless `quiet`.

    Use as a context manager and call `.update(n)`; `options` go to tqdm (e.g. `unit_scale=True`)."""
    return tqdm(
        total=total, desc=desc, unit=unit, file=sys.stderr, disable=True if quiet else _not_a_terminal(),
        dynamic_ncols=True, leave=True, **options,
    )  # fmt: skip


def track(
    items: Iterable[T], desc: str, *, total: float | None = None, unit: str = "it", quiet: bool = False
) -> Iterator[T]:
    """`items` unchanged, with a bar while they are consumed."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc, unit=unit, quiet=quiet) as b:
        for item in items:
            yield item
            b.update(1)


class StageBars:
    """One bar per named stage, each from 0 to 100 %: the SDK's `progress=True` ("upload", "process")."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bars: dict[str, tqdm[Any]] = {}

    def __call__(self, stage: str, fraction: float) -> None:
        b = self.bars.get(stage)
        if b is None:
            b = self.bars[stage] = bar(100.0, stage, unit="%", quiet=self.quiet, bar_format=_PERCENT)
        b.update(round(100.0 * min(max(fraction, 0.0), 1.0), 1) - b.n)
        if fraction >= 1.0:
            b.close()

    def close(self) -> None:
        for b in self.bars.values():
            b.close()


_PERCENT = "{desc:>9} {percentage:5.1f}%|{bar}| [{elapsed}<{remaining}]"


def _not_a_terminal() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    return not (callable(isatty) and isatty())

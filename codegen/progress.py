"""A progress bar on stderr: redrawn in place on a terminal, one line at the end otherwise."""
from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None, width: int = 30):
        self.label, self.total, self.width = label, max(total, 1), width
        self.stream = stream or sys.stderr
        self.done = 0
        self.live = self.stream.isatty()

    def step(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        if self.live:
            self._draw("\r")

    def close(self) -> None:
        self._draw("\r" if self.live else "")
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, prefix: str) -> None:
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"{prefix}{self.label} [{bar}] {self.done}/{self.total}")
        self.stream.flush()

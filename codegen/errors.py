"""The one error type tfgen raises for anything a user can fix.

The CLI prints ``error: <message>`` (plus ``hint: ...`` when given) on one line each and exits with
``exit_code``; tracebacks are shown only with ``--verbose``.
"""
from __future__ import annotations


class TfgenError(Exception):
    """A user-facing failure: what went wrong, where, and what to do next."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class DoesNotFit(TfgenError):
    """The model does not fit the board: a verdict, not bad input (exit code 1)."""

    exit_code = 1

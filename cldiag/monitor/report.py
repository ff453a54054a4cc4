"""Reporting errors once, loudly, without interrupting training."""

from __future__ import annotations

import logging
import warnings

__all__ = ["Reporter"]

logger = logging.getLogger("cldiag")


class Reporter:
    """Report each kind of error once (a ``RuntimeWarning`` and a log record); keep the messages.

    Shared by the Monitor (training thread) and its :class:`~cldiag.monitor.writer.RunWriter` (writer
    thread), so a user sees one list of what went wrong.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []
        """Messages of the errors reported so far (each reported once)."""
        self._reported: set[str] = set()

    def report(self, message: str, key: str | None = None, *, stacklevel: int = 3) -> None:
        """Report an error once (warning + log) without interrupting training.

        Args:
            message: what went wrong, for the user.
            key: the kind of error (default: the message), so an error that recurs at every step or flush
                with another step number or file name in its message is reported the first time only.
            stacklevel: passed to :func:`warnings.warn`, to point at the user's call.
        """
        key = message if key is None else key
        if key in self._reported:
            return
        self._reported.add(key)
        self.errors.append(message)
        text = f"cldiag: {message} (training continues; pass strict=True to raise instead)"
        logger.error(text)
        warnings.warn(text, RuntimeWarning, stacklevel=stacklevel)

"""The integrations' promise: a cldiag hook never ends the training it watches.

Every callback and loss wrapper runs its own work inside :meth:`Guard.run`. An exception there is
reported once (a ``logging`` error on the ``cldiag`` logger and a ``RuntimeWarning``, worded like
:class:`cldiag.Monitor`'s own reports) and swallowed, so ``trainer.train()`` / ``trainer.fit()`` go on
without that step's diagnostics; with ``strict=True`` it is raised instead (for tests and debugging).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Guard"]

logger = logging.getLogger("cldiag")


class Guard:
    """Report-once error policy shared by the integrations.

    Args:
        owner: the name shown in reports, e.g. ``"CLDiagTrainerCallback"``.
        strict: raise errors instead of reporting them.

    Example:
        >>> guard = Guard("MyCallback", strict=False)
        >>> with guard.run("on_step_end"):
        ...     pass
        >>> guard.errors
        []
    """

    def __init__(self, owner: str, *, strict: bool = False) -> None:
        self.owner = owner
        self.strict = bool(strict)
        self.errors: list[str] = []
        """Messages of the errors reported so far (each kind reported once)."""
        self._reported: set[str] = set()

    @contextmanager
    def run(self, where: str) -> Iterator[None]:
        """Run a block of hook code; report (or, when strict, raise) any exception it raises.

        Args:
            where: the hook or stage, named in the report (``"on_train_begin"``).
        """
        try:
            yield
        except Exception as exc:
            if self.strict:
                raise
            self.report(f"{where}: {type(exc).__name__}: {exc}", key=f"{type(exc).__name__}: {exc}")

    def report(self, message: str, *, key: str | None = None) -> None:
        """Report ``message`` once (per ``key``, default the message) as a logged error and a warning."""
        key = message if key is None else key
        if key in self._reported:
            return
        self._reported.add(key)
        self.errors.append(message)
        text = f"cldiag: {self.owner} {message} (training continues; pass strict=True to raise instead)"
        logger.error(text)
        warnings.warn(text, RuntimeWarning, stacklevel=4)

"""The small exception taxonomy of QC Workbench.

Only the workflow layer catches these; it records the outcome and moves on.
Programming errors (everything else) propagate. Every message is one line that
names the file or block and says what to do.
"""

from __future__ import annotations


class QCError(Exception):
    """Base class of the errors the workflow knows how to record."""


class ConfigError(QCError):
    """A configuration file or value is wrong. Raised at start-up: fail fast."""


class QuarantineError(QCError):
    """This file is unusable (corrupt, truncated, mislabelled, ...).

    Parameters
    ----------
    reason
        One line, naming what is wrong and what to do.
    code
        A short machine-readable reason code (``empty``, ``truncated``, ``not-fits``,
        ``missing-keyword``, ``wrong-instrument``, ``incomplete``, ``duplicate``, ...).
    """

    def __init__(self, reason: str, *, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in a worker, it crosses to the parent pickled: Exception's own
        # pickling passes only ``args`` and loses the keyword-only ``code`` (the pool
        # then reports a broken process instead of the error).
        return (_quarantine_error, (self.reason, self.code))


def _quarantine_error(reason: str, code: str) -> QuarantineError:
    return QuarantineError(reason, code=code)


class IncompleteBlockError(QCError):
    """A prerequisite of an association block is missing: wait, do not fail."""


class UnprocessableDataError(QCError):
    """The inputs are valid, but no product can be made from them."""


class RecipeBugError(UnprocessableDataError):
    """A recipe stopped on an error of its own (not one of the above): a bug. Its
    block fails with the error and where it was raised, and the pass goes on."""

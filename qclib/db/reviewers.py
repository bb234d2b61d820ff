"""Reviewers: the people who open the dashboards and certify, each with a token.

Only a token's SHA-256 is stored; the token itself is shown once, when the reviewer
is added. A dashboard request carries the token; ``reviewer_for_token`` says whose it
is (or None), so a certification made on a page records who made it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qclib.db.models import ReviewerRow
from qclib.errors import ConfigError

#: Reviewer names: what the audit log shows; ``auto`` is the automatic certifier's.
NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,79}$")
RESERVED = frozenset({"auto", "qc"})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: str) -> str:
    """A valid reviewer name, or ConfigError saying what a name may hold."""
    if not NAME_PATTERN.match(name):
        raise ConfigError(
            f"reviewer name {name!r}: use a letter then letters, digits, '.', '_' or '-' "
            "(at most 80)"
        )
    if name in RESERVED:
        raise ConfigError(f"reviewer name {name!r} is reserved for the system; choose another")
    return name


def add_reviewer(session: Session, name: str) -> str:
    """Add a reviewer and return their new token (shown once, never stored)."""
    check_name(name)
    if session.scalar(select(ReviewerRow).where(ReviewerRow.name == name)) is not None:
        raise ConfigError(
            f"reviewer {name!r} exists already; 'qc user remove {name}' first to issue a new token"
        )
    token = secrets.token_urlsafe(24)
    session.add(
        ReviewerRow(name=name, token_sha256=_digest(token), created_at=dt.datetime.now(dt.UTC))
    )
    session.flush()
    return token


def remove_reviewer(session: Session, name: str) -> None:
    found = session.execute(delete(ReviewerRow).where(ReviewerRow.name == name)).rowcount
    if not found:
        raise ConfigError(f"no reviewer {name!r}; 'qc user list' shows them")


def list_reviewers(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(ReviewerRow).order_by(ReviewerRow.name))
    return [{"name": r.name, "created_at": r.created_at.isoformat()} for r in rows]


def reviewer_for_token(session: Session, token: str | None) -> str | None:
    """The reviewer a token belongs to, or None (no token, or not a valid one)."""
    if not token:
        return None
    digest = _digest(token)
    for row in session.scalars(select(ReviewerRow)):
        if hmac.compare_digest(row.token_sha256, digest):
            return row.name
    return None

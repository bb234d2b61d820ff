"""ESO keyword dictionaries (``ESO-VLT-DIC.*``, ``ESO-DFS-DIC.*_QC``): parsing and look-up.

A dictionary is a list of records, each starting with ``Parameter Name:``. Names
use ``i`` (and sometimes ``n``) to stand for an index: ``INS FILTi NAME``
matches ``INS FILT1 NAME``. Pure: takes text, returns values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s*(.*)$")


@dataclass(frozen=True)
class DictionaryEntry:
    """One keyword of an ESO dictionary."""

    name: str  # as written, e.g. "INS FILTi NAME"
    type: str  # string, integer, double, logical
    unit: str
    comment: str

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = []
        for word in self.name.split():
            # A trailing lower-case i/n in a word stands for an index.
            escaped = re.escape(word.rstrip("in")) if re.search(r"[A-Z0-9][in]+$", word) else None
            parts.append(f"{escaped}[0-9]*" if escaped is not None else re.escape(word))
        return re.compile(r"^" + r" ".join(parts) + r"$")


def parse_dictionary(text: str) -> list[DictionaryEntry]:
    """All entries of a dictionary file's text.

    >>> text = "Parameter Name:    DET DIT\\nType:    double\\nUnit:    s\\n"
    >>> parse_dictionary(text)[0].type
    'double'
    """
    entries: list[DictionaryEntry] = []
    current: dict[str, str] = {}

    def flush() -> None:
        if "Parameter Name" in current:
            entries.append(
                DictionaryEntry(
                    name=" ".join(current["Parameter Name"].split()),
                    type=current.get("Type", "").strip(),
                    unit=current.get("Unit", "").strip(),
                    comment=current.get("Comment Format", "").strip(),
                )
            )

    for line in text.splitlines():
        match = _FIELD.match(line)
        if not match:
            continue
        key, value = match.group(1).strip(), match.group(2)
        if key == "Parameter Name":
            flush()
            current = {}
        current[key] = value
    flush()
    return entries


def find_entry(entries: list[DictionaryEntry], keyword: str) -> DictionaryEntry | None:
    """The entry defining ``keyword`` (space- or dot-separated, without ``ESO``).

    Exact names win over indexed patterns.
    """
    name = " ".join(keyword.replace(".", " ").split())
    for entry in entries:
        if entry.name == name:
            return entry
    for entry in entries:
        if entry.pattern.match(name):
            return entry
    return None


def value_matches_type(value: object, dictionary_type: str) -> bool:
    """Whether a header value has the type a dictionary prescribes."""
    kind = dictionary_type.lower()
    if kind == "logical":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("double", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return False

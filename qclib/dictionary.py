"""ESO keyword dictionaries (``ESO-VLT-DIC.*``, ``ESO-DFS-DIC.*_QC``): parsing and look-up.

A dictionary is a list of records, each starting with ``Parameter Name:``, its other
fields (``Type:``, ``Unit:``, ``Comment Field:`` ...) on lines of their own, a long one
continued on indented lines. ESO's files vary: field names in either case
(``Parameter name:``), ``Comment Format:`` for ``Comment Field:``, now and then a field
whose colon is missing (``Unit               ADU`` in HAWK-I's QC dictionary). Names use
lower-case letters at the end of a word for an index: ``INS FILTi NAME`` matches
``INS FILT1 NAME``, ``QC BIAS MASTERi RON`` matches ``QC BIAS MASTER3 RON``. Pure: takes
text, returns values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^([A-Za-z][A-Za-z ]*?):\s*(.*)$")
#: The fields a record has, lower case; a line naming one without its colon is read too.
_KNOWN = (
    "parameter name",
    "class",
    "context",
    "type",
    "value format",
    "unit",
    "comment field",
    "comment format",
    "description",
)
_NO_COLON = re.compile(r"^(" + "|".join(_KNOWN) + r")\s{2,}(\S.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class DictionaryEntry:
    """One keyword of an ESO dictionary."""

    name: str  # as written, e.g. "INS FILTi NAME"
    type: str  # string, integer (or int), double (or float), logical
    unit: str
    comment: str
    description: str = ""

    @property
    def pattern(self) -> re.Pattern[str]:
        parts = []
        for word in self.name.split():
            # Trailing lower-case letters in a word stand for an index.
            index = re.search(r"(?<=[A-Z0-9_])[a-z]+$", word)
            if index:
                parts.append(re.escape(word[: index.start()]) + "[0-9]*")
            else:
                parts.append(re.escape(word))
        return re.compile(r"^" + r" ".join(parts) + r"$")


def parse_dictionary(text: str) -> list[DictionaryEntry]:
    """All entries of a dictionary file's text.

    >>> text = "Parameter Name:    DET DIT\\nType:    double\\nUnit:    s\\n"
    >>> parse_dictionary(text)[0].type
    'double'
    """
    entries: list[DictionaryEntry] = []
    current: dict[str, str] = {}
    last: str | None = None

    def flush() -> None:
        if current.get("parameter name"):
            entries.append(
                DictionaryEntry(
                    name=" ".join(current["parameter name"].split()),
                    type=current.get("type", "").strip(),
                    unit=current.get("unit", "").strip(),
                    comment=(
                        current.get("comment field") or current.get("comment format") or ""
                    ).strip(),
                    description=" ".join(current.get("description", "").split()),
                )
            )

    for line in text.splitlines():
        if line[:1] in (" ", "\t") and line.strip() and last is not None:
            current[last] = f"{current[last]} {line.strip()}"  # a continued field
            continue
        match = _FIELD.match(line) or _NO_COLON.match(line)
        if not match:
            last = None
            continue
        key, value = match.group(1).strip().lower(), match.group(2)
        if key == "parameter name":
            flush()
            current = {}
        current[key] = value
        last = key
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
    if kind in ("integer", "int"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("double", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    return False

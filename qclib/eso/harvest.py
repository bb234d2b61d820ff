"""QC1 values from an ESO product's headers, typed and with units from ESO's dictionary.

ESO's recipes write their QC parameters as ``HIERARCH ESO QC ...`` cards, in the primary
header or in the extension of the detector they describe. Each one harvested here keeps
the HDU's EXTNAME (empty for the primary), and gets the type, unit and comment of its
entry in the pipeline's QC1 dictionary (``ESO-DFS-DIC.<INST>_QC``); a keyword the
dictionary lacks is kept with ``unit=None`` so that it is seen, not dropped. Pure apart
from reading the file's headers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from qclib.dictionary import DictionaryEntry, find_entry, value_matches_type
from qclib.fitsio import HeaderValue, scan_fits


@dataclass(frozen=True)
class HarvestedQC:
    """One QC keyword of a product: dot form (``QC.OUT1.RON.RAW``), value, the HDU it
    came from (EXTNAME; empty for the primary), and its dictionary entry (None: the
    dictionary lacks it)."""

    keyword: str
    value: HeaderValue
    detector: str
    entry: DictionaryEntry | None

    @property
    def unit(self) -> str | None:
        return None if self.entry is None else self.entry.unit

    @property
    def type_ok(self) -> bool:
        """The value has the dictionary's type (False when the dictionary lacks it)."""
        return self.entry is not None and value_matches_type(self.value, self.entry.type)

    def as_dict(self) -> dict[str, object]:
        return {
            "keyword": self.keyword,
            "value": self.value,
            "detector": self.detector,
            "in_dictionary": self.entry is not None,
            "type": None if self.entry is None else self.entry.type,
            "type_ok": self.type_ok,
            "unit": self.unit,
            "comment": None if self.entry is None else self.entry.comment,
        }


def harvest_header(
    header: Mapping[str, HeaderValue], entries: list[DictionaryEntry], detector: str = ""
) -> list[HarvestedQC]:
    """The QC keywords of one flattened header (``qclib.fitsio``: ``QC.X.Y`` keys), in
    its order."""
    return [
        HarvestedQC(key, value, detector, find_entry(entries, key))
        for key, value in header.items()
        if key.startswith("QC.")
    ]


def harvest_file(path: str | os.PathLike[str], entries: list[DictionaryEntry]) -> list[HarvestedQC]:
    """The QC keywords of every HDU of a product, primary first (headers only read)."""
    scan = scan_fits(path)
    found = harvest_header(scan.primary, entries)
    for hdu in scan.extensions:
        found += harvest_header(hdu.header, entries, hdu.extname or str(hdu.index))
    return found

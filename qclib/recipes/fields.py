"""A field's reference catalogue, and an exposure's filter and airmass: what the recipes
that measure stars (standard fields, science) read besides pixels.

The reference catalogue is ``data/catalogues/<OBJECT>.csv`` in the workspace (``qc
ingest`` copies the one a simulated night ships): ``ra_deg``, ``dec_deg``, a magnitude
column per filter (``[photometry] magnitude_column``), optional errors and
``is_galaxy``. Reference magnitudes get the instrument's colour term (``[photometry]
colour_terms``; their errors from the catalogue's error columns when it has them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.wcs import WCS

from qclib.errors import IncompleteBlockError, UnprocessableDataError
from qclib.recipes.base import RawInput, RecipeContext

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def filter_of(ctx: RecipeContext, raw: RawInput) -> str:
    """The raw's filter (the instrument's filter keywords).

    Raises
    ------
    UnprocessableDataError
        It has none.
    """
    filt = ctx.instrument.filter_name(raw.scan.primary)
    if filt is None:
        raise UnprocessableDataError(
            f"{raw.arcfile}: no filter in {ctx.instrument.filter_keywords}"
        )
    return filt


def reference_catalogue(ctx: RecipeContext, raw: RawInput, filt: str) -> pd.DataFrame:
    """The sources of the raw's field (OBJECT) with a magnitude in ``filt``: ``ra_deg``,
    ``dec_deg``, ``mag`` (colour term applied), ``mag_err``, ``is_star``.

    Raises
    ------
    IncompleteBlockError
        The workspace has no catalogue of the field (the block waits for one).
    UnprocessableDataError
        OBJECT cannot name a file, or the catalogue lacks a column the filter needs.
    """
    target = str(raw.scan.primary.get("OBJECT") or "")
    if not _SAFE_NAME.fullmatch(target):
        raise UnprocessableDataError(
            f"{raw.arcfile}: OBJECT {target!r} cannot name a catalogue file "
            "(letters, digits, '.', '_', '+', '-' only)"
        )
    path = ctx.catalogues / f"{target}.csv"
    if not path.is_file():
        raise IncompleteBlockError(
            f"{ctx.block_id}: no reference catalogue for {target!r}: put {path.name} "
            f"(ra_deg, dec_deg, {ctx.instrument.photometry.magnitude_column}) in {ctx.catalogues}"
        )
    table = pd.read_csv(path)
    settings = ctx.instrument.photometry
    column = settings.magnitude_column.format(filter=filt)
    term = settings.colour_terms.get(filt)
    needed = [column] + (
        [settings.magnitude_column.format(filter=f) for f in term.colour] if term else []
    )
    missing = [c for c in needed if c not in table]
    if missing:
        raise UnprocessableDataError(
            f"catalogue {path.name} has no column {', '.join(missing)}"
            + (
                f" (the colour term of {filt} needs {term.colour[0]} - {term.colour[1]})"
                if term
                else ""
            )
        )
    mag = table[column].to_numpy(float)
    variance = _error(table, settings.error_column.format(filter=filt)) ** 2
    if term is not None:
        blue, red = (settings.magnitude_column.format(filter=f) for f in term.colour)
        mag = mag + term.coefficient * (table[blue].to_numpy(float) - table[red].to_numpy(float))
        for band in term.colour:
            if band != filt:
                error = _error(table, settings.error_column.format(filter=band))
                variance = variance + (term.coefficient * error) ** 2
    galaxy = table["is_galaxy"].to_numpy() if "is_galaxy" in table else np.zeros(len(table))
    sources = pd.DataFrame(
        {
            "ra_deg": table["ra_deg"],
            "dec_deg": table["dec_deg"],
            "mag": mag,
            "mag_err": np.sqrt(variance),
            "is_star": galaxy == 0,
        }
    )
    return sources[np.isfinite(sources["mag"])].reset_index(drop=True)


def _error(table: pd.DataFrame, column: str) -> np.ndarray:
    """A catalogue's magnitude errors (0 where it has none)."""
    if column not in table:
        return np.zeros(len(table))
    return np.nan_to_num(table[column].to_numpy(float))


def airmass_of(raw: RawInput) -> float:
    """The mean of the raw's airmass at start and end.

    Raises
    ------
    UnprocessableDataError
        It has no TEL.AIRM.START.
    """
    start = raw.scan.primary.get("TEL.AIRM.START")
    end = raw.scan.primary.get("TEL.AIRM.END", start)
    if start is None:
        raise UnprocessableDataError(f"{raw.arcfile} has no TEL.AIRM.START")
    return (float(start) + float(end)) / 2  # type: ignore[arg-type]


_WCS_KEYS = ("WCSAXES", "CRPIX", "CRVAL", "CTYPE", "CUNIT", "CDELT", "PC", "CD", "RADESYS")


def header_wcs(header: Mapping[str, Any]) -> WCS:
    """The celestial WCS of a raw detector extension's (flattened) header, of its raw
    pixels (prescan included)."""
    wcs_header = fits.Header()
    for key, value in header.items():
        if key.startswith(_WCS_KEYS):
            wcs_header[key] = value
    return WCS(wcs_header)


def data_section_wcs(header: Mapping[str, Any], origin: tuple[int, int]) -> WCS:
    """``header_wcs`` of the data section's 0-based pixels (``origin``: the section's
    first row and column in the raw)."""
    wcs = header_wcs(header)
    wcs.wcs.crpix = [wcs.wcs.crpix[0] - origin[1], wcs.wcs.crpix[1] - origin[0]]
    return wcs

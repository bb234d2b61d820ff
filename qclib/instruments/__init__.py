"""The instruments QC Workbench knows: one folder each, ``<name>/<name>.toml`` (+ ``.oca``).

Adding an instrument is adding a folder; nothing here lists them by hand.
"""

from __future__ import annotations

import functools
from pathlib import Path

from qclib.config.instrument import InstrumentConfig, load_instrument_config
from qclib.errors import ConfigError

INSTRUMENTS_DIR = Path(__file__).parent


def available_instruments() -> list[str]:
    """Names (INSTRUME values) of every instrument with a configuration folder."""
    return sorted(
        p.parent.name.upper() for p in INSTRUMENTS_DIR.glob("*/*.toml") if p.stem == p.parent.name
    )


@functools.cache
def load_instrument(name: str) -> InstrumentConfig:
    """The validated configuration of an instrument, by name (case-insensitive).

    Raises
    ------
    ConfigError
        No such instrument, or its configuration is invalid.
    """
    folder = name.lower()
    path = INSTRUMENTS_DIR / folder / f"{folder}.toml"
    if not path.exists():
        raise ConfigError(
            f"unknown instrument {name!r}: known are {', '.join(available_instruments())}"
        )
    return load_instrument_config(path)


def instrument_for_instrume(
    value: str, allowed: list[str] | None = None
) -> InstrumentConfig | None:
    """The instrument whose INSTRUME values include ``value`` (None when none does)."""
    for name in allowed if allowed is not None else available_instruments():
        config = load_instrument(name)
        if value.strip() in config.ingest.instrume_values:
            return config
    return None

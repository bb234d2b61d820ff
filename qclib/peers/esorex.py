"""Run ESO's own pipeline recipes (esorex, Debian packages ``esorex`` and
``cpl-plugin-<instrument>``) on the same frames, and read back their QC keywords
and pixel maps.

A reference to compare with, not a dependency: ``available()`` says why it cannot
run where it cannot (shared/peers/hawki_esorex.md lists what each recipe expects).
``QC_ESOREX`` names the esorex executable when it is not the one on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from qclib.errors import ConfigError
from qclib.eso.job import run_job
from qclib.eso.pipelines import ESOREX_ENV, esorex_command, find_pipeline


@dataclass(frozen=True)
class EsorexRun:
    """One esorex recipe run: its products by file name and by PRO.CATG."""

    recipe: str
    products: dict[str, Path]  # file name -> path
    by_catg: dict[str, Path]  # HIERARCH ESO PRO CATG -> path
    out_dir: Path  # products, the SOF and esorex.log
    wall_s: float
    log: str
    peak_rss_mb: float  # esorex's peak resident memory

    def product(self, pro_catg: str) -> Path:
        """The product of category ``pro_catg``.

        Raises
        ------
        LookupError
            the run wrote no such product; the message lists what it wrote.
        """
        if pro_catg not in self.by_catg:
            raise LookupError(
                f"esorex {self.recipe} wrote no {pro_catg} product (it wrote "
                f"{sorted(self.by_catg) or 'nothing'}); see {self.out_dir / 'esorex.log'}"
            )
        return self.by_catg[pro_catg]


def available(plugin: str = "hawki") -> str | None:
    """None when esorex and the instrument's plugins are installed, else the reason."""
    command = esorex_command()
    if shutil.which(command) is None:
        if ESOREX_ENV in os.environ:
            return f"esorex not found at {command!r} (named by ${ESOREX_ENV})"
        return "esorex is not installed (Debian: apt-get install esorex)"
    try:
        find_pipeline(plugin)
    except ConfigError as err:
        return str(err)
    return None


def run_recipe(
    recipe: str,
    frames: Sequence[tuple[str | os.PathLike[str], str]],
    out_dir: str | os.PathLike[str],
    *,
    parameters: dict[str, str] | None = None,
    timeout_s: float = 600.0,
    plugin: str = "hawki",
) -> EsorexRun:
    """Run one recipe of ESO's ``plugin`` pipeline (the one ``available`` found) on
    ``(path, tag)`` frames; products land in ``out_dir`` (new), as
    ``qclib.eso.job.run_job`` runs every esorex job.

    Raises
    ------
    EsorexJobError
        esorex failed; the message ends with the tail of its log.
    """
    done = run_job(
        recipe,
        [(Path(p), tag) for p, tag in frames],
        Path(out_dir),
        options=[f"--{k}={v}" for k, v in (parameters or {}).items()],
        timeout_s=timeout_s,
        threads=os.cpu_count() or 1,
        recipe_dir=find_pipeline(plugin).plugin_dir,
    )
    return EsorexRun(
        recipe,
        {p.name: p for p in done.products},
        {catg: paths[0] for catg, paths in done.by_catg.items()},
        done.out_dir,
        done.wall_s,
        done.log.read_text(errors="replace"),
        done.peak_rss_mb,
    )


def read_qc(path: str | os.PathLike[str]) -> dict[str, dict[str, float]]:
    """QC keywords of an esorex product, per detector (EXTNAME).

    Image extensions give their own ``ESO QC ...`` cards; a table extension's cards
    named per chip (``QC GAIN CHIP1-INT1``) are given to that chip (``CHIP1.INT1``).
    Names are returned flattened (``QC.DARK.MED``).
    """
    out: dict[str, dict[str, float]] = {}
    with fits.open(path) as hdul:
        for hdu in hdul:
            extname = hdu.header.get("EXTNAME")
            for key, value in hdu.header.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                words = key.split()
                if "QC" not in words and "RON" not in words:
                    continue
                name = ".".join(words[1:] if words[0] == "ESO" else words)
                chip = next((w for w in words if w.startswith("CHIP") and "-" in w), None)
                if chip is not None:
                    name = name.replace(f".{chip}", "")
                    out.setdefault(chip.replace("-", "."), {})[name] = float(value)
                elif extname:
                    out.setdefault(str(extname), {})[name] = float(value)
    return out


def read_bad_pixels(
    bpm: str | os.PathLike[str], conf: str | os.PathLike[str]
) -> dict[str, np.ndarray]:
    """Pixels ESO's products mark bad, per detector (EXTNAME): non-zero in the
    MASTER_BPM or zero in the MASTER_CONF (the confidence map ESO's later recipes
    weight pixels by). Full frames, reference-pixel border included."""
    bad: dict[str, np.ndarray] = {}
    with fits.open(bpm) as bpm_hdul, fits.open(conf) as conf_hdul:
        for hdu in bpm_hdul[1:]:
            if not isinstance(hdu, fits.ImageHDU):
                continue  # the PROVENANCE table the project adds to a product
            confidence = np.asarray(conf_hdul[hdu.name].data)
            bad[hdu.name] = (np.asarray(hdu.data) != 0) | (confidence == 0)
    return bad


def pixel_set(mask: np.ndarray) -> set[tuple[int, int]]:
    """The ``(x, y)`` of a mask's true pixels (the truth maps' convention)."""
    ys, xs = np.nonzero(mask)
    return {(int(x), int(y)) for x, y in zip(xs, ys, strict=True)}

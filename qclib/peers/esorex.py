"""Run ESO's own pipeline recipes (esorex, Debian packages ``esorex`` and
``cpl-plugin-<instrument>``) on the same frames, and read back their QC keywords.

A reference to compare with, not a dependency: ``available()`` says why it cannot
run where it cannot (shared/peers/hawki_esorex.md lists what each recipe expects).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from astropy.io import fits


@dataclass(frozen=True)
class EsorexRun:
    recipe: str
    products: dict[str, Path]  # file name -> path
    wall_s: float
    log: str


def available(plugin: str = "hawki") -> str | None:
    """None when esorex and the instrument's plugins are installed, else the reason."""
    if shutil.which("esorex") is None:
        return "esorex is not installed (Debian: apt-get install esorex)"
    if not glob.glob(f"/usr/lib/*/cpl/plugins/{plugin}-*/") and not glob.glob(
        f"/usr/lib/cpl/plugins/{plugin}-*/"
    ):
        return (
            f"the {plugin} pipeline is not installed (Debian: apt-get install cpl-plugin-{plugin})"
        )
    return None


def run_recipe(
    recipe: str,
    frames: Sequence[tuple[str | os.PathLike[str], str]],
    out_dir: str | os.PathLike[str],
    *,
    parameters: dict[str, str] | None = None,
    timeout_s: float = 600.0,
) -> EsorexRun:
    """Run one recipe on ``(path, tag)`` frames; products land in ``out_dir``.

    Raises
    ------
    RuntimeError
        esorex failed; the message ends with the tail of its log.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sof = out / f"{recipe}.sof"
    sof.write_text("".join(f"{Path(p).resolve()} {tag}\n" for p, tag in frames))
    options = [f"--{k}={v}" for k, v in (parameters or {}).items()]
    command = [
        "esorex",
        f"--output-dir={out.resolve()}",
        f"--log-dir={out.resolve()}",
        recipe,
        *options,
        str(sof),
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise RuntimeError(f"esorex {recipe} failed (exit {done.returncode}):\n{tail}")
    products = {p.name: p for p in out.glob("*.fits")}
    return EsorexRun(recipe, products, wall, done.stdout)


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

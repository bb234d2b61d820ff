"""A block run by ESO's recipe: the recipe entry (``run``) of every ``EsoRecipeSpec``.

The block's raws (tagged with their DO.CATG) and chosen calibrations (tagged as the
OCA's ``select file as TAG`` says) make the set of frames; esorex runs in the block's
job folder ``<products>/<night>/<block>.esorex/`` (``qclib.eso.job``), which keeps
its log, set of frames and the files that are no product. Each product (a FITS file
with a PRO.CATG) becomes ``<block>_<PRO.CATG>.fits`` beside the native products: ESO's
headers and pixels as they are, plus the project's ``PROVENANCE`` table (every input's
SHA-256, the options, the configuration hash), ``PIPEFILE`` and CHECKSUM/DATASUM in
every HDU, written atomically. Every ``QC`` keyword is harvested with the unit of the
pipeline's QC1 dictionary; QC values go by HDU (``PRIMARY``, or the extension's
EXTNAME).
"""

from __future__ import annotations

import dataclasses
import shutil
import warnings
from pathlib import Path
from typing import cast

from astropy.io import fits

from qclib.atomicfile import atomic_path
from qclib.errors import UnprocessableDataError
from qclib.eso.harvest import harvest_file
from qclib.eso.job import run_job
from qclib.eso.pipelines import find_pipeline
from qclib.eso.recipes import EsoRecipeSpec
from qclib.fitsio import scan_fits, sha256_file
from qclib.previews import DetectorPreview, image_hdus, previews_from_file, write_previews
from qclib.products import Input, ProductSpec, provenance_table, setup_header
from qclib.recipes.base import ProductResult, RecipeContext

#: The QC values of a product's primary header go by this name.
PRIMARY = "PRIMARY"
#: The longest PIPEFILE value one card holds. A longer one would need the CONTINUE
#: convention, which ESO's UVES recipes cannot read in a calibration ("Could not load
#: header from extension 0"): such a product keeps ESO's PIPEFILE.
PIPEFILE_MAX = 68


def job_dir(ctx: RecipeContext) -> Path:
    """The block's esorex folder (log, set of frames, the recipe's other files)."""
    return ctx.product_dir / f"{ctx.block.id}.esorex"


def frames_of(ctx: RecipeContext) -> list[tuple[Path, str]]:
    """The set of frames: raws with their DO.CATG, then calibrations with their tag."""
    frames = [(r.path, r.category) for r in ctx.raws_of()]
    frames += [(c.path, tag) for tag, chosen in ctx.calibrations.items() for c in chosen]
    return frames


def run(ctx: RecipeContext) -> list[ProductResult]:
    """Run the block's ESO recipe and adopt its products.

    Raises
    ------
    UnprocessableDataError
        Fewer raws than the plan asks; esorex failed, ran out of time or wrote no
        product (``EsorexJobError``: the log's last lines, the failed job's folder).
    """
    spec = cast(EsoRecipeSpec, ctx.spec)
    if len(ctx.raws) < ctx.min_frames:
        raise UnprocessableDataError(
            f"{ctx.block.id}: {len(ctx.raws)} raw frame(s); {spec.name} is asked to run "
            f"on at least {ctx.min_frames} ([association.min_frames])"
        )
    options = spec.options_of(ctx.block.action)
    folder = job_dir(ctx)
    shutil.rmtree(folder, ignore_errors=True)  # a previous attempt's, remade whole
    job = run_job(
        spec.runs,
        frames_of(ctx),
        folder,
        options=options,
        timeout_s=spec.timeout_s,
        threads=spec.threads,
        recipe_dir=Path(spec.recipe_dir),
    )
    entries = find_pipeline(spec.pipeline).qc_entries()
    parameters = {
        k.lstrip("-"): v if sep else "TRUE" for k, sep, v in (o.partition("=") for o in options)
    }
    product_spec = ProductSpec(
        pro_catg="",
        recipe=spec.runs,
        instrument=ctx.instrument.name,
        raw_header=ctx.raws[0].scan.primary,
        inputs=(
            *(Input(r.arcfile, r.category, r.sha256, "raw") for r in ctx.raws_of()),
            *(
                Input(c.path.name, c.category, c.sha256, "calib")
                for chosen in ctx.calibrations.values()
                for c in chosen
            ),
        ),
        parameters=parameters,
        config_hash=ctx.config_hash,
    )
    results = []
    for catg, paths in sorted(job.by_catg.items()):
        for i, made in enumerate(paths, 1):
            name = f"{ctx.block.id}_{catg}" + (f"_{i}" if len(paths) > 1 else "")
            dest = ctx.product_dir / f"{name}.fits"
            sha = adopt(made, dest, dataclasses.replace(product_spec, pro_catg=catg))
            qc: dict[str, dict[str, float]] = {}
            units: dict[str, str] = {}
            for found in harvest_file(dest, entries):
                value = found.value
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue  # text QC (a mode, a file name): kept in the header
                detector = detector_of(found.detector)
                if detector is None:
                    continue
                qc.setdefault(detector, {})[found.keyword] = float(value)
                if found.unit:
                    units[found.keyword] = found.unit
            write_previews(dest, sha, previews_of(dest))
            results.append(
                ProductResult(
                    catg,
                    dest,
                    sha,
                    qc,
                    setup_header(ctx.raws[0].scan.primary),
                    parameters,
                    units=units,
                )
            )
    return results


#: Planes beside a detector's data that repeat its QC cards (MUSE: CHANnn.DQ, .STAT).
_COMPANION_PLANES = (".DQ", ".STAT", ".ERR")


def detector_of(extname: str) -> str | None:
    """The detector a QC card's HDU stands for: ``PRIMARY``, the EXTNAME (``CHAN07``
    for ``CHAN07.DATA``); None for a plane that repeats its data's cards."""
    if not extname:
        return PRIMARY
    if extname.endswith(_COMPANION_PLANES):
        return None
    return extname.removesuffix(".DATA")


def adopt(made: Path, dest: Path, spec: ProductSpec) -> str:
    """Write ESO's product ``made`` as ``dest`` with the project's provenance table,
    ``PIPEFILE`` (where it fits one card) and checksums (atomically; ``made`` is
    removed); its SHA-256."""
    with (
        fits.open(made, do_not_scale_image_data=True, memmap=False) as hdus,
        atomic_path(dest) as tmp,
        warnings.catch_warnings(),
    ):
        # A card of ESO's whose comment no longer fits is written with the comment
        # cut, never its value: ESO's headers are kept, not judged.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        if len(dest.name) <= PIPEFILE_MAX:
            hdus[0].header["PIPEFILE"] = dest.name
        hdus.append(provenance_table(spec))
        hdus.writeto(tmp, checksum=True)
    made.unlink()
    return sha256_file(dest)


def previews_of(path: Path) -> list[DetectorPreview]:
    """Previews of a product's 2-D images: the primary's (as ``PRIMARY``) and each
    image extension's."""
    scan = scan_fits(path)
    found = []
    if int(scan.primary.get("NAXIS", 0) or 0) == 2:  # type: ignore[call-overload]
        found += [
            dataclasses.replace(p, extname=PRIMARY) for p in previews_from_file(path, scan.hdus[:1])
        ]
    return found + previews_from_file(path, image_hdus(scan))

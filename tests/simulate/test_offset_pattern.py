"""A template's offset pattern (a tile's pawprints): its exposures cycle through the
offsets in order, each with its jitter on top, and the catalogue covers them all."""

from __future__ import annotations

import numpy as np

from qclib.instruments import load_instrument
from qclib.simulate.plan import plan_night
from qclib.simulate.sky import make_catalogue, mosaic_extent_arcmin
from tests.conftest import NIGHT

VIRCAM = load_instrument("VIRCAM")


def test_pawprints_cycle_through_the_pattern_with_jitter() -> None:
    template = next(p for p in VIRCAM.simulator.plan if p.kind == "science")
    assert len(template.offsets_arcsec) == 6 and template.count == 12
    exposures, _ = plan_night(VIRCAM, NIGHT, seed=2, scale="full")
    science = [e for e in exposures if e.kind == "science"]
    assert len(science) == 12  # two tiles of six pawprints
    for k, exposure in enumerate(science):
        east, north = template.offsets_arcsec[k % 6]
        jitter = (exposure.offset_arcsec[0] - east, exposure.offset_arcsec[1] - north)
        assert max(abs(j) for j in jitter) <= template.dither_arcsec
    jitters = {tuple(round(v, 3) for v in e.offset_arcsec) for e in science}
    assert len(jitters) == 12  # the second tile is jittered afresh


def test_the_catalogue_covers_every_pawprint() -> None:
    template = next(p for p in VIRCAM.simulator.plan if p.kind == "science")
    geometry = VIRCAM.geometry["test"]
    catalogue = make_catalogue(
        VIRCAM, geometry, template.target, VIRCAM.simulator.targets[template.target], seed=2
    )
    target = VIRCAM.simulator.targets[template.target]
    width, height = mosaic_extent_arcmin(VIRCAM, geometry)
    cos_dec = np.cos(np.radians(target.dec_deg))
    span_east = (catalogue.ra_deg.max() - catalogue.ra_deg.min()) * 60 * cos_dec
    span_north = (catalogue.dec_deg.max() - catalogue.dec_deg.min()) * 60
    reach_east = max(abs(e) for e, _ in template.offsets_arcsec) / 60
    reach_north = max(abs(n) for _, n in template.offsets_arcsec) / 60
    # The mosaic moved by the farthest pawprint either way, and the jitter margin.
    assert span_east > width + 2 * reach_east + 1.5
    assert span_north > height + 2 * reach_north + 1.5

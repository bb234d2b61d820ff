"""ESO raw-frame headers for simulated exposures.

Keyword names and types follow ESO's dictionaries (DPR, TPL, OBS, DET, INS, TEL,
SEQ); see shared/realdata/debian_cpl_plugins/*/dic for the instrument ones.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from qclib import __version__, ephemeris
from qclib.config.instrument import Geometry, InstrumentConfig, parse_section
from qclib.config.simulator import TRANSPARENCY_CODES
from qclib.nights import mjd_to_datetime
from qclib.simulate.plan import Exposure, iso_millis

_OBJECT_OF_KIND = {
    "bias": "BIAS",
    "dark": "DARK",
    "reset": "RESET",
    "linearity_dark": "DARK",
    "dome_flat": "FLAT,DOME",
    "linearity_flat": "FLAT,DOME",
    "twilight_flat": "FLAT,SKY",
}


def primary_header(instrument: InstrumentConfig, exposure: Exposure, n_ext: int) -> fits.Header:
    """The primary header (no data) of a simulated raw file."""
    tpl = exposure.template
    start = mjd_to_datetime(exposure.mjd_obs)
    end = start + dt.timedelta(seconds=exposure.exptime_s)
    lst_s = float(ephemeris.lst_hours(exposure.mjd_obs, instrument.site.longitude_deg)) * 3600
    h = fits.Header()
    h["SIMPLE"] = (True, "file does conform to FITS standard")
    h["BITPIX"] = (16, "number of bits per data pixel")
    h["NAXIS"] = (0, "number of data axes")
    h["EXTEND"] = (True, "FITS dataset may contain extensions")
    h["ORIGIN"] = (instrument.origin, "European Southern Observatory")
    h["DATE"] = (iso_millis(end + dt.timedelta(seconds=5)), "Date the file was written")
    h["TELESCOP"] = (instrument.telescope, "ESO Telescope Name")
    h["INSTRUME"] = (instrument.name, "Instrument used.")
    h["OBJECT"] = (tpl.target or _OBJECT_OF_KIND.get(exposure.kind, tpl.dpr_type), "Target")
    # What the telescope reports, pointing error included (the extensions' WCS too).
    h["RA"] = (round(exposure.wcs_ra_deg, 6), "[deg] telescope pointing")
    h["DEC"] = (round(exposure.wcs_dec_deg, 6), "[deg] telescope pointing")
    h["EQUINOX"] = (2000.0, "Standard FK5 (years)")
    h["RADESYS"] = ("ICRS", "Coordinate reference frame")
    h["EXPTIME"] = (exposure.exptime_s, "[s] Integration time")
    h["MJD-OBS"] = (round(exposure.mjd_obs, 8), "[d] Start of observations (days)")
    h["DATE-OBS"] = (exposure.date_obs, "Date of observation")
    h["UTC"] = (round((exposure.mjd_obs % 1) * 86400, 3), "[s] UTC at start")
    h["LST"] = (round(lst_s, 3), "[s] LST at start")
    h["PI-COI"] = ("UNKNOWN", "PI-COI name.")
    h["OBSERVER"] = ("UNKNOWN", "Name of observer.")
    h["ARCFILE"] = (exposure.arcfile, "Archive File Name")
    h["ORIGFILE"] = (exposure.origfile, "Original File Name")
    eso = {
        "OBS NAME": (tpl.obs_name, "OB name"),
        "OBS ID": (exposure.obs_id, "Observation block ID"),
        "OBS PROG ID": (tpl.prog_id, "ESO program identification"),
        "OBS START": (exposure.tpl_start, "OB start time"),
        "OBS TARG NAME": (tpl.target or "Calibration", "OB target name"),
        "TPL ID": (tpl.tpl_id, "Template signature ID"),
        "TPL NAME": (tpl.tpl_name, "Template name"),
        "TPL START": (exposure.tpl_start, "TPL start time"),
        "TPL EXPNO": (exposure.tpl_expno, "Exposure number within template"),
        "TPL NEXP": (exposure.tpl_nexp, "Number of exposures within template"),
        "DPR CATG": (tpl.dpr_catg, "Observation category"),
        "DPR TYPE": (tpl.dpr_type, "Observation type"),
        "DPR TECH": (tpl.dpr_tech, "Observation technique"),
        "TEL AIRM START": (round(exposure.airmass, 3), "Airmass at start"),
        "TEL AIRM END": (round(exposure.airmass, 3), "Airmass at end"),
        "TEL ALT": (round(exposure.altitude_deg, 3), "[deg] Alt angle at start"),
        "TEL AMBI FWHM START": (round(exposure.seeing_zenith_arcsec, 2), "[arcsec] DIMM seeing"),
        "TEL AMBI FWHM END": (round(exposure.seeing_zenith_arcsec, 2), "[arcsec] DIMM seeing"),
        "DET CHIPS": (n_ext, "Number of chips in the mosaic"),
        "DET EXP NO": (exposure.index + 1, "Exposure number"),
    }
    if tpl.constraints is not None:
        c = tpl.constraints
        eso.update(
            {
                "OBS AIRM": (c.airmass, "Req. max. airmass"),
                "OBS AMBI FWHM": (c.seeing_arcsec, "Req. max. seeing"),
                "OBS AMBI TRANS": (TRANSPARENCY_CODES[c.transparency], "Req. sky transparency"),
                "OBS MOON DIST": (c.moon_distance_deg, "Req. min. angular dist. from moon [deg]"),
                "OBS MOON FLI": (c.moon_fli, "Req. max. fractional lunar illum."),
            }
        )
    if instrument.infrared:
        dx, dy = exposure.offset_arcsec
        eso.update(
            {
                "DET DIT": (exposure.dit_s, "Detector integration time"),
                "DET NDIT": (exposure.ndit, "# of Sub-Integrations"),
                # A reset frame is one read after the reset (ESO VIRCAM QC page
                # qc_VC_reset.html: "RESET frame (the read mode is uncorrelated)").
                "DET NCORRS NAME": (
                    "Uncorr" if exposure.kind == "reset" else "Double",
                    "Read-Out Mode Name",
                ),
                "INS FILT1 NAME": (exposure.filter or "Dark", "Filter name"),
                "INS FILT2 NAME": ("OPEN", "Filter name"),
                "SEQ CUMOFFSETX": (round(dx / instrument.pixel_scale_arcsec, 2), "Cum. offset X"),
                "SEQ CUMOFFSETY": (round(dy / instrument.pixel_scale_arcsec, 2), "Cum. offset Y"),
                "SEQ JITTER WIDTH": (2 * tpl.dither_arcsec, "Jitter box width"),
            }
        )
    else:
        eso.update(
            {
                "DET WIN1 UIT1": (exposure.exptime_s, "user defined subintegration time"),
                "DET READ CLOCK": ("NORMAL", "Readout clock pattern used"),
                "INS FILT1 NAME": (exposure.filter or "NONE", "Filter name"),
                "DET SHUT TYPE": ("Shutter", "type of shutter"),
            }
        )
    for key, value in eso.items():
        h[f"HIERARCH ESO {key}"] = value
    h["HIERARCH ESO PRO SIMULATOR"] = (f"qclib {__version__}", "made by qc simulate")
    return h


def extension_header(
    instrument: InstrumentConfig,
    geometry: Geometry,
    extname: str,
    chip_no: int,
    wcs: WCS,
    nominal_gain_e_per_adu: float,
    nominal_ron_e: float,
) -> fits.Header:
    """The header of one detector extension."""
    detector = next(d for d in instrument.detectors if d.extname == extname)
    rows, cols = parse_section(geometry.data_section)
    h = fits.Header()
    h["XTENSION"] = ("IMAGE", "IMAGE extension")
    h["BITPIX"] = (geometry.bitpix, "number of bits per data pixel")
    h["NAXIS"] = (2, "number of data axes")
    h["NAXIS1"] = (geometry.naxis1, "length of data axis 1")
    h["NAXIS2"] = (geometry.naxis2, "length of data axis 2")
    h["PCOUNT"] = (0, "required keyword; must = 0")
    h["GCOUNT"] = (1, "required keyword; must = 1")
    if geometry.bitpix == 16:
        h["BZERO"] = (32768, "offset data range to that of unsigned short")
        h["BSCALE"] = (1, "default scaling factor")
    h["EXTNAME"] = (extname, "Extension name")
    h["INHERIT"] = (True, "Primary header keywords are inherited")
    h.update(wcs.to_header())
    prescan = parse_section(geometry.prescan_section)[1] if geometry.prescan_section else None
    overscan = parse_section(geometry.overscan_section)[1] if geometry.overscan_section else None
    eso = {
        "DET CHIP ID": (detector.chip_id, "Detector chip identification"),
        "DET CHIP NO": (chip_no, "Detector chip number"),
        "DET CHIP LIVE": (True, "Detector alive"),
        "DET CHIP NX": (cols.stop - cols.start, "# of pixels along X"),
        "DET CHIP NY": (rows.stop - rows.start, "# of pixels along Y"),
        "DET CHIP PSZX": (instrument.pixel_size_um, "[um] Size of pixel in X"),
        "DET CHIP PSZY": (instrument.pixel_size_um, "[um] Size of pixel in Y"),
        "DET OUT1 ID": (f"{extname}-A", "Output ID as from manufacturer"),
        "DET OUT1 NX": (cols.stop - cols.start, "valid pixels along X"),
        "DET OUT1 NY": (rows.stop - rows.start, "valid pixels along Y"),
        "DET OUT1 PRSCX": (0 if prescan is None else prescan.stop - prescan.start, "Prescan X"),
        "DET OUT1 OVSCX": (0 if overscan is None else overscan.stop - overscan.start, "Overscan X"),
        "DET OUT1 CONAD": (round(nominal_gain_e_per_adu, 3), "Conversion from ADUs to electrons"),
        "DET OUT1 GAIN": (round(1 / nominal_gain_e_per_adu, 4), "Conversion electrons to ADU"),
        "DET OUT1 RON": (round(nominal_ron_e, 2), "Readout noise per output (e-)"),
    }
    for key, value in eso.items():
        h[f"HIERARCH ESO {key}"] = value
    return h


def header_bytes(header: fits.Header) -> bytes:
    """The header as FITS bytes, END card and padding included."""
    text = header.tostring(padding=True)
    return text.encode("ascii")


def encode_data(raw: np.ndarray, bitpix: int) -> bytes:
    """Raw pixel values as big-endian FITS bytes (int16 with BZERO=32768, or float32)."""
    if bitpix == 16:
        stored = (raw.astype(np.int32) - 32768).astype(">i2")
        return stored.tobytes()
    return raw.astype(">f4").tobytes()

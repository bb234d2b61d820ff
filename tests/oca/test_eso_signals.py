"""ESO's organisation signals in Debian's rule files: ``SIG.TEMPLATE == 1`` makes one
block of a template's frames, ``SIG.FRAME == 1`` one block per frame, ``LF.<key>`` is
the key of the template's last frame."""

from __future__ import annotations

from qclib.associate import RawFrame, organise
from tests.oca.test_eso_rule_files import _debian_rules


def _frames(template: str, categories: list[str], start: float) -> list[RawFrame]:
    return [
        RawFrame(
            f"GIRAF.{template}.{i:02d}.fits",
            "GIRAFFE",
            "2026-12-05",
            start + i / 1440,
            {"DO.CATG": catg, "TPL.START": template},
        )
        for i, catg in enumerate(categories)
    ]


def _blocks(instrument: str, frames: list[RawFrame]) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for action, members in organise(_debian_rules(instrument), frames):
        out.setdefault(action.name, []).append([f.arcfile for f in members])
    return out


def test_a_template_of_biases_is_one_block() -> None:
    """giraf.oca: `select execute(gimasterbias) ... where SIG.TEMPLATE == 1 and
    LF.DO.CATG == "BIAS"`: each template's biases make one block, whatever the count."""
    first = _frames("2026-12-06T09:00:00", ["BIAS"] * 5, 61380.375)
    second = _frames("2026-12-06T10:00:00", ["BIAS"] * 3, 61380.42)
    blocks = _blocks("giraf", first + second)
    assert blocks == {
        "gimasterbias": [[f.arcfile for f in first], [f.arcfile for f in second]],
    }


def test_the_last_frame_names_the_templates_action() -> None:
    """LF.DO.CATG is the template's last frame's: a template ending on a dark is a
    dark block (all of its frames), never a bias block."""
    frames = _frames("2026-12-06T09:00:00", ["BIAS", "BIAS", "DARK"], 61380.375)
    assert _blocks("giraf", frames) == {"gimasterdark": [[f.arcfile for f in frames]]}


def test_a_frame_signal_makes_a_block_of_each_frame() -> None:
    """giraf.oca: `select execute(giwavecalibration) ... where SIG.FRAME == 1 and
    DO.CATG == "ARC_SPECTRUM"`: every arc alone."""
    arcs = _frames("2026-12-06T11:00:00", ["ARC_SPECTRUM"] * 3, 61380.46)
    assert _blocks("giraf", arcs) == {"giwavecalibration": [[f.arcfile] for f in arcs]}


def test_a_template_signal_with_the_frames_category_takes_only_those_frames() -> None:
    """uves.oca: `... where SIG.TEMPLATE == 1 and DO.CATG == "DARK_BLUE"`: of a
    template, its blue darks only."""
    frames = [
        RawFrame(
            f"UVES.{i}.fits",
            "UVES",
            "2026-12-05",
            61380.4 + i / 1440,
            {"DO.CATG": catg, "TPL.START": "2026-12-06T09:30:00"},
        )
        for i, catg in enumerate(["DARK_BLUE", "DARK_BLUE", "BIAS_BLUE"])
    ]
    blocks = _blocks("uves", frames)
    assert blocks.get("UVES_MASTER_DARK_B") == [["UVES.0.fits", "UVES.1.fits"]]

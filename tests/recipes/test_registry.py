"""Declared recipes: an instrument's rules and TOML are checked against them when it
loads; recipe parameters come from the TOML; old recipe names still load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import qclib.instruments as instruments
from qclib.errors import ConfigError
from qclib.instruments import load_instrument, load_rules
from qclib.instruments.recipe_check import recipe_parameters
from qclib.products import setup_header
from qclib.recipes.registry import SPECS, find_recipe
from qclib.workflow.association import associate_workspace
from qclib.workflow.ingest import ingest_paths
from qclib.workflow.process import process_blocks


@pytest.fixture
def instrument_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the instrument folders that a test may edit, loaded instead of ours."""
    folder = tmp_path / "instruments"
    for name in ("hawki", "omegacam"):
        shutil.copytree(instruments.INSTRUMENTS_DIR / name, folder / name)
    monkeypatch.setattr(instruments, "INSTRUMENTS_DIR", folder)
    load_instrument.cache_clear()
    load_rules.cache_clear()
    yield folder
    load_instrument.cache_clear()
    load_rules.cache_clear()


def _edit(path: Path, old: str, new: str) -> int:
    """Replace ``old`` (once, it must be there) and return the line it was on."""
    text = path.read_text()
    assert text.count(old) == 1, old
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new))
    return line


def _action_line(path: Path, action: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.strip() == f"action {action}")


def test_an_unknown_recipe_stops_the_instrument_with_line_and_suggestion(instrument_dir) -> None:
    oca = instrument_dir / "hawki" / "hawki.oca"
    _edit(oca, "recipe qc_ir_dark;", "recipe qc_ir_drak;")
    line = _action_line(oca, "MASTER_DARK")
    with pytest.raises(ConfigError) as err:
        load_rules("HAWKI")
    message = str(err.value)
    assert str(oca) in message
    assert (
        f"line {line}: action MASTER_DARK names recipe 'qc_ir_drak', which does not exist "
        "(did you mean 'qc_ir_dark'?)" in message
    )


def test_a_required_input_no_tag_provides_stops_the_instrument(instrument_dir) -> None:
    oca = instrument_dir / "hawki" / "hawki.oca"
    text = oca.read_text()
    start = text.index("action MASTER_TWILIGHT_FLAT")
    select = text.index("  minRet = 1; maxRet = 1;\n  select file as MASTER_DARK", start)
    end = text.index("recipe qc_ir_twilight_flat", start)
    oca.write_text(text[:select] + "  " + text[end:])
    with pytest.raises(ConfigError) as err:
        load_rules("HAWKI")
    assert (
        "action MASTER_TWILIGHT_FLAT: recipe qc_ir_twilight_flat needs the master dark of "
        "the flats' DIT (tag MASTER_DARK), but the action has no 'select file as MASTER_DARK'"
    ) in str(err.value)


def test_an_optional_selection_of_a_required_input_is_refused(instrument_dir) -> None:
    oca = instrument_dir / "omegacam" / "omegacam.oca"
    text = oca.read_text()
    start = text.index("action MASTER_DARK")
    cut = text.index("minRet = 1; maxRet = 1;", start)
    oca.write_text(text[:cut] + "minRet = 0; maxRet = 1;" + text[cut + 23 :])
    with pytest.raises(ConfigError, match="but the action selects MASTER_BIAS with minRet = 0"):
        load_rules("OMEGACAM")


def test_a_tag_the_recipe_does_not_read_is_a_typo(instrument_dir) -> None:
    oca = instrument_dir / "omegacam" / "omegacam.oca"
    line = _edit(
        oca,
        "select file as MASTER_DOME_FLAT from",
        "select file as MASTER_DOME_FLT from",
    )
    with pytest.raises(ConfigError) as err:
        load_rules("OMEGACAM")
    message = str(err.value)
    assert (
        f"line {line}: action MASTER_SKY_FLAT selects MASTER_DOME_FLT, which recipe "
        "qc_master_sky_flat does not read (did you mean 'MASTER_DOME_FLAT'?)"
    ) in message
    # ...and so the recipe lacks its dome flat: both problems are listed.
    assert "needs the master dome flat of the filter (tag MASTER_DOME_FLAT)" in message


def test_a_product_the_recipe_does_not_make_is_refused(instrument_dir) -> None:
    oca = instrument_dir / "hawki" / "hawki.oca"
    _edit(
        oca,
        'product MASTER_CONF { PRO.CATG = "MASTER_CONF"; }',
        'product BPM { PRO.CATG = "BPM"; }',
    )
    toml = instrument_dir / "hawki" / "hawki.toml"
    _edit(toml, '"MASTER_DARK", "MASTER_READGAIN"', '"MASTER_DARK", "BPM", "MASTER_READGAIN"')
    with pytest.raises(
        ConfigError, match="declares product BPM, which recipe qc_ir_twilight_flat does not make"
    ):
        load_rules("HAWKI")


def test_a_plan_asking_fewer_frames_than_the_recipe_needs_is_refused(instrument_dir) -> None:
    toml = instrument_dir / "hawki" / "hawki.toml"
    _edit(toml, "MASTER_TWILIGHT_FLAT = 3\n", "MASTER_TWILIGHT_FLAT = 1\n")
    with pytest.raises(
        ConfigError,
        match=r"hawki.toml \[association.min_frames\] MASTER_TWILIGHT_FLAT = 1, but recipe "
        "qc_ir_twilight_flat needs at least 3 raw frames",
    ):
        load_rules("HAWKI")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "[recipes.qc_master_bias]\nhot_sigm = 4.0\n",
            r"unknown parameter 'hot_sigm' \(did you "
            r"mean 'hot_sigma'\?\); it has hot_sigma",
        ),
        ('[recipes.qc_master_bias]\nhot_sigma = "high"\n', "hot_sigma = 'high': expected float"),
        (
            "[recipes.qc_master_bais]\nhot_sigma = 4.0\n",
            r"no such recipe \(did you mean "
            r"'qc_master_bias'\?\)",
        ),
        ("[recipes.qc_hawki_dark]\nhot_sigma = 4.0\n", "it is now called 'qc_ir_dark'"),
    ],
)
def test_recipe_tables_are_checked_when_the_instrument_loads(
    instrument_dir, table: str, message: str
) -> None:
    toml = instrument_dir / "omegacam" / "omegacam.toml"
    toml.write_text(toml.read_text() + "\n" + table)
    with pytest.raises(ConfigError, match=message) as err:
        load_instrument("OMEGACAM")
    assert str(toml) in str(err.value)


def test_old_recipe_names_still_load_and_run_as_the_new(instrument_dir) -> None:
    oca = instrument_dir / "hawki" / "hawki.oca"
    for old, new in [
        ("qc_hawki_dark", "qc_ir_dark"),
        ("qc_hawki_detector_noise", "qc_ir_detector_noise"),
        ("qc_hawki_twilight_flat", "qc_ir_twilight_flat"),
    ]:
        _edit(oca, f"recipe {new};", f"recipe {old};")
        assert find_recipe(old) is find_recipe(new)
    rules = load_rules("HAWKI")
    assert rules.action("MASTER_DARK").recipe == "qc_hawki_dark"
    assert find_recipe("qc_hawki_zeropoint") is find_recipe("qc_zeropoint")


def test_recipe_parameters_come_from_the_instrument_toml(
    instrument_dir, omegacam_night: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A QC scientist's hot-pixel threshold in omegacam.toml reaches the master bias:
    the product records it, and a lower threshold flags more pixels."""
    from qclib.db import blocks as block_store
    from qclib.db import products as product_store
    from qclib.workspace import init_workspace

    monkeypatch.setenv("QC_DB_URL", "")
    counts = {}
    for sigma in (5.0, 4.0):
        toml = instrument_dir / "omegacam" / "omegacam.toml"
        if sigma != 5.0:
            toml.write_text(toml.read_text() + f"\n[recipes.qc_master_bias]\nhot_sigma = {sigma}\n")
        load_instrument.cache_clear()
        assert (
            recipe_parameters(load_instrument("OMEGACAM"), find_recipe("qc_master_bias")).hot_sigma
            == sigma
        )
        workspace = init_workspace(tmp_path / f"ws{sigma}")
        db = workspace.open_database()
        ingest_paths(workspace, db, [omegacam_night])
        associate_workspace(workspace, db)
        with db.transaction() as session:
            bias = next(b for b in block_store.list_blocks(session) if b.action == "MASTER_BIAS")
        (outcome,) = process_blocks(workspace, db, ids=[bias.id])
        assert outcome.status == "done", outcome.reason
        with db.transaction() as session:
            (product,) = product_store.products_of_block(session, bias.id)
            assert product.provenance["parameters"]["hot_sigma"] == sigma
            values = product_store.qc_values(session, product.id)
        counts[sigma] = sum(v["QC.NHOTPIX"] for v in values.values())
        db.close()
    assert counts[4.0] > counts[5.0]


def test_every_setup_keyword_is_kept_by_products() -> None:
    """A product is compared on its setup, so its header must carry every keyword of it."""
    for name in ("OMEGACAM", "HAWKI"):
        config = load_instrument(name)
        for category, keys in config.setups.items():
            kept = setup_header(dict.fromkeys(keys, 1))
            assert set(kept) == set(keys), (name, category)


def test_every_declared_recipe_loads() -> None:
    for spec in SPECS:
        assert callable(spec.load()), spec.name
        assert spec.products and spec.min_raws >= 1

"""esorex jobs: ESO's GIRAFFE master bias on simulated frames, checked against the truth;
and a recipe that crashes, one that outlives its time and one that writes no product,
each refused with its log's last lines and nothing left where products go."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from qclib.eso.job import LOG_NAME, STDOUT_NAME, EsorexJobError, job_cost, run_job, write_sof
from qclib.eso.pipelines import ESOREX_ENV
from tests.eso.conftest import BIAS_ADU, RON_ADU, giraffe_biases


def test_giraffe_master_bias_job_measures_the_true_read_noise(
    esorex_giraffe, tmp_path: Path
) -> None:
    frames = [(p, "BIAS") for p in giraffe_biases(tmp_path)]
    out = tmp_path / "job"
    done = run_job("gimasterbias", frames, out, options=["--stack-method=median"])
    assert done.out_dir == out and set(done.by_catg) >= {"MASTER_BIAS"}
    (master,) = done.by_catg["MASTER_BIAS"]
    header = fits.getheader(master)
    # ESO's read noise of the raw bias: rms in five 100x100 windows of the difference of
    # two raws, over sqrt 2 (50,000 pixels: 0.3 % statistical error); 2 % allowed.
    assert header["HIERARCH ESO QC OUT1 RON RAW"] == pytest.approx(RON_ADU, rel=0.02)
    assert header["HIERARCH ESO QC BIAS MASTER MEDIAN"] == pytest.approx(BIAS_ADU, abs=0.1)
    # The log and the SOF beside the products; what the recipe wrote into its current
    # folder (qc0000.paf) stays in the job's folder, not the caller's.
    assert (out / LOG_NAME).is_file() and "gimasterbias" in done.log.read_text()
    assert (out / "gimasterbias.sof").read_text().splitlines()[0].endswith(" BIAS")
    assert (out / "qc0000.paf").is_file() and not Path("qc0000.paf").exists()
    assert done.wall_s > 0 and done.peak_rss_mb > 50  # three 35 MB frames and more
    assert job_cost(out) == {
        "recipe": "gimasterbias",
        "wall_s": done.wall_s,
        "peak_rss_mb": done.peak_rss_mb,
    }
    assert not list(tmp_path.glob(".tmp-*-job-*")) and not (tmp_path / "job.failed").exists()
    with pytest.raises(FileExistsError):
        run_job("gimasterbias", frames, out)


def _fake_esorex(folder: Path, body: str, monkeypatch: pytest.MonkeyPatch) -> None:
    script = folder / "fake-esorex"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(ESOREX_ENV, str(script))


def _frame(folder: Path) -> list[tuple[Path, str]]:
    path = folder / "raw.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32)).writeto(path)
    return [(path, "BIAS")]


def test_a_crashing_recipe_fails_with_its_log(tmp_path: Path, monkeypatch) -> None:
    _fake_esorex(
        tmp_path,
        'echo "[ INFO  ] esorex: loading"; echo "[ ERROR ] gimasterbias: bad pixel map"\n'
        "echo partial > half.fits\nkill -SEGV $$\n",
        monkeypatch,
    )
    out = tmp_path / "job"
    with pytest.raises(EsorexJobError, match=r"failed \(exit -11\)") as raised:
        run_job("gimasterbias", _frame(tmp_path), out)
    assert "bad pixel map" in str(raised.value).splitlines()[-1]
    # No esorex.log was written: the error names what esorex printed.
    assert f"(log: {tmp_path / 'job.failed' / STDOUT_NAME})" in str(raised.value)
    assert not out.exists() and (tmp_path / "job.failed" / "half.fits").exists()


def test_a_recipe_out_of_time_is_stopped_with_its_children(tmp_path: Path, monkeypatch) -> None:
    _fake_esorex(tmp_path, "sleep 60 &\necho $! > child.pid\necho started\nsleep 60\n", monkeypatch)
    out = tmp_path / "job"
    with pytest.raises(EsorexJobError, match=r"ran out of its 0.5 s and was stopped"):
        run_job("gimasterbias", _frame(tmp_path), out, timeout_s=0.5)
    _assert_gone(int((tmp_path / "job.failed" / "child.pid").read_text()))
    assert not out.exists()


def _assert_gone(pid: int, within_s: float = 10.0) -> None:
    """Process ``pid`` ends (or is left a zombie for init to reap) within ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if _state(pid) == "Z":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs ({_state(pid)})")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return "Z"


def test_an_interrupted_caller_stops_esorex(tmp_path: Path, monkeypatch) -> None:
    _fake_esorex(tmp_path, "echo $$ > esorex.pid\nsleep 60\n", monkeypatch)
    from qclib.eso import job

    def interrupted(process, timeout_s):  # type: ignore[no-untyped-def]
        for _ in range(200):  # until the fake has started
            if list(tmp_path.glob(".tmp-*-job-*/esorex.pid")):
                break
            time.sleep(0.01)
        (pid_file,) = tmp_path.glob(".tmp-*-job-*/esorex.pid")
        interrupted.pid = int(pid_file.read_text())  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "_wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_job("gimasterbias", _frame(tmp_path), tmp_path / "job", timeout_s=60)
    _assert_gone(interrupted.pid)  # type: ignore[attr-defined]
    assert not list(tmp_path.glob(".tmp-*-job-*")) and not (tmp_path / "job").exists()


def test_an_esorex_that_cannot_start_or_writes_broken_fits(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(ESOREX_ENV, str(tmp_path / "no-such-esorex"))
    with pytest.raises(EsorexJobError, match=r"could not start"):
        run_job("gimasterbias", _frame(tmp_path), tmp_path / "job")
    _fake_esorex(tmp_path, "printf 'not FITS at all' > product.fits\n", monkeypatch)
    with pytest.raises(EsorexJobError, match=r"wrote product.fits, which is not readable FITS"):
        run_job("gimasterbias", _frame2(tmp_path), tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_a_relative_output_folder(tmp_path: Path, monkeypatch) -> None:
    _fake_esorex(tmp_path, _writes_fits("master.fits", "MASTER_BIAS"), monkeypatch)
    frames = _frame(tmp_path)
    monkeypatch.chdir(tmp_path)
    done = run_job("gimasterbias", frames, Path("rel") / "job")
    assert done.out_dir == tmp_path / "rel" / "job"
    assert (tmp_path / "rel" / "job" / "master.fits").is_file()


def _frame2(folder: Path) -> list[tuple[Path, str]]:
    return [(folder / "raw.fits", "BIAS")]


def _writes_fits(name: str, pro_catg: str | None) -> str:
    """A fake esorex body writing one FITS file (with a PRO.CATG or without)."""
    card = f"h['HIERARCH ESO PRO CATG'] = {pro_catg!r}; " if pro_catg else ""
    return (
        f'"{sys.executable}" -c "from astropy.io import fits; import numpy; h = fits.Header(); '
        f"{card}fits.PrimaryHDU(numpy.zeros((2, 2)), h).writeto('{name}')\"\n"
        'echo "[ INFO  ] done"\n'
    )


def test_a_recipe_that_writes_no_product_fails(tmp_path: Path, monkeypatch) -> None:
    _fake_esorex(tmp_path, _writes_fits("no_catg.fits", None), monkeypatch)
    out, frames = tmp_path / "job", _frame(tmp_path)
    with pytest.raises(EsorexJobError, match="wrote no product"):
        run_job("gimasterbias", frames, out)
    assert not out.exists() and (tmp_path / "job.failed" / "no_catg.fits").exists()
    # The next try, which succeeds, replaces the failed folder.
    _fake_esorex(tmp_path, _writes_fits("master.fits", "MASTER_BIAS"), monkeypatch)
    done = run_job("gimasterbias", frames, out)
    assert done.by_catg == {"MASTER_BIAS": (out / "master.fits",)}
    assert not (tmp_path / "job.failed").exists()


def test_sof_tags_must_be_words(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds a space"):
        write_sof(tmp_path / "x.sof", [(tmp_path / "a.fits", "MASTER BIAS")])

"""One esorex job: an ESO recipe run on a set of frames, in a working folder of its own.

The set-of-frames file lists each frame with its tag (raw frames with their DO.CATG,
calibrations with their PRO.CATG, as the OCA's ``select ... as TAG`` says). esorex runs
in a fresh folder beside the output folder, as its current directory too (GIRAFFE and
AMBER recipes write files there), in a process group of its own, with ``threads``
OpenMP threads and a time limit; its log (``esorex.log``) stays beside the products.
Only a job that ends well, with at least one product carrying a PRO.CATG, is moved into
the output folder, whole (one rename); a failed one is kept as ``<out>.failed/`` for
its log, and raises ``EsorexJobError`` ending with the log's last lines. So nothing
half-written ever sits where products are looked for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astropy.io import fits

from qclib.atomicfile import temporary_dir
from qclib.errors import UnprocessableDataError
from qclib.eso.pipelines import esorex_command

LOG_NAME = "esorex.log"
#: What the job cost (``JobResult.cost``), kept beside the log.
COST_NAME = "job.json"
#: What esorex printed (its log's lines, and what it says before a log exists).
STDOUT_NAME = "esorex.out"
#: Lines of esorex's log an error ends with.
LOG_TAIL = 12


class EsorexJobError(UnprocessableDataError):
    """An esorex job made no product: the recipe failed, ran out of time or wrote
    none. The message names the recipe, what happened, where the log is, and ends
    with its last lines."""


@dataclass(frozen=True)
class JobResult:
    """A finished job: its products (FITS files with a PRO.CATG) by category, the log,
    the wall time and the recipe process's peak memory."""

    recipe: str
    out_dir: Path
    by_catg: dict[str, tuple[Path, ...]]
    log: Path
    wall_s: float
    peak_rss_mb: float

    @property
    def products(self) -> tuple[Path, ...]:
        return tuple(sorted(p for paths in self.by_catg.values() for p in paths))

    def cost(self) -> dict[str, object]:
        """The recipe, esorex's wall time (s) and peak resident memory (MB)."""
        return {"recipe": self.recipe, "wall_s": self.wall_s, "peak_rss_mb": self.peak_rss_mb}


def job_cost(job_dir: Path) -> dict[str, Any] | None:
    """What a finished job in ``job_dir`` cost (``JobResult.cost``); None when the
    folder holds no record of it."""
    path = job_dir / COST_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def write_sof(path: Path, frames: Sequence[tuple[Path, str]]) -> None:
    """The set-of-frames file: one ``<absolute path> <TAG>`` line per frame."""
    lines = []
    for frame, tag in frames:
        if not tag or any(c.isspace() for c in tag):
            raise ValueError(f"SOF tag {tag!r} of {frame} is empty or holds a space")
        lines.append(f"{Path(frame).resolve()} {tag}\n")
    path.write_text("".join(lines))


def _tail(source: Path) -> str:
    """The last lines of esorex's log (or of what it printed, where it wrote no log)."""
    text = source.read_text(errors="replace") if source.exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-LOG_TAIL:]) or "(esorex wrote nothing)"


def run_job(
    recipe: str,
    frames: Sequence[tuple[Path, str]],
    out_dir: Path,
    *,
    options: Sequence[str] = (),
    timeout_s: float = 3600.0,
    threads: int = 1,
    recipe_dir: Path | None = None,
) -> JobResult:
    """Run ``recipe`` on ``frames`` ((path, tag) pairs) with ``options`` (``--name=value``,
    as the OCA's ``recipe`` block writes them); the products, the SOF and the log end up
    in ``out_dir``, which must not exist yet.

    Raises
    ------
    EsorexJobError
        esorex failed, outlived ``timeout_s`` (its process group is killed) or wrote
        no product.
    FileExistsError
        ``out_dir`` exists (a job's products are never mixed with others').
    """
    out_dir = Path(out_dir).resolve()
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists: a job writes into a folder of its own")
    failed = out_dir.with_name(f"{out_dir.name}.failed")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = temporary_dir(out_dir)  # a killed job's is swept once its process is gone
    sof = work / f"{recipe}.sof"
    write_sof(sof, frames)
    esorex = shutil.which(esorex_command()) or esorex_command()
    command = [
        str(Path(esorex).resolve()) if os.sep in esorex else esorex,
        *([f"--recipe-dir={Path(recipe_dir).resolve()}"] if recipe_dir else []),
        f"--output-dir={work}",
        f"--log-dir={work}",
        f"--log-file={LOG_NAME}",
        recipe,
        *options,
        str(sof),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}

    def give_up(what: str) -> EsorexJobError:
        shutil.rmtree(failed, ignore_errors=True)
        work.rename(failed)
        log = failed / LOG_NAME
        shown = log if log.exists() and log.stat().st_size else failed / STDOUT_NAME
        return EsorexJobError(f"esorex {recipe} {what} (log: {shown}):\n{_tail(shown)}")

    start = time.perf_counter()
    try:
        with open(work / STDOUT_NAME, "wb") as stdout:
            process = subprocess.Popen(
                command,
                cwd=work,
                env=env,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as err:
        (work / STDOUT_NAME).write_text(f"{command[0]}: {err}\n")
        raise give_up(f"could not start ({err.strerror or err})") from None
    try:
        code, peak_mb = _wait(process, timeout_s)
    except BaseException:  # interrupted: esorex, in a session of its own, would run on
        _stop(process)
        shutil.rmtree(work, ignore_errors=True)
        raise
    wall = time.perf_counter() - start
    if code is None:
        raise give_up(f"ran out of its {timeout_s:g} s and was stopped")
    if code != 0:
        raise give_up(f"failed (exit {code})")
    by_catg: dict[str, list[Path]] = {}
    for path in sorted(work.glob("*.fits")):
        try:
            catg = fits.getheader(path).get("HIERARCH ESO PRO CATG")
        except OSError as err:
            raise give_up(f"wrote {path.name}, which is not readable FITS ({err})") from None
        if catg:
            by_catg.setdefault(str(catg), []).append(out_dir / path.name)
    if not by_catg:
        raise give_up("wrote no product (no FITS file with a PRO.CATG)")
    done = JobResult(
        recipe,
        out_dir,
        {k: tuple(v) for k, v in by_catg.items()},
        out_dir / LOG_NAME,
        wall,
        peak_mb,
    )
    (work / COST_NAME).write_text(json.dumps(done.cost()) + "\n")
    shutil.rmtree(failed, ignore_errors=True)
    work.rename(out_dir)
    return done


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill esorex's process group and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    except (ProcessLookupError, ChildProcessError):
        pass


def _wait(process: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, float]:
    """Wait for esorex: its exit code (None: it outlived ``timeout_s``, and its process
    group was killed) and its peak resident memory in MB (``wait4``'s, Linux KB)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.002
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_maxrss / 1024.0
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
            return None, usage.ru_maxrss / 1024.0
        time.sleep(pause)
        pause = min(2 * pause, 0.05)

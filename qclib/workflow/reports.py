"""Execute a block's report notebook with papermill and export it to self-contained HTML.

``parameterized_runs/<night>/<ab_id>.ipynb`` and ``.html``, from
``notebooks/templates/<template>.ipynb`` with parameters ``{ab_id, workspace}`` only;
both written atomically. The template of a block is its recipe's
(``qclib.recipes.registry``). A notebook that fails to execute is reported with its error
and leaves no file behind; the other reports go on.

The HTML is for operations staff: outputs and text only, no code cells or prompts, and
plotly.js put in the page by the export; the executed notebook beside it keeps the code
for QC scientists. Each process keeps one kernel per working folder (and thread) alive
between reports, its namespace emptied before each.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import datetime as dt
import functools
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qclib.associate import AssociationBlock
from qclib.atomicfile import atomic_path
from qclib.db import Database
from qclib.db import blocks as block_store
from qclib.errors import ConfigError
from qclib.recipes.registry import find_recipe
from qclib.reports.display import plotly_library_script
from qclib.workspace import Workspace

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "templates"


@dataclass(frozen=True)
class ReportOutcome:
    ab_id: str
    status: str  # "written", "failed", "no template"
    notebook: Path | None = None
    html: Path | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """For JSON output."""
        return {
            "ab_id": self.ab_id,
            "status": self.status,
            "html": str(self.html or ""),
            "reason": self.reason,
        }


def template_for(recipe: str | None, instrument: str | None = None) -> Path | None:
    """The report template of a recipe (a block's, of ``instrument``), or None when it
    has none."""
    spec = find_recipe(recipe, instrument)
    if spec is None or spec.template is None:
        return None
    path = TEMPLATES_DIR / f"{spec.template}.ipynb"
    if not path.is_file():
        raise ConfigError(
            f"recipe {spec.name} names report template {spec.template!r}, but {path} does not exist"
        )
    return path


def _kernel_manager_class() -> type:
    """Kernels talk over Unix sockets: TCP ports are chosen before they are bound, and
    two reports starting at once (two workers) took the same one ("Address already in
    use"; the kernel died). Defined on first use: jupyter_client loads slowly."""
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import CaselessStrEnum, default

    class IPCKernelManager(AsyncKernelManager):  # type: ignore[misc]
        transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)

        @default("ip")
        def _unique_sockets(self) -> str:
            # jupyter_client's default names every kernel's sockets alike, in the
            # current folder: concurrent kernels would read each other's messages.
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True)
            return str(runtime / f"qc-{uuid.uuid4().hex[:12]}")

    return IPCKernelManager


#: nbconvert's HTMLExporter options for reports: operations staff read outputs and text,
#: so code cells and prompts are left out. Plotly figures are outputs and stay; the
#: export puts plotly.js in the page (``qclib.reports.display``).
HTML_EXPORT_OPTIONS = {
    "exclude_input": True,
    "exclude_input_prompt": True,
    "exclude_output_prompt": True,
}
#: Cells the HTML leaves out altogether: papermill's parameters show nothing (and the
#: summary names the block), but their empty cells would still take room.
HTML_HIDDEN_CELL_TAGS = ("parameters", "injected-parameters")


#: A kernel that dies while starting (not a failing cell) is started again this often.
KERNEL_START_ATTEMPTS = 3

#: This process's kernels kept alive between reports, by working folder and thread (a
#: Dask worker may run reports in several threads): a report then costs its own work,
#: not the kernel's start and the imports (about 2.5 s each).
_KEPT_KERNELS: dict[tuple[str, int], Any] = {}


def _kept_kernel(cwd: Path) -> Any:
    """A live kernel working in ``cwd``, its namespace emptied; started when there is
    none or the last one died (a report that crashed its kernel costs the next one a
    start, nothing more)."""
    from jupyter_core.utils import run_sync

    key = (str(cwd), threading.get_ident())
    km = _KEPT_KERNELS.pop(key, None)
    if km is not None and not run_sync(km.is_alive)():
        _shutdown(km)
        km = None
    if km is None:
        km = _kernel_manager_class()(kernel_name="python3")
        run_sync(km.start_kernel)(cwd=str(cwd))
        if not _KEPT_KERNELS:
            atexit.register(_shutdown_kept_kernels)
    else:
        run_sync(_reset_namespace)(km)
    _KEPT_KERNELS[key] = km
    return km


@functools.cache
def _kept_kernel_engine() -> str:
    """The name of a papermill engine that runs a notebook in a kernel it was given and
    closes its connection to it afterwards (papermill's own leaves it open when it does
    not own the kernel). Registered on first use: papermill loads slowly."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    class ClosingClient(PapermillNotebookClient):  # type: ignore[misc]
        def execute(self, **kwargs: Any) -> Any:
            try:
                return super().execute(**kwargs)
            finally:
                if self.kc is not None:
                    self.kc.stop_channels()
                    self.kc = None

    class KeptKernelEngine(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            start_timeout: float = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            for unused in ("input_path", "timeout", "startup_timeout"):
                kwargs.pop(unused, None)
            return ClosingClient(
                nb_man,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=logging.getLogger("papermill"),
                **kwargs,
            ).execute()

    papermill_engines.register("qc_kept_kernel", KeptKernelEngine)
    return "qc_kept_kernel"


#: What ``%reset -f`` does to the namespace and the output cache, without the full
#: garbage collection (0.38 s of the 0.55 s it took between two reports: the heap of
#: a report kernel's imports is large); objects in cycles go at the next automatic one.
_CLEAR_NAMESPACE = """\
def _qc_clear(ip=get_ipython()):
    hook = ip.displayhook
    for n in range(1, hook.prompt_count + 1):
        ip.user_ns_hidden.pop(f"_{n}", None)
        ip.user_ns.pop(f"_{n}", None)
    ip.user_ns.get("_oh", {}).clear()
    hook._, hook.__, hook.___ = "", "", ""
    ip.user_ns.update({"_": "", "__": "", "___": ""})
    hidden = ip.user_ns_hidden
    for name in [n for n in ip.user_ns if n not in hidden and not n.startswith("_")]:
        del ip.user_ns[name]
_qc_clear()
del _qc_clear
"""


async def _reset_namespace(km: Any) -> None:
    """What the last report defined is gone (``_CLEAR_NAMESPACE``); imported modules
    stay."""
    await _run_quietly(km, _CLEAR_NAMESPACE)


async def _run_quietly(km: Any, code: str) -> None:
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        await client.execute_interactive(code, store_history=False, timeout=60)
    finally:
        client.stop_channels()


#: What a report's kernel imports before its first figure (about 5 s in a fresh kernel,
#: half of it nbformat, which plotly's renderers load); modules outlive the clearing.
_REPORT_IMPORTS = (
    "import qclib.reports, pandas, astropy.io.fits\n"
    "from qclib.reports.display import use_offline_renderer\n"
    "use_offline_renderer()\n" + _CLEAR_NAMESPACE
)


def warm_report_kernel(workspace_root: str) -> None:
    """Start this process's kept kernel for a workspace's reports and import what
    reports use, ahead of the first report: a task for workers that would otherwise
    wait (``qc run`` gives it to each during ingest). A kernel that fails to start here
    is started again by the first report, which reports the failure."""
    from jupyter_core.utils import run_sync

    run_sync(_run_quietly)(_kept_kernel(Path(workspace_root)), _REPORT_IMPORTS)


def _shutdown(km: Any) -> None:
    from jupyter_core.utils import run_sync

    with contextlib.suppress(RuntimeError, OSError):  # a kernel already gone: nothing to stop
        run_sync(km.shutdown_kernel)(now=True)


def _shutdown_kept_kernels() -> None:
    while _KEPT_KERNELS:
        _shutdown(_KEPT_KERNELS.popitem()[1])


def _numbered_from_one(nb: Any) -> None:
    """Execution counts 1, 2, ... as a fresh kernel would give (a kept one counts on)."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or cell.get("execution_count") is None:
            continue
        count += 1
        cell.execution_count = count
        for output in cell.get("outputs", []):
            if "execution_count" in output:
                output["execution_count"] = count


def render_notebook(
    template: Path,
    notebook: Path,
    parameters: dict[str, str],
    *,
    cwd: Path,
    keep_kernel: bool = True,
) -> Path:
    """Execute ``template`` with ``parameters`` into ``notebook`` and export ``.html``
    beside it, both atomically; returns the HTML path.

    ``keep_kernel``: run in this process's kernel for ``cwd``, kept alive for the next
    report (its namespace emptied first); otherwise in a kernel of its own.

    Raises
    ------
    papermill.PapermillExecutionError
        A cell failed; nothing is written.
    RuntimeError
        The kernel died before it could run the notebook, ``KERNEL_START_ATTEMPTS``
        times; nothing is written.
    """
    import nbformat
    import papermill
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    logging.getLogger("papermill").setLevel(logging.ERROR)
    for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
        kernel: dict[str, Any] = {}
        try:
            if keep_kernel:
                kernel = {"km": _kept_kernel(cwd), "engine_name": _kept_kernel_engine()}
            with atomic_path(notebook) as tmp:
                nb = papermill.execute_notebook(
                    str(template),
                    str(tmp),
                    parameters=parameters,
                    kernel_name="python3",
                    progress_bar=False,
                    cwd=str(cwd),
                    kernel_manager_class=_kernel_manager_class(),
                    # Not after every cell: each save encodes the whole notebook, its
                    # figures included (about 30 saves, 1 s of a 3.4 s report).
                    request_save_on_cell_execute=False,
                    **kernel,
                )
                _numbered_from_one(nb)
                nbformat.write(nb, tmp)
            break
        except RuntimeError:  # a failing cell is a PapermillExecutionError, not this
            _KEPT_KERNELS.pop((str(cwd), threading.get_ident()), None)
            if "km" in kernel:
                _shutdown(kernel["km"])
            if attempt == KERNEL_START_ATTEMPTS:
                raise
    hidden = {"enabled": True, "remove_cell_tags": list(HTML_HIDDEN_CELL_TAGS)}
    exporter = HTMLExporter(config=Config(TagRemovePreprocessor=hidden), **HTML_EXPORT_OPTIONS)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    if "Plotly.newPlot" in body:  # the figures draw with the page's plotly.js
        body = body.replace("</head>", plotly_library_script() + "</head>", 1)
    html = notebook.with_suffix(".html")
    with atomic_path(html) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return html


def render_report(workspace: Workspace, block: AssociationBlock) -> ReportOutcome:
    """Execute and export one block's report."""
    import papermill

    template = template_for(block.recipe, block.instrument)
    if template is None:
        reason = f"no report template for {block.action}"
        return ReportOutcome(block.id, "no template", reason=reason)
    notebook = workspace.runs_dir / block.night / f"{block.id}.ipynb"
    parameters = {"ab_id": block.id, "workspace": str(workspace.root)}
    try:
        html = render_notebook(template, notebook, parameters, cwd=workspace.root)
    except papermill.PapermillExecutionError as err:
        return ReportOutcome(
            block.id,
            "failed",
            reason=f"{template.name} failed on {block.id}: {err.ename}: {err.evalue}",
        )
    except RuntimeError as err:
        return ReportOutcome(
            block.id,
            "failed",
            reason=f"{template.name} on {block.id}: the kernel did not start ({err}); "
            f"'qc report {block.id}' tries again",
        )
    return ReportOutcome(block.id, "written", notebook, html)


def render_health_check(workspace: Workspace, instrument: str, *, days: int = 90) -> Path:
    """The health-check notebook of an instrument, into ``parameterized_runs/health/``."""
    today = dt.date.today().isoformat()
    notebook = workspace.runs_dir / "health" / f"{instrument.upper()}_{today}.ipynb"
    return render_notebook(
        TEMPLATES_DIR / "health_check.ipynb",
        notebook,
        {"instrument": instrument.upper(), "workspace": str(workspace.root)},
        cwd=workspace.root,
    )


def render_both_ways(result: Path) -> Path:
    """The both-ways report (``qclib.peers.hawki_both_ways``) of a ``both_ways.json``,
    beside it: ``hawki_both_ways.ipynb`` and ``.html``."""
    return render_notebook(
        TEMPLATES_DIR / "hawki_both_ways.ipynb",
        result.parent / "hawki_both_ways.ipynb",
        {"result": str(result)},
        cwd=result.parent,
        keep_kernel=False,
    )


def render_reports(
    workspace: Workspace,
    database: Database,
    ab_ids: Sequence[str],
    *,
    executor: concurrent.futures.Executor | None = None,
    progress: bool = True,
) -> list[ReportOutcome]:
    """The reports of the given blocks, in their order (a progress bar when many).

    ``executor``: where they run, as many at once as it has workers (each report is
    its own kernel); None: here, one after another.
    """
    from tqdm import tqdm

    with database.transaction() as session:
        blocks = [b for b in (block_store.get_block(session, i) for i in ab_ids) if b]
    bar = tqdm(total=len(blocks), desc="reports", unit="report", disable=not progress or not blocks)
    with bar:
        if executor is None:
            outcomes = []
            for block in blocks:
                outcomes.append(render_report(workspace, block))
                bar.update()
            return outcomes
        futures = [executor.submit(render_report, workspace, block) for block in blocks]
        for _ in concurrent.futures.as_completed(futures):
            bar.update()
        return [f.result() for f in futures]

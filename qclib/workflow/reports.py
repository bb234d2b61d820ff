"""Execute a block's report notebook with papermill and export it to self-contained HTML.

``parameterized_runs/<night>/<ab_id>.ipynb`` and ``.html``, from
``notebooks/templates/<template>.ipynb`` with parameters ``{ab_id, workspace}`` only;
both written atomically. The template of a block is its recipe's
(``qclib.recipes.registry``). A notebook that fails to execute is reported with its error
and leaves no file behind; the other reports go on.

The HTML is for operations staff: outputs and text only, no code cells or prompts; the
executed notebook beside it keeps the code for QC scientists.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qclib.associate import AssociationBlock
from qclib.atomicfile import atomic_path
from qclib.db import Database
from qclib.db import blocks as block_store
from qclib.errors import ConfigError
from qclib.recipes.registry import find_recipe
from qclib.workspace import Workspace

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "templates"


@dataclass(frozen=True)
class ReportOutcome:
    ab_id: str
    status: str  # "written", "failed", "no template"
    notebook: Path | None = None
    html: Path | None = None
    reason: str | None = None


def template_for(recipe: str | None) -> Path | None:
    """The report template of a recipe (a block's), or None when it has none."""
    spec = find_recipe(recipe)
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
#: so code cells and prompts are left out. Plotly figures are outputs and stay (plotly.js
#: inlined by the first one, ``qclib.reports.display``).
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


def render_notebook(
    template: Path, notebook: Path, parameters: dict[str, str], *, cwd: Path
) -> Path:
    """Execute ``template`` with ``parameters`` into ``notebook`` and export ``.html``
    beside it, both atomically; returns the HTML path.

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
        try:
            with atomic_path(notebook) as tmp:
                papermill.execute_notebook(
                    str(template),
                    str(tmp),
                    parameters=parameters,
                    kernel_name="python3",
                    progress_bar=False,
                    cwd=str(cwd),
                    kernel_manager_class=_kernel_manager_class(),
                )
            break
        except RuntimeError:  # a failing cell is a PapermillExecutionError, not this
            if attempt == KERNEL_START_ATTEMPTS:
                raise
    hidden = {"enabled": True, "remove_cell_tags": list(HTML_HIDDEN_CELL_TAGS)}
    exporter = HTMLExporter(config=Config(TagRemovePreprocessor=hidden), **HTML_EXPORT_OPTIONS)
    body, _ = exporter.from_notebook_node(
        nbformat.read(notebook, as_version=4), resources={"metadata": {"name": notebook.stem}}
    )
    html = notebook.with_suffix(".html")
    with atomic_path(html) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return html


def render_report(workspace: Workspace, block: AssociationBlock) -> ReportOutcome:
    """Execute and export one block's report."""
    import papermill

    template = template_for(block.recipe)
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
    bar = tqdm(total=len(blocks), desc="reports", unit="report", disable=not progress)
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

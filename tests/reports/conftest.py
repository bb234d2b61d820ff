"""Reports run on the processed nights of the recipe tests."""

from __future__ import annotations

import shutil

import pytest

from qclib.workflow.scoring import score_values
from qclib.workspace import Workspace, load_workspace
from tests.recipes.conftest import ProcessedNight, hawki_processed, omegacam_processed  # noqa: F401


@pytest.fixture(scope="session")
def omegacam_scored(tmp_path_factory, omegacam_processed: ProcessedNight) -> Workspace:  # noqa: F811
    """A scored copy of the processed OmegaCAM night (the original stays unscored for
    the other tests): its values graded OK, UNSCORED (a rule that could not grade them:
    no certified history yet) and MONITORED (no rule)."""
    root = tmp_path_factory.mktemp("omegacam-scored") / "ws"
    shutil.copytree(omegacam_processed.workspace.root, root)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QC_DB_URL", raising=False)
        workspace = load_workspace(root)
        database = workspace.open_database()
        score_values(database)
        database.close()
    return workspace

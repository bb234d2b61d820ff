"""Reports run on the processed nights of the recipe tests."""

from tests.recipes.conftest import hawki_processed, omegacam_processed  # noqa: F401

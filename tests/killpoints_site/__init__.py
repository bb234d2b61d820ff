"""A ``sitecustomize`` for the kill tests (see ``tests.killpoints``)."""

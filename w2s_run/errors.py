"""The pipeline's own failure, apart from the pipeline so that the CLI can catch it
without importing the pipeline (and torch) first: a config error is reported before
any heavy library loads."""
from __future__ import annotations


class StageFailed(Exception):
    """A stage could not finish; what it finished is saved and a rerun resumes."""

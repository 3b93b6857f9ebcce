import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def strong_backend():
    """The embedded strong model as a debate backend, loaded once for the session."""
    from debate.backends.transformers_backend import TransformersBackend
    return TransformersBackend("smollm2-135m", batch_size=8)

"""The fake ContinuousSeededBackend of tests/fake_backend.py as a registered debate
backend, `fake_seeded`, so that a run in another process (the kill tests of
tests/test_random_kills.py) can debate without an LLM:

    --set extensions=[tests/extensions/seeded_backend.py] --set debate.backend=fake_seeded

Its replies are a function of (conversation, seed) only, so a resumed run's
transcripts equal an uninterrupted run's whatever order the requests finish in;
`delay_s` makes every reply take that long, so the debate stage lasts long enough to
be killed in."""
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from w2s_base.backend_specs import BackendSpec, register_backend

# Imported by path from a run's `extensions`, where tests/ is not on sys.path.
_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from fake_backend import ContinuousSeededBackend  # noqa: E402


class FakeSeededSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delay_s: float = Field(0.0, ge=0)
    order_seed: int = 0  # which in-flight request the fake engine answers next


def from_config(cfg) -> ContinuousSeededBackend:
    s = cfg.backend_settings
    return ContinuousSeededBackend(order_seed=s.order_seed, delay_s=s.delay_s)


SPEC = register_backend(BackendSpec(
    "fake_seeded", from_config, "a seeded fake for tests (tests/extensions/seeded_backend.py)",
    settings=FakeSeededSettings, continuous=True))

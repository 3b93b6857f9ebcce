"""A debate backend in one file: its settings, the backend, its factory and its
registration. Importing this module is all it takes for `debate.backend: toy_echo`
and a `debate.toy_echo:` settings section to be valid config.

It replies deterministically: its settings' prefix, then which turn of how many
conversations in this call it answers. It takes no requests one by one (no
`generate_continuous`), and its spec says so: its debates run in turns whatever
debate.scheduling asks."""
from pydantic import BaseModel, ConfigDict, Field

from debate.backends.base import Generation
from w2s_base.backend_specs import BackendSpec, register_backend


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field("toy", min_length=1)


class ToyBackend:
    name = "toy_echo"

    def __init__(self, model: str, settings: ToySettings):
        self.model = model
        self.prefix = settings.prefix

    def generate(self, conversations, params, seeds):
        n = len(conversations)
        return [Generation(text=f"{self.prefix}: reply {i + 1} of {n}", prompt_tokens=1,
                           completion_tokens=4, finish_reason="stop")
                for i in range(n)]


def from_config(cfg) -> ToyBackend:
    return ToyBackend(cfg.model, cfg.backend_settings)


SPEC = register_backend(BackendSpec(
    "toy_echo", from_config, "a deterministic echo for tests (tests/extensions/toy_backend.py)",
    settings=ToySettings, continuous=False))

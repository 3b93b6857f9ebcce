"""Debater prompt sets: YAML files of Jinja2 templates, checked before any generation.

A prompt set is a folder holding `prompts.yaml` with:
  system:        the system prompt, identical for both debaters
  context:       the sample and the transcript so far, identical for both debaters
  instructions:  one template per turn role (opening, counter, rebuttal, consult),
                 the only side-specific text
  variables:     the variables the templates may use (a subset of ENGINE_VARIABLES)

Each turn's prompt is system + (context, then instruction): what both debaters
share comes first, so a prefix-caching server (vLLM) reuses it across sides.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml
from pydantic import BaseModel, ConfigDict

BUILTIN_DIR = Path(__file__).parent / "prompts"

# What the engine provides when rendering; a template may use only these.
ENGINE_VARIABLES = {
    "task", "sample_text", "positions", "my_position", "other_position", "my_side",
    "other_side", "transcript", "turn", "num_turns",
}
REQUIRED = {"context": {"sample_text"}, "instructions": {"my_position"}}
ROLES = {"opening", "counter", "rebuttal", "consult"}


class PromptError(ValueError):
    pass


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    variables: list[str]
    system: str
    context: str
    instructions: dict[str, str]


class PromptSet:
    def __init__(self, name: str, spec: PromptFile, digest: str):
        self.name, self.spec, self.hash = name, spec, digest
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                                 autoescape=False)
        self._env = env
        self._validate()
        self.system = env.from_string(spec.system)
        self.context = env.from_string(spec.context)
        self.instructions = {k: env.from_string(v) for k, v in spec.instructions.items()}

    def _validate(self) -> None:
        declared = set(self.spec.variables)
        unknown = declared - ENGINE_VARIABLES
        if unknown:
            raise PromptError(f"prompt set {self.name!r} declares unknown variables {sorted(unknown)}; "
                              f"available: {sorted(ENGINE_VARIABLES)}")
        bad_roles = set(self.spec.instructions) - ROLES
        if bad_roles:
            raise PromptError(f"prompt set {self.name!r}: unknown instruction roles {sorted(bad_roles)}; "
                              f"known: {sorted(ROLES)}")
        parts = {"system": self.spec.system, "context": self.spec.context,
                 **{f"instructions.{k}": v for k, v in self.spec.instructions.items()}}
        for where, text in parts.items():
            try:
                used = jinja2.meta.find_undeclared_variables(self._env.parse(text))
            except jinja2.TemplateSyntaxError as e:
                raise PromptError(f"prompt set {self.name!r}, {where}: template syntax error: {e}") from e
            if used - declared:
                raise PromptError(f"prompt set {self.name!r}, {where} uses undeclared variables "
                                  f"{sorted(used - declared)} (declared: {sorted(declared)})")
            required = REQUIRED.get(where.split(".")[0], set())
            if required - used:
                raise PromptError(f"prompt set {self.name!r}, {where} must use {sorted(required - used)}")

    def require_roles(self, roles: set[str]) -> None:
        missing = roles - set(self.instructions)
        if missing:
            raise PromptError(f"prompt set {self.name!r} lacks instructions for {sorted(missing)} "
                              "which this protocol needs")

    def messages(self, role: str, variables: dict[str, Any]) -> list[dict[str, str]]:
        user = self.context.render(**variables).strip() + "\n\n" + \
            self.instructions[role].render(**variables).strip()
        return [{"role": "system", "content": self.system.render(**variables).strip()},
                {"role": "user", "content": user}]


def load_prompt_set(name_or_path: str) -> PromptSet:
    """Load a built-in set by name (`paper`, `terse`) or a folder / YAML file path."""
    p = Path(name_or_path).expanduser()
    if not p.exists():
        p = BUILTIN_DIR / name_or_path
    if p.is_dir():
        p = p / "prompts.yaml"
    if not p.exists():
        builtins = sorted(d.name for d in BUILTIN_DIR.iterdir() if d.is_dir())
        raise PromptError(f"prompt set {name_or_path!r} not found: give a folder holding "
                          f"prompts.yaml, a YAML file, or a built-in set {builtins}")
    raw = p.read_bytes()
    try:
        data = yaml.safe_load(raw)
        spec = PromptFile.model_validate(data)
    except (yaml.YAMLError, ValueError) as e:
        raise PromptError(f"prompt set {p}: {e}") from e
    name = p.parent.name if p.name == "prompts.yaml" else p.stem
    return PromptSet(name, spec, hashlib.sha256(raw).hexdigest()[:16])

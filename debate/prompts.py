"""Debater prompt sets: YAML files of Jinja2 templates, checked before any generation.

A prompt set is a folder holding `prompts.yaml` with:
  system:        the system prompt, identical for both debaters
  context:       the sample and the transcript so far, identical for both debaters
  instructions:  one template per turn role (the roles of the protocols' schedules,
                 w2s_base/protocols.py: opening, counter, rebuttal, consult, ...),
                 the only side-specific text; a set defines those of the protocols
                 it is used with
  variables:     the variables the templates may use (a subset of ENGINE_VARIABLES)

and, optionally, `mislead.jinja` beside it (for a set given as a file x.yaml:
x.mislead.jinja): the instruction the wrong side's debater gets, after its turn's own,
on the debates `debate.mislead` chooses (w2s_base/config.py MisleadConfig). A template
over the same variables, kept apart from prompts.yaml so that adding or editing it
changes no honest debate's key; a run with debate.mislead refuses a set without one.

Each turn's prompt is system + (context, then instruction): what both debaters
share comes first, so a prefix-caching server (vLLM) reuses it across sides.

Prompt files are user-supplied, so templates run in Jinja2's immutable sandbox
with a small set of harmless globals; attribute access that the sandbox forbids
(`__class__`, `__globals__`, `mro`, ...), `self`, and include/import/extends are
rejected when the set is loaded, and `PromptSet.check_renders` renders every
turn of a protocol's schedule with representative variables before generation.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.meta
import jinja2.nodes as nodes
import jinja2.sandbox
import yaml
from pydantic import BaseModel, ConfigDict

from w2s_base.protocols import PROTOCOLS, protocol as protocol_spec

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig

BUILTIN_DIR = Path(__file__).parent / "prompts"

# What the engine provides when rendering; a template may use only these.
ENGINE_VARIABLES = {
    "task", "sample_text", "positions", "my_position", "other_position", "my_side",
    "other_side", "transcript", "turn", "num_turns",
}
REQUIRED = {"context": {"sample_text"}, "instructions": {"my_position"}}
OTHER_SIDE = {"A": "B", "B": "A"}

# Jinja globals templates may use; everything else (lipsum, and any global added
# to Jinja later) is removed. Under the sandbox none of these reaches Python internals.
SAFE_GLOBALS = ("range", "dict", "namespace", "cycler", "joiner")
# Attribute names refused without looking at the object: private/dunder names and
# the sandbox's own lists (frames and code of functions, generators, coroutines).
_UNSAFE_NAMES = ({"mro"} | jinja2.sandbox.UNSAFE_FUNCTION_ATTRIBUTES | jinja2.sandbox.UNSAFE_METHOD_ATTRIBUTES
                 | jinja2.sandbox.UNSAFE_GENERATOR_ATTRIBUTES | jinja2.sandbox.UNSAFE_COROUTINE_ATTRIBUTES
                 | jinja2.sandbox.UNSAFE_ASYNC_GENERATOR_ATTRIBUTES)
# Filters and tests whose string arguments name attributes (attr('x'), map(attribute='x'), ...).
_ATTRIBUTE_FILTERS = {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique",
                      "min", "max"}


class PromptError(ValueError):
    pass


def known_roles() -> set[str]:
    """The instruction roles of every registered protocol's schedule."""
    return {role for spec in PROTOCOLS.values() for role in spec.roles}


class PromptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = ""
    variables: list[str]
    system: str
    context: str
    instructions: dict[str, str]


def make_environment() -> jinja2.Environment:
    """The one environment prompt templates are parsed and rendered in."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals = {k: env.globals[k] for k in SAFE_GLOBALS}  # range is the sandbox's bounded range
    return env


def representative_variables(turns: Sequence[tuple[str, str]], index: int, num_turns: int | None = None,
                             a_label: int = 0) -> dict[str, Any]:
    """Variables like the engine's for turn `index` (0-based) of a debate following the
    schedule `turns` ((side, role) per turn): a sample text, two positions, and a
    transcript holding exactly the turns before `index`, with placeholder texts.
    Its keys are ENGINE_VARIABLES, the same as the engine's."""
    positions = ["position zero", "position one"]
    side = turns[index][0]
    label = {"A": a_label, "B": 1 - a_label}
    return {
        "task": "task",
        "sample_text": "Sample text: is the claim in this question true?",
        "positions": list(positions),
        "my_position": positions[label[side]],
        "other_position": positions[1 - label[side]],
        "my_side": side,
        "other_side": OTHER_SIDE[side],
        "turn": index + 1,
        "num_turns": len(turns) if num_turns is None else num_turns,
        "transcript": [{"side": s, "text": f"Placeholder argument of debater {s}, turn {i + 1}.",
                        "position": positions[label[s]]}
                       for i, (s, _role) in enumerate(turns[:index])],
    }


def _unsafe_name(name: Any) -> bool:
    return isinstance(name, str) and (name.startswith("_") or name in _UNSAFE_NAMES)


def _const(node: nodes.Node, eval_ctx: nodes.EvalContext) -> Any:
    try:
        return node.as_const(eval_ctx)
    except Exception:  # not a constant: the sandbox checks it when rendering
        return None


def _unsafe_access(ast: nodes.Template, env: jinja2.Environment) -> str | None:
    """What in the template the sandbox would refuse (or is never needed by a prompt),
    found without rendering; None when nothing is."""
    eval_ctx = nodes.EvalContext(env)
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        return f"{type(node).__name__.lower()} is not allowed in prompt templates"
    for node in ast.find_all(nodes.Name):
        if node.name == "self":
            return "'self' is not allowed in prompt templates"
    for node in ast.find_all(nodes.Getattr):
        if _unsafe_name(node.attr):
            return f"unsafe attribute access {node.attr!r}"
    for node in ast.find_all(nodes.Getitem):
        key = _const(node.arg, eval_ctx)
        if _unsafe_name(key):
            return f"unsafe attribute access [{key!r}]"
    for node in ast.find_all((nodes.Filter, nodes.Test)):
        if node.name in _ATTRIBUTE_FILTERS:
            for arg in [*node.args, *(kw.value for kw in node.kwargs)]:
                value = _const(arg, eval_ctx)
                names = value.split(".") if isinstance(value, str) else []
                bad = [n for n in names if _unsafe_name(n)]
                if bad:
                    return f"unsafe attribute access {bad[0]!r} (via the {node.name} filter)"
    return None


MISLEAD_FILE = "mislead.jinja"


class PromptSet:
    def __init__(self, name: str, spec: PromptFile, digest: str, mislead: str | None = None):
        self.name, self.spec, self.hash = name, spec, digest
        self.mislead_text = mislead
        # the mislead instruction's own hash: in the keys of the debates it reaches only
        self.mislead_hash = None if mislead is None else hashlib.sha256(mislead.encode()).hexdigest()[:16]
        env = make_environment()
        self._env = env
        self._validate()
        self.system = env.from_string(spec.system)
        self.context = env.from_string(spec.context)
        self.instructions = {k: env.from_string(v) for k, v in spec.instructions.items()}
        self.mislead = None if mislead is None else env.from_string(mislead)

    def _validate(self) -> None:
        declared = set(self.spec.variables)
        unknown = declared - ENGINE_VARIABLES
        if unknown:
            raise PromptError(f"prompt set {self.name!r} declares unknown variables {sorted(unknown)}; "
                              f"available: {sorted(ENGINE_VARIABLES)}")
        roles = known_roles()
        bad_roles = set(self.spec.instructions) - roles
        if bad_roles:
            raise PromptError(f"prompt set {self.name!r}: unknown instruction roles {sorted(bad_roles)}; "
                              f"known: {sorted(roles)}")
        parts = {"system": self.spec.system, "context": self.spec.context,
                 **{f"instructions.{k}": v for k, v in self.spec.instructions.items()},
                 **({"mislead": self.mislead_text} if self.mislead_text is not None else {})}
        for where, text in parts.items():
            try:
                ast = self._env.parse(text)
            except jinja2.TemplateSyntaxError as e:
                raise PromptError(f"prompt set {self.name!r}, {where}: template syntax error: "
                                  f"{e.message} (line {e.lineno})") from e
            unsafe = _unsafe_access(ast, self._env)
            if unsafe:
                raise PromptError(f"prompt set {self.name!r}, {where}: {unsafe} (prompt templates run "
                                  "in a sandbox and may not reach Python internals)")
            try:  # compiles the template: filters and tests are looked up by name here
                used = jinja2.meta.find_undeclared_variables(ast)
            except jinja2.TemplateSyntaxError as e:  # TemplateAssertionError: no filter/test of that name
                raise PromptError(f"prompt set {self.name!r}, {where}: template error: {e.message} "
                                  f"(line {e.lineno})") from e
            if used - declared:
                raise PromptError(f"prompt set {self.name!r}, {where} uses undeclared variables "
                                  f"{sorted(used - declared)} (declared: {sorted(declared)})")
            required = REQUIRED.get(where.split(".")[0], set())
            if required - used:
                raise PromptError(f"prompt set {self.name!r}, {where} must use {sorted(required - used)}")

    def require_roles(self, roles: set[str], needed_by: str = "this protocol") -> None:
        missing = roles - set(self.instructions)
        if missing:
            raise PromptError(f"prompt set {self.name!r} lacks instructions for {sorted(missing)} "
                              f"which {needed_by} needs")

    def _render(self, where: str, template: jinja2.Template, variables: dict[str, Any]) -> str:
        try:
            return template.render(**variables).strip()
        except Exception as e:
            turn = variables.get("turn")
            at = f" at turn {turn}" if turn is not None else ""
            raise PromptError(f"prompt set {self.name!r}, {where} failed to render{at}: "
                              f"{type(e).__name__}: {e}") from e

    def require_mislead(self) -> None:
        if self.mislead is None:
            raise PromptError(f"prompt set {self.name!r} has no {MISLEAD_FILE} (the wrong side's instruction), "
                              "which debate.mislead needs: add one beside its prompts.yaml, or drop debate.mislead")

    def parts(self, role: str, variables: dict[str, Any], mislead: bool = False) -> tuple[str, str, str]:
        """(system, context, instruction) of one turn, rendered: what `messages` sends,
        kept apart for readers that show the instruction on its own (the inspect export).
        `mislead`: the mislead instruction follows the turn's own (the side-specific part,
        so a prefix cache still shares system and context across sides)."""
        self.require_roles({role})
        instruction = self._render(f"instructions.{role}", self.instructions[role], variables)
        if mislead:
            self.require_mislead()
            instruction += "\n\n" + self._render("mislead", self.mislead, variables)
        return (self._render("system", self.system, variables),
                self._render("context", self.context, variables), instruction)

    def messages(self, role: str, variables: dict[str, Any], mislead: bool = False) -> list[dict[str, str]]:
        system, context, instruction = self.parts(role, variables, mislead)
        return [{"role": "system", "content": system},
                {"role": "user", "content": context + "\n\n" + instruction}]

    def check_renders(self, turns: Sequence[tuple[str, str]], num_turns: int, mislead: bool = False) -> None:
        """Render system + context + the role's instruction for every turn of the schedule
        `turns` ((side, role) per turn, e.g. a protocol's schedule for `num_turns` turns)
        with representative variables, for both labels side A may defend (and with the
        mislead instruction, when `mislead`). Raises
        PromptError naming the set, the template and the turn on the first failure, so a
        template that only fails when rendered is refused before any generation."""
        self.require_roles({role for _side, role in turns})
        for index, (_side, role) in enumerate(turns):
            for a_label in (0, 1):
                self.messages(role, representative_variables(turns, index, num_turns, a_label), mislead)


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
    m = p.parent / (MISLEAD_FILE if p.name == "prompts.yaml" else f"{p.stem}.{MISLEAD_FILE}")
    try:
        mislead = m.read_text(encoding="utf-8") if m.is_file() else None
    except (OSError, UnicodeDecodeError) as e:
        raise PromptError(f"prompt set {p}: {m.name}: {e}") from e
    return PromptSet(name, spec, hashlib.sha256(raw).hexdigest()[:16], mislead)


def prompts_for(cfg: "DebateConfig", protocols: Sequence[str]) -> PromptSet:
    """The debaters' prompt set (`debate.prompts`), checked for every protocol the run
    generates: each role its schedule needs, and every turn rendered with representative
    variables. Up front (preflight, before any model loads, and the debate engine): a
    missing or unrenderable template must not surface only after the first turns' debates."""
    prompts = load_prompt_set(cfg.prompts)
    if cfg.mislead is not None:
        prompts.require_mislead()
    for p in protocols:
        spec = protocol_spec(p)
        n = spec.num_turns(cfg)
        schedule = spec.schedule(n)
        prompts.require_roles({role for _, role in schedule}, f"protocol {p!r}")
        prompts.check_renders(schedule, n, cfg.mislead is not None)
    return prompts

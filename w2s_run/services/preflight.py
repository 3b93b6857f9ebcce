"""What a run needs, checked before anything is loaded or generated.

`preflight(cfg)` looks at the files a run will read (every model of every stage it
will reach, the data file, the output folder, the debate backend) and reports every
problem at once, one line each naming its config key, as a ConfigError. It reads
no weights, converts nothing and never touches the network (w2s_base.training.models.check_model),
so a run that would fail after an hour of debates fails in a second instead.

The prompt set is not checked here: the debate engine validates it before generation.
"""
from __future__ import annotations

import os
from pathlib import Path

from w2s_base.backend_specs import backend_spec
from w2s_base.config import ConfigError, RunConfig
from w2s_base.protocols import protocol as protocol_spec
from w2s_base.training.models import check_model


def needed_models(cfg: RunConfig, until: str | None = None) -> list[tuple[str, str]]:
    """(config key, model) for every model the run loads, in the order it loads them;
    `until` ("debate", "weak", "audit", "strong") leaves out the stages after it (the
    audit trains the strong model's out-of-fold ceilings, so it needs strong.model)."""
    out: list[tuple[str, str]] = []

    def add(key: str, model: str) -> None:
        if (key, model) not in out:
            out.append((key, model))

    def labeller_models(index: int) -> None:
        lab = cfg.weak.labellers[index]
        if lab.models is None:
            add("weak.model", cfg.weak.model)
        for j, m in enumerate(lab.models or ()):
            add(f"weak.labellers[{index}].models[{j}]", m)

    index = {lab.name: i for i, lab in enumerate(cfg.weak.labellers)}
    need = cfg.debates_needed()
    if any(protocol_spec(p).needs_reference for p in need):  # trained first, to place the speakers
        labeller_models(index[cfg.weak.reference])
    if need and not backend_spec(cfg.debate.backend).brings_own_model:
        add("debate.model", cfg.debate.model)
    if until == "debate":
        return out
    for lab in cfg.labellers:
        labeller_models(index[lab.name])
    if until == "weak":
        return out
    add("strong.model", cfg.strong.model)
    return out


def _output_problem(run_dir: Path) -> str | None:
    """Why the run folder cannot be created or written, or None."""
    p = run_dir.expanduser().absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        return f"{p} is a file, so the run folder {run_dir} cannot be made"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{p} is not writable (the run folder is {run_dir})"
    return None


def problems(cfg: RunConfig, until: str | None = None) -> list[str]:
    """Every problem found, one line each, starting with the config key."""
    found: list[str] = []
    checked: dict[str, str | None] = {}
    for key, model in needed_models(cfg, until):
        if model not in checked:
            checked[model] = check_model(model)
        if checked[model]:
            found.append(f"{key}: {checked[model]}")

    d = cfg.data
    if d.path is not None:
        path = Path(d.path).expanduser()
        if not path.exists():
            found.append(f"data.path: {d.path!r} does not exist")
        elif not path.is_file():
            found.append(f"data.path: {d.path!r} is not a file")
        elif not os.access(path, os.R_OK):
            found.append(f"data.path: {d.path!r} is not readable")

    if cfg.debates_needed():
        spec = backend_spec(cfg.debate.backend)
        found += spec.config_problems(cfg.debate)
        found += [f"debate.backend: {spec.name} needs {need.what}, which is not importable here "
                  f"({need.install})" for need in spec.missing()]

    problem = _output_problem(cfg.run_dir)
    if problem:
        found.append(f"output_dir: {problem}")
    return found


def preflight(cfg: RunConfig, until: str | None = None) -> None:
    """Raise ConfigError listing every problem (one line each) that would stop this
    run later; return None when there is none. Loads nothing."""
    found = problems(cfg, until)
    if found:
        n = len(found)
        raise ConfigError(f"the run cannot start ({n} problem{'s' if n > 1 else ''}; nothing was "
                          "loaded or generated):\n" + "\n".join(f"  {line}" for line in found))

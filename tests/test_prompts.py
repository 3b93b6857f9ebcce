import json

import jinja2.sandbox
import pytest

import run
from debate.prompts import (ENGINE_VARIABLES, SAFE_GLOBALS, PromptError, load_prompt_set,
                            representative_variables)

from w2s_base.protocols import protocol as _protocol


def schedule(name, num_turns):
    return _protocol(name).schedule(num_turns)


VARS = dict(task="t", sample_text="Claim: 5 is larger than 3.", positions=["no", "yes"],
            my_position="yes", other_position="no", my_side="B", other_side="A",
            transcript=[{"side": "A", "text": "It is not.", "position": "no"}], turn=2, num_turns=3)


def write(tmp_path, body):
    p = tmp_path / "p.yaml"
    p.write_text(body)
    return p


GOOD = """
variables: [sample_text, my_position]
system: Debate.
context: "{{ sample_text }}"
instructions:
  opening: "Argue {{ my_position }}"
  counter: "Argue {{ my_position }} again"
  rebuttal: "Defend {{ my_position }}"
"""


def test_builtin_sets_load_and_differ():
    a, b = load_prompt_set("paper"), load_prompt_set("terse")
    assert a.hash != b.hash
    ma, mb = a.messages("counter", VARS), b.messages("counter", VARS)
    assert ma != mb
    for m in (ma, mb):
        assert VARS["sample_text"] in m[1]["content"] and "It is not." in m[1]["content"]


def test_shared_text_comes_before_the_side_specific_instruction():
    ps = load_prompt_set("paper")
    a = ps.messages("counter", {**VARS, "my_side": "A", "other_side": "B", "my_position": "no",
                                "other_position": "yes"})
    b = ps.messages("counter", VARS)
    assert a[0] == b[0]  # identical system prompt for both sides
    prefix = len(ps.context.render(**VARS).strip())
    assert a[1]["content"][:prefix] == b[1]["content"][:prefix]


def test_custom_file(tmp_path):
    ps = load_prompt_set(str(write(tmp_path, GOOD)))
    assert ps.messages("opening", VARS)[1]["content"].endswith("Argue yes")


def test_undeclared_variable_rejected(tmp_path):
    with pytest.raises(PromptError, match="undeclared variables"):
        load_prompt_set(str(write(tmp_path, GOOD.replace("Debate.", "Debate {{ judge }}."))))


def test_unknown_declared_variable_rejected(tmp_path):
    with pytest.raises(PromptError, match="unknown variables"):
        load_prompt_set(str(write(tmp_path, GOOD.replace("[sample_text, my_position]",
                                                         "[sample_text, my_position, judge]"))))


def test_missing_required_variable_rejected(tmp_path):
    with pytest.raises(PromptError, match="must use"):
        load_prompt_set(str(write(tmp_path, GOOD.replace('"Argue {{ my_position }}"', '"Argue"'))))


def test_missing_role_for_protocol(tmp_path):
    ps = load_prompt_set(str(write(tmp_path, GOOD)))
    with pytest.raises(PromptError, match="consult"):
        ps.require_roles({"consult"})


def test_unknown_set_lists_builtins():
    with pytest.raises(PromptError, match="paper"):
        load_prompt_set("nonexistent-set")


# Rendered with the code before the sandbox was introduced: the built-in sets'
# messages must stay byte-identical (prompt hashes key the stored debates).
PAPER_SYSTEM = ("You are taking part in a debate about a question. Two debaters, A and B, defend\n"
                "opposite positions. A judge who knows less than you will read the debate and decide\n"
                "which position is right. Be concrete: point to details of the question that support\n"
                "your position. Keep each turn short.")


def test_builtin_rendered_messages_are_pinned():
    opening = {**VARS, "transcript": [], "turn": 1, "my_side": "A", "other_side": "B",
               "my_position": "no", "other_position": "yes"}
    paper, terse = load_prompt_set("paper"), load_prompt_set("terse")
    assert paper.messages("counter", VARS) == [
        {"role": "system", "content": PAPER_SYSTEM},
        {"role": "user", "content": (
            "Question:\nClaim: 5 is larger than 3.\n\nPosition 1: yes\nPosition 2: no\n"
            "Debate so far:\nDebater A: It is not.\n\nYou are debater B. Your position: \"yes\"\n"
            "Argue for your position and point out the flaws in debater A's argument (turn 2 of 3).")}]
    assert paper.messages("opening", opening) == [
        {"role": "system", "content": PAPER_SYSTEM},
        {"role": "user", "content": (
            "Question:\nClaim: 5 is larger than 3.\n\nPosition 1: yes\nPosition 2: no\n\n"
            "You are debater A. Your position: \"no\"\nGive your argument for this position (turn 1 of 3).")}]
    assert terse.messages("counter", VARS) == [
        {"role": "system", "content": "Debate. Reply in one sentence."},
        {"role": "user", "content": "Claim: 5 is larger than 3.\nA: It is not.\n\nArgue: \"yes\". "
                                    "Say what A got wrong."}]
    assert terse.messages("opening", opening) == [
        {"role": "system", "content": "Debate. Reply in one sentence."},
        {"role": "user", "content": "Claim: 5 is larger than 3.\n\nArgue: \"no\""}]


# --- sandbox: prompt files must not run code ---------------------------------

ATTACKS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ ''|attr('__class__') }}",
    "{{ ''['__cla' ~ 'ss__'] }}",
    "{{ transcript|map(attribute='__class__')|list }}",
    "{{ dict.mro() }}",
    "{% include 'other.txt' %}",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_unsafe_instruction_rejected_on_load(tmp_path, attack):
    body = GOOD.replace('"Argue {{ my_position }}"', f'"Argue {{{{ my_position }}}} {attack}"')
    body = body.replace("[sample_text, my_position]", "[sample_text, my_position, transcript]")
    with pytest.raises(PromptError, match=r"prompt set 'p', instructions\.opening: "):
        load_prompt_set(str(write(tmp_path, body)))


def test_unsafe_system_prompt_rejected_on_load(tmp_path):
    with pytest.raises(PromptError, match=r"prompt set 'p', system: unsafe attribute access '__class__'"):
        load_prompt_set(str(write(tmp_path, GOOD.replace("Debate.", "Debate {{ ''.__class__ }}."))))


def test_templates_run_in_a_sandbox_with_safe_globals(tmp_path):
    ps = load_prompt_set("paper")
    assert isinstance(ps._env, jinja2.sandbox.ImmutableSandboxedEnvironment)
    assert set(ps._env.globals) == set(SAFE_GLOBALS)
    assert "lipsum" not in SAFE_GLOBALS
    with pytest.raises(PromptError, match="undeclared variables"):  # removed globals are unknown names
        load_prompt_set(str(write(tmp_path, GOOD.replace("Debate.", "Debate {{ lipsum() }}."))))


def test_code_execution_has_no_side_effect(tmp_path):
    target = tmp_path / "pwned"
    attack = f"{{{{ cycler.__init__.__globals__.os.system('touch {target}') }}}}"
    with pytest.raises(PromptError, match="instructions.opening"):
        load_prompt_set(str(write(tmp_path, GOOD.replace('"Argue {{ my_position }}"',
                                                         f'"Argue {{{{ my_position }}}} {attack}"'))))
    assert not target.exists()
    # An attribute name built at render time passes the static check; the sandbox
    # still refuses it, and check_renders reports it before any generation.
    dynamic = ("{% set n = '__in' %}{{ (cycler|attr(n ~ 'it__')|attr(n[:2] ~ 'globals__'))"
               f".os.system('touch {target}') }}}}")
    ps = load_prompt_set(str(write(tmp_path, GOOD.replace('"Argue {{ my_position }}"',
                                                          f'"Argue {{{{ my_position }}}} {dynamic}"'))))
    with pytest.raises(PromptError, match=r"instructions\.opening failed to render at turn 1"):
        ps.check_renders(schedule("debate", 2), 2)
    with pytest.raises(PromptError, match="instructions.opening"):
        ps.messages("opening", VARS)
    sneaky = load_prompt_set(str(write(tmp_path, GOOD.replace(
        "Debate.", "Debate {% set n = '__cl' %}{{ ''|attr(n ~ 'ass__') }}."))))
    with pytest.raises(PromptError, match=r"system failed to render at turn 1: SecurityError"):
        sneaky.check_renders(schedule("debate", 2), 2)
    assert not target.exists()


# --- check_renders: templates that fail only when rendered ----------------------

def test_representative_variables_match_the_engine():
    turns = schedule("debate", 4)
    for i in range(4):
        v = representative_variables(turns, i, 4)
        assert set(v) == ENGINE_VARIABLES
        assert v["turn"] == i + 1 and v["num_turns"] == 4
        assert v["my_side"] == turns[i][0] and v["other_side"] != v["my_side"]
        assert [t["side"] for t in v["transcript"]] == [side for side, _ in turns[:i]]
        assert {v["my_position"], v["other_position"]} == set(v["positions"])
        assert all(set(t) == {"side", "text", "position"} and t["text"] for t in v["transcript"])


def test_render_time_failure_caught_by_check_renders(tmp_path):
    body = GOOD.replace('"Defend {{ my_position }}"', '"Defend {{ my_position }}: {{ transcript[7].text }}"')
    body = body.replace("[sample_text, my_position]", "[sample_text, my_position, transcript]")
    ps = load_prompt_set(str(write(tmp_path, body)))  # valid statically
    ps.check_renders(schedule("debate", 2), 2)        # no rebuttal in 2 turns
    with pytest.raises(PromptError,
                       match=r"prompt set 'p', instructions\.rebuttal failed to render at turn 3"):
        ps.check_renders(schedule("debate", 3), 3)


def test_filter_error_caught_by_check_renders(tmp_path):
    ps = load_prompt_set(str(write(tmp_path, GOOD.replace("context: \"{{ sample_text }}\"",
                                                          "context: \"{{ sample_text|round }}\""))))
    with pytest.raises(PromptError, match=r"prompt set 'p', context failed to render at turn 1"):
        ps.check_renders(schedule("debate", 2), 2)


def test_check_renders_needs_every_role(tmp_path):
    ps = load_prompt_set(str(write(tmp_path, GOOD)))
    with pytest.raises(PromptError, match="consult"):
        ps.check_renders(schedule("consultancy", 1), 1)


@pytest.mark.parametrize("name", ["paper", "terse", "quotes"])
def test_builtin_sets_render_every_turn(name):
    ps = load_prompt_set(name)
    for n in range(2, 7):
        ps.check_renders(schedule("debate", n), n)
    for n in range(1, 4):
        ps.check_renders(schedule("consultancy", n), n)


@pytest.mark.parametrize("template, says", [
    ("{{ sample_text | nosuchfilter }}", "No filter named 'nosuchfilter'"),
    ("{{ sample_text }}{{ sample_text is nosuchtest }}", "No test named 'nosuchtest'"),
    ("{{ sample_text }}\n{% if sample_text %}unclosed", "template syntax error: Unexpected end of template"),
    ("{{ sample_text }} {{ ) }}", "template syntax error: unexpected ')'"),
])
def test_compile_time_template_errors_are_one_line(tmp_path, capsys, template, says):
    """Errors Jinja raises while parsing or compiling (an unknown filter or test, a
    syntax error) are the prompt set's one-line error, rc 2, not a traceback."""
    path = write(tmp_path, GOOD.replace('context: "{{ sample_text }}"', f"context: {json.dumps(template)}"))
    with pytest.raises(PromptError) as e:
        load_prompt_set(str(path))
    assert str(e.value).startswith("prompt set 'p', context: ") and says in str(e.value)
    assert "\n" not in str(e.value) and "(line " in str(e.value)
    assert run.main(["--config", "configs/demo.yaml", "--prompts", str(path), "--set", f"output_dir={tmp_path}",
                     "--until", "debate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: prompt set 'p', context: ") and says in err and len(err.splitlines()) == 1

import pytest

from debate.prompts import PromptError, load_prompt_set

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

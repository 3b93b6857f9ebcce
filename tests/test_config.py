from pathlib import Path

import pytest
import yaml

from w2s_base.config import ConfigError, RunConfig, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert isinstance(cfg, RunConfig)


def test_unknown_key_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("debate:\n  num_turn: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "debate.num_turn" in str(e.value) and "unknown key" in str(e.value)


def test_bad_value_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("strong:\n  losses: [xent, hinge]\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "strong.losses.1" in str(e.value)


def test_overrides_are_parsed_and_validated():
    cfg = load_config(None, ["debate.num_turns=5", "strong.seeds=[1, 2]", "name=x"])
    assert cfg.debate.num_turns == 5 and cfg.strong.seeds == [1, 2] and cfg.name == "x"
    with pytest.raises(ConfigError, match="debate.num_turns"):
        load_config(None, ["debate.num_turns=zero"])


def test_debate_needs_two_turns():
    with pytest.raises(ConfigError, match="debate.num_turns: Input should be greater than or equal to 2"):
        load_config(None, ["debate.num_turns=1"])


def test_yaml_is_safe_loaded(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_labellers_decide_protocols_and_debates(tmp_path):
    from w2s_base.config import ConfigError, load_config
    p = tmp_path / "c.yaml"
    p.write_text("""
weak:
  labellers:
    - {name: weak}
    - {name: ens+debate, protocol: debate, seeds: [0, 1], debates: 4}
    - {name: mm, protocol: market_making}
    - {name: single+debate, protocol: debate}
""")
    cfg = load_config(p)
    assert cfg.debates_needed() == {"debate": 4, "market_making": 1}
    assert [lab.name for lab in load_config(p, ["debate.enabled=false"]).labellers] == ["weak"]
    bad = {
        "weak.reference=ens+debate": "protocol none",
        "weak.reference=nope": "not one of",
        "weak.labellers=[{name: a}, {name: a}]": "repeated names",
        "weak.labellers=[{name: weak, debates: 2}]": "debates > 1",
        "weak.labellers=[{name: weak, seeds: [1, 1]}]": "repeated seeds",
        "weak.labellers=[{name: weak, protocol: judge}]": "weak.labellers.0.protocol",
    }
    for override, msg in bad.items():
        with pytest.raises(ConfigError, match=msg.replace("+", "[+]")):
            load_config(p, [override])


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\ndata: {n_test: 7, seed: 3}\nstrong: {losses: [xent, logconf]}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\ndata: {n_test: 9}\n"
                                         "strong: {losses: [product]}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.name, cfg.data.n_test, cfg.data.seed, cfg.strong.losses) == ("child", 9, 3, ["product"])
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml"):
        load_config(tmp_path / "orphan.yaml")


def test_relative_paths_in_a_config_file_are_relative_to_that_file(tmp_path, monkeypatch):
    """data.path and debate.prompts (a path, not a built-in name), like extends: against
    the folder of the file that sets them, wherever the run starts; in a file that
    extends another, each file's own paths against its own folder."""
    base_dir, child_dir, elsewhere = tmp_path / "shared" / "cfg", tmp_path / "exp", tmp_path / "cwd"
    for d in (base_dir, child_dir, elsewhere):
        d.mkdir(parents=True)
    (base_dir / "base.yaml").write_text("data: {task: generic, path: ../data/pool.jsonl}\n"
                                        "debate: {prompts: prompts/mine}\n")
    (child_dir / "child.yaml").write_text("extends: ../shared/cfg/base.yaml\nname: child\n")
    (child_dir / "grandchild.yaml").write_text("extends: child.yaml\ndebate: {prompts: ./p.yaml}\n")
    (child_dir / "builtin.yaml").write_text("extends: child.yaml\ndebate: {prompts: terse}\n")
    monkeypatch.chdir(elsewhere)
    cfg = load_config(child_dir / "child.yaml")
    assert cfg.data.path == str(tmp_path / "shared" / "data" / "pool.jsonl")
    assert cfg.debate.prompts == str(base_dir / "prompts" / "mine")
    assert load_config(child_dir / "grandchild.yaml").debate.prompts == str(child_dir / "p.yaml")
    assert load_config(child_dir / "builtin.yaml").debate.prompts == "terse"  # a built-in name stays one
    # given relative to the cwd, the config file is found the same way
    assert load_config(Path("..") / "exp" / "child.yaml").data.path == cfg.data.path
    # stored absolute: the config of record reads back the same from its run folder
    (tmp_path / "record.yaml").write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    again = load_config(tmp_path / "record.yaml")
    assert (again.data.path, again.debate.prompts) == (cfg.data.path, cfg.debate.prompts)


def test_relative_paths_on_the_command_line_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.yaml").write_text("data: {task: generic, path: pool.jsonl}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("cfg/c.yaml", ["data.path=mine/pool.jsonl", "debate.prompts=my_prompts/"])
    assert cfg.data.path == str(tmp_path / "mine" / "pool.jsonl")
    assert cfg.debate.prompts == str(tmp_path / "my_prompts")
    # a whole section given on the command line: its paths too
    cfg = load_config("cfg/c.yaml", ["data={task: generic, path: other.jsonl}", "debate.prompts=paper"])
    assert (cfg.data.path, cfg.debate.prompts) == (str(tmp_path / "other.jsonl"), "paper")
    assert load_config("cfg/c.yaml").data.path == str(tmp_path / "cfg" / "pool.jsonl")


def test_a_prompt_set_beside_the_config_is_found_from_another_directory(tmp_path, monkeypatch):
    """End to end: a DebateRunner loads the prompt set a config names relative to itself."""
    from debate.engine import DebateRunner
    (tmp_path / "exp" / "my_prompts").mkdir(parents=True)
    (tmp_path / "exp" / "my_prompts" / "prompts.yaml").write_text(
        (ROOT / "debate" / "prompts" / "terse" / "prompts.yaml").read_text())
    (tmp_path / "exp" / "c.yaml").write_text("debate: {prompts: ./my_prompts}\n")
    monkeypatch.chdir(tmp_path)
    runner = DebateRunner(load_config("exp/c.yaml").debate, tmp_path / "t.jsonl", lambda: None)
    assert runner.prompts.name == "my_prompts"


def test_a_labeller_loss_the_reference_does_not_train_is_refused(capsys):
    """Each student is compared with the reference's student of the same loss: a loss
    only another labeller trains is a one-line config error before the spend."""
    import run
    deb = "{name: deb, protocol: debate, losses: [xent, product]}"
    with pytest.raises(ConfigError, match="labeller 'deb' trains students with product, which the reference "
                                          r"labeller 'weak' does not \(xent\)"):
        load_config(None, [f"weak.labellers=[{{name: weak}}, {deb}]"])
    assert run.main(["plan", "--set", f"weak.labellers=[{{name: weak}}, {deb}]"]) == 2
    err = capsys.readouterr().err
    assert "labeller 'deb' trains students with product" in err and "Traceback" not in err
    # the reference trains it too, or through strong.losses: accepted
    load_config(None, [f"weak.labellers=[{{name: weak, losses: [xent, product]}}, {deb}]"])
    load_config(None, ["strong.losses=[xent, product]", f"weak.labellers=[{{name: weak}}, {deb}]"])

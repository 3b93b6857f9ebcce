from pathlib import Path

import pytest

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

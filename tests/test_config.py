from pathlib import Path

import pytest

from core.config import ConfigError, RunConfig, load_config

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
    cfg = load_config(None, ["debate.num_turns=5", "weak.seeds=[1, 2]", "name=x"])
    assert cfg.debate.num_turns == 5 and cfg.weak.seeds == [1, 2] and cfg.name == "x"
    with pytest.raises(ConfigError, match="debate.num_turns"):
        load_config(None, ["debate.num_turns=zero"])


def test_debate_needs_two_turns():
    with pytest.raises(ConfigError, match="at least 2"):
        load_config(None, ["debate.num_turns=1"])


def test_yaml_is_safe_loaded(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")

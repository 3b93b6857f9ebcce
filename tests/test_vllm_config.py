"""debate.vllm / debate.ray_data settings, the backend factory and the data-parallel
helpers, without vLLM (the real engine, servers and Ray Data run in tests/test_vllm.py)."""
import logging
import sys
import types
from pathlib import Path

import pytest

from w2s_base.config import ConfigError, DebateConfig, VLLMEngineConfig, load_config
from debate.backends.vllm_engine import replica_devices, serve_args, split_for_replicas

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_and_engine_kwargs():
    v = DebateConfig().vllm
    assert (v.tensor_parallel_size, v.data_parallel_size, v.gpu_memory_utilization, v.dtype,
            v.enable_prefix_caching, v.enforce_eager, v.extra) == (1, 1, 0.9, "auto", True, False, {})
    assert DebateConfig().seeded is True
    kw = VLLMEngineConfig(max_model_len=4096, max_num_seqs=64, quantization="awq", dtype="bfloat16",
                          enforce_eager=True, extra={"kv_cache_memory_bytes": 1 << 30}).engine_kwargs()
    assert kw == {"tensor_parallel_size": 1, "dtype": "bfloat16", "gpu_memory_utilization": 0.9,
                  "enable_prefix_caching": True, "enforce_eager": True, "max_model_len": 4096,
                  "max_num_seqs": 64, "quantization": "awq", "kv_cache_memory_bytes": 1 << 30}
    # unset optional settings are left to vLLM (not sent as None)
    assert "max_model_len" not in VLLMEngineConfig().engine_kwargs()


@pytest.mark.parametrize("bad, why", [
    ({"gpu_memory_utilization": 0}, "greater than 0"),
    ({"gpu_memory_utilization": 1.5}, "less than or equal to 1"),
    ({"dtype": "fp16"}, "Input should be"),
    ({"data_parallel_size": 0}, "greater than or equal to 1"),
    ({"max_model_len": 0}, "greater than 0"),
    ({"extra": {"dtype": "half"}}, "use debate.vllm.dtype"),
    ({"extra": {"model": "x"}}, "comes from debate.model"),
    ({"extra": {"seed": 1}}, "comes from debate.seed"),
    ({"max_num_seq": 8}, "unknown key"),
])
def test_bad_vllm_settings_name_the_key(bad, why):
    key = next(iter(bad))
    with pytest.raises(ConfigError, match=rf"debate\.vllm\.{key}: .*{why}"):
        load_config(None, [f"debate.vllm.{key}={v}" for key, v in bad.items()])


def test_tensor_parallel_size_where_it_was_still_works():
    cfg = load_config(None, ["debate.tensor_parallel_size=2"]).debate
    assert cfg.vllm.tensor_parallel_size == cfg.tensor_parallel_size == 2
    both = load_config(None, ["debate.tensor_parallel_size=2", "debate.vllm.tensor_parallel_size=2"])
    assert both.debate.vllm.tensor_parallel_size == 2
    assert DebateConfig(tensor_parallel_size=4, vllm=VLLMEngineConfig(dtype="half")).vllm.dtype == "half"
    with pytest.raises(ConfigError, match="disagree"):
        load_config(None, ["debate.tensor_parallel_size=2", "debate.vllm.tensor_parallel_size=4"])
    # the config of record (a dump) reads back the same
    assert DebateConfig.model_validate(cfg.model_dump(mode="json")) == cfg


def test_paper_config_runs_one_replica_per_gpu():
    cfg = load_config(ROOT / "configs" / "paper_sciq_gpu.yaml").debate
    v = cfg.vllm
    assert cfg.backend == "vllm" and v.tensor_parallel_size == 1 and v.data_parallel_size >= 2
    assert v.dtype == "bfloat16" and v.max_model_len and v.max_num_seqs


def test_serve_args():
    cfg = load_config(None, ["debate.seed=3", "debate.vllm.max_model_len=2048",
                             "debate.vllm.enable_prefix_caching=false", "debate.vllm.enforce_eager=true",
                             "debate.vllm.extra={kv_cache_memory_bytes: 1024, compilation_config: {level: 0}}"])
    args = serve_args(cfg.debate)
    assert args == ["--tensor-parallel-size", "1", "--data-parallel-size", "1", "--max-model-len", "2048",
                    "--gpu-memory-utilization", "0.9", "--dtype", "auto", "--no-enable-prefix-caching",
                    "--enforce-eager", "--kv-cache-memory-bytes", "1024",
                    "--compilation-config", '{"level": 0}', "--seed", "3"]


def test_replica_devices():
    assert replica_devices(4, 1, None, 4) == ["0", "1", "2", "3"]
    assert replica_devices(2, 2, None, 4) == ["0,1", "2,3"]
    assert replica_devices(2, 1, "4,6,7", 8) == ["4", "6"]  # of what this process may see
    with pytest.raises(ValueError, match="needs 4 GPUs, 2 visible"):
        replica_devices(2, 2, "0,1", 8)
    with pytest.raises(ValueError, match="needs 2 GPUs, 0 visible"):
        replica_devices(2, 1, None, 0)


def _conv(sample: str, turn: str) -> list[dict]:
    return [{"role": "system", "content": "You debate."},
            {"role": "user", "content": f"Question: {sample}\n" + "x" * 300 + f"\n{turn}"}]


def test_split_for_replicas_is_balanced_and_keeps_a_debate_together():
    turn1 = [_conv(f"s{i}", "open") for i in range(11)]
    turn2 = [_conv(f"s{i}", "counter") for i in range(11)]
    p1, p2 = split_for_replicas(turn1, 3), split_for_replicas(turn2, 3)
    assert sorted(len(p) for p in p1) == [3, 4, 4]
    assert sorted(i for p in p1 for i in p) == list(range(11))  # each conversation once
    assert p1 == p2  # a sample's turns go to the same replica (its prefix is cached there)
    assert split_for_replicas(turn1[:1], 2) == [[0], []]
    assert split_for_replicas([], 2) == [[], []]


@pytest.fixture
def fake_vllm(monkeypatch):
    """An importable stand-in `vllm` and a recording engine class."""
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    from debate.backends import vllm_engine
    made = []

    class Recorder:
        def __init__(self, model, **kw):
            made.append(("engine", model, kw))

    class PoolRecorder:
        def __init__(self, model, data_parallel_size, **kw):
            made.append(("pool", model, dict(kw, data_parallel_size=data_parallel_size)))

    monkeypatch.setattr(vllm_engine, "VLLMEngineBackend", Recorder)
    monkeypatch.setattr(vllm_engine, "VLLMReplicaPool", PoolRecorder)
    return made


def test_factory_passes_every_engine_setting(fake_vllm):
    from debate.backends import make_backend
    cfg = load_config(None, ["debate.backend=vllm", "debate.seed=7", "debate.vllm.max_model_len=2048",
                             "debate.vllm.gpu_memory_utilization=0.5", "debate.vllm.max_num_seqs=8",
                             "debate.vllm.dtype=float32", "debate.vllm.enforce_eager=true",
                             "debate.vllm.extra={kv_cache_memory_bytes: 1024}"]).debate
    make_backend(cfg)
    kind, model, kw = fake_vllm[-1]
    assert kind == "engine" and model == "smollm2-135m"
    assert kw == {"seed": 7, "tensor_parallel_size": 1, "dtype": "float32", "gpu_memory_utilization": 0.5,
                  "enable_prefix_caching": True, "enforce_eager": True, "max_model_len": 2048,
                  "max_num_seqs": 8, "kv_cache_memory_bytes": 1024}
    make_backend(cfg.model_copy(update={"vllm": cfg.vllm.model_copy(update={"data_parallel_size": 2})}))
    kind, _, kw = fake_vllm[-1]
    assert kind == "pool" and kw["data_parallel_size"] == 2 and kw["max_model_len"] == 2048


def test_batch_size_with_a_vllm_backend_is_flagged(caplog):
    from debate.backends import make_backend
    cfg = load_config(None, ["debate.backend=vllm_server", "debate.server_url=http://127.0.0.1:9",
                             "debate.batch_size=256"]).debate
    with caplog.at_level(logging.WARNING, logger="debate.backends"):
        make_backend(cfg)
    assert "debate.batch_size is the transformers backend's batch" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="debate.backends"):
        make_backend(DebateConfig(backend="vllm_server", server_url="http://127.0.0.1:9"))
    assert "batch_size" not in caplog.text


def test_ray_data_without_ray_explains_the_install(monkeypatch, fake_vllm):
    from debate.backends import make_backend
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # restored after the test
    with pytest.raises(ImportError, match=r'pip install "ray\[data\]"'):
        make_backend(DebateConfig(backend="ray_data"))

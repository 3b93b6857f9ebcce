"""w2s_run/services/plan.py: counts per stage and the GPU memory estimate of every training job,
from the models' configs only (no weights, no network)."""
import socket
from pathlib import Path

import pytest
import torch

from w2s_base.config import LoraConfig, TrainConfig, load_config
from w2s_run.services.plan import PlanError, estimate_memory, load_shape, plan, render_plan, student_count

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "configs" / "paper_sciq_gpu.yaml"
LORA16 = LoraConfig(r=16, alpha=32, dropout=0.05, target_modules="all-linear")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: the hub marked offline and every socket connection refused; an
    empty model cache (the embedded GGUF model is not converted)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("W2SD_CACHE", str(tmp_path / "cache"))

    def refuse(*a, **k):
        raise AssertionError("the planner touched the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path / "cache"


@pytest.mark.parametrize("model, rows, length, measured", [
    ("Qwen/Qwen2.5-14B", 8, 1024, 34.7),   # the measured points (80 GB H100, 1 process)
    ("Qwen/Qwen2.5-7B", 8, 2048, 24.7),
])
def test_estimate_reproduces_the_measured_points(offline, model, rows, length, measured):
    tcfg = TrainConfig(lora=LORA16, batch_size=rows, max_length=length, dtype="bfloat16",
                       gradient_checkpointing=True)
    est = estimate_memory(load_shape(model), tcfg).total
    assert abs(est - measured) / measured < 0.15, est


def test_estimate_without_checkpointing_is_the_reported_out_of_memory(offline):
    shape = load_shape("Qwen/Qwen2.5-14B-Instruct")
    assert 13.9e9 < shape.params < 14.1e9  # Qwen2.5-14B without its LM head
    tcfg = TrainConfig(lora=LORA16, batch_size=8, max_length=1024, dtype="bfloat16")
    est = estimate_memory(shape, tcfg).total
    assert abs(est - 134) / 134 < 0.15, est
    # float32 weights cost twice the weights (and autocast's bf16 copies on top)
    f32 = estimate_memory(shape, tcfg.model_copy(update={"dtype": "float32"}))
    assert f32.weights > 2 * estimate_memory(shape, tcfg).weights


def test_paper_config_fits_80gb_with_the_shipped_settings(offline):
    p = plan(load_config(PAPER), gpu_memory_gib=80)
    assert p.fits and not p.problems and len(p.jobs) == 3
    weak, strong, _audit = p.jobs
    assert (weak.model, strong.model) == ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-14B-Instruct")
    assert all(j.fits and j.memory.total < 80 for j in p.jobs)
    assert strong.memory.total > weak.memory.total > 20
    # counts: 1,000 + 5,000 + 5,000 samples; 4 debates, 1 consultancy, 1 market-making each
    assert p.debate.samples == 11000
    by = {x.protocol: x for x in p.debate.protocols}
    assert {k: (v.k, v.turns) for k, v in by.items()} == {"debate": (4, 3), "consultancy": (1, 1),
                                                          "market_making": (1, 1)}
    assert by["debate"].max_new_tokens_total == 11000 * 4 * 3 * 256
    assert p.debate.reference_first  # market-making reads the plain weak model's choices
    # members stored once per (protocol, seed, k): weak; debate s0 k0 (shared by three
    # labellers); seeds 1-3; debates 1-3; consultancy; market-making; and, where the
    # config has them, market-making's out-of-fold reference models (one per fold)
    n = 10 + getattr(load_config(PAPER).weak, "placement_folds", 0)
    assert p.weak_members == {"Qwen/Qwen2.5-7B-Instruct": n} and weak.trainings == n
    assert p.students == strong.trainings == 27
    text = render_plan(p)
    assert "DOES NOT FIT" not in text and "every estimated training job fits" in text


def test_strong_without_checkpointing_does_not_fit_and_names_the_knob(offline):
    cfg = load_config(PAPER, ["strong.train.gradient_checkpointing=false"])
    p = plan(cfg, gpu_memory_gib=80, strict=False)
    weak, strong, _audit = p.jobs
    assert weak.fits and strong.fits is False and strong.memory.total > 80
    assert any("strong.train.gradient_checkpointing: true" in f for f in strong.fixes)
    assert len(p.problems) == 1 and "strong.train.gradient_checkpointing" in p.problems[0]
    assert "DOES NOT FIT" in render_plan(p)
    with pytest.raises(PlanError, match=r"strong\.train\.gradient_checkpointing: true") as e:
        plan(cfg, gpu_memory_gib=80)
    assert e.value.plan is not None and not e.value.plan.fits
    # more memory per process, or more processes sharing the micro-batch, also fit
    assert plan(cfg, gpu_memory_gib=141).fits
    assert plan(cfg, gpu_memory_gib=80, processes=4).fits


def test_other_knobs_are_named_when_checkpointing_is_not_enough(offline):
    cfg = load_config(PAPER, ["strong.train.max_length=8192"])
    with pytest.raises(PlanError) as e:
        plan(cfg, gpu_memory_gib=40)
    msg = str(e.value)
    assert "strong.train.batch_size" in msg and "strong.train.grad_accum" in msg
    assert "strong.train.max_length" in msg


def test_embedded_demo_config_plans_offline(offline):
    for name in ("configs/demo.yaml", "configs/demo_table.yaml"):
        cfg = load_config(ROOT / name)
        p = plan(cfg)
        assert p.fits and all(j.memory is not None for j in p.jobs)
        from strong.stage import student_keys
        assert p.students == len(student_keys(cfg, [lab.name for lab in cfg.labellers]))
    assert not (offline / "models").exists()  # the GGUF model was not converted to read its shape
    weak, strong, _audit = p.jobs
    assert weak.model == "minilm-l6" and "embedded" in weak.shape_source
    assert strong.mode == "linear_probe" and strong.shape_source.startswith("published")
    assert 0.1e9 < strong.params < 0.2e9


def test_student_count_matches_the_strong_stage():
    from strong.stage import student_keys
    for name in ("paper_sciq_gpu.yaml", "demo_table.yaml", "boolq_table.yaml"):
        cfg = load_config(ROOT / "configs" / name)
        assert student_count(cfg) == len(student_keys(cfg, [lab.name for lab in cfg.labellers])), name


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "v_proj"], ["down_proj"]])
def test_lora_count_matches_peft(tmp_path, targets):
    """The analytic trainable count (LoRA + head) equals peft's on a real model."""
    from peft import get_peft_model
    from transformers import Qwen2Config, Qwen2ForSequenceClassification

    from w2s_base.training.classifier import _lora_config
    cfg = Qwen2Config(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=500, num_labels=2)
    cfg.save_pretrained(tmp_path)  # a local folder: its config is read
    tcfg = TrainConfig(lora=LoraConfig(r=4, target_modules=targets))
    peft = get_peft_model(Qwen2ForSequenceClassification(cfg), _lora_config(tcfg))
    shape = load_shape(str(tmp_path))
    assert shape.source.startswith("local folder")
    assert shape.params == sum(p.numel() for n, p in Qwen2ForSequenceClassification(cfg).named_parameters())
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert estimate_memory(shape, tcfg).trainable_params == trainable


def test_unknown_model_is_noted_not_refused(offline, monkeypatch):
    cfg = load_config(PAPER, ["strong.model=someone/unknown-model"])
    p = plan(cfg, gpu_memory_gib=80)
    assert p.fits and p.jobs[1].memory is None
    assert any("someone/unknown-model" in n for n in p.notes)


def test_gpu_memory_comes_from_cuda_when_present(offline, monkeypatch):
    class Props:
        name, total_memory = "Fake H100", 79 * 2 ** 30
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: Props)
    p = plan(load_config(PAPER))
    assert p.gpu_memory_gib == 79 and "Fake H100" in p.gpu_source


def test_forward_flops_are_twice_the_matmul_weights(offline):
    """A forward's FLOPs per token: 2 x every weight but the embeddings (and the tiny
    head), plus attention, which grows with the sequence length."""
    from w2s_run.services.plan import train_flops_per_token
    shape = load_shape("Qwen/Qwen2.5-14B")
    matmul = shape.params - shape.vocab * shape.hidden - shape.head_params
    assert abs(shape.forward_flops(1) / (2 * matmul) - 1) < 1e-3  # biases and norms: the rest
    assert shape.forward_flops(2048) > shape.forward_flops(1024) > shape.forward_flops(1)
    tcfg = TrainConfig(lora=LORA16, max_length=1024, gradient_checkpointing=True)
    # backward (input gradients only) + recomputation: three forwards; two without checkpointing
    assert train_flops_per_token(shape, tcfg) == 3 * shape.forward_flops(1024)
    off = tcfg.model_copy(update={"gradient_checkpointing": False})
    assert train_flops_per_token(shape, off) == 2 * shape.forward_flops(1024)


def test_paper_plan_has_gpu_hours_per_stage(offline):
    p = plan(load_config(PAPER), gpu_memory_gib=80)
    t = {x.stage: x for x in p.times}
    assert set(t) == {"debate", "weak", "audit", "strong"} and all(x.gpu_hours > 0 for x in p.times)
    assert t["debate"].gpus == 4  # data_parallel_size 4 x tensor_parallel_size 1
    assert t["debate"].wall_hours == t["debate"].gpu_hours / 4
    one_seed = plan(load_config(PAPER, ["strong.seeds=[0]"]), gpu_memory_gib=80)
    strong1 = next(x for x in one_seed.times if x.stage == "strong")
    assert abs(t["strong"].gpu_hours / strong1.gpu_hours - 3) < 1e-9  # three seeds: three times the students
    text = render_plan(p)
    assert "GPU-hours" in text and "TFLOP/s" in text and "generated tokens/s" in text


def test_kv_cache_check_of_the_paper_debates(offline):
    """14B bf16 at 0.9 of 80 GB: ~0.2 M tokens at 192 KiB each, fewer than 256 debates
    of ~1.5 k tokens: vLLM runs fewer at once (a note naming max_num_seqs); on a
    141 GB card they fit; where one max_model_len sequence does not fit, vLLM cannot
    start and the plan refuses, naming the knob."""
    p = plan(load_config(PAPER), gpu_memory_gib=80)
    kv = p.kv
    assert kv.kv_bytes_per_token == 2 * 48 * 8 * 128 * 2 and 0.15e6 < kv.kv_tokens < 0.3e6
    assert kv.verdict == "limited" and kv.concurrent < kv.max_num_seqs == 256
    assert any("debate.vllm.max_num_seqs" in n for n in p.notes) and p.fits
    assert plan(load_config(PAPER), gpu_memory_gib=141).kv.verdict == "fits"
    tp2 = plan(load_config(PAPER, ["debate.vllm.tensor_parallel_size=2"]), gpu_memory_gib=80).kv
    assert tp2.kv_bytes_per_token == kv.kv_bytes_per_token // 2 and tp2.kv_tokens > 2 * kv.kv_tokens
    tight = ["debate.vllm.gpu_memory_utilization=0.4", "debate.vllm.max_model_len=32768"]
    p = plan(load_config(PAPER, tight), gpu_memory_gib=80, strict=False)
    assert p.kv.verdict == "cannot start" and p.kv.kv_tokens < 32768
    assert any("vLLM cannot start" in x and f"debate.vllm.max_model_len <= {p.kv.kv_tokens}" in x
               for x in p.problems)
    with pytest.raises(PlanError, match="vLLM cannot start"):
        plan(load_config(PAPER, tight), gpu_memory_gib=80)


def test_no_kv_check_without_a_vllm_backend(offline):
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    p = plan(cfg)
    assert p.kv is None and "debate" not in {x.stage for x in p.times}


def test_plan_counts_the_audits_out_of_fold_ceilings(offline):
    """The audit trains one ceiling per fold of transfer (strong/stage.py CEILING_FOLDS) on the
    other folds, under strong.train, before any student: the plan counts them, sizes their
    memory as the strong model's and their time as their own stage, and names strong.train's
    knobs when they cannot fit."""
    from strong.stage import CEILING_FOLDS
    cfg = load_config(PAPER)
    p = plan(cfg, gpu_memory_gib=80)
    audit = next(j for j in p.jobs if j.stage == "audit")
    strong = next(j for j in p.jobs if j.stage == "strong")
    n = cfg.data.n_transfer
    assert p.audit_trainings == audit.trainings == CEILING_FOLDS == 2
    assert audit.model == strong.model and audit.rows == n - n // CEILING_FOLDS < strong.rows
    assert audit.memory.total == strong.memory.total  # the same model and settings, fewer rows
    # each fold: one training of about (F - 1) / F of transfer; the students: every seed of each
    t = {x.stage: x for x in p.times}
    per_student = t["strong"].gpu_hours / p.students
    assert 0 < t["audit"].gpu_hours < CEILING_FOLDS * per_student
    assert [x.stage for x in p.times if x.stage != "debate"] == ["weak", "audit", "strong"]
    assert "audit: 2 out-of-fold ceilings on transfer" in render_plan(p)
    assert "audit Qwen/Qwen2.5-14B-Instruct (lora): 2 ceiling folds" in render_plan(p)
    # twice the transfer split: each fold trains on twice the rows
    big = plan(load_config(PAPER, [f"data.n_transfer={2 * n}"]), gpu_memory_gib=80)
    assert next(j for j in big.jobs if j.stage == "audit").rows == 2 * n - (2 * n) // CEILING_FOLDS
    # the fix names strong.train, whose settings the folds train under
    off = plan(load_config(PAPER, ["strong.train.gradient_checkpointing=false"]), gpu_memory_gib=80, strict=False)
    folds = next(j for j in off.jobs if j.stage == "audit")
    assert folds.fits is False and any("strong.train.gradient_checkpointing: true" in f for f in folds.fixes)
    assert len(off.problems) == 1  # one line for the strong model under strong.train, not one per stage

"""The reference's training semantics (openai/weak-to-strong, weak_to_strong/train.py) as
the default: torch Adam, the rate cosine-annealed to 0 per optimiser step without
warm-up, no gradient clipping, no dropout; and this project's earlier setting by name."""
import copy
import math

import pytest
import torch

from w2s_base.config import TrainConfig
from w2s_base.losses import XentLoss
from w2s_base.training.classifier import (LoraBase, _optimiser_batches, build_optimiser,
                                          fit, soft_targets)

OLD = dict(optimizer="adamw", schedule="linear", warmup_frac=0.05, max_grad_norm=1.0, dropout=True)


def _rates(opt, sched, steps):
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


@pytest.mark.parametrize("steps", [1, 7, 50])
def test_default_is_the_references_adam_and_cosine_annealing(steps):
    tcfg = TrainConfig(lr=3e-4)
    opt, sched = build_optimiser([torch.nn.Parameter(torch.zeros(1))], tcfg, steps)
    assert type(opt) is torch.optim.Adam  # not AdamW (a subclass of Adam in recent torch)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999) and group["eps"] == 1e-8 and group["weight_decay"] == 0
    assert tcfg.max_grad_norm is None and not tcfg.dropout
    ours = _rates(opt, sched, steps)
    # the closed form of CosineAnnealingLR(T_max=steps, eta_min=0) ...
    assert ours == pytest.approx([3e-4 * (1 + math.cos(math.pi * t / steps)) / 2 for t in range(steps)],
                                 abs=1e-12)
    # ... and the reference's own construction (train.py: Adam(lr), CosineAnnealingLR(opt, nsteps))
    ref = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    assert ours == pytest.approx(_rates(ref, torch.optim.lr_scheduler.CosineAnnealingLR(ref, steps), steps),
                                 abs=1e-12)


def test_the_earlier_setting_is_adamw_linear_warmup():
    from transformers import get_linear_schedule_with_warmup
    steps = 40
    tcfg = TrainConfig(lr=3e-4, **OLD)
    opt, sched = build_optimiser([torch.nn.Parameter(torch.zeros(1))], tcfg, steps)
    assert type(opt) is torch.optim.AdamW
    ref = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    expected = _rates(ref, get_linear_schedule_with_warmup(ref, int(0.05 * steps), steps), steps)
    assert _rates(opt, sched, steps) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("clip", [None, 0.5])
def test_fit_trains_as_the_references_loop(clip):
    """fit with the defaults takes the reference's steps: Adam on the batch's mean loss,
    the cosine rate, no clipping (gradients here are far above norm 1, so clipping would
    show); with max_grad_norm the norm is clipped before each step."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(48, 5, generator=gen) * 30
    targets = soft_targets(torch.rand(48, generator=gen).numpy())
    tcfg = TrainConfig(epochs=3, batch_size=12, lr=0.05, max_grad_norm=clip)
    head = torch.nn.Linear(5, 2)
    ref = copy.deepcopy(head)
    fit(head, lambda m, idx: m(x[idx]), targets, XentLoss(), tcfg, seed=3, desc="t", ddp=False)

    steps = 3 * 48 // 12
    opt = torch.optim.Adam(ref.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    draws = _optimiser_batches(48, 12, 1, 3)  # fit's batch order
    norms = []
    for step in range(steps):
        (idx,) = next(draws)
        loss = XentLoss()(ref(x[idx]), targets[idx], step / steps)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(ref.parameters(), clip or math.inf)))
        opt.step()
        opt.zero_grad()
        sched.step()
    assert min(norms) > 1.0
    for a, b in zip(head.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _dropout_rates(model: torch.nn.Module) -> list[float]:
    """Every dropout rate the modules hold: layers' p and float attributes named for dropout."""
    out = []
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            out.append(m.p)
        out += [v for k, v in vars(m).items() if "dropout" in k and isinstance(v, float)]
    return out


def _two_training_forwards(model_name: str, dropout: bool):
    # a random head: a zero-initialised one gives logits 0 whatever the dropout
    tcfg = TrainConfig(mode="lora", max_length=32, zero_init_head=False, dropout=dropout)
    model, tok = LoraBase(model_name, tcfg).new_adapter("m0", seed=0)
    with torch.no_grad():  # a trained adapter: LoRA's B starts at 0, hiding its dropout
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    model.train()
    enc = tok(["Seven is larger than three.", "Two is larger than nine."], return_tensors="pt",
              padding=True)
    with torch.no_grad():
        return model, model(**enc).logits, model(**enc).logits


def _check_dropout_switch(model_name: str):
    model, a, b = _two_training_forwards(model_name, dropout=False)
    assert _dropout_rates(model) and max(_dropout_rates(model)) == 0.0
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # the same forward twice
    model, a, b = _two_training_forwards(model_name, dropout=True)
    assert 0.05 in _dropout_rates(model)  # lora.dropout's default
    assert (a - b).abs().max() > 1e-4  # other masks: other logits


def test_dropout_is_off_while_training_unless_switched_on_encoder():
    _check_dropout_switch("minilm-l6")  # BERT: hidden, attention and classifier dropout 0.1


@pytest.mark.slow
def test_dropout_is_off_while_training_unless_switched_on_decoder():
    _check_dropout_switch("smollm2-135m")  # Llama: attention_dropout and LoRA's only

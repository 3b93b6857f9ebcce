"""CPU default: batched chat generation with transformers, left padding."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch

from w2s_base.training.models import resolve_model

from .base import Generation, Message, SamplingParams, Seeds, cut_at_stop

if TYPE_CHECKING:
    from w2s_base.config import DebateConfig


def batch_seed(row_seeds: list[int]) -> int:
    """One seed for a batch, from the sorted seeds of its rows (order-free)."""
    digest = hashlib.sha256(",".join(map(str, sorted(row_seeds))).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def from_config(cfg: "DebateConfig") -> "TransformersBackend":
    """debate.backend `transformers` (its factory in w2s_base/backend_specs.py)."""
    return TransformersBackend(cfg.model, batch_size=cfg.batch_size, cpu_int8=cfg.cpu_int8)


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str, batch_size: int = 16, dtype: str = "auto",
                 cpu_int8: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model = model
        self.batch_size = batch_size
        path = resolve_model(model)
        self.tok = AutoTokenizer.from_pretrained(path)
        self.tok.padding_side = "left"  # decoder generation continues from the right edge
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        torch_dtype = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        self.lm = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype).eval()
        if cpu_int8 and not torch.cuda.is_available():
            # CPU decoding is bound by reading fp32 weights once per step; int8
            # weights (dynamic quantisation, fbgemm) measured ~2x faster per step here.
            # A deliberate, recorded deviation (transcript backend "transformers-int8").
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.lm = torch.ao.quantization.quantize_dynamic(self.lm, {torch.nn.Linear},
                                                                 dtype=torch.qint8)
            self.name = "transformers-int8"

    def _prompt(self, conv: list[Message]) -> str:
        return self.tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)

    @torch.inference_mode()
    def generate(
        self, conversations: list[list[Message]], params: SamplingParams, seeds: Seeds
    ) -> list[Generation]:
        """Batched sampling draws one random stream per batch, so a row's text depends
        on its batch: each batch is seeded from its rows' seeds, which makes the same
        rows in the same batch reproduce exactly (CPU), not a row on its own."""
        prompts = [self._prompt(c) for c in conversations]
        # Length-sorted batches waste less compute on padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[Generation | None] = [None] * len(prompts)
        for b, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start : start + self.batch_size]
            enc = self.tok([prompts[i] for i in idx], return_tensors="pt", padding=True,
                           add_special_tokens=False)
            if seeds is not None:
                torch.manual_seed(batch_seed([seeds[i] for i in idx]))
            sample = params.temperature > 0
            gen = self.lm.generate(
                **enc,
                max_new_tokens=params.max_new_tokens,
                do_sample=sample,
                temperature=params.temperature if sample else None,
                top_p=params.top_p if sample else None,
                top_k=None,
                pad_token_id=self.tok.pad_token_id,
            )
            new = gen[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(idx):
                ids = new[row]
                ended = (ids == self.tok.eos_token_id).nonzero()
                n = int(ended[0]) if len(ended) else len(ids)
                text = self.tok.decode(ids[:n], skip_special_tokens=True)
                text, stopped = cut_at_stop(text, params.stop)
                reason = "stop" if (len(ended) or stopped) else "length"
                out[i] = Generation(
                    text=text.strip(),
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    completion_tokens=n,
                    finish_reason=reason,
                )
        return out  # type: ignore[return-value]

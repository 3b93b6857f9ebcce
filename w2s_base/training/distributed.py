"""Multi-process (DDP) training through accelerate, with no change to the code or
the config: `accelerate launch --multi_gpu --num_processes N run.py ...` (or
`torchrun --nproc_per_node N run.py ...`, which is what that command runs).

Every process runs the same pipeline. Training is collective: each optimiser step's
batch is split across the processes and DDP averages the gradients, so the
effective batch and the results match a single-process run. Everything else is
done or written once: the main process generates debates (the others wait, then
read the stored transcripts) and writes every file; each process predicts for
itself, so no process ever waits on a file another is writing.
Without a launcher all of this reduces to one process and no wrapping.
"""
from __future__ import annotations

import contextlib
from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def state():
    from accelerate import PartialState
    return PartialState(cpu=not torch.cuda.is_available())


@lru_cache(maxsize=1)
def accelerator():
    from accelerate import Accelerator
    return Accelerator(cpu=not torch.cuda.is_available())


def world() -> int:
    return state().num_processes


def is_main() -> bool:
    return state().is_main_process


def device() -> torch.device:
    return state().device


def main_first():
    """The main process runs the block first; the others wait, then run it (and find
    its work done). A no-op in a single process."""
    return state().main_process_first() if world() > 1 else contextlib.nullcontext()

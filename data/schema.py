"""The typed sample every stage consumes.

All tasks are binary, as in the OpenAI weak-to-strong benchmarks: a text that
makes one claim (a candidate answer, a reply), and a gold label saying whether
the claim holds. The two debaters defend `positions[1]` (label 1 is right) and
`positions[0]` (label 0 is right), worded per task.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Sample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    task: str
    text: str = Field(min_length=1)
    label: int = Field(ge=0, le=1)
    # positions[i] is the claim that is true when label == i.
    positions: tuple[str, str]
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("positions")
    @classmethod
    def _distinct(cls, v: tuple[str, str]) -> tuple[str, str]:
        if not v[0].strip() or not v[1].strip() or v[0] == v[1]:
            raise ValueError("positions must be two distinct, non-empty claims")
        return v


class DataError(ValueError):
    """A user's data does not fit: the message names the file and line."""

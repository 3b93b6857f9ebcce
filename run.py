#!/usr/bin/env python
"""`python run.py ...` is `w2s-debate ...` (the console script): the command line lives in
w2s_run/cli.py (`python run.py -h`, `python run.py VERB -h`)."""
from __future__ import annotations

import sys

from w2s_run.cli import load, main, parse_args

__all__ = ["load", "main", "parse_args"]

if __name__ == "__main__":  # the guard matters: vLLM's engine spawns worker processes
    sys.exit(main())

"""``zeroshot``: evaluation of the starting point only (``schedule = "none"``)."""

from __future__ import annotations

from cvit_bench.harness import MethodBase


class ZeroShot(MethodBase):
    name = "zeroshot"
    schedule = "none"

"""Test kit for cvit-bench plugins: conformance checks, torch-free fakes, plugin managers.

A third-party plugin's test suite::

    from cvit_bench.testing import check_method

    def test_conforms():
        check_method(MyMethod)
"""

from __future__ import annotations

from .conformance import check_benchmark, check_config_class, check_method, check_model
from .fakes import (
    FakeBenchmark,
    FakeBenchmarkConfig,
    FakeEngine,
    FakeModel,
    FakeModelConfig,
    FakeNetwork,
    FakeParameter,
)
from .manager import plugin_manager
from .methods import FakeSequential

__all__ = [
    "FakeBenchmark",
    "FakeBenchmarkConfig",
    "FakeEngine",
    "FakeModel",
    "FakeModelConfig",
    "FakeNetwork",
    "FakeParameter",
    "FakeSequential",
    "check_benchmark",
    "check_config_class",
    "check_method",
    "check_model",
    "plugin_manager",
]

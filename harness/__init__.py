"""cvit-bench's core, and the public plugin API.

Plugin authors import from here::

    from cvit_bench.harness import hookimpl, MethodBase, config_field, TaskInfo, Sample

Everything re-exported below is the public API, versioned by :data:`API_VERSION`: it changes by
adding; anything removed goes through a ``DeprecationWarning`` for at least one minor release.
"""

from __future__ import annotations

from .config import EvalConfig, RunConfig, TrainConfig, config_field
from .errors import CvitError, DataError, PluginLoadError, ResultFileError, UsageError
from .hookspecs import hookimpl, hookspec
from .protocols import Benchmark, Engine, Method, MethodBase, ModelAdapter, RunContext
from .types import (
    MethodRequirements,
    Prediction,
    Sample,
    SampleId,
    Schedule,
    TaskInfo,
    TaskScore,
    Turn,
)

__version__ = "0.1.0"

API_VERSION = "1.1"
"""Version of the plugin API (hooks, protocols, result schema). Minor bumps only add."""

__all__ = [
    "API_VERSION",
    "Benchmark",
    "CvitError",
    "DataError",
    "Engine",
    "EvalConfig",
    "Method",
    "MethodBase",
    "MethodRequirements",
    "ModelAdapter",
    "PluginLoadError",
    "Prediction",
    "ResultFileError",
    "RunConfig",
    "RunContext",
    "Sample",
    "SampleId",
    "Schedule",
    "TaskInfo",
    "TaskScore",
    "TrainConfig",
    "Turn",
    "UsageError",
    "__version__",
    "config_field",
    "hookimpl",
    "hookspec",
]

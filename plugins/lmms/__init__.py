"""lmms-eval interop, both directions (the optional extra ``lmms``).

* lmms-eval evaluates any stage of a cvit-bench run: the model ``cvit_bench``, registered in
  lmms-eval's ``lmms_eval.models`` entry-point group by :func:`manifest`::

      python -m lmms_eval --model cvit_bench --model_args run_dir=runs/x,stage=8 --tasks mme

* a cvit-bench run evaluates lmms-eval tasks as "general ability" after chosen stages
  (``eval.general_tasks``), on the model it holds in memory (:mod:`.general`).

This module stays light: lmms-eval imports it while it builds its model registry.
"""

from __future__ import annotations

from typing import Any

LMMS_EVAL_VERSION = "0.7.3"
"""The lmms-eval release cvit-bench is tested with."""

INSTALL_STEPS = (
    f"pip install 'cvit-bench[lmms]' && pip install --no-deps 'lmms-eval=={LMMS_EVAL_VERSION}'"
)
"""How to install the extra. lmms-eval is installed without its dependencies because it pulls
in torchvision, whose registry build needs CUDA and breaks transformers' image processors; the
extra lists the dependencies it needs for cvit-bench's use."""

MODEL_NAME = "cvit_bench"


def manifest() -> Any:
    """lmms-eval's entry point (group ``lmms_eval.models``): the ``cvit_bench`` model."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(
        model_id=MODEL_NAME,
        simple_class_path="cvit_bench.plugins.lmms.model.CvitBenchLMM",
    )

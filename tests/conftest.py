from __future__ import annotations

import os

# Keep torch (where a test imports it) to the machine's two cores and deterministic.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

"""Checks of a local model directory in the Hugging Face format (nothing is downloaded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cvit_bench.harness.errors import DataError


def missing_files(path: Path, model_type: str, wrong_type_hint: str = "") -> list[str]:
    """What a Hugging Face model directory of ``model_type`` lacks (empty when complete):
    ``config.json`` of that type, the tokenizer, the image processor's settings, the weights
    (every shard a ``model.safetensors.index.json`` lists)."""
    missing: list[str] = []
    if not path.is_dir():
        return [f"the directory {path} itself"]
    config_file = path / "config.json"
    if not config_file.exists():
        missing.append("config.json")
    else:
        try:
            config = json.loads(config_file.read_text())
        except json.JSONDecodeError as exc:
            missing.append(f"a valid config.json ({exc})")
        else:
            if config.get("model_type") != model_type:
                missing.append(
                    f"a {model_type} config.json (model_type is {config.get('model_type')!r}"
                    f"{'; ' + wrong_type_hint if wrong_type_hint else ''})"
                )
    tokenizer_files = ("tokenizer.json", "tokenizer.model", "vocab.json")
    if not any((path / name).exists() for name in tokenizer_files):
        missing.append("tokenizer.json (or tokenizer.model, or vocab.json and merges.txt)")
    if not (path / "preprocessor_config.json").exists():
        missing.append("preprocessor_config.json (the image processor's settings)")
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
        missing += [
            f"weight shard {s} (listed in {index.name})" for s in shards if not (path / s).exists()
        ]
    elif not any((path / n).exists() for n in ("model.safetensors", "pytorch_model.bin")):
        missing.append(
            "the weights (model.safetensors, or model.safetensors.index.json and its shards)"
        )
    return missing


def resolve_model_dir(
    configured: str | None, env: str, model_type: str, family: str, how_to_get: str, hint: str = ""
) -> Path:
    """The configured directory, else ``$env``; a ``DataError`` naming what is missing and how
    to obtain it when there is none or it is incomplete."""
    raw = configured or os.environ.get(env)
    if not raw:
        raise DataError(f"no {family} model directory is configured. {how_to_get}")
    path = Path(raw).expanduser()
    missing = missing_files(path, model_type, hint)
    if missing:
        raise DataError(
            f"the {family} model directory {path} is incomplete: missing "
            f"{'; '.join(missing)}. {how_to_get}"
        )
    return path


def revision(path: Path) -> str:
    """A short fingerprint of the directory's config and weight index."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors.index.json"):
        file = path / name
        if file.exists():
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]

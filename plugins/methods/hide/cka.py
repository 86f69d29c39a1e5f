"""Layer-wise CKA between task experts: how HiDe-LLaVA chooses its task-specific layers.

The paper measures, layer by layer, how similar the representations of models tuned on
different tasks are (centred kernel alignment): similarity stays high in the lower layers and
drops in the top one, so the top layer is expanded per task and the others are fused. After a
``hide`` run (or any model holding :class:`~cvit_bench.plugins.methods.expert_lora.ExpertLoRALinear`
experts), ``layer_similarity`` runs the same inputs through every decoder layer once with each
learned expert alone and returns the mean linear CKA between experts per layer; the layers
with the lowest values are the candidates for ``method.specific_layers``::

    sims = layer_similarity(ctx.model, method.layers, samples, experts=range(method.n_learned))
    specific = lowest_layers(sims, 1)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import torch

from cvit_bench.plugins.methods import expert_lora


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same ``n`` inputs (``n x d1``, ``n x d2``):
    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred ``Xc``, ``Yc``."""
    x = x.double() - x.double().mean(0, keepdim=True)
    y = y.double() - y.double().mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norm = torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)
    return float(cross / norm) if float(norm) > 0 else 0.0


@torch.no_grad()
def layer_outputs(adapter: Any, samples: Sequence[Any], batch_size: int = 16) -> list[torch.Tensor]:
    """Every decoder layer's output on the non-padding tokens of ``samples`` (prompt and
    answer), one ``tokens x hidden`` tensor per layer, with the model in its current mode."""
    model = adapter.model
    param = next(model.parameters())
    per_layer: list[list[torch.Tensor]] = []
    for start in range(0, len(samples), batch_size):
        batch = adapter.collate_train(list(samples[start : start + batch_size]), 4096)
        inputs = adapter.model_inputs(batch, param.device, param.dtype)
        inputs.pop("labels", None)
        out = model(**inputs, output_hidden_states=True, use_cache=False)
        mask = inputs["attention_mask"].bool()
        # hidden_states[0] is the embedding output; the layers follow
        for i, hidden in enumerate(out.hidden_states[1:]):
            if len(per_layer) <= i:
                per_layer.append([])
            per_layer[i].append(hidden[mask].float().cpu())
    return [torch.cat(chunks) for chunks in per_layer]


def layer_similarity(
    adapter: Any,
    layers: dict[str, expert_lora.ExpertLoRALinear],
    samples: Sequence[Any],
    experts: Iterable[int],
    batch_size: int = 16,
) -> list[float]:
    """Mean linear CKA, per decoder layer, between the outputs computed with each pair of
    ``experts`` (each used alone in every layer) on the same ``samples``."""
    experts = list(experts)
    if len(experts) < 2:
        raise ValueError("layer_similarity needs at least two experts to compare")
    outputs = {}
    for k in experts:
        with expert_lora.modes([(list(layers.values()), "expert", {"active": k})]):
            outputs[k] = layer_outputs(adapter, samples, batch_size)
    n_layers = len(outputs[experts[0]])
    sims = []
    for layer in range(n_layers):
        values = [
            linear_cka(outputs[i][layer], outputs[j][layer])
            for i, j in itertools.combinations(experts, 2)
        ]
        sims.append(sum(values) / len(values))
    return sims


def lowest_layers(similarity: Sequence[float], n: int = 1) -> list[int]:
    """The ``n`` layers where experts agree least: the task-specific candidates."""
    order = sorted(range(len(similarity)), key=lambda i: (similarity[i], -i))
    return sorted(order[:n])

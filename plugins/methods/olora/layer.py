"""A linear layer with one LoRA adapter per task, all summed: ``W x + sum_i s B_i A_i x``."""

from __future__ import annotations

import torch
from torch import nn

from cvit_bench.plugins.methods import lora_common


class TaskLoRALinear(nn.Module):
    """Wraps a frozen ``nn.Linear``; ``add_task`` appends a fresh adapter (A Kaiming-uniform,
    B zero, so the layer's output is unchanged until it trains)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        self.rank = rank
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()

    def extra_repr(self) -> str:
        return f"tasks={self.tasks}, rank={self.rank}, scaling={self.scaling}"

    @property
    def tasks(self) -> int:
        return len(self.lora_A)

    def add_task(self) -> None:
        weight = self.base.weight
        a = torch.empty(self.rank, self.base.in_features, device=weight.device, dtype=weight.dtype)
        lora_common.kaiming_init_(a)
        b = torch.zeros(self.base.out_features, self.rank, device=weight.device, dtype=weight.dtype)
        self.lora_A.append(nn.Parameter(a))
        self.lora_B.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        if not self.tasks:
            return out
        h = self.dropout(x)
        for a, b in zip(self.lora_A, self.lora_B):
            out = out + (h.to(a.dtype) @ a.t() @ b.t()).to(out.dtype) * self.scaling
        return out

    def orthogonality(self) -> torch.Tensor:
        """``sum |A_cur A_prev^T|`` between the newest adapter's A and every earlier one's."""
        if self.tasks < 2:
            return self.lora_A[0].sum() * 0.0 if self.tasks else torch.zeros(())
        current = self.lora_A[-1]
        previous = torch.cat(list(self.lora_A[:-1]), dim=0)
        return (current.float() @ previous.float().t()).abs().sum()

"""A linear layer plus a mixture of LoRA experts with a dense per-token softmax router.

``y = W x + (alpha / r) * sum_e g_e(x) B_e A_e x`` with ``g(x) = softmax(R x)`` over the ``E``
experts, each expert of rank ``r / E``. The experts are stored stacked (``A``: ``[E*r_e, in]``,
``B``: ``[out, E*r_e]``), so the whole mixture is two matrix products: the gate scales each
expert's ``r_e`` intermediate features before ``B``.
"""

from __future__ import annotations

import torch
from torch import nn

from cvit_bench.plugins.methods import lora_common


class MoELoRALinear(nn.Module):
    def __init__(
        self, base: nn.Linear, rank: int, alpha: float, experts: int, dropout: float
    ) -> None:
        super().__init__()
        if rank % experts:
            raise ValueError(f"rank {rank} is not divisible by {experts} experts")
        self.base = base
        self.experts = experts
        self.expert_rank = rank // experts
        self.scaling = alpha / rank
        weight = base.weight
        kwargs = {"device": weight.device, "dtype": weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **kwargs))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, **kwargs))
        self.router = nn.Linear(base.in_features, experts, bias=False, **kwargs)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for e in range(experts):  # each expert initialised as its own LoRA A
            lora_common.kaiming_init_(
                self.lora_A.data[e * self.expert_rank : (e + 1) * self.expert_rank]
            )

    def extra_repr(self) -> str:
        return f"experts={self.experts}, expert_rank={self.expert_rank}, scaling={self.scaling}"

    def router_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., E]``: each token's mixture weights (a softmax: they sum to one)."""
        return torch.softmax(self.router(x.to(self.router.weight.dtype)).float(), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        h = self.dropout(x).to(self.lora_A.dtype)
        gates = self.router_weights(h).to(h.dtype)  # [..., E]
        z = h @ self.lora_A.t()  # [..., E * r_e]
        z = (z.unflatten(-1, (self.experts, self.expert_rank)) * gates.unsqueeze(-1)).flatten(-2)
        return out + (z @ self.lora_B.t()).to(out.dtype) * self.scaling

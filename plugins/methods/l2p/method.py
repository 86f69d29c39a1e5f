"""``l2p``: learning to prompt (Wang et al., CVPR 2022) for a LLaVA-family model.

A pool of ``pool_size`` prompts (each ``prompt_length`` embeddings wide) with one key each is
added to the model; everything else stays frozen (optionally a LoRA trains too, ``lora_rank``).
For every sample the query is the frozen vision tower's image feature (the layer LLaVA feeds
its projector, mean over patches); the ``top_k`` prompts whose keys are most cosine-similar are
concatenated and put in front of the language model's input embeddings, in training and at
inference alike, so no task identity is needed. Training adds the key-query matching loss

    match_weight * mean over samples of sum over chosen keys of (1 - cos(query, key))

which pulls the chosen keys towards the queries that chose them. See ``layer.py`` for how the
prompts enter the model (forward hooks on the LLaVA model and its language model; neither the
engine nor the model adapter changes).

Checkpoints hold the pool (and the LoRA and projector when they train), ``l2p.safetensors``.

Defaults. No L2P setting for LLaVA-1.5-7B was ever published (METHODS.md: classic CL, no public
LLaVA code). Pool size 10, prompt length 5, top-k 5 and a matching weight of 0.1 are the L2P
paper's ViT settings (its reference PyTorch code's ``pull_constraint_coeff`` is 0.1); keys start
uniform in [-1, 1] as there, prompts as normal noise at the scale of the model's token
embeddings (a prompt at ViT scale would swamp a language model's inputs). ``prompt_lr`` = 0.03
is the L2P paper's learning rate for prompts and keys; the run's ``train.lr`` is used for a
LoRA when ``lora_rank`` > 0 (pure L2P keeps the backbone frozen: ``lora_rank`` = 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvit_bench.harness import MethodBase, config_field
from cvit_bench.harness.errors import UsageError
from cvit_bench.harness.types import MethodRequirements
from cvit_bench.plugins.methods import lora_common

STATE_FILE = "l2p.safetensors"
POOL_NAME = "l2p_prompt_pool"


@dataclass
class L2PConfig:
    pool_size: int = config_field(10, help="prompts in the pool (M)")
    prompt_length: int = config_field(5, help="embeddings per prompt (L_p)")
    top_k: int = config_field(5, help="prompts chosen per sample (N); N x L_p embeddings prepended")
    match_weight: float = config_field(
        0.1, help="weight of the key-query matching loss (L2P's lambda)"
    )
    prompt_lr: float | None = config_field(
        0.03, help="learning rate of prompts and keys (null: the run's train.lr)"
    )
    lora_rank: int = config_field(
        0, help="also train a LoRA of this rank on the language model (0: prompts only, as L2P)"
    )
    lora_alpha: float = config_field(32.0, help="alpha of that LoRA")
    targets: list[str] = config_field(
        default_factory=list,
        help="language-model linear layers the LoRA adapts (empty: the model's default)",
    )


class L2P(MethodBase):
    name = "l2p"
    config_class = L2PConfig
    requirements = MethodRequirements(
        inference="prompts chosen per sample by key similarity to the frozen image feature",
        # the query is the CLIP tower's feature at LLaVA's feature layer, and the prompts are
        # spliced into the language model's input embeddings and 1-D positions
        model_features=("lora", "llava-internals"),
    )
    schedule = "sequential"

    def __init__(self, config: L2PConfig | None = None) -> None:
        super().__init__(config or L2PConfig())
        c = self.config
        if min(c.pool_size, c.prompt_length, c.top_k) < 1 or c.top_k > c.pool_size:
            raise UsageError(
                "method l2p: pool_size, prompt_length and top_k must be >= 1 and "
                f"top_k <= pool_size (got {c.pool_size}, {c.prompt_length}, {c.top_k})"
            )
        self.pool: Any = None
        self.injector: Any = None

    def setup(self, ctx: Any) -> None:
        import torch

        from .layer import PromptInjector, PromptPool

        lora_common.refuse_zero3(
            ctx, self.name, "matches the image feature to the pool's keys before the forward pass"
        )
        c = self.config
        model = ctx.model.model
        if c.lora_rank > 0:
            targets = list(c.targets) or ctx.model.lora_targets()
            lora = lora_common.lora_config(
                c.lora_rank,
                c.lora_alpha,
                0.0,
                targets,
                lora_common.trains_projector(ctx),
                lora_common.projector_module(ctx),
            )
            model = ctx.model.model = lora_common.add_lora(model, lora, ctx.config.seed * 1000)
        else:
            for p in model.parameters():
                p.requires_grad_(False)
            lora_common.set_projector_trainable(
                model, lora_common.trains_projector(ctx), lora_common.projector_module(ctx)
            )
        llava = lora_common.llava_module(model)
        embed = llava.get_input_embeddings().weight
        vision = llava.config.vision_config.hidden_size
        layers = llava.config.vision_feature_layer
        key_dim = vision * (1 if isinstance(layers, int) else len(layers))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.config.seed * 1000 + 1)
            self.pool = PromptPool(
                c.pool_size, c.prompt_length, embed.shape[1], key_dim, float(embed.std())
            ).to(device=embed.device, dtype=embed.dtype)
        llava.add_module(POOL_NAME, self.pool)
        self.injector = PromptInjector(llava, self.pool, c.top_k)

    def trainable_parameters(self, ctx: Any) -> list[dict[str, Any]]:
        pool = [self.pool.keys, self.pool.prompts]
        ids = {id(p) for p in pool}
        rest = [p for p in ctx.model.model.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": pool, "lr": self.config.prompt_lr, "name": "prompt_pool"}]
        if rest:
            groups.append({"params": rest, "lr": None, "name": "lora"})
        return groups

    def training_loss(self, ctx: Any, batch: dict[str, Any], outputs: Any) -> Any:
        match = self.injector.match
        if match is None or self.config.match_weight == 0:
            return outputs.loss
        surrogate = (1.0 - match).sum(dim=1).mean()
        return outputs.loss + self.config.match_weight * surrogate.to(outputs.loss.dtype)

    def inference(self, ctx: Any, batch: dict[str, Any]) -> Any:
        from contextlib import contextmanager

        @contextmanager
        def chosen() -> Any:
            self.injector.pin(batch.get("pixel_values"), batch["input_ids"])
            try:
                yield
            finally:
                self.injector.unpin()

        return chosen()

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, ctx: Any, directory: Path) -> None:
        if ctx.rank != 0:
            return
        state = lora_common.named_trainable(ctx.model.model)
        lora_common.save_tensors(Path(directory) / STATE_FILE, state)
        super().save_checkpoint(ctx, directory)

    def load_checkpoint(self, ctx: Any, directory: Path) -> None:
        path = Path(directory) / STATE_FILE
        lora_common.load_into(ctx.model.model, lora_common.load_tensors(path), path)

    def costs(self) -> dict[str, Any]:
        extra = self.pool.keys.numel() + self.pool.prompts.numel() if self.pool is not None else 0
        return {"stored_samples": 0, "extra_params": extra}

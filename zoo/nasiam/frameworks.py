"""SimSiam, MoCo v2 and SimCLR as one family of pure ``nn.Module`` siamese networks whose projector (and SimSiam
predictor) is a NASiam head: searchable, derived from a genotype, or the hand-designed baseline
(Heuillet et al., arXiv 2302.00059; Chen & He 2021; Chen et al. 2020; Chen et al. 2020).

``forward(x)`` returns the backbone representation (what linear evaluation uses); ``ssl_loss(x1, x2)`` the
framework's loss on two views; ``embed(x)`` the projector output.
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from zoo.nasiam.backbones import Backbone
from zoo.nasiam.heads import FixedChain, HeadGenotype, SearchChain, standard_chain
from zoo.nasiam.losses import moco_infonce, nt_xent, simsiam_loss
from zoo.nasiam.ops import MLP_PRIMITIVES, SIMCLR_PRIMITIVES
from zoo.nasiam.published import resolve_head

FRAMEWORKS = ("simsiam", "moco", "simclr")


class Head(nn.Module):
    """A NASiam cell (``chain``: searchable, fixed or hand-designed) followed by the framework's fixed ``tail``."""

    def __init__(self, chain: nn.Module, tail: nn.Module | None = None) -> None:
        super().__init__()
        self.chain = chain
        self.tail = tail if tail is not None else nn.Identity()

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        x = self.chain(x, weights) if isinstance(self.chain, SearchChain) else self.chain(x)
        return self.tail(x)


def default_primitives(framework: str) -> tuple[str, ...]:
    """The search space's op order in the framework's own ``operations.py`` (SimCLR's swaps silu and hardswish)."""
    return SIMCLR_PRIMITIVES if framework == "simclr" else MLP_PRIMITIVES


def _chain(kind: str, dims: Sequence[int], ops: Sequence[str] | None, standard: str, standard_dims: Sequence[int],
           primitives: Sequence[str], linear_bias: bool = False) -> nn.Module:
    if kind == "search":
        return SearchChain(dims, primitives, linear_bias=linear_bias)
    if kind == "standard":
        return standard_chain(standard, standard_dims)
    return FixedChain(dims, ops, linear_bias)


class SiameseNet(nn.Module):
    """Backbone + NASiam head(s) + loss of one framework (``simsiam`` | ``moco`` | ``simclr``).

    ``head``: ``"standard"`` (hand-designed baseline), ``"search"`` (searchable chains, alpha as parameters),
    or a genotype (published name, genotype.json path or dict) for the derived head.
    Dims: SimSiam C_e ``proj_layers`` x d->d, then Linear(d->dim, frozen bias) + BN(affine=False); C_p
    ``pred_layers`` dim->pred_dim...->dim. MoCo C_e ``proj_layers`` x d->d then Linear(d->dim). SimCLR C_e
    d->hidden...->dim (``proj_layers`` layers), the whole head. ``primitives=None`` and ``linear_bias=None`` take the
    framework's code: SimCLR's op order, and the Linear bias of MoCo's ``linear_wrapper``.
    """

    def __init__(self, framework: str = "simsiam", backbone: str = "resnet18", in_chans: int = 3, cifar_stem: bool = True,
                 mean: Sequence[float] = (0.4914, 0.4822, 0.4465), std: Sequence[float] = (0.2470, 0.2435, 0.2616),
                 width: int = 32, head: str | dict[str, Any] = "standard", dim: int = 2048, pred_dim: int = 512,
                 hidden_dim: int = 512, proj_layers: int = 6, pred_layers: int = 4, standard_layers: int = 2,
                 queue_size: int = 4096, momentum: float = 0.99, temperature: float = 0.1,
                 primitives: Sequence[str] | None = None, linear_bias: bool | None = None) -> None:
        super().__init__()
        if framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {framework!r}; expected one of {FRAMEWORKS}")
        primitives = tuple(primitives) if primitives is not None else default_primitives(framework)
        bias = framework == "moco" if linear_bias is None else bool(linear_bias)
        self.framework, self.primitives, self.linear_bias = framework, primitives, bias
        self.backbone = Backbone(backbone, in_chans, cifar_stem, mean, std, width)
        d = self.num_features = self.backbone.num_features
        kind = head if head in ("standard", "search") else "fixed"
        geno = resolve_head(head) if kind == "fixed" else None
        self.genotype_spec: HeadGenotype | None = geno
        proj_ops = geno.projector.ops if geno else None
        if framework == "simsiam":
            tail_fc = nn.Linear(d, dim)
            tail_fc.bias.requires_grad = False  # followed by BN(affine=False): the bias is frozen (authors' code)
            dims = [d] * (len(proj_ops) + 1 if proj_ops else proj_layers + 1)
            chain = _chain(kind, dims, proj_ops, "simsiam", [d] * (standard_layers + 1), primitives)
            self.projector = Head(chain, nn.Sequential(tail_fc, nn.BatchNorm1d(dim, affine=False)))
            pred_ops = geno.predictor.ops if geno and geno.predictor else None
            n_pred = len(pred_ops) if pred_ops else pred_layers
            pdims = [dim] + [pred_dim] * (n_pred - 1) + [dim]
            pchain = _chain(kind, pdims, pred_ops, "simsiam_predictor", [dim, pred_dim, dim], primitives)
            self.predictor: Head | None = Head(pchain)
        elif framework == "moco":
            dims = [d] * (len(proj_ops) + 1 if proj_ops else proj_layers + 1)
            chain = _chain(kind, dims, proj_ops, "moco", [d, d], primitives, bias)
            self.projector = Head(chain, nn.Linear(d, dim))
            self.predictor = None
        else:
            n = len(proj_ops) if proj_ops else proj_layers
            dims = [d] + [hidden_dim] * (n - 1) + [dim]
            self.projector = Head(_chain(kind, dims, proj_ops, "simclr", [d, hidden_dim, dim], primitives))
            self.predictor = None
        self.dims = {"projector": dims, **({"predictor": pdims} if self.predictor is not None else {})}
        self.dim, self.temperature, self.momentum = dim, temperature, momentum
        if framework == "moco":
            self._build_key_encoder(queue_size)

    # ---- MoCo key encoder and queue ------------------------------------------------------------------------
    def _build_key_encoder(self, queue_size: int) -> None:
        """A separate deep copy (not the shared cell of the authors' code, defect 4), updated by momentum."""
        self.key_backbone = copy.deepcopy(self.backbone)
        self.key_projector = copy.deepcopy(self.projector)
        if isinstance(self.key_projector.chain, SearchChain):
            self.key_projector.chain.alpha = None  # the key encoder mixes with the query's alpha
        for p in [*self.key_backbone.parameters(), *self.key_projector.parameters()]:
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(self.dim, queue_size), dim=0))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def momentum_update(self) -> None:
        for q_mod, k_mod in ((self.backbone, self.key_backbone), (self.projector, self.key_projector)):
            q_params = dict(q_mod.named_parameters())
            for name, pk in k_mod.named_parameters():
                pk.mul_(self.momentum).add_(q_params[name].detach(), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered = [torch.zeros_like(keys) for _ in range(torch.distributed.get_world_size())]
            torch.distributed.all_gather(gathered, keys.contiguous())
            keys = torch.cat(gathered)
        k = self.queue.shape[1]
        idx = (self.queue_ptr + torch.arange(len(keys), device=keys.device)) % k
        self.queue[:, idx] = keys.t().to(self.queue.dtype)
        self.queue_ptr.fill_(int((self.queue_ptr + len(keys)) % k))

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        w = None
        if isinstance(self.projector.chain, SearchChain):
            w = self.projector.chain.mixing_weights().detach()
        return F.normalize(self.key_projector(self.key_backbone(x), w), dim=1)

    # ---- public API ----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Projector output z (the embedding the losses compare and the collapse statistic reads)."""
        return self.projector(self.backbone(x))

    def ssl_loss(self, x1: torch.Tensor, x2: torch.Tensor, update: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The framework's loss on two views and the first view's embedding z1 (for the collapse statistic).

        MoCo with ``update``: momentum update of the key encoder, then both views' keys are enqueued.
        """
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        if self.framework == "simsiam":
            return simsiam_loss(self.predictor(z1), self.predictor(z2), z1, z2), z1
        if self.framework == "simclr":
            return nt_xent(z1, z2, self.temperature), z1
        if update:
            self.momentum_update()
        k1, k2 = self.keys(x1), self.keys(x2)
        loss = moco_infonce(z1, z2, k1, k2, self.queue.clone(), self.temperature)
        if update:
            self.enqueue(torch.cat([k1, k2]))
        return loss, z1

    def search_chains(self) -> dict[str, SearchChain]:
        heads = {"projector": self.projector, "predictor": self.predictor}
        return {n: h.chain for n, h in heads.items() if h is not None and isinstance(h.chain, SearchChain)}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [c.alpha for c in self.search_chains().values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch and p.requires_grad]

    def genotype(self) -> HeadGenotype:
        chains = self.search_chains()
        if "projector" not in chains:
            if self.genotype_spec is None:
                raise ValueError("a hand-designed head has no genotype")
            return self.genotype_spec
        pred = chains["predictor"].genotype() if "predictor" in chains else None
        return HeadGenotype(chains["projector"].genotype(), pred)

"""timm's uniform model verbs, shared by every classifier network in the zoo."""
from __future__ import annotations

import torch
from torch import nn


class ClassifierVerbs:
    """Mixin: ``forward = forward_head(forward_features(x))`` and ``reset_classifier``.

    A network sets ``self.head`` (the final ``nn.Linear`` or ``nn.Identity``), ``self.num_features``
    and ``self.num_classes``, and implements ``forward_features`` and ``forward_head``.
    """

    head: nn.Module
    num_features: int
    num_classes: int

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a fresh one for ``num_classes`` (0 gives pooled features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.num_classes = num_classes
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        self.head = nn.Linear(self.num_features, num_classes).to(device) if num_classes else nn.Identity()

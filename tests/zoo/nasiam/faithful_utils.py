"""The NASiam small-scale check (spec section 9) as a function, shared by the faithful test and the table in docs/nasiam.md."""
from __future__ import annotations

import math

import lightning.pytorch as pl
import torch

TINY = dict(framework="simsiam", backbone="digits_convnet", in_chans=1, width=32, mean=[0.3053], std=[0.3761], dim=64,
            pred_dim=16, views="digits", optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4, fix_pred_lr=True)
UNIFORM = math.log(7)


def _trainer(epochs: int) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      num_sanity_val_steps=0)


def entropy(w: torch.Tensor) -> float:
    return float(-(w * w.clamp_min(1e-12).log()).sum(-1).mean())


def _probe(model, data, standardize: bool = False) -> float:
    from zoo.core.ssl_eval import logistic_probe

    return logistic_probe(model.net, data.train_dataloader(), data.test_dataloader(), standardize=standardize)


@torch.no_grad()
def _z_std(model, data) -> float:
    from zoo.nasiam.losses import embedding_std

    model.eval()
    z = torch.cat([model.net.embed(x) for x, _ in data.test_dataloader()])
    return float(embedding_std(z))


def run_check(seed: int = 1, arch_lr: float = 1e-2, search_epochs: int = 20, pretrain_epochs: int = 40) -> dict:
    """Search, pre-train the derived and the hand-designed heads, probe the frozen backbones; returns the numbers."""
    from zoo.nas.data import DigitsNASDataModule
    from zoo.nasiam.module import NASiamModule
    from zoo.nasiam.ops import MLP_PRIMITIVES
    from zoo.nasiam.search import NASiamSearchModule

    out: dict = {}
    pl.seed_everything(seed, verbose=False)
    search = NASiamSearchModule(**TINY, proj_layers=3, pred_layers=2, arch_lr=arch_lr)
    _trainer(search_epochs).fit(search, DigitsNASDataModule(batch_size=64, search=True, corrupted=False, channels=1))
    w_e, w_p = search.cell_mixing_weights()
    pools = [MLP_PRIMITIVES.index("maxpool_3x3"), MLP_PRIMITIVES.index("avgpool_3x3")]
    out.update(entropy_e=entropy(w_e), entropy_p=entropy(w_p), pool_weight=float(torch.cat([w_e, w_p])[:, pools].mean()),
               genotype=search.genotype().to_dict())
    data = DigitsNASDataModule(batch_size=64, search=False, corrupted=False, channels=1)
    data.setup()
    for name, head in (("nasiam", search.genotype().to_dict()), ("standard", "standard")):
        pl.seed_everything(seed, verbose=False)
        model = NASiamModule(**TINY, head=head)
        if name == "nasiam":
            pl.seed_everything(seed, verbose=False)
            rand = NASiamModule(**TINY, head=head)
            out["probe_random"], out["probe_random_std"] = _probe(rand, data), _probe(rand, data, True)
        _trainer(pretrain_epochs).fit(model, data)
        out[f"probe_{name}"], out[f"probe_{name}_std"] = _probe(model, data), _probe(model, data, True)
        out[f"z_std_{name}"] = _z_std(model, data)
    return out


if __name__ == "__main__":  # python tests/zoo/nasiam/faithful_utils.py [seed] [arch_lr]
    import sys

    print(run_check(int(sys.argv[1]) if len(sys.argv) > 1 else 1, float(sys.argv[2]) if len(sys.argv) > 2 else 1e-2))

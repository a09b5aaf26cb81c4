"""Steps/s of a plain PyTorch training loop vs the zoo's Lightning Trainer path, same process.

Models: the quickstart CNN on 8x8 digits (batch 64) and a torchvision ResNet-18 on 32x32 inputs
(batch 128), both on in-memory random data. Prints each path's steps/s and their ratio, and the ratio of a
Trainer run whose training_step only returns the loss (no logging, no metrics): the part that is Lightning's own.
Usage: python benchmarks/lightning_overhead.py [--steps 30] [--warmup 5] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import lightning.pytorch as pl
import torch
import torchvision
from torch.utils.data import DataLoader, TensorDataset

from zoo.core.classifier import ClassifierModule
from zoo.quickstart import QuickstartClassifier


class ResNet18Classifier(ClassifierModule):
    """torchvision ResNet-18 (ImageNet layout) trained by the zoo's classifier base."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(net=torchvision.models.resnet18(num_classes=num_classes), num_classes=num_classes,
                         optimizer="sgd", lr=0.01, scheduler="none")


class _Timer(pl.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end, self.steps = warmup, 0.0, 0.0, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            _sync(pl_module.device)
            self.start = _clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            _sync(pl_module.device)
            self.end, self.steps = _clock(), batch_idx - self.warmup + 1


def _clock() -> float:
    """Process CPU time on a one-thread CPU run (other jobs on a shared machine then do not count), else wall time."""
    if torch.get_num_threads() == 1 and not torch.cuda.is_available():
        return time.process_time()
    return time.perf_counter()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _loader(shape: tuple[int, ...], batch: int, steps: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch * steps, *shape, generator=g)
    y = torch.randint(0, 10, (batch * steps,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def plain_loop(module: ClassifierModule, loader: DataLoader, warmup: int, device: str) -> float:
    """The loop a user would write by hand: same model, loss and optimiser as the module's."""
    module = module.to(device).train()
    opt = module.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    start, steps = 0.0, 0
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            _sync(torch.device(device))
            start = _clock()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        loss = module.loss(module(x), y)
        loss.backward()
        opt.step()
        steps = i - warmup + 1
    _sync(torch.device(device))
    return steps / (_clock() - start)


def trainer_path(module: ClassifierModule, loader: DataLoader, warmup: int, device: str) -> float:
    """``Trainer.fit`` with the module's own training_step (loss + torchmetrics accuracy logged)."""
    timer = _Timer(warmup)
    trainer = pl.Trainer(accelerator=device, devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(module, train_dataloaders=loader)
    return timer.steps / (timer.end - timer.start)


def without_logging(module: ClassifierModule) -> ClassifierModule:
    """The same module with a training_step that only returns the loss: no ``self.log``, no torchmetrics update.
    Trainer/plain of this path is the cost of Lightning's loop itself, which no change to the zoo can remove."""
    module.training_step = lambda batch, batch_idx: module.loss(module(batch[0]), batch[1])
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2, help="alternate plain/Trainer runs this many times")
    parser.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    args = parser.parse_args()
    cases = {
        "quickstart CNN, 8x8, batch 64": (lambda: QuickstartClassifier(scheduler="none"), (1, 8, 8), 64),
        "ResNet-18, 32x32, batch 128": (lambda: ResNet18Classifier(), (3, 32, 32), 128),
    }
    clock = "process CPU time" if torch.get_num_threads() == 1 and not torch.cuda.is_available() else "wall time"
    print(f"device={args.device} threads={torch.get_num_threads()} steps={args.steps} warmup={args.warmup} "
          f"clock={clock}")
    print(f"{'model':32s} {'plain steps/s':>14s} {'Trainer steps/s':>16s} {'Trainer/plain':>14s} "
          f"{'no-log Trainer/plain':>21s}")
    for name, (make, shape, batch) in cases.items():
        if args.only and args.only not in name:
            continue
        loader = _loader(shape, batch, args.steps + args.warmup)
        plain, lightning, bare = [], [], []
        for _ in range(args.repeats):  # alternate so drift on a shared machine hits all paths
            torch.manual_seed(0)
            plain.append(plain_loop(make(), loader, args.warmup, args.device))
            torch.manual_seed(0)
            lightning.append(trainer_path(make(), loader, args.warmup, args.device))
            torch.manual_seed(0)
            bare.append(trainer_path(without_logging(make()), loader, args.warmup, args.device))
        p, t, b = max(plain), max(lightning), max(bare)
        print(f"{name:32s} {p:14.2f} {t:16.2f} {t / p:14.3f} {b / p:21.3f}", flush=True)


if __name__ == "__main__":
    main()

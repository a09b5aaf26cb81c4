"""NASiam speed, as ratios against a baseline measured in the same process.

1. Two-view augmentation throughput: the CIFAR SimSiam pipeline with kornia on the accelerator, on whole uint8->float
   batches, vs the same transforms per sample with torchvision in DataLoader workers (the reference code's way).
2. One NASiam search step (alpha step on the alpha half + weight step, 7 ops per chain layer) vs one plain
   pre-training step of the derived head (same framework, backbone and batch).

    python benchmarks/nasiam.py                                   # CPU, ResNet-18, batch 128 (aug) / 32 (steps)
    python benchmarks/nasiam.py --device cuda --aug-batch 512 --step-batch 512 --framework moco
"""
from __future__ import annotations

import argparse
import json
import time


def _timeit(fn, repeats: int, device: str) -> float:
    import torch

    fn()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


class _PerSample:
    """CIFAR-10-shaped uint8 images with the SimSiam two-view torchvision transforms applied per sample."""

    def __init__(self, n: int) -> None:
        import torch
        from torchvision import transforms as T

        self.images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
        self.tf = T.Compose([T.RandomResizedCrop(32, scale=(0.2, 1.0)),
                             T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                             T.RandomHorizontalFlip(), T.ConvertImageDtype(torch.float32)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        x = self.images[i]
        return self.tf(x), self.tf(x)


def augmentation(device: str, batch: int, batches: int, workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from zoo.nasiam.augment import cifar_augment

    aug = cifar_augment("simsiam").to(device)
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)

    def on_device():
        xb = x.to(device, non_blocking=True).float().div_(255)
        with torch.no_grad():
            aug(xb), aug(xb)

    t_dev = _timeit(on_device, batches, device)
    loader = DataLoader(_PerSample(batch * (batches + 1)), batch_size=batch, num_workers=workers,
                        persistent_workers=workers > 0)
    it = iter(loader)
    next(it)  # workers started
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    t_cpu = (time.perf_counter() - start) / batches
    return {"kornia_on_device_img_per_s": 2 * batch / t_dev, "per_sample_workers_img_per_s": 2 * batch / t_cpu,
            "speedup_kornia_vs_workers": t_cpu / t_dev, "workers": workers}


def steps(device: str, framework: str, backbone: str, batch: int, repeats: int) -> dict:
    import torch

    from zoo.nasiam.frameworks import SiameseNet

    torch.manual_seed(0)
    dims = dict(dim=2048, pred_dim=512) if framework == "simsiam" else dict(dim=128)
    search = SiameseNet(framework, backbone=backbone, head="search", **dims).to(device)
    plain = SiameseNet(framework, backbone=backbone, head=search.genotype().to_dict(), **dims).to(device)
    opt_w = torch.optim.SGD(search.weight_parameters(), lr=0.06, momentum=0.9)
    opt_a = torch.optim.AdamW(search.arch_parameters(), lr=1e-3)
    opt_p = torch.optim.SGD([p for p in plain.parameters() if p.requires_grad], lr=0.06, momentum=0.9)
    views = [torch.rand(batch, 3, 32, 32, device=device) for _ in range(4)]

    def search_step():
        for opt, (a, b) in ((opt_a, views[2:]), (opt_w, views[:2])):
            opt_w.zero_grad()
            opt_a.zero_grad()
            search.ssl_loss(a, b)[0].backward()
            opt.step()

    def plain_step():
        opt_p.zero_grad()
        plain.ssl_loss(views[0], views[1])[0].backward()
        opt_p.step()

    t_plain = _timeit(plain_step, repeats, device)
    t_search = _timeit(search_step, repeats, device)
    return {"plain_step_s": t_plain, "search_step_s": t_search, "search_over_plain": t_search / t_plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--framework", default="simsiam", choices=["simsiam", "moco", "simclr"])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--aug-batch", type=int, default=128)
    parser.add_argument("--aug-batches", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--step-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out = {"device": args.device, "framework": args.framework, "backbone": args.backbone,
           "augmentation": augmentation(args.device, args.aug_batch, args.aug_batches, args.workers),
           "steps": steps(args.device, args.framework, args.backbone, args.step_batch, args.repeats)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

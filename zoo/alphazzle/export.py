"""Turn a ``zoo fit`` checkpoint of :class:`AlphazzleModule` into a zoo weights file stored in float16
(the tiny config's 556 K parameters are 2.2 MB in float32, over the 2 MB limit of shipped weights).

    python -m zoo.alphazzle.export runs/alphazzle_tiny/checkpoints/best-epoch015.ckpt zoo/weights/alphazzle_digits.pt
"""
from __future__ import annotations

import sys

from zoo import hub

NET_KEYS = ("grid", "frag", "gap", "in_channels", "encoder", "head_width", "head_depth", "share_trunk")


def export_half(ckpt_path: str, out_path: str, arch: str = "alphazzle", metadata: dict | None = None) -> str:
    """Write the checkpoint's network (float16 tensors; loading casts back to float32); returns the sha256."""
    from zoo.alphazzle.module import AlphazzleModule

    module = AlphazzleModule.load_from_checkpoint(ckpt_path, map_location="cpu", weights_only=True)
    kwargs = {k: module.hparams[k] for k in NET_KEYS if module.hparams.get(k) is not None}
    return hub.save_weights(module.net.half(), out_path, arch=arch, arch_kwargs=kwargs, metadata=metadata)


if __name__ == "__main__":
    print(export_half(sys.argv[1], sys.argv[2], *(sys.argv[3:4] or [])))

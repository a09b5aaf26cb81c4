"""Where RRR-Net's source ResNet152 weights come from: torchvision/timm caches or a local file. Never downloads.

``source`` strings: ``"random"``; ``"tv:IMAGENET1K_V1"`` / ``"tv:IMAGENET1K_V2"`` (torchvision ``ResNet152_Weights``,
read from the torch hub cache); ``"timm:resnet152.a1h_in1k"`` (any timm ``resnet152.*`` tag, read from the
Hugging Face cache); or a path to a state dict, a zoo weights file, a Lightning checkpoint or a ``.safetensors``.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from zoo.backbone_reduction.nets import BottleneckResNet


def torchvision_cache_file(tag: str) -> Path:
    """Path where torchvision keeps ``ResNet152_Weights.<tag>`` (torch hub ``checkpoints/``)."""
    from torchvision.models import ResNet152_Weights

    try:
        weights = ResNet152_Weights[tag]
    except KeyError:
        raise ValueError(f"unknown torchvision tag {tag!r}; known: {[w.name for w in ResNet152_Weights]}") from None
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or Path("~/.cache/huggingface").expanduser()
    return Path(home) / "hub"


def timm_cache_file(tag: str) -> Path:
    """The cached weights file of timm model ``tag`` (``resnet152.<pretrained tag>``); raises if not cached."""
    if not tag.startswith("resnet152."):
        raise ValueError(f"only timm 'resnet152.*' tags are supported (RRR-Net's source), got {tag!r}")
    repo = hf_cache_dir() / f"models--timm--{tag}" / "snapshots"
    for name in ("model.safetensors", "pytorch_model.bin"):
        found = sorted(repo.glob(f"*/{name}"))
        if found:
            return found[-1]
    raise FileNotFoundError(
        f"timm weights {tag!r} are not in the local cache (looked for {repo}/<revision>/model.safetensors). "
        f"Nothing is downloaded here: on a machine with network run `timm.create_model('{tag}', pretrained=True)` "
        f"and copy {hf_cache_dir() / f'models--timm--{tag}'} to this machine, or pass the file's path as source."
    )


def _read(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(f"{path} is a safetensors file; `pip install safetensors` to read it") from err
        return load_file(str(path))
    from zoo.hub import safe_load

    payload = safe_load(path)
    if isinstance(payload, dict) and "state_dict" in payload and isinstance(payload["state_dict"], dict):
        state = payload["state_dict"]
        prefix = "net." if any(k.startswith("net.") for k in state) else ""
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not isinstance(payload, dict):
        raise ValueError(f"{path} holds a {type(payload).__name__}, expected a state dict")
    return payload


def load_source_state(source: str) -> dict[str, torch.Tensor] | None:
    """The source network's state dict (``None`` for ``"random"``), read only from local files."""
    if source == "random":
        return None
    if source.startswith(("tv:", "torchvision:")):
        path = torchvision_cache_file(source.split(":", 1)[1])
        if not path.is_file():
            raise FileNotFoundError(
                f"torchvision weights {source!r} are not cached: expected {path}. Nothing is downloaded here: "
                f"copy the file from a machine with network (torchvision downloads it to the same place), or "
                f"pass its path as source."
            )
        return _read(path)
    if source.startswith("timm:"):
        return _read(timm_cache_file(source.split(":", 1)[1]))
    return _read(Path(source).expanduser())


def load_into(net: BottleneckResNet, state: dict[str, torch.Tensor], source: str) -> None:
    """Load a torchvision/timm-keyed state dict; a classifier of another size is skipped, anything else must match."""
    own = net.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked") or k in own}
    if any(k in state and state[k].shape != own[k].shape for k in ("fc.weight", "fc.bias")):
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing = sorted(k for k in own if k not in state and not k.startswith("fc.") and "num_batches" not in k)
    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"weights from {source!r} do not fit a bottleneck ResNet with layers={net.layers_cfg} "
            f"planes={net.planes_cfg}: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    net.load_state_dict(state, strict=False)

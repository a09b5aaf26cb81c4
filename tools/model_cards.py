"""Refresh the measured fields of zoo/weights/model_cards.json from the registry and the shipped weights.

Hand-written per card: docs, datasets, task, input (size, channels, value range, interpolation), labels, output,
recipe, config. Measured here: paper, params, macs (zoo.core.profiling on the card's input size), mean/std (the
network's own normalisation buffers), and for entries with weights: arch_kwargs, metrics (zoo's unified keys),
weights (tag, file, sha256), checkpoint (which one was shipped) and module_kwargs (the config's ``model.init_args``, the recipe that trained them).
tests/zoo/test_registry_config.py checks every one of these against the live registry.

    python tools/model_cards.py          # rewrite the file
    python tools/model_cards.py --check  # exit 1 if it is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADLINE = ("test/acc", "test/mpjpe", "test/frag_acc", "test/chamfer", "test/knn_acc")


def normalisation(net: Any) -> tuple[list[float] | None, list[float] | None]:
    """The mean/std buffers a network normalises its input with (the first pair found), as lists."""
    buffers = dict(net.named_buffers())
    for key, value in buffers.items():
        if key.split(".")[-1] == "mean":
            std = buffers.get(key[: -len("mean")] + "std")
            if std is not None:
                return [round(float(v), 6) for v in value.flatten()], [round(float(v), 6) for v in std.flatten()]
    return None, None


def recipe_kwargs(config: str) -> dict[str, Any]:
    """``model.init_args`` of a config file (what the LightningModule was built with)."""
    import yaml

    return dict(yaml.safe_load((ROOT / config).read_text())["model"].get("init_args") or {})


def measured_card(name: str, card: dict[str, Any]) -> dict[str, Any]:
    """``card`` with its measured fields recomputed."""
    import zoo
    from zoo import hub
    from zoo.registry import measure_cost, unified_metrics

    entry = zoo.get_entry(name)
    card = dict(card, paper=entry.paper)
    if entry.weights is not None:
        w = entry.weights
        payload = hub.load_state(str(hub.PACKAGE_DIR / w.path) if w.path else w.url, sha256=w.sha256)
        card["arch_kwargs"] = payload["arch_kwargs"]
        card["weights"] = {"tag": w.tag, "file": w.path or w.url, "sha256": w.sha256}
        card["metrics"] = unified_metrics(payload["metadata"])
        card["metric"] = next(k for k in (*HEADLINE, *card["metrics"]) if k in card["metrics"])
        card["checkpoint"] = str(w.metadata.get("checkpoint") or payload["metadata"].get("checkpoint") or "not recorded")
        card["module_kwargs"] = recipe_kwargs(card["config"])
        net = zoo.create_model(name, pretrained=True, check_inputs=False)
    else:
        for key in ("arch_kwargs", "weights", "metrics", "metric", "checkpoint", "module_kwargs"):
            card.pop(key, None)
        net = zoo.create_model(name)
    entry = zoo.get_entry(name)
    object.__setattr__(entry, "cfg", card)  # measure with the new arch_kwargs
    card.update(measure_cost(name))
    mean, std = normalisation(net)
    card["input"] = {**card["input"], "mean": mean, "std": std}
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args(argv)
    from zoo.registry import CARDS_PATH

    data = json.loads(CARDS_PATH.read_text())
    new = {name: measured_card(name, card) for name, card in sorted(data["models"].items())}
    text = json.dumps({**data, "models": new}, indent=1, sort_keys=False) + "\n"
    if args.check:
        stale = text != CARDS_PATH.read_text()
        print(f"{CARDS_PATH} is {'stale: run python tools/model_cards.py' if stale else 'up to date'}")
        return int(stale)
    CARDS_PATH.write_text(text)
    print(f"wrote {CARDS_PATH} ({len(new)} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

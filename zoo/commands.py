"""The ``zoo`` console script's front: ``--help``, ``list``, ``info`` and ``export`` answer without Lightning.

Everything else (``fit``, ``validate``, ``test``, ``predict``) goes to the LightningCLI in :mod:`zoo.cli`. The cards
read here come from ``zoo/weights/model_cards.json`` (no torch import), which a test keeps equal to the registry.
"""
from __future__ import annotations

import argparse
import difflib
import fnmatch
import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

LIGHT = ("list", "info", "export")
LIGHTNING = ("fit", "validate", "test", "predict")
ROOT = Path(__file__).resolve().parents[1]


def cards() -> dict[str, dict[str, Any]]:
    """Every model's card, by name (the JSON file, so no paper package is imported)."""
    from zoo.registry import load_cards

    return load_cards()


def short_paper(card: dict[str, Any]) -> str:
    """The paper's page name (``kdl``, ``darts`` ...), short enough for a table column."""
    return Path(card["docs"]).stem.replace("usage", "quickstart")


def human(n: int | None) -> str:
    """12345678 -> ``12.3M``."""
    if n is None:
        return "-"
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def metric_text(card: dict[str, Any]) -> str:
    """The weights' headline metric, e.g. ``test/acc 0.994``, or ``-`` for a model without weights."""
    if "metric" not in card:
        return "-"
    return f"{card['metric']} {card['metrics'][card['metric']]:.4g}"


def resolve(name: str) -> str:
    """A card name from ``name`` (``-`` and ``_`` interchangeable); an unknown one exits with the closest names."""
    known = cards()
    for candidate in (name, name.replace("-", "_")):
        if candidate in known:
            return candidate
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise SystemExit(f"zoo: unknown model {name!r}.{hint} `zoo list` shows all {len(known)}.")


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain-text table with aligned columns."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    return "\n".join(line.rstrip() for line in lines)


def cmd_list(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo list", description="The registered models as a table.")
    parser.add_argument("pattern", nargs="?", default="*", help="glob on model names, e.g. 'darts*'")
    parser.add_argument("--pretrained", action="store_true", help="only models that ship weights")
    parser.add_argument("--json", action="store_true", help="the cards as JSON instead of a table")
    args = parser.parse_args(argv)
    chosen = {n: c for n, c in cards().items()
              if fnmatch.fnmatch(n, args.pattern.replace("-", "_")) and ("weights" in c or not args.pretrained)}
    if args.json:
        print(json.dumps(chosen, indent=1))
        return 0
    rows = [[n, short_paper(c), ", ".join(d.split(" (")[0] for d in c["datasets"])[:40], human(c["params"]),
             human(c["macs"]), c["weights"]["tag"] if "weights" in c else "-", metric_text(c)] for n, c in chosen.items()]
    print(table(rows, ["name", "paper", "datasets", "params", "MACs", "weights", "metric"]))
    print(f"\n{len(rows)} models; `zoo info NAME` for one model's card; zoo.load(NAME) loads the shipped weights.")
    return 0


def info_text(name: str, card: dict[str, Any]) -> str:
    """One model's card as text: input config, output, cost, weights and metrics, recipe."""
    inp, labels = card["input"], card["labels"]
    names = labels.get("names")
    label_text = f"{labels['kind']} ({labels.get('count', '-')})" + (
        f": {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}" if names else "")
    label_text += f" [{labels['source']}]" if "source" in labels else ""
    shapes = inp.get("inputs") or {"x": inp["input_size"]}
    shape_text = ", ".join(f"{k} (B, {', '.join(map(str, s))})" for k, s in shapes.items())
    lines = [
        f"{name}  ({card['paper']})",
        f"  task           {card['task']}",
        f"  datasets       {'; '.join(card['datasets'])}",
        f"  input          {shape_text}, float32, "
        f"values in {inp['value_range']}, interpolation {inp['interpolation']}",
        f"  normalisation  {'inside the network: mean ' + str(inp['mean']) + ', std ' + str(inp['std']) if inp['mean'] else 'none'}",
        f"  labels         {label_text}",
        f"  output         {card['output']['meaning']} [{card['output']['units']}]",
        f"  cost           {card['params']:,} params, {card['macs']:,} MACs at the input size above",
    ]
    if "weights" in card:
        w = card["weights"]
        lines += [f"  weights        {w['tag']}: zoo/{w['file']} (sha256 {w['sha256'][:12]}...)",
                  f"  metrics        {', '.join(f'{k} {v:.4g}' for k, v in card['metrics'].items())}",
                  f"  trained by     zoo fit --config {card['config']}"]
        if card.get("arch_kwargs"):
            lines.append(f"  arch_kwargs    {json.dumps(card['arch_kwargs'])[:200]}")
    else:
        lines.append("  weights        none shipped (zoo.create_model(name) builds it untrained)")
    lines += [f"  recipe         {card['recipe']}", f"  docs           {card['docs']}"]
    return "\n".join(lines)


def cmd_info(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zoo info", description="One model's card.")
    parser.add_argument("name", help="a registered model name (see `zoo list`)")
    parser.add_argument("--json", action="store_true", help="the card as JSON")
    args = parser.parse_args(argv)
    name = resolve(args.name)
    print(json.dumps(cards()[name], indent=1) if args.json else info_text(name, cards()[name]))
    return 0


def help_text() -> str:
    """``zoo --help``: subcommands, the configs found and the model names, without importing Lightning."""
    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*/*.yaml")) if (ROOT / "configs").is_dir() else []
    tiny = [c for c in configs if Path(c).stem.startswith("tiny")] + [c for c in ["configs/quickstart.yaml"] if (ROOT / c).is_file()]
    names = sorted(cards())
    return "\n".join([
        "usage: zoo {fit,validate,test,predict,list,info,export} ...",
        "",
        "ibisc-zoo: the IBISC lab's papers as PyTorch modules, Lightning recipes and pretrained weights.",
        "",
        "subcommands:",
        "  fit        train (then test the best checkpoint): zoo fit --config configs/quickstart.yaml",
        "  validate   evaluate a checkpoint on the validation split (--ckpt_path)",
        "  test       evaluate a checkpoint on the test split: zoo test --config ... --ckpt_path last",
        "  predict    save a checkpoint's predictions to <default_root_dir>/predictions.pt",
        "  list       the registered models as a table (name, paper, datasets, params, MACs, weights, metric)",
        "  info NAME  one model's card: input config, output, weights, metrics, recipe command",
        "  export     export a network to ONNX, TorchScript or an exported program (zoo export --help)",
        "",
        "`zoo fit --help` lists every option of the Lightning subcommands (Trainer, model, data, checkpoint).",
        "",
        textwrap.fill(f"tiny configs (embedded data, CPU, about a minute): {', '.join(tiny)}", 110,
                      subsequent_indent="  "),
        f"all configs: {len(configs)} files under configs/ (paper recipes: configs/<paper>/*.yaml)",
        textwrap.fill(f"models ({len(names)}; `zoo list` for the table): {', '.join(names)}", 110, subsequent_indent="  "),
    ])


def main(argv: list[str] | None = None) -> int | None:
    """Entry point of the ``zoo`` console script."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(help_text())
        return 0
    if argv[0] == "list":
        return cmd_list(argv[1:])
    if argv[0] == "info":
        return cmd_info(argv[1:])
    if argv[0] == "export":
        if importlib.util.find_spec("zoo.export") is None:
            raise SystemExit("zoo: `zoo export` is not available in this version")
        from zoo.export import main as export_main

        return export_main(argv[1:])
    from zoo.cli import main as lightning_main

    return lightning_main(None if from_command_line else argv)  # None: LightningCLI reads sys.argv itself


if __name__ == "__main__":
    sys.exit(main())

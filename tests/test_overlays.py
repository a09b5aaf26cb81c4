"""Every overlay under configs/ (a YAML without ``model.class_path``) says in its first lines which configs it
composes with, ``# composes with: a.yaml, b.yaml + c.yaml, configs/*/tiny*.yaml`` (globs; ``+`` chains configs that
come first), and each composition parses through the zoo's own CLI parser with the overlay placed last, its values
surviving in the composed config (issue 19.4)."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

HEADER = "# composes with:"


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def is_overlay(path: Path) -> bool:
    cfg = yaml.safe_load(path.read_text()) or {}
    model = cfg.get("model")
    return not (isinstance(model, dict) and "class_path" in model)


def composes_with(path: Path) -> list[list[Path]]:
    """The header's chains, globs expanded (overlays themselves are never bases of a glob)."""
    lines = [ln for ln in path.read_text().splitlines()[:5] if ln.startswith(HEADER)]
    if len(lines) != 1:
        raise ValueError(f"{_rel(path)}: expected one '{HEADER} ...' line in the first 5 lines, "
                         f"found {len(lines)}")
    chains = []
    for item in lines[0][len(HEADER):].split(","):
        parts = [p.strip() for p in item.split("+")]
        if "*" in parts[-1]:
            matches = sorted(p for p in ROOT.glob(parts[-1]) if not is_overlay(p))
            if not matches:
                raise ValueError(f"{_rel(path)}: {parts[-1]!r} matches no config")
            chains += [[ROOT / q for q in parts[:-1]] + [m] for m in matches]
        else:
            chains.append([ROOT / p for p in parts])
    for chain in chains:
        for p in chain:
            if not p.is_file():
                raise ValueError(f"{_rel(path)} names {_rel(p)}, which does not exist")
    return chains


OVERLAYS = sorted(p for p in (ROOT / "configs").rglob("*.yaml") if is_overlay(p))


def _parse(configs: list[Path]):
    """Parse ``--config`` files with the zoo's CLI without building anything; returns (config, parser error)."""
    from lightning.pytorch import LightningDataModule, LightningModule

    from zoo.cli import ZooCLI

    class ParseOnly(ZooCLI):
        def _set_seed(self) -> None: ...
        def before_instantiate_classes(self) -> None: ...
        def instantiate_classes(self) -> None: ...

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            cli = ParseOnly(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                            run=False, args=[a for c in configs for a in ("--config", str(c))],
                            parser_kwargs={"allow_abbrev": False})
    except SystemExit:
        return None, err.getvalue()[-1500:]
    return cli.config, ""


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_overlays_are_found_and_a_bad_header_is_refused(tmp_path):
    names = {p.relative_to(ROOT).as_posix() for p in OVERLAYS}
    assert {"configs/nasiam/overlay_cifar100.yaml", "configs/trainer/gpu.yaml",
            "configs/robust_pruning/arch/resnet18.yaml", "configs/kdl/variants/kdl_poly2.yaml"} <= names
    assert "configs/nasiam/linear_simsiam.yaml" not in names
    bad = tmp_path / "x.yaml"
    bad.write_text("# an overlay without its header\nmodel: {init_args: {lr: 0.1}}\n")
    with pytest.raises(ValueError, match="composes with"):
        composes_with(bad)
    # the check itself catches the composition the issue reported (LinearEvalModule takes no mean/std)
    (tmp_path / "mean.yaml").write_text("model: {init_args: {mean: [0.5], std: [0.5]}}\n")
    cfg, err = _parse([ROOT / "configs/nasiam/linear_simsiam.yaml", tmp_path / "mean.yaml"])
    assert cfg is None and "mean" in err


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[p.relative_to(ROOT / "configs").as_posix() for p in OVERLAYS])
def test_overlay_composes_with_each_config_its_header_names(overlay):
    values = dict(_leaves(yaml.safe_load(overlay.read_text()) or {}))
    failures = []
    for chain in composes_with(overlay):
        cfg, err = _parse([*chain, overlay])
        names = " + ".join(_rel(p) for p in [*chain, overlay])
        if cfg is None:
            failures.append(f"{names}: the parser refused it:\n{err}")
            continue
        for key, want in values.items():
            got = cfg.get(key)
            if got != want:
                failures.append(f"{names}: {key} = {got!r} after composing, the overlay sets {want!r}")
    assert not failures, "\n".join(failures)

"""Genotypes (discrete architectures) as dataclasses with JSON input/output, never ``eval`` of text.

``CellGenotype`` is DARTS's (one normal + one reduction cell of (op, input) pairs), ``NestedGenotype``
is D-DARTS's (one gene of (op, to, from) triples per cell) and ``ChainGenotype`` is one op per layer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from zoo.nas.ops import OPS

Edge = tuple[str, int, int]  # (op, to_node, from_node); nodes 0, 1 are the cell inputs


def _check_op(op: Any, where: str) -> str:
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"{where}: unknown operation {op!r}; expected one of {sorted(OPS)}")
    return op


@dataclass(frozen=True)
class CellGenotype:
    """DARTS genotype: per intermediate node two (op, input) pairs for the normal and the reduction cell."""

    normal: list[tuple[str, int]]
    reduce: list[tuple[str, int]]
    normal_concat: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    reduce_concat: list[int] = field(default_factory=lambda: [2, 3, 4, 5])

    def __post_init__(self) -> None:
        for name in ("normal", "reduce"):
            pairs = [(_check_op(op, f"CellGenotype.{name}[{k}]"), int(i))
                     for k, (op, i) in enumerate(getattr(self, name))]
            if len(pairs) % 2:
                raise ValueError(f"CellGenotype.{name}: expected 2 pairs per node, got {len(pairs)} pairs")
            for k, (op, i) in enumerate(pairs):
                if not 0 <= i < 2 + k // 2:
                    raise ValueError(f"CellGenotype.{name}[{k}] = ({op!r}, {i}): input index must be < {2 + k // 2}")
            object.__setattr__(self, name, pairs)
        object.__setattr__(self, "normal_concat", [int(c) for c in self.normal_concat])
        object.__setattr__(self, "reduce_concat", [int(c) for c in self.reduce_concat])

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def edges(self, reduction: bool) -> list[Edge]:
        """The cell as (op, to, from) triples, the common form of every discrete cell."""
        pairs = self.reduce if reduction else self.normal
        return [(op, 2 + k // 2, i) for k, (op, i) in enumerate(pairs)]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "CellGenotype", "normal": [list(p) for p in self.normal],
                "reduce": [list(p) for p in self.reduce], "normal_concat": list(self.normal_concat),
                "reduce_concat": list(self.reduce_concat)}


@dataclass(frozen=True)
class NestedGenotype:
    """D-DARTS genotype: one gene per searched cell, each a list of (op, to, from); ``reductions`` = strided cells."""

    genes: list[list[Edge]]
    reductions: list[int]
    concat: list[int] = field(default_factory=lambda: [2, 3, 4, 5])

    def __post_init__(self) -> None:
        genes = []
        for c, gene in enumerate(self.genes):
            triples = []
            for k, triple in enumerate(gene):
                if len(triple) != 3:
                    raise ValueError(f"NestedGenotype.genes[{c}][{k}] = {triple!r}: expected (op, to, from)")
                op, to, frm = _check_op(triple[0], f"NestedGenotype.genes[{c}][{k}]"), int(triple[1]), int(triple[2])
                if not (to >= 2 and 0 <= frm < to):
                    raise ValueError(f"NestedGenotype.genes[{c}][{k}] = {triple!r}: need to >= 2 and 0 <= from < to")
                triples.append((op, to, frm))
            genes.append(triples)
        object.__setattr__(self, "genes", genes)
        reds = [int(r) for r in self.reductions]
        if any(not 0 <= r < len(genes) for r in reds):
            raise ValueError(f"NestedGenotype.reductions {reds} out of range for {len(genes)} genes")
        object.__setattr__(self, "reductions", reds)
        object.__setattr__(self, "concat", [int(c) for c in self.concat])

    def to_dict(self) -> dict[str, Any]:
        return {"type": "NestedGenotype", "genes": [[list(t) for t in g] for g in self.genes],
                "reductions": list(self.reductions), "concat": list(self.concat)}


@dataclass(frozen=True)
class ChainGenotype:
    """One operation per layer (a chain search space, e.g. NASiam's MLP heads)."""

    ops: list[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ops", [str(o) for o in self.ops])

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ChainGenotype", "ops": list(self.ops)}


AnyGenotype = Union[CellGenotype, NestedGenotype, ChainGenotype]
_TYPES = {"CellGenotype": CellGenotype, "NestedGenotype": NestedGenotype, "ChainGenotype": ChainGenotype}


def genotype_from_dict(data: dict[str, Any], source: str = "genotype") -> AnyGenotype:
    """Rebuild a genotype from its ``to_dict()`` form, with a clear error for malformed input."""
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        found = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{source}: expected a dict with 'type' in {sorted(_TYPES)}, found {found!r}")
    cls = _TYPES[data["type"]]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"{source}: bad fields for {cls.__name__}: {err}") from err


def to_json(genotype: AnyGenotype) -> str:
    return json.dumps(genotype.to_dict(), indent=1)


def from_json(text: str, source: str = "<string>") -> AnyGenotype:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON (line {err.lineno}: {err.msg})") from err
    return genotype_from_dict(data, source)


def save_genotype(genotype: AnyGenotype, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(genotype))
    return path


def load_genotype(path: str | Path) -> AnyGenotype:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no genotype file at {path} (expected JSON written by zoo.nas.save_genotype)")
    return from_json(path.read_text(), str(path))


def resolve_genotype(spec: AnyGenotype | dict | str) -> AnyGenotype:
    """A genotype from an instance, its dict, a published name (``DARTS_V2``) or a JSON file path."""
    if isinstance(spec, (CellGenotype, NestedGenotype, ChainGenotype)):
        return spec
    if isinstance(spec, dict):
        return genotype_from_dict(spec)
    if isinstance(spec, str):
        from zoo.nas.published import PUBLISHED

        if spec in PUBLISHED:
            return PUBLISHED[spec]
        if spec.endswith(".json") or "/" in spec:
            return load_genotype(spec)
        raise ValueError(f"unknown genotype {spec!r}: give a JSON path or one of {sorted(PUBLISHED)}")
    raise ValueError(f"cannot make a genotype from {type(spec).__name__}")


def cell_edges(genotype: AnyGenotype) -> list[list[Edge]]:
    """Every cell of a genotype as triples: [normal, reduce] for DARTS, the genes for D-DARTS."""
    if isinstance(genotype, CellGenotype):
        return [genotype.edges(False), genotype.edges(True)]
    if isinstance(genotype, NestedGenotype):
        return genotype.genes
    raise ValueError("a ChainGenotype has no cells")


def to_graphviz(genotype: AnyGenotype) -> str:
    """DOT source of the genotype's cells (one cluster per cell), for W&B or ``dot -Tpng``."""
    lines = ["digraph genotype {", "  rankdir=LR; node [shape=box];"]
    if isinstance(genotype, ChainGenotype):
        for i, op in enumerate(genotype.ops):
            lines.append(f'  l{i} [label="{i}: {op}"];' + (f" l{i - 1} -> l{i};" if i else ""))
    else:
        names = ["normal", "reduce"] if isinstance(genotype, CellGenotype) else [
            f"cell {c}" + (" (reduction)" if c in genotype.reductions else "") for c in range(len(genotype.genes))]
        for c, (name, edges) in enumerate(zip(names, cell_edges(genotype))):
            lines.append(f'  subgraph cluster_{c} {{ label="{name}";')
            for op, to, frm in edges:
                lines.append(f'    c{c}_{frm} -> c{c}_{to} [label="{op}"];')
            lines.append("  }")
    lines.append("}")
    return "\n".join(lines)

"""``zoo export``: a registered network (or a checkpoint's) to ONNX, TorchScript or a torch.export program.

    zoo export sspnet_synthetic --format onnx --out sspnet.onnx --cut 4
    zoo export runs/kdl/checkpoints/last.ckpt --format exported-program --out kdl.pt2 --input-shape 1,8,8

The exported file is reloaded and its outputs compared with eager PyTorch on a fresh input of another batch
size (ONNX under ``onnxruntime``): fp32, ``|exported - eager| <= atol + rtol * |eager|`` with the tolerances
of :data:`TOLERANCES`. A network that cannot be exported raises :class:`ExportError` naming the layer.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

FORMATS = ("onnx", "torchscript", "exported-program")
# (atol, rtol) of the exported file against eager fp32 PyTorch
TOLERANCES: dict[str, tuple[float, float]] = {"onnx": (1e-4, 1e-3), "torchscript": (1e-5, 1e-5),
                                              "exported-program": (1e-5, 1e-5)}


class ExportError(RuntimeError):
    """A network (or one of its layers) that the chosen format cannot represent."""


class _Deployed(nn.Module):
    """What a deployed network computes: one tensor (or a tuple of tensors) from its inputs.

    SSP-Net returns the pose of its last block up to ``cut`` (nothing after the cut is in the graph); a network with
    ``forward`` returning a list or dict returns its tensors as a tuple.
    """

    def __init__(self, net: nn.Module, cut: int | None = None) -> None:
        super().__init__()
        self.net, self.cut = net, cut

    def forward(self, *inputs: torch.Tensor) -> Any:
        if self.cut is not None:
            return self.net(*inputs, cut=self.cut)[-1]
        out = self.net(*inputs)
        if isinstance(out, dict):
            return tuple(out.values())
        return tuple(out) if isinstance(out, list) else out


def load_network(source: str, cut: int | None = None) -> tuple[nn.Module, str | None, str]:
    """(deployable eval-mode module, registry name or None, where its weights came from) for a registry name
    (its registered weights, or the builder's initialisation when it has none) or a weights file / checkpoint."""
    import zoo
    from zoo.registry import get_entry

    from zoo import hub

    name: str | None = None
    if "/" not in source and "\\" not in source and not source.endswith((".pt", ".pth", ".ckpt")):
        entry = get_entry(source)
        name = entry.name
        if entry.weights is not None:
            net, origin = zoo.load(name), f"registry weights {entry.weights.tag!r}"
        else:
            net, origin = zoo.create_model(name).eval(), "no weights registered: the builder's random initialisation"
    else:
        if not Path(source).exists():
            raise FileNotFoundError(f"{source}: no such checkpoint or weights file (expected a registry name, a zoo "
                                    f"weights .pt or a `zoo fit` .ckpt)")
        net, origin = zoo.load(source), f"weights of {source}"
        payload = hub.load_payload(source)[1]
        if isinstance(payload, dict) and isinstance(payload.get("arch"), str):
            name = payload["arch"]  # a zoo weights file names its registry entry (and so its input card)
    check = getattr(net, "zoo_input_check", None)
    if check is not None:
        check.enabled = False  # a Python-side pre-hook: not part of the exported graph
    if cut is not None:
        num_blocks = getattr(net, "num_blocks", None)
        if num_blocks is None:
            raise ValueError(f"--cut applies to SSP-Net (a network with prediction blocks); {source} is "
                             f"{type(net).__name__}")
        if not 1 <= cut <= num_blocks:
            raise ValueError(f"--cut must be in 1..{num_blocks} for {source}, got {cut}")
    elif hasattr(net, "selected_block") and hasattr(net, "num_blocks"):
        cut = int(net.selected_block)  # SSP-Net: the block chosen on validation, as net.predict uses
    return _Deployed(net, cut).eval(), name, origin


def input_shapes(name: str | None, net: nn.Module, override: Sequence[Sequence[int]] | None = None
                 ) -> list[tuple[int, ...]]:
    """Per-sample input shapes: ``override``, else the model card's ``input`` (several for multi-input nets)."""
    if override:
        return [tuple(s) for s in override]
    cfg: dict = {}
    if name is not None:
        from zoo.registry import get_entry

        cfg = getattr(get_entry(name), "cfg", {}) or {}
    inp = cfg.get("input") or {}
    shapes = list((inp.get("inputs") or {"x": inp.get("input_size")}).values())
    if not shapes or not all(shapes):
        size = getattr(net.net, "input_size", None)
        chans = getattr(net.net, "in_chans", None)
        if isinstance(size, int) and isinstance(chans, int):
            return [(chans, size, size)]
        raise ValueError(f"no input shape known for {name or type(net.net).__name__}: pass --input-shape C,H,W "
                         f"(one per input)")
    return [tuple(int(v) for v in s) for s in shapes]


def example_inputs(shapes: Sequence[tuple[int, ...]], batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs in [0, 1] (every zoo network normalises internally) of the given per-sample shapes."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, *s, generator=g) for s in shapes)


def _flat(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    raise ExportError(f"the network returns {type(out).__name__}; an exported graph returns tensors")


def _export_once(module: nn.Module, args: tuple, fmt: str, out: Path | None, dynamic_batch: bool) -> Any:
    """Export ``module(*args)`` to ``fmt`` (to ``out`` when given); returns the exported object."""
    dims = tuple({0: torch.export.Dim.DYNAMIC} if isinstance(a, torch.Tensor) else None for a in args)
    # _Deployed.forward(*inputs) has one (variadic) parameter: its dynamic shapes are nested one level
    dynamic = ((dims,) if isinstance(module, _Deployed) else dims) if dynamic_batch else None
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")
        if fmt == "exported-program":
            ep = torch.export.export(module, args, dynamic_shapes=dynamic, strict=False)
            if out is not None:
                torch.export.save(ep, str(out))
            return ep
        if fmt == "torchscript":
            scripted = torch.jit.trace(module, args, check_trace=False)
            if out is not None:
                scripted.save(str(out))
            return scripted
        if fmt == "onnx":
            names = [f"input{i}" for i in range(len(args))] if len(args) > 1 else ["input"]
            program = torch.onnx.export(module, args, None if out is None else str(out), dynamo=True,
                                        input_names=names, dynamic_shapes=dynamic, external_data=False,
                                        verbose=False, optimize=True)
            if program is None:
                raise ExportError("torch.onnx.export returned no program")
            return program
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def _first_line(err: BaseException) -> str:
    """The first informative line of the innermost cause (torch.onnx wraps the real error in step banners)."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()
    lines = [ln.strip() for ln in text if ln.strip() and not ln.startswith(("Traceback", "  File"))]
    return (lines[0] if lines else type(err).__name__)[:300]


def _layer_in_traceback(net: nn.Module, err: BaseException) -> tuple[str, nn.Module] | None:
    """The innermost layer of ``net`` whose ``forward`` is on the failing call stack (tracing runs the Python code)."""
    names = {id(m): n for n, m in net.named_modules() if n}
    found = None
    chain = [err]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    for e in chain:
        tb = e.__traceback__
        while tb is not None:
            owner = tb.tb_frame.f_locals.get("self")
            if isinstance(owner, nn.Module) and id(owner) in names:
                found = (names[id(owner)], owner)  # deeper frames overwrite: the innermost layer wins
            tb = tb.tb_next
    return found


def locate_failure(net: nn.Module, args: tuple, fmt: str) -> tuple[str, nn.Module, BaseException] | None:
    """The innermost layer that fails to export on its own (with the inputs it sees in ``net(*args)``):
    (qualified name, layer, its error), or None when every layer exports alone."""
    recorded: dict[str, tuple] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, a, kw, n=n: recorded.setdefault(n, (a, kw)), with_kwargs=True)
             for n, m in net.named_modules() if n]
    try:
        with torch.no_grad():
            net(*args)
    finally:
        for h in hooks:
            h.remove()

    def fails(name: str, module: nn.Module) -> BaseException | None:
        a, kw = recorded[name]
        if kw or not all(isinstance(t, torch.Tensor) for t in a):
            return None  # called with non-tensor arguments: judged with its parent
        try:
            _export_once(module, a, fmt, None, dynamic_batch=False)
        except Exception as err:  # noqa: BLE001 - any failure is the answer we look for
            return err
        return None

    def descend(prefix: str, module: nn.Module) -> tuple[str, nn.Module, BaseException] | None:
        for child_name, child in module.named_children():
            full = f"{prefix}.{child_name}" if prefix else child_name
            if full not in recorded:
                continue
            err = fails(full, child)
            if err is not None:
                return descend(full, child) or (full, child, err)
        return None

    return descend("", net)


def export(net: nn.Module, args: tuple, fmt: str, out: str | Path, *, dynamic_batch: bool = True,
           label: str = "network") -> Path:
    """Write ``net`` (eval mode, called as ``net(*args)``) to ``out`` in ``fmt``; :class:`ExportError` names the
    failing layer when the format cannot represent it."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    net.eval()
    try:
        _export_once(net, args, fmt, out, dynamic_batch)
    except Exception as err:  # noqa: BLE001
        if dynamic_batch and re.search(r"[Cc]onstraint|specializ|dynamic|Dim\(", str(err)):
            # the graph specialises the batch (a reshape by a constant): retry at the example's batch
            try:
                _export_once(net, args, fmt, out, dynamic_batch=False)
                warnings.warn(f"{label}: exported with a fixed batch of {args[0].shape[0]} "
                              f"(a dynamic batch failed: {_first_line(err)})", stacklevel=2)
                return out
            except Exception:  # noqa: BLE001
                pass
        on_stack = _layer_in_traceback(net, err)
        where = (*on_stack, err) if on_stack and on_stack[0] != "net" else locate_failure(net, args, fmt)
        if where is None or where[0] == "net":
            raise ExportError(f"{label}: cannot export to {fmt}: {_first_line(err)} (no single layer fails on its "
                              f"own: the failure is in {type(getattr(net, 'net', net)).__name__}.forward)") from err
        name, layer, layer_err = where
        name = name.removeprefix("net.")
        raise ExportError(f"{label}: cannot export to {fmt}: layer {name!r} ({type(layer).__name__}) fails: "
                          f"{_first_line(layer_err)}") from err
    return out


def run_exported(path: str | Path, fmt: str, args: tuple) -> list[torch.Tensor]:
    """Outputs of an exported file on ``args`` (ONNX under onnxruntime, CPU)."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: a.numpy() for i, a in zip(sess.get_inputs(), args)}
        return [torch.from_numpy(o) for o in sess.run(None, feeds)]
    if fmt == "torchscript":
        return _flat(torch.jit.load(str(path))(*args))
    if fmt == "exported-program":
        return _flat(torch.export.load(str(path)).module()(*args))
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")


def verify(net: nn.Module, path: str | Path, fmt: str, args: tuple) -> float:
    """Largest ``|exported - eager| / (atol + rtol |eager|)`` over all outputs (<= 1 passes); raises when over 1."""
    with torch.no_grad():
        expected = _flat(net(*args))
        got = run_exported(path, fmt, args)
    if len(got) != len(expected):
        raise ExportError(f"{path}: the exported file returns {len(got)} outputs, eager returns {len(expected)}")
    atol, rtol = TOLERANCES[fmt]
    worst = 0.0
    for i, (e, g) in enumerate(zip(expected, got)):
        if tuple(e.shape) != tuple(g.shape):
            raise ExportError(f"{path}: output {i} has shape {tuple(g.shape)}, eager gives {tuple(e.shape)}")
        ratio = float(((g.float() - e.float()).abs() / (atol + rtol * e.float().abs())).max()) if e.numel() else 0.0
        worst = max(worst, ratio)
    if worst > 1.0:
        raise ExportError(f"{path}: {fmt} outputs differ from eager by {worst:.2f}x the tolerance "
                          f"(atol {atol}, rtol {rtol})")
    return worst


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected C,H,W integers, got {text!r}") from err


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``zoo export``."""
    parser = argparse.ArgumentParser(prog="zoo export", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="registry name (zoo.list_models()) or a weights .pt / `zoo fit` .ckpt file")
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True, help="file to write (.onnx, .pt for TorchScript, .pt2)")
    parser.add_argument("--cut", type=int, default=None,
                        help="SSP-Net: export blocks 1..CUT only (default: the block selected on validation)")
    parser.add_argument("--input-shape", type=_shape, action="append", default=None,
                        help="per-sample input shape C,H,W (repeat for several inputs; default: the model card's)")
    parser.add_argument("--batch", type=int, default=2,
                        help="batch of the example input used for tracing (a batch of 1 would be specialised)")
    parser.add_argument("--static-batch", action="store_true", help="fix the batch size instead of a dynamic one")
    parser.add_argument("--no-verify", action="store_true", help="skip reloading the file and comparing with eager")
    args = parser.parse_args(argv)
    try:
        net, name, origin = load_network(args.source, args.cut)
        shapes = input_shapes(name, net, args.input_shape)
        example = example_inputs(shapes, args.batch)
        path = export(net, example, args.format, args.out, dynamic_batch=not args.static_batch, label=args.source)
        print(f"{args.source} ({origin}) -> {path} [{args.format}, input {[list(s) for s in shapes]}"
              f"{'' if net.cut is None else f', cut {net.cut}'}]")
        if not args.no_verify:
            batch = args.batch if args.static_batch else args.batch + 2
            worst = verify(net, path, args.format, example_inputs(shapes, batch, seed=1))
            atol, rtol = TOLERANCES[args.format]
            print(f"verified at batch {batch}: max error {worst:.3f} of the tolerance (atol {atol}, rtol {rtol})")
    except (ExportError, ValueError, KeyError, FileNotFoundError) as err:
        print(f"zoo export: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

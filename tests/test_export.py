"""`zoo export`: every registered network with shipped weights exports, and the file computes what eager does.

ONNX files run under onnxruntime here, independently of zoo.export's own check; TorchScript and torch.export
programs are reloaded from disk. Inputs are the registry cards' sizes at batch 3 (traced at batch 2).
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import zoo
from zoo.export import ExportError, FORMATS, export, input_shapes, load_network, main

# the model that cannot be exported, and the layers that can be blamed: its triangulation builds a data-dependent
# number of candidate triangles (nonzero) per mesh, returned as Python lists, which the policy then scores
NOT_EXPORTABLE = {"meshrec_shapes": ("candidate_builder", "policy")}
EXPORTABLE = [n for n in zoo.list_models(pretrained=True) if n not in NOT_EXPORTABLE]
# one network per family the issue names, for the two torch-side formats
FAMILIES = ["quickstart_cnn", "kdl_digits", "mrs_digits", "darts_digits", "rrrnet_tiny", "sspnet_synthetic"]


def _inputs(shapes, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(batch, *s, generator=g) for s in shapes)


def _eager(net, xs) -> list[np.ndarray]:
    with torch.no_grad():
        out = net(*xs)
    out = out if isinstance(out, (tuple, list)) else [out]
    return [o.numpy() for o in out]


def _onnxruntime(path, xs) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x.numpy() for i, x in zip(sess.get_inputs(), xs)})


def _close(got: list[np.ndarray], expected: list[np.ndarray], atol: float, rtol: float) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, atol=atol, rtol=rtol)


@pytest.mark.parametrize("name", EXPORTABLE)
def test_registry_network_to_onnx_matches_eager_under_onnxruntime(name: str, tmp_path) -> None:
    net, _, origin = load_network(name)
    assert origin.startswith("registry weights")
    shapes = input_shapes(name, net)
    path = export(net, _inputs(shapes, 2, 0), "onnx", tmp_path / f"{name}.onnx")
    onnx.checker.check_model(str(path))
    xs = _inputs(shapes, 3, 1)  # another batch size than traced: the batch is dynamic
    _close(_onnxruntime(path, xs), _eager(net, xs), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
@pytest.mark.parametrize("name", FAMILIES)
def test_torch_formats_reload_and_match_eager(name: str, fmt: str, tmp_path) -> None:
    net, _, _ = load_network(name)
    shapes = input_shapes(name, net)
    path = export(net, _inputs(shapes, 2, 0), fmt, tmp_path / f"{name}.{fmt}")
    loaded = torch.jit.load(str(path)) if fmt == "torchscript" else torch.export.load(str(path)).module()
    xs = _inputs(shapes, 3, 1)
    with torch.no_grad():
        got = loaded(*xs)
    got = [t.numpy() for t in (got if isinstance(got, (tuple, list)) else [got])]
    _close(got, _eager(net, xs), atol=1e-5, rtol=1e-5)


def test_kdl_export_holds_kernel_layers() -> None:
    from zoo.kdl.kernels import KernelConv2d, KernelPool2d

    kinds = {type(m) for m in zoo.load("kdl_digits").modules()}
    assert KernelConv2d in kinds and KernelPool2d in kinds  # the ONNX test above exports real kernel layers


def _graph_params(path) -> int:
    return sum(int(np.prod(t.dims)) for t in onnx.load(str(path)).graph.initializer)


def _op_count(path, op: str) -> int:
    return sum(node.op_type == op for node in onnx.load(str(path)).graph.node)


def test_sspnet_each_cut_exports_only_the_blocks_before_it(tmp_path) -> None:
    """Cut k's graph has exactly the convolutions of blocks 1..k (fewer for every earlier cut) and computes the
    pose of block k as eager ``net(x, cut=k)[-1]``."""
    net, _, _ = load_network("sspnet_synthetic")
    full = net.net
    shapes = input_shapes("sspnet_synthetic", net)
    xs = _inputs(shapes, 2, 3)
    convs = []
    for cut in range(1, full.num_blocks + 1):
        cut_net, _, _ = load_network("sspnet_synthetic", cut=cut)
        path = export(cut_net, _inputs(shapes, 2, 0), "onnx", tmp_path / f"cut{cut}.onnx", dynamic_batch=False)
        with torch.no_grad():
            expected = full(*xs, cut=cut)[-1].numpy()
        _close(_onnxruntime(path, xs), [expected], atol=1e-4, rtol=1e-3)
        convs.append(_op_count(path, "Conv"))
    assert convs == sorted(convs) and len(set(convs)) == len(convs), convs
    # eager's own count: the stem's convs plus those of transitions[:k] and blocks[:k], less block k's re-injection
    # convs (they feed only blocks after the cut, so the exporter drops them as dead code)
    n_conv = lambda m: sum(isinstance(s, torch.nn.Conv2d) for s in m.modules())  # noqa: E731
    reinjection = lambda blk: sum(n_conv(getattr(blk, n)) for n in ("heat_aux", "heat_remap", "depth_remap")  # noqa: E731
                                  if hasattr(blk, n))
    stem = n_conv(full.stem)
    assert convs == [stem + sum(n_conv(full.transitions[b]) + n_conv(full.blocks[b]) for b in range(k))
                     - reinjection(full.blocks[k - 1]) for k in range(1, full.num_blocks + 1)]


def test_mrs_pruned_network_exports_smaller(tmp_path) -> None:
    """The MRS-pruned digits CNN's ONNX graph holds its pruned (smaller) tensors, not masked full-size ones."""
    pruned, _, _ = load_network("mrs_digits")
    dense, _, _ = load_network("mrs_digits_cnn")
    x = _inputs([(1, 8, 8)], 2, 0)
    p_path = export(pruned, x, "onnx", tmp_path / "pruned.onnx")
    d_path = export(dense, x, "onnx", tmp_path / "dense.onnx")
    p_params = sum(p.numel() for p in pruned.parameters())
    d_params = sum(p.numel() for p in dense.parameters())
    assert p_params < 0.6 * d_params  # 50 % parameter sparsity, removed structurally
    # the graph stores at most the network's parameters and buffers (BN may be folded into the conv)
    p_state = sum(t.numel() for t in pruned.state_dict().values())
    assert _graph_params(p_path) <= p_state
    assert _graph_params(p_path) < 0.6 * _graph_params(d_path)


def test_rrrnet_reduced_paper_size_exports(tmp_path) -> None:
    """Method [C] at paper width (ResNet-152 reduced to 5 blocks), random weights, at 64x64 to stay cheap."""
    net, _, origin = load_network("rrrnet_reduced")
    assert "no weights registered" in origin
    path = export(net, _inputs([(3, 64, 64)], 2, 0), "onnx", tmp_path / "c.onnx")
    xs = _inputs([(3, 64, 64)], 1, 1)
    _close(_onnxruntime(path, xs), _eager(net, xs), atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unexportable_network_names_the_layer(fmt: str, tmp_path) -> None:
    name = "meshrec_shapes"
    net, _, _ = load_network(name)
    with pytest.raises(ExportError) as info:
        export(net, _inputs(input_shapes(name, net), 2, 0), fmt, tmp_path / "m.out")
    match = re.search(r"layer '([\w.]+)' \((\w+)\)", str(info.value))
    assert match, str(info.value)
    layer = net.net.get_submodule(match.group(1))  # a real layer of the network, of the type named
    assert type(layer).__name__ == match.group(2) and match.group(1) in NOT_EXPORTABLE[name]


def test_cli_writes_and_verifies(tmp_path, capsys) -> None:
    from zoo.cli import main as zoo_main

    out = tmp_path / "q.onnx"
    zoo_main(["export", "quickstart_cnn", "--format", "onnx", "--out", str(out)])
    assert out.stat().st_size > 10_000  # the 28 842 fp32 weights are in the file
    assert "verified at batch 4" in capsys.readouterr().out


def test_checkpoint_source_and_bad_arguments(tmp_path, capsys) -> None:
    src = zoo.load("kdl_digits")
    ckpt = tmp_path / "w.pt"
    from zoo import hub

    payload = hub.load_state(str(hub.PACKAGE_DIR / zoo.get_entry("kdl_digits").weights.path),
                             sha256=zoo.get_entry("kdl_digits").weights.sha256)
    torch.save(payload, ckpt)
    main([str(ckpt), "--format", "exported-program", "--out", str(tmp_path / "k.pt2")])
    assert f"weights of {ckpt}" in capsys.readouterr().out
    reloaded = torch.export.load(str(tmp_path / "k.pt2")).module()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(reloaded(x), src(x), atol=1e-5)
    with pytest.raises(SystemExit):
        main(["quickstart_cnn", "--format", "onnx", "--out", str(tmp_path / "x.onnx"), "--cut", "2"])
    assert "--cut applies to SSP-Net" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing.ckpt"), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    assert "no such checkpoint" in capsys.readouterr().err

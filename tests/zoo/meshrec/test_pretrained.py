"""Shipped weights: ``zoo.load("meshrec_shapes")`` (hash-checked) reconstructs unseen procedural shapes better than
the untrained network and than its own vertex set, and decodes mostly closed meshes; a ``zoo fit`` checkpoint loads
both ways."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from datamodules.shapes3d import ProceduralShapes
from zoo.hub import sha256_file
from zoo.core.mesh import ops
from zoo.registry import get_entry

ROOT = Path(__file__).resolve().parents[3]


def _chamfers(net, data):
    out = {"vertices": 0.0, "decoded": 0.0, "refined": 0.0}
    with torch.no_grad():
        res = net(data["image"], data["P"])
    for b in range(data["image"].shape[0]):
        gt = data["points"][b:b + 1]
        out["vertices"] += float(ops.chamfer_distance(res["vertices"][b:b + 1], gt)[0][0])
        for key, stage in (("decoded", 0), ("refined", -1)):
            v, f = res["meshes"][stage][b]
            pts, _ = ops.sample_points(v, f, 2000, generator=torch.Generator().manual_seed(b))
            out[key] += float(ops.chamfer_distance(pts[None], gt)[0][0])
    return {k: v / data["image"].shape[0] for k, v in out.items()}


def test_shipped_weights_load_hash_checked_and_reconstruct_unseen_shapes():
    entry = get_entry("meshrec_shapes")
    assert sha256_file(Path(zoo.__file__).parent / entry.weights.path) == entry.weights.sha256
    assert (Path(zoo.__file__).parent / entry.weights.path).stat().st_size < 2 * 1024 * 1024
    net = zoo.load("meshrec_shapes")
    assert not net.training and net.num_vertices == 96
    ds = ProceduralShapes(12, seed=4242)
    data = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ("image", "points", "P")}
    trained = _chamfers(net, data)
    torch.manual_seed(0)
    untrained = _chamfers(zoo.create_model("meshrec_shapes").eval(), data)
    assert trained["refined"] < 0.5 * untrained["refined"]
    assert trained["decoded"] < trained["vertices"]  # the triangulated surface beats its own vertex set
    with torch.no_grad():
        res = net(data["image"], data["P"])
    closed = 0
    for v, f in res["meshes"][0]:
        assert ops.edge_face_counts(f)[1].max() <= 2  # greedy decoding keeps edges manifold
        closed += ops.nonmanifold_edge_ratio(f) == 0 and ops.euler_characteristic(v, f) == 2
    assert closed >= 9  # most decoded meshes are closed genus-0 surfaces, learnt without topology labels


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_zoo_fit_checkpoint_loads_with_zoo_load_and_load_from_checkpoint(tmp_path):
    from zoo.meshrec.module import RLTriMeshModule

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "configs/meshrec/tiny.yaml"),
           "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "2", "--trainer.logger", "false",
           "--trainer.check_val_every_n_epoch", "1", "--model.init_args.stage_epochs", "[1, 1, 0, 0]",
           "--data.init_args.num_train", "8", "--data.init_args.num_val", "4", "--data.init_args.num_test", "4",
           "--test_after_fit", "false"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next((tmp_path / "checkpoints").glob("best*.ckpt"))
    net = zoo.load(str(ckpt))
    module = RLTriMeshModule.load_from_checkpoint(ckpt, weights_only=True, map_location="cpu").eval()
    assert module.hparams.stage_epochs == [1, 1, 0, 0]
    ds = ProceduralShapes(2, seed=7)
    img, P = torch.stack([ds[i]["image"] for i in range(2)]), torch.stack([ds[i]["P"] for i in range(2)])
    with torch.no_grad():
        a, b = net(img, P), module(img, P)
    torch.testing.assert_close(a["vertices"], b["vertices"])
    for (va, fa), (vb, fb) in zip(a["meshes"][-1], b["meshes"][-1]):
        assert torch.equal(fa, fb)
        torch.testing.assert_close(va, vb)

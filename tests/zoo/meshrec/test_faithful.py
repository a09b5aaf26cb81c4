"""Small-scale faithful check of the mesh reconstruction paper (spec section 10): procedural sphere/cube/torus, the
staged recipe A-D of RLTriMeshModule (VGN, RL policy, refiner, joint), against an icosphere template refined by the
same refiner. Asserts (a) VGN chamfer drops >= 10x, (b) |mean reward| falls >= 5x from step 0, (c) decoded-mesh CD
<= 1.5x the vertex-set CD on test shapes, (d) decoded meshes are edge-manifold; prints every measured number."""
from __future__ import annotations

import time

import lightning.pytorch as L
import pytest
import torch

from datamodules.shapes3d import ProceduralShapes
from zoo.core.mesh import ops
from zoo.core.mesh.metrics import compare_meshes
from zoo.meshrec.losses import vertex_set_chamfer
from zoo.meshrec.module import RLTriMeshModule
from zoo.meshrec.rl import triangulation_reward

from tests.conftest import faithful_report

NET = {"in_chans": 1, "encoder_widths": [16, 32, 64, 128], "num_vertices": 96, "vgn_hidden": [256, 256], "k": 8,
       "refine_stages": 2, "refine_hidden": 64, "num_graphconv": 3, "offset_scale": 0.1}
TEMPLATE = {"in_chans": 1, "encoder_widths": [16, 32, 64, 128], "template_level": 2, "template_scale": 0.5,
            "refine_stages": 2, "refine_hidden": 64, "num_graphconv": 3, "offset_scale": 0.1}
PLAN = [("vgn", 400), ("policy", 120), ("refiner", 120), ("joint", 30)]  # optimiser steps of batch 4 per stage
BATCH = 4


def _stack(ds, idx):
    return {k: torch.stack([ds[i][k] for i in idx]) for k in ("image", "points", "normals", "P")}


def _train(module: RLTriMeshModule, data, plan, seed: int = 0) -> None:
    """The module's own training_step, stage by stage, without a Trainer (logging is a no-op)."""
    module.log_dict = lambda *a, **k: None
    opt = module.configure_optimizers()
    g = torch.Generator().manual_seed(seed)
    module.train()
    for stage, steps in plan:
        module.hparams.stage = stage
        module.apply_stage_lr([opt])
        for _ in range(steps):
            batch = _stack(data, torch.randint(0, len(data), (BATCH,), generator=g).tolist())
            opt.zero_grad()
            loss = module.training_step(batch, 0)
            if loss is not None:
                loss.backward()
                opt.step()


@torch.no_grad()
def _vgn_chamfer(module, data) -> float:
    module.eval()
    b = _stack(data, range(len(data)))
    feats, code = module.net.encoder(b["image"])
    return float(vertex_set_chamfer(module.net.vgn(code), b["points"]).mean())


@torch.no_grad()
def _mean_reward(module, data, n: int = 24) -> float:
    """Mean RL reward of 4 policy samples per training image (the quantity the RL stage maximises)."""
    module.eval()
    b = _stack(data, range(n))
    size = tuple(b["image"].shape[-2:])
    feats, code = module.net.encoder(b["image"])
    verts = module.net.vgn(code)
    cands, probs = module.net.triangle_probs(verts, feats, code, b["P"], size)
    g = torch.Generator().manual_seed(0)
    rewards = []
    for i in range(n):
        actions = torch.bernoulli(probs[i].expand(4, -1), generator=g).bool()
        rewards.append(triangulation_reward(verts[i], cands[i], actions, b["points"][i], module.reward_weights,
                                            module.hparams.reward_points, generator=g)[0].mean())
    return float(torch.stack(rewards).mean())


@torch.no_grad()
def _test_metrics(module, data) -> dict[str, float]:
    module.eval()
    b = _stack(data, range(len(data)))
    out = module.net(b["image"], b["P"])
    g = torch.Generator().manual_seed(0)
    res: dict[str, list[float]] = {}
    for s, meshes in enumerate(out["meshes"]):
        for i, (v, f) in enumerate(meshes):
            pts, _ = ops.sample_points(v, f, 2000, generator=g)
            cd = ops.chamfer_distance(pts[None], b["points"][i:i + 1])[0][0]
            res.setdefault(f"cd_stage{s}", []).append(float(cd))
    for i, (v, f) in enumerate(out["meshes"][0]):
        res.setdefault("euler", []).append(ops.euler_characteristic(v, f))
        res.setdefault("nonmanifold", []).append(ops.nonmanifold_edge_ratio(f))
        res.setdefault("max_faces_per_edge", []).append(int(ops.edge_face_counts(f)[1].max()))
    if "keep" in out:
        res["cd_vertices"] = vertex_set_chamfer(out["vertices"], b["points"]).tolist()
    for i, (v, f) in enumerate(out["meshes"][-1]):  # Mesh R-CNN compare_meshes: 10,000 fresh samples per mesh, gt-10
        mr = compare_meshes(v, f, data[i]["verts"], data[i]["faces"], generator=g)
        for t in ("0.1", "0.3", "0.5"):
            res.setdefault(f"f1@{t}", []).append(mr[f"f1@{t}"])
    final = f"cd_stage{len(out['meshes']) - 1}"
    for kind in ("sphere", "cube", "torus"):  # ProceduralShapes cycles through the kinds
        res[f"{final}_{kind}"] = res[final][("sphere", "cube", "torus").index(kind)::3]
    agg = {k: sum(v) / len(v) for k, v in res.items() if k != "max_faces_per_edge"}
    agg["max_faces_per_edge"] = max(res["max_faces_per_edge"])
    return agg


@pytest.mark.faithful
@pytest.mark.timeout(400)
def test_faithful_small_scale_check(faithful_seed):
    s = faithful_seed
    start = time.time()
    train = ProceduralShapes(96, seed=2 * s)
    test = ProceduralShapes(24, seed=2 * s + 1, split="test", return_mesh=True)
    L.seed_everything(s)
    module = RLTriMeshModule(stage="vgn", net_kwargs=NET, lr=1e-3, policy_lr=1e-3, rl_samples=4,
                             expected_loss_weight=1.0, w_edge=0.1, reward_points=500, loss_points=1000)
    vgn0, reward0 = _vgn_chamfer(module, train), _mean_reward(module, train)
    _train(module, train, PLAN[:1], seed=s)
    vgn1 = _vgn_chamfer(module, train)
    reward_vgn = _mean_reward(module, train)  # trained vertices, untrained policy
    _train(module, train, PLAN[1:], seed=s)
    vgn_end, reward_end = _vgn_chamfer(module, train), _mean_reward(module, train)
    rl = _test_metrics(module, test)
    L.seed_everything(s)
    template = RLTriMeshModule(pipeline="template", net_kwargs=TEMPLATE, lr=1e-3, w_edge=0.1, loss_points=1000)
    _train(template, train, [("refiner", PLAN[2][1] + PLAN[3][1])], seed=s)
    tpl = _test_metrics(template, test)
    faithful_report("meshrec", s, vgn_cd_ratio=vgn1 / vgn0, reward_ratio=abs(reward_end) / abs(reward0),
                    decoded_over_vertices=rl["cd_stage0"] / rl["cd_vertices"], cd_stage2=1e3 * rl["cd_stage2"],
                    template_cd_stage2=1e3 * tpl["cd_stage2"], max_faces_per_edge=rl["max_faces_per_edge"],
                    euler=rl["euler"])
    print(f"\n[faithful meshrec] {time.time() - start:.0f}s  VGN train CD {vgn0:.4f} -> {vgn1:.4f} (end {vgn_end:.4f});"
          f" reward {reward0:.3f} -> {reward_vgn:.3f} (VGN trained) -> {reward_end:.3f};"
          f" test CDx1e3 vertices {1e3 * rl['cd_vertices']:.1f} decoded {1e3 * rl['cd_stage0']:.1f}"
          f" stage1 {1e3 * rl['cd_stage1']:.1f} stage2 {1e3 * rl['cd_stage2']:.1f}"
          f" (sphere/cube/torus {1e3 * rl['cd_stage2_sphere']:.1f}/{1e3 * rl['cd_stage2_cube']:.1f}/"
          f"{1e3 * rl['cd_stage2_torus']:.1f}); template {1e3 * tpl['cd_stage2']:.1f}"
          f" ({1e3 * tpl['cd_stage2_sphere']:.1f}/{1e3 * tpl['cd_stage2_cube']:.1f}/"
          f"{1e3 * tpl['cd_stage2_torus']:.1f});"
          f" euler {rl['euler']:.1f} (template {tpl['euler']:.1f}); nonmanifold {rl['nonmanifold']:.3f};"
          f" Mesh R-CNN F1@0.1/0.3/0.5 % {rl['f1@0.1']:.1f}/{rl['f1@0.3']:.1f}/{rl['f1@0.5']:.1f}"
          f" (template {tpl['f1@0.1']:.1f}/{tpl['f1@0.3']:.1f}/{tpl['f1@0.5']:.1f})")
    assert vgn1 <= vgn0 / 10  # (a)
    assert abs(reward_end) <= abs(reward0) / 5  # (b)
    assert rl["cd_stage0"] <= 1.5 * rl["cd_vertices"]  # (c)
    assert rl["max_faces_per_edge"] <= 2  # (d)
    assert tpl["euler"] == 2 and tpl["max_faces_per_edge"] == 2  # the template stays a closed genus-0 mesh

"""Mesh reconstruction speed: milliseconds per image for the VGN (encoder + vertex head), the triangulation layer
(candidates + policy + greedy decoding) and each refinement stage, next to the icosphere-template baseline running
the same encoder and refiner, measured in the same process (median of ``--repeats`` after warm-up).

    python benchmarks/meshrec_speed.py                       # the tiny config's network (meshrec_shapes), 64x64
    python benchmarks/meshrec_speed.py --scale paper         # ResNet-50, N=1024, k=12, 3 stages x 128, 137x137
    python benchmarks/meshrec_speed.py --device cuda --batch 8
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAPER = {"encoder": "resnet50", "in_chans": 3, "refine_stages": 3, "refine_hidden": 128, "num_graphconv": 3,
         "offset_scale": 1.0}


def build(scale: str):
    import zoo
    from zoo.meshrec import SHAPES_NET_KWARGS
    from zoo.meshrec.net import IcosphereTemplateNet

    if scale == "tiny":
        net = zoo.load("meshrec_shapes")
        common = {k: SHAPES_NET_KWARGS[k] for k in ("encoder", "in_chans", "encoder_widths", "refine_stages",
                                                    "refine_hidden", "num_graphconv", "offset_scale")}
        template = IcosphereTemplateNet(**common, template_level=2, template_scale=0.5)
        return net, template, 64, 1
    net = zoo.create_model("rltrimesh_shapenet")
    # the template at level 3 (642 vertices, 1,280 faces) has about as many faces as the decoded 1,024-vertex mesh
    template = IcosphereTemplateNet(**PAPER, template_level=3, template_scale=0.5)
    return net, template, 137, 3


def _timed(fn, sync) -> tuple[float, object]:
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - t, out


@torch.no_grad()
def profile(net, img, P, sync) -> dict[str, float]:
    """Seconds per call of each part of ``RLTriMeshNet`` (eval mode) or ``IcosphereTemplateNet``."""
    from zoo.meshrec.net import compact_mesh

    size, b = (img.shape[-2], img.shape[-1]), img.shape[0]
    times: dict[str, float] = {}
    dt, (feats, code) = _timed(lambda: net.encoder(img), sync)
    if hasattr(net, "vgn"):
        dt2, verts = _timed(lambda: net.vgn(code), sync)
        times["VGN (encoder + head)"] = dt + dt2

        from zoo.core.mesh import ops
        from zoo.meshrec.triangulation import stable_probs

        times["  candidates"], cands = _timed(lambda: net.candidate_builder(verts), sync)

        def policy():
            vfeats = ops.vert_align(feats, verts, P, size)
            return [stable_probs(net.policy(verts[i], t, k, vfeats[i], code[i])) for i, (t, k) in enumerate(cands)]

        times["  policy"], probs = _timed(policy, sync)
        times["  decoding"], keeps = _timed(lambda: [net.decode(t, p) for (t, _), p in zip(cands, probs)], sync)
        times["triangulation"] = times["  candidates"] + times["  policy"] + times["  decoding"]
        meshes = [compact_mesh(verts[i], cands[i][0][keeps[i]])[:2] for i in range(b)]
    else:
        times["encoder"] = dt
        meshes = [(net.template_verts, net.template_faces)] * b
    state = [(v, f, None) for v, f in meshes]
    for s in range(len(net.refiner.stages)):
        def stage():
            return [net.refiner.stage_forward(s, v, f, [m[i:i + 1] for m in feats], P[i:i + 1], size, prev)
                    for i, (v, f, prev) in enumerate(state)]
        times[f"refine stage {s + 1}"], state = _timed(stage, sync)
    times["faces (final)"] = sum(f.shape[0] for _, f, _ in state) / b
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net, template, size, chans = build(args.scale)
    dev = torch.device(args.device)
    net, template = net.to(dev).eval(), template.to(dev).eval()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    from zoo.core.mesh.render import camera_matrix

    if args.scale == "tiny":  # rendered procedural shapes, so the decoded meshes have their usual size
        from datamodules.shapes3d import ProceduralShapes

        ds = ProceduralShapes(args.batch, seed=99)
        img = torch.stack([ds[i]["image"] for i in range(args.batch)]).to(dev)
    else:
        img = torch.rand(args.batch, chans, size, size, device=dev)
    P = camera_matrix((size, size)).to(dev).expand(args.batch, 3, 4)
    results = {}
    for name, model in (("RL-triangulation", net), ("icosphere template", template)):
        runs = [profile(model, img, P, sync) for _ in range(args.warmup + args.repeats)][args.warmup:]
        results[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"{args.scale} scale, {size}x{size}, batch {args.batch}, device {dev}, {args.threads} thread(s); "
          f"ms per image (median of {args.repeats})")
    for name, res in results.items():
        total = sum(v for k, v in res.items() if not k.startswith(("faces", " ")))
        parts = ", ".join(f"{k.strip()} {1e3 * v / args.batch:.2f}" for k, v in res.items()
                          if not k.startswith("faces"))
        print(f"  {name:20s} total {1e3 * total / args.batch:8.2f} ms  ({parts}; {res['faces (final)']:.0f} faces)")
    rl, tp = results["RL-triangulation"], results["icosphere template"]
    ratio = sum(v for k, v in rl.items() if not k.startswith(("faces", " "))) / sum(
        v for k, v in tp.items() if not k.startswith(("faces", " ")))
    print(f"  RL-triangulation / template total time: {ratio:.2f}x")
    for s in range(len(net.refiner.stages)):
        k = f"refine stage {s + 1}"
        print(f"  {k}: {rl[k] / tp[k]:.2f}x the template's")


if __name__ == "__main__":
    main()

"""Networks of the mesh reconstruction paper (IBISC; single RGB image -> mesh of arbitrary topology):
``RLTriMeshNet`` = image encoder + Vertex Generation Network + RL triangulation layer + hierarchical GraphConv refiner,
and ``IcosphereTemplateNet``, the genus-0 template baseline running the same refiner (spec sections 3 and 10)."""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import nn

from zoo.core.mesh import ops
from zoo.meshrec.encoder import ImageEncoder
from zoo.meshrec.episodes import sample_episodes
from zoo.meshrec.refiner import HierarchicalRefiner
from zoo.meshrec.triangulation import CandidateBuilder, TrianglePolicy, greedy_manifold_decode, stable_probs
from zoo.meshrec.vgn import VertexGenerationHead

Mesh = tuple[torch.Tensor, torch.Tensor]


def compact_mesh(verts: torch.Tensor, faces: torch.Tensor,
                 feats: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Drop the vertices no face uses (the triangulation may leave some isolated) and renumber the faces."""
    if faces.numel() == 0:
        return verts, faces, feats
    used, inv = torch.unique(faces, return_inverse=True)
    return verts[used], inv.view(-1, 3), None if feats is None else feats[used]


def default_camera(img: torch.Tensor) -> torch.Tensor:
    """The procedural-shapes camera for ``img``'s size, used when no ``P`` is given (e.g. by the profiler)."""
    from zoo.core.mesh.render import camera_matrix

    return camera_matrix((img.shape[-2], img.shape[-1])).to(img).expand(img.shape[0], 3, 4)


class RLTriMeshNet(nn.Module):
    """Image ``(B,C,H,W)`` in [0,1] and camera ``P (B,3,4)`` -> vertices, candidate triangles, keep probabilities and
    the meshes of every stage (stage 0: the triangulated VGN vertices; stages 1..S: refined). Training mode samples
    one keep/drop action per candidate; eval mode decodes greedily and manifold-preserving."""

    def __init__(self, encoder: Literal["conv", "resnet18", "resnet50"] = "conv", in_chans: int = 3,
                 encoder_widths: Sequence[int] = (16, 32, 64, 128), pretrained_backbone: bool = False,
                 num_vertices: int = 96, vgn_hidden: Sequence[int] = (256, 256), box_scale: float = 1.0, k: int = 8,
                 policy_hidden: int = 128, refine_stages: int = 2, refine_hidden: int = 64, num_graphconv: int = 3,
                 offset_scale: float = 0.1, min_prob: float = 0.05, max_faces: int | None = None,
                 mdp: Literal["bandit", "sequential"] = "bandit",
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        if mdp not in ("bandit", "sequential"):
            raise ValueError(f"mdp must be 'bandit' or 'sequential', got {mdp!r}")
        self.mdp = mdp
        self.encoder = ImageEncoder(encoder, in_chans, encoder_widths, pretrained_backbone, mean, std)
        self.vgn = VertexGenerationHead(self.encoder.global_dim, num_vertices, vgn_hidden, box_scale)
        self.candidate_builder = CandidateBuilder(k)
        self.policy = TrianglePolicy(self.encoder.feat_dim, self.encoder.global_dim, policy_hidden,
                                     stop_head=mdp == "sequential")
        self.refiner = HierarchicalRefiner(self.encoder.feat_dim, refine_stages, refine_hidden, num_graphconv,
                                           offset_scale)
        self.min_prob, self.max_faces = min_prob, max_faces
        self.num_vertices = num_vertices

    def triangle_probs(self, verts: torch.Tensor, feats: list[torch.Tensor], code: torch.Tensor, P: torch.Tensor,
                       image_size: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Candidates ``(T_b,3)`` and their keep probabilities ``(T_b,)`` for each image of the batch (sequential MDP:
        ``sigmoid(l_t - l_stop)``, the odds of a candidate against stopping)."""
        vfeats = ops.vert_align(feats, verts, P, image_size)
        cands, probs = [], []
        for b, (tris, knn) in enumerate(self.candidate_builder(verts)):
            cands.append(tris)
            logits = self.policy(verts[b], tris, knn, vfeats[b], code[b])
            if self.mdp == "sequential":
                logits = logits - self.policy.stop_logit(code[b])
            probs.append(stable_probs(logits))
        return cands, probs

    def decode(self, tris: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
        """Greedy manifold-preserving decoding (eval mode): keep mask over the candidates. For the sequential MDP this
        is the greedy episode: stop once the stop action outscores every valid candidate (p < 0.5)."""
        min_prob = 0.5 if self.mdp == "sequential" else self.min_prob
        return greedy_manifold_decode(tris, probs, self.num_vertices, min_prob, self.max_faces)

    def forward(self, img: torch.Tensor, P: torch.Tensor | None = None) -> dict:
        image_size = (img.shape[-2], img.shape[-1])
        P = default_camera(img) if P is None else P
        feats, code = self.encoder(img)
        verts = self.vgn(code)
        cands, probs = self.triangle_probs(verts, feats, code, P, image_size)
        keeps, base = [], []
        for b, (tris, p) in enumerate(zip(cands, probs)):
            if not self.training:
                keep = self.decode(tris, p)
            elif self.mdp == "sequential":
                keep = sample_episodes(p.detach(), tris, self.num_vertices, 1, self.max_faces)[0][0]
            else:
                keep = torch.bernoulli(p.detach()).bool()
            keeps.append(keep)
            v, f, _ = compact_mesh(verts[b], tris[keep])
            base.append((v, f))
        refined = self.refiner(base, feats, P, image_size)
        return {"vertices": verts, "candidates": cands, "probs": probs, "keep": keeps, "meshes": [base, *refined]}


class IcosphereTemplateNet(nn.Module):
    """The template-deformation baseline: an icosphere of radius ``template_scale`` refined by the same hierarchical
    GraphConv refiner (a Pixel2Mesh / Mesh R-CNN-sphere style baseline; genus 0 by construction)."""

    def __init__(self, encoder: Literal["conv", "resnet18", "resnet50"] = "conv", in_chans: int = 3,
                 encoder_widths: Sequence[int] = (16, 32, 64, 128), pretrained_backbone: bool = False,
                 template_level: int = 2, template_scale: float = 0.5, refine_stages: int = 2,
                 refine_hidden: int = 64, num_graphconv: int = 3, offset_scale: float = 0.1,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.encoder = ImageEncoder(encoder, in_chans, encoder_widths, pretrained_backbone, mean, std)
        self.refiner = HierarchicalRefiner(self.encoder.feat_dim, refine_stages, refine_hidden, num_graphconv,
                                           offset_scale)
        v, f = ops.icosphere(template_level)
        self.register_buffer("template_verts", v * template_scale, persistent=False)
        self.register_buffer("template_faces", f, persistent=False)

    def forward(self, img: torch.Tensor, P: torch.Tensor | None = None) -> dict:
        image_size = (img.shape[-2], img.shape[-1])
        P = default_camera(img) if P is None else P
        feats, _ = self.encoder(img)
        base = [(self.template_verts, self.template_faces)] * img.shape[0]
        refined = self.refiner(base, feats, P, image_size)
        return {"vertices": self.template_verts.expand(img.shape[0], -1, -1), "meshes": [base, *refined]}

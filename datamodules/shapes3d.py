"""Procedural shapes for single-image mesh reconstruction (the mesh paper's toy data, spec section 8): spheres,
cubes and tori of random scale and rotation, rendered by the torch point-splat renderer. No download; seeded."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.mesh_common import MeshSplitDataModule, surface_samples
from zoo.core.mesh.render import SHAPE_KINDS, camera_matrix, make_shape, random_rotation, render_mesh


class ProceduralShapes(Dataset):
    """``num`` shapes generated once in the constructor, kinds in turn (balanced), seeded by ``seed``.

    Frame: object at the origin, axes of the camera (x right, y down, z away); ``P = K [I | (0,0,2.5)]``.
    """

    def __init__(self, num: int, image_size: int = 64, channels: int = 1, num_points: int = 1024,
                 kinds: tuple[str, ...] = SHAPE_KINDS, scale_range: tuple[float, float] = (0.8, 1.2), seed: int = 0,
                 return_mesh: bool = False, split: str = "train") -> None:
        unknown = [k for k in kinds if k not in SHAPE_KINDS]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {SHAPE_KINDS}, got {list(kinds)}")
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {scale_range}")
        g = torch.Generator().manual_seed(seed)
        self.P = camera_matrix((image_size, image_size))
        self.kinds, self.return_mesh = tuple(kinds), return_mesh
        self.samples: list[dict] = []
        for i in range(num):
            label = i % len(kinds)
            scale = lo + (hi - lo) * float(torch.rand(1, generator=g))
            verts, faces = make_shape(kinds[label], scale, random_rotation(g))
            image = render_mesh(verts, faces, self.P, (image_size, image_size), channels, generator=g)
            pts, nrm = surface_samples(verts, faces, num_points, seed=int(torch.randint(2**31 - 1, (1,), generator=g)))
            s = {"image": image, "points": pts, "normals": nrm, "P": self.P.clone(), "label": torch.tensor(label),
                 "id": f"{split}-{i:04d}-{kinds[label]}"}
            if return_mesh:
                s.update(verts=verts, faces=faces)
            self.samples.append(s)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Tensor | str]:
        return dict(self.samples[i])


class ProceduralShapesDataModule(MeshSplitDataModule):
    """Train/val/test procedural shapes (96/24/24 by default): the CI default of the mesh-reconstruction paper."""

    def __init__(self, num_train: int = 96, num_val: int = 24, num_test: int = 24, image_size: int = 64,
                 channels: int = 1, num_points: int = 1024, kinds: tuple[str, ...] = SHAPE_KINDS,
                 scale_range: tuple[float, float] = (0.8, 1.2), seed: int = 0, batch_size: int = 8,
                 num_workers: int = 0, return_mesh: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.num_classes = len(kinds)

    def build(self) -> dict[str, Dataset]:
        h = self.hparams
        kw = dict(image_size=h.image_size, channels=h.channels, num_points=h.num_points, kinds=tuple(h.kinds),
                  scale_range=tuple(h.scale_range), return_mesh=h.return_mesh)
        return {name: ProceduralShapes(n, seed=h.seed + k, split=name, **kw)
                for k, (name, n) in enumerate([("train", h.num_train), ("val", h.num_val), ("test", h.num_test)])}

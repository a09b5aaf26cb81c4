"""W&B media of the mesh reconstruction paper: predicted meshes as ``wandb.Object3D`` (GLB through trimesh) next to
the GT point cloud, and matplotlib previews for notebooks."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch


def mesh_to_glb(verts: torch.Tensor, faces: torch.Tensor, path: str | Path) -> Path:
    """Write a mesh as binary glTF (what ``wandb.Object3D`` renders as a surface)."""
    import trimesh

    path = Path(path)
    trimesh.Trimesh(verts.numpy(), faces.numpy(), process=False).export(path)
    return path


def log_meshes(loggers, items: list[dict], step: int, tag: str = "val/meshes") -> int:
    """Log each predicted mesh (``{"verts", "faces", "gt", "id"}``) as a 3D object and the GT as a point cloud to every
    WandbLogger among ``loggers``; returns the number of objects logged."""
    from lightning.pytorch.loggers import WandbLogger

    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers:
        return 0
    import wandb

    objects, clouds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, it in enumerate(items):
            if it["faces"].shape[0] > 0:
                objects.append(wandb.Object3D(str(mesh_to_glb(it["verts"], it["faces"], Path(tmp) / f"mesh{i}.glb")),
                                              caption=it["id"]))
            else:
                objects.append(wandb.Object3D(it["verts"].numpy().astype(np.float64), caption=it["id"]))
            clouds.append(wandb.Object3D(it["gt"].numpy().astype(np.float64), caption=f"GT {it['id']}"))
        for lg in wandb_loggers:
            lg.experiment.log({tag: objects, f"{tag}_gt": clouds, "trainer/global_step": step})
    return len(objects)


def log_stage_chart(loggers, chamfers: list[float], step: int, tag: str = "val/chamfer_per_stage") -> bool:
    """Log the chamfer of every stage (0 = decoded VGN mesh, 1..S = refined) as a W&B line chart."""
    from lightning.pytorch.loggers import WandbLogger

    wandb_loggers = [lg for lg in loggers if isinstance(lg, WandbLogger)]
    if not wandb_loggers or not chamfers:
        return False
    import wandb

    table = wandb.Table(data=[[s, float(c)] for s, c in enumerate(chamfers)], columns=["stage", "chamfer"])
    for lg in wandb_loggers:
        lg.experiment.log({tag: wandb.plot.line(table, "stage", "chamfer", title="chamfer per stage"),
                           "trainer/global_step": step})
    return True


def plot_meshes(meshes: list[tuple[torch.Tensor, torch.Tensor]], titles: list[str] | None = None, gt=None, axes=None):
    """Matplotlib previews of meshes (``Poly3DCollection``, shaded by normal z), with the GT points if given."""
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection

    if axes is None:
        fig = plt.figure(figsize=(3 * len(meshes), 3))
        axes = [fig.add_subplot(1, len(meshes), i + 1, projection="3d") for i in range(len(meshes))]
    for i, (ax, (v, f)) in enumerate(zip(axes, meshes)):
        v, f = v.detach().cpu().numpy(), f.detach().cpu().numpy()
        if len(f):
            tri = v[f]
            n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            shade = 0.3 + 0.7 * np.abs(n[:, 2] / (np.linalg.norm(n, axis=1) + 1e-12))
            ax.add_collection3d(Poly3DCollection(tri, facecolors=plt.cm.viridis(shade), edgecolor="k", linewidths=0.1))
        if gt is not None:
            g = gt[i].detach().cpu().numpy()
            ax.scatter(g[:, 0], g[:, 1], g[:, 2], s=0.5, c="r", alpha=0.3)
        lim = np.abs(v).max() if len(v) else 1.0
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim), ax.set_zlim(-lim, lim)
        ax.set_axis_off()
        if titles:
            ax.set_title(titles[i], fontsize=8)
    return axes

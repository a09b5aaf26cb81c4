"""Networks: encoder shapes, the VGN head's bounds, the refiner's zero-initialised first pass and subdivision
hierarchy, the forward contract of RLTriMeshNet (train samples, eval decodes) and the template baseline."""
import pytest
import torch

from zoo.core.mesh import ops
from zoo.meshrec.encoder import ImageEncoder
from zoo.meshrec.net import IcosphereTemplateNet, RLTriMeshNet, compact_mesh
from zoo.meshrec.refiner import HierarchicalRefiner
from zoo.meshrec.vgn import VertexGenerationHead, repulsion_loss, surface_spacing


def _P(b, size=64):
    return torch.tensor([[size * 1.1, 0, size / 2, 0], [0, size * 1.1, size / 2, 0], [0, 0, 1, 2.5]]).expand(b, 3, 4)


def test_encoders_return_every_stage_and_a_global_code():
    enc = ImageEncoder("conv", in_chans=1, widths=(8, 16, 32, 64))
    feats, code = enc(torch.rand(2, 1, 64, 64))
    assert [f.shape[1:] for f in feats] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)]
    assert code.shape == (2, 64) and enc.feat_dim == 120
    r18 = ImageEncoder("resnet18", in_chans=3)
    feats, code = r18(torch.rand(1, 3, 137, 137))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512] and code.shape == (1, 512)
    with pytest.raises(ValueError, match="expected images"):
        enc(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match="unknown encoder"):
        ImageEncoder("vit")


def test_vgn_head_is_bounded_and_repulsion_penalises_clumps():
    head = VertexGenerationHead(16, num_vertices=50, hidden=(32,), box_scale=0.7)
    v = head(torch.randn(3, 16) * 100)
    assert v.shape == (3, 50, 3) and v.abs().max() <= 0.7
    spread = torch.randn(1, 50, 3)
    clumped = spread.clone()
    clumped[0, 25:] = clumped[0, :25] + 1e-3
    h = 0.5 * surface_spacing(spread, 50)
    torch.testing.assert_close(h, 0.5 * (torch.cdist(spread, spread) + 1e6 * torch.eye(50)).min(-1).values.mean(-1,
                                                                                                          keepdim=True))
    assert repulsion_loss(clumped, h) > repulsion_loss(spread, h)
    assert repulsion_loss(spread, 0.0) == 0


def test_refiner_starts_at_identity_and_subdivides_between_stages():
    torch.manual_seed(0)
    enc = ImageEncoder("conv", in_chans=1, widths=(8, 8, 8, 8))
    feats, _ = enc(torch.rand(2, 1, 64, 64))
    ref = HierarchicalRefiner(enc.feat_dim, num_stages=3, hidden=16)
    v, f = ops.icosphere(1)
    out = ref([(v * 0.5, f), (v * 0.4, f)], feats, _P(2), (64, 64))
    assert len(out) == 3
    v1, f1 = out[0][0]
    torch.testing.assert_close(v1, v * 0.5)  # zero-initialised offsets
    e = ops.unique_edges(f).shape[0]
    assert out[1][0][0].shape[0] == 42 + e and out[1][0][1].shape[0] == 4 * 80
    assert out[2][0][1].shape[0] == 16 * 80
    torch.nn.init.normal_(ref.stages[0].offset.weight, std=1.0)
    out = ref([(v * 0.5, f)], [x[:1] for x in feats], _P(1), (64, 64))
    moved = (out[0][0][0] - v * 0.5).norm(dim=-1)
    assert moved.max() > 0 and moved.max() <= ref.stages[0].offset_scale * 3 ** 0.5 + 1e-6


def test_compact_mesh_drops_unused_vertices():
    v = torch.arange(15.0).view(5, 3)
    f = torch.tensor([[4, 1, 3]])
    cv, cf, _ = compact_mesh(v, f)
    assert cv.shape == (3, 3)
    torch.testing.assert_close(cv[cf[0]], v[f[0]])


def test_rltrimeshnet_contract_train_samples_eval_decodes():
    torch.manual_seed(0)
    net = RLTriMeshNet(in_chans=1, encoder_widths=(8, 8, 16, 16), num_vertices=40, vgn_hidden=(32,), k=6,
                       refine_stages=2, refine_hidden=16)
    assert {n for n, _ in net.named_children()} >= {"encoder", "vgn", "candidate_builder", "policy", "refiner"}
    img, P = torch.rand(2, 1, 64, 64), _P(2)
    out = net(img, P)
    assert out["vertices"].shape == (2, 40, 3) and len(out["meshes"]) == 3
    for tris, p in zip(out["candidates"], out["probs"]):
        assert tris.shape[1] == 3 and p.shape == (tris.shape[0],) and ((p > 0) & (p < 1)).all()
    net.eval()
    with torch.no_grad():
        a, b = net(img, P), net(img, P)
    for (va, fa), (vb, fb) in zip(a["meshes"][-1], b["meshes"][-1]):  # greedy decoding is deterministic
        assert torch.equal(fa, fb) and torch.equal(va, vb)
        assert ops.edge_face_counts(fa)[1].max() <= 2
    for keep, tris, p in zip(a["keep"], a["candidates"], a["probs"]):
        assert keep.sum() <= 2 * 40 and (p[keep] >= net.min_prob).all()


def test_template_baseline_is_genus_zero():
    net = IcosphereTemplateNet(in_chans=1, encoder_widths=(8, 8, 16, 16), template_level=1, refine_hidden=16).eval()
    out = net(torch.rand(2, 1, 64, 64), _P(2))
    for v, f in out["meshes"][-1]:
        assert ops.euler_characteristic(v, f) == 2 and ops.nonmanifold_edge_ratio(f) == 0

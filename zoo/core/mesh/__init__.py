"""Triangle-mesh operations in plain torch (the pieces of pytorch3d the zoo needs: chamfer, area sampling, mesh
regularisers, subdivision, GraphConv, vert_align, icosphere, topology and metrics), and a small point-splat renderer.

Shared by the mesh-reconstruction paper (``zoo.meshrec``) and the 3D datamodules; pytorch3d has no Linux wheel here.
"""

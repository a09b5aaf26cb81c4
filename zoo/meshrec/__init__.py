"""Single-image mesh reconstruction: Vertex Generation Network, RL-trained triangulation layer and hierarchical
graph-convolution refinement (IBISC; full text unreachable, method reconstructed from the abstract)."""

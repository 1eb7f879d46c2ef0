"""NAS-Bench-101 space: validation, pruning, the benchmark's hash, sampler, channels, network.

Published numbers tested here and where they come from:

* hash ``00005c142e6f48ac74fdcf73e3439874`` and 8.55553 M trainable parameters of the
  cell ``NNI_EXAMPLE``: NNI's NAS-benchmark example notebook
  (microsoft/nni, docs/en_US/NAS/BenchmarksExample.ipynb, output of
  ``query_nb101_trial_stats``; NNI's database stores the benchmark's own hash and
  ``trainable_parameters / 1e6``). NASLib's tests/test_nb101_search_space.py also names
  this hash as one of the 423,624 in the data.
* 2,694,282 trainable parameters of the README's Inception-like cell: the output of
  ``nasbench.query`` in google-research/nasbench NASBench.ipynb ("Basic usage").
* unique cells by pruned vertex count 2: 1, 3: 6, 4: 84, 5: 2441 (of 423,624 in all):
  the per-size counts of the benchmark's hashes, as quoted in a public NNI-based
  script (``Counter({7: 359082, 6: 62010, 5: 2441, 4: 84, 3: 6, 2: 1})``), whose sum is
  the paper's 423,624.
* ``compute_vertex_channels`` cases: google-research/nasbench
  nasbench/tests/model_builder_test.py.
* which hash pairs must be equal or differ: google-research/nasbench
  nasbench/tests/graph_util_test.py (test_hash_module).
"""
import itertools
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from empirical.spaces import nb101

C3, C1, MP = nb101.OPS


def matrix_from_inputs(num_vertices, inputs):
    m = np.zeros((num_vertices, num_vertices), dtype=np.int8)
    for target, sources in inputs.items():
        for s in sources:
            m[s, target] = 1
    return m


# NNI's example: 'inputK' lists the sources of vertex K.
NNI_EXAMPLE = (
    matrix_from_inputs(7, {1: [0], 2: [1], 3: [2], 4: [0], 5: [0, 3, 4], 6: [2, 5]}),
    ["input", C3, MP, C3, C3, C1, "output"],
)
INCEPTION = (
    np.array([[0, 1, 1, 1, 0, 1, 0],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 1, 0, 0],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 1],
              [0, 0, 0, 0, 0, 0, 0]]),
    ["input", C1, C3, C3, C3, MP, "output"],
)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ published values


def test_published_hash_of_nni_example():
    assert nb101.spec_hash(*NNI_EXAMPLE) == "00005c142e6f48ac74fdcf73e3439874"


def test_published_parameter_counts():
    assert n_params(nb101.build(*NNI_EXAMPLE)) == 8_555_530  # published as 8.55553 M
    assert n_params(nb101.build(*INCEPTION)) == 2_694_282


def _unique_hashes_with(num_vertices):
    pairs = [(i, j) for j in range(num_vertices) for i in range(j)]
    keys = set()
    for bits in range(1 << len(pairs)):
        m = np.zeros((num_vertices, num_vertices), dtype=np.int8)
        for k, (i, j) in enumerate(pairs):
            m[i, j] = (bits >> k) & 1
        try:
            shape = nb101.spec(m, ["input", *[C3] * (num_vertices - 2), "output"])
        except ValueError:
            continue
        if shape.num_vertices != num_vertices:
            continue  # pruned to a smaller cell: counted with that size
        for labels in itertools.product(nb101.OPS, repeat=num_vertices - 2):
            keys.add(nb101.Spec(shape.matrix, ("input", *labels, "output")).hash())
    return len(keys)


def test_number_of_unique_cells_by_size_matches_the_benchmark():
    # Exhaustive over all matrices and labellings with 2..5 vertices: the hash must
    # partition them into exactly the benchmark's classes.
    assert [_unique_hashes_with(v) for v in (2, 3, 4, 5)] == [1, 6, 84, 2441]
    assert 359082 + 62010 + 2441 + 84 + 6 + 1 == 423_624


@pytest.mark.parametrize(
    "matrix, vin, vout, expected",
    [
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 8, [8, 8, 8, 8]),
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 16, [8, 16, 16, 16]),
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 16, 8, [16, 8, 8, 8]),
        ([[0, 1], [0, 0]], 1, 5, [1, 5]),
        ([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 16,
         [8, 16, 16, 16, 16]),
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 8, [8, 4, 4, 8]),
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 15, [8, 8, 7, 15]),
        ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 8,
         [8, 3, 3, 2, 8]),
        ([[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 9,
         [8, 5, 5, 4, 9]),
        ([[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 15,
         [8, 8, 7, 7, 15]),
    ],
)
def test_vertex_channels_match_the_benchmarks_tests(matrix, vin, vout, expected):
    assert nb101.compute_vertex_channels(vin, vout, np.array(matrix)) == expected


# ------------------------------------------------------------------------- hash


def test_hash_equalities_of_the_benchmarks_graph_util_tests():
    h = nb101.hash_module
    diamond = [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert h(diamond, [-1, 1, 2, -2]) == h(diamond, [-1, 2, 1, -2])
    m1 = [[0, 1, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    m2 = [[0, 1, 0, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    m3 = [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    l1, l2, l3 = [-1, 1, 2, 3, -2], [-1, 2, 3, 1, -2], [-1, 2, 1, 3, -2]
    assert h(m1, l1) == h(m2, l2) == h(m3, l3)
    assert h(m1, l2) != h(m1, l1) and h(m1, l3) != h(m1, l1)
    chain = [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]
    assert h(chain, [-1, 1, 0, 0, -2]) != h(chain, [-1, 0, 0, 1, -2])
    directed = [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert h(directed, [-1, 1, 0, -2]) != h(directed, [-1, 0, 1, -2])


def _permute(matrix, labels, perm):
    """Vertex v of the old graph becomes vertex perm[v]."""
    n = len(labels)
    new = np.zeros_like(matrix)
    new_labels = [None] * n
    for v in range(n):
        new_labels[perm[v]] = labels[v]
        for w in range(n):
            new[perm[v], perm[w]] = matrix[v, w]
    return new, new_labels


def test_hash_module_invariant_under_any_vertex_permutation():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(3, 12))
        matrix = rng.integers(0, 2, size=(n, n))  # any directed graph, self-loops included
        labels = [int(v) for v in rng.integers(0, 5, size=n)]
        perm = [int(v) for v in rng.permutation(n)]
        assert nb101.hash_module(matrix, labels) == nb101.hash_module(*_permute(matrix, labels, perm))


def _random_topological_order(matrix, rng):
    n = matrix.shape[0]
    placed, order = set(), []
    while len(order) < n:
        ready = [v for v in range(n) if v not in placed and all(u in placed for u in np.flatnonzero(matrix[:, v]))]
        v = ready[int(rng.integers(len(ready)))]
        placed.add(v)
        order.append(v)
    return order


def test_spec_hash_invariant_under_relabelling_that_keeps_the_matrix_upper_triangular():
    rng = np.random.default_rng(1)
    for s in nb101.sample(40, seed=3):
        matrix = s.array()
        order = _random_topological_order(matrix, rng)  # input first, output last
        perm = [order.index(v) for v in range(s.num_vertices)]
        new_matrix, new_ops = _permute(matrix, list(s.ops), perm)
        assert np.all(np.tril(new_matrix) == 0)
        assert nb101.spec_hash(new_matrix, new_ops) == s.hash()


def _isomorphic(a, b):
    if a.num_vertices != b.num_vertices or a.num_edges != b.num_edges:
        return False
    ma, mb = a.array(), b.array()
    n = a.num_vertices
    for interior in itertools.permutations(range(1, n - 1)):
        perm = [0, *interior, n - 1]
        pm, pops = _permute(ma, list(a.ops), perm)
        if np.array_equal(pm, mb) and tuple(pops) == b.ops:
            return True
    return False


def test_hash_equality_is_exactly_isomorphism_on_small_cells():
    # Independent route: exhaustive isomorphism tests on random pairs of 5-vertex cells.
    specs = nb101.sample(60, seed=5, num_vertices=5)
    rng = random.Random(0)
    # Add isomorphic copies so that both answers occur.
    copies = []
    for s in specs[:20]:
        order = _random_topological_order(s.array(), np.random.default_rng(rng.randrange(10**6)))
        perm = [order.index(v) for v in range(s.num_vertices)]
        m, ops = _permute(s.array(), list(s.ops), perm)
        copies.append(nb101.Spec(tuple(map(tuple, m.tolist())), tuple(ops)))
    pool = specs + copies
    same = 0
    for a, b in itertools.combinations(pool, 2):
        iso = _isomorphic(a, b)
        same += iso
        assert (a.hash() == b.hash()) == iso
    assert same >= 20


# ---------------------------------------------------------------- validation, pruning


@pytest.mark.parametrize(
    "matrix, ops, match",
    [
        ([[0, 1, 0], [0, 0, 1]], ["input", C3, "output"], "square"),
        ([[0, 2], [0, 0]], ["input", "output"], "0 or 1"),
        ([[0, 1], [1, 0]], ["input", "output"], "upper-triangular"),
        ([[1, 1], [0, 0]], ["input", "output"], "upper-triangular"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3], "one op per vertex"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv5x5-bn-relu", "output"], "unknown op 'conv5x5"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "output", "output"], "unknown op 'output'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [C3, C3, "output"], "first op must be 'input'"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, C3], "last op must be 'output'"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", C3, "output"], "disconnected"),
        ([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], ["input", C3, C3, "output"], "disconnected"),
        ([[0]], ["input"], "at least 2"),
        ([["a", "b"], ["c", "d"]], ["input", "output"], "0/1 numbers"),
    ],
)
def test_bad_specs_are_refused_with_the_problem_named(matrix, ops, match):
    with pytest.raises(ValueError, match=match):
        nb101.spec(matrix, ops)
    assert not nb101.is_valid(matrix, ops)


def _chain(n):
    return np.eye(n, k=1, dtype=np.int8)


def test_limits_on_vertices_and_edges():
    nb101.spec(_chain(7), ["input", *[C3] * 5, "output"])
    with pytest.raises(ValueError, match="8 vertices after pruning; NAS-Bench-101 allows at most 7"):
        nb101.spec(_chain(8), ["input", *[C3] * 6, "output"])
    full = np.triu(np.ones((7, 7), dtype=np.int8), 1)  # 21 edges
    with pytest.raises(ValueError, match="21 edges after pruning; NAS-Bench-101 allows at most 9"):
        nb101.spec(full, ["input", *[C1] * 5, "output"])
    # An 8-vertex matrix whose extra vertex is pruned is inside the space, as in the benchmark.
    m = np.zeros((8, 8), dtype=np.int8)
    path = [0, 1, 2, 4, 5, 6, 7]
    for a, b in zip(path, path[1:]):
        m[a, b] = 1
    m[2, 3] = 1  # vertex 3 reaches no output
    s = nb101.spec(m, ["input", *[C3] * 6, "output"])
    assert (s.num_vertices, s.num_edges) == (7, 6)


def test_pruning_drops_vertices_off_every_input_output_path():
    # Vertex 2 has no input; vertex 3 reaches no output; both go, with their edges.
    m = [[0, 1, 0, 0, 0],
         [0, 0, 0, 1, 1],
         [0, 0, 0, 0, 1],
         [0, 0, 0, 0, 0],
         [0, 0, 0, 0, 0]]
    s = nb101.spec(m, ["input", C3, C1, MP, "output"])
    assert s.ops == ("input", C3, "output")
    assert s.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert nb101.spec_hash(m, ["input", C3, C1, MP, "output"]) == nb101.spec_hash(
        [[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])


def test_pruned_spec_counts_edges_after_pruning():
    s = nb101.spec(*INCEPTION)
    assert s.num_vertices == 7 and s.num_edges == 9


# ---------------------------------------------------------------------- sampler


def test_sampler_is_deterministic_distinct_and_valid():
    a, b = nb101.sample(25, seed=11), nb101.sample(25, seed=11)
    assert a == b
    assert len({s.hash() for s in a}) == 25
    for s in a:
        assert nb101.spec(s.matrix, s.ops) == s
    assert a != nb101.sample(25, seed=12)
    assert nb101.sample(0, seed=0) == []
    assert {s.num_vertices for s in nb101.sample(10, seed=0, num_vertices=4)} <= {2, 3, 4}
    with pytest.raises(ValueError, match="k must be"):
        nb101.sample(-1, seed=0)
    with pytest.raises(ValueError, match="num_vertices must be"):
        nb101.sample(1, seed=0, num_vertices=8)


# ----------------------------------------------------------------- parameter counts


def test_chain_cell_param_count_default_size_by_hand():
    # input -> conv3x3 -> output; vertex 1 gets all c channels. Per cell from c_in to c:
    # projection 1x1 c_in*c + BN 2c, conv3x3 9c^2 + BN 2c. No biases in convs.
    stem = 3 * 128 * 9 + 2 * 128  # 3712
    stack0 = 3 * (128 * 128 + 256 + 9 * 128 * 128 + 256)  # 3 * 164352 = 493056
    stack1 = (128 * 256 + 512 + 9 * 256 * 256 + 512) + 2 * (256 * 256 + 512 + 9 * 256 * 256 + 512)
    # 623616 + 2 * 656384 = 1936384
    stack2 = (256 * 512 + 1024 + 9 * 512 * 512 + 1024) + 2 * (512 * 512 + 1024 + 9 * 512 * 512 + 1024)
    # 2492416 + 2 * 2623488 = 7739392
    head = 512 * 10 + 10  # 5130
    assert stem + stack0 + stack1 + stack2 + head == 10_177_674
    net = nb101.build([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C3, "output"])
    assert n_params(net) == 10_177_674


SPLIT = (np.array([[0, 1, 0, 0, 0],
                   [0, 0, 1, 1, 0],
                   [0, 0, 0, 0, 1],
                   [0, 0, 0, 0, 1],
                   [0, 0, 0, 0, 0]]), ["input", C3, C1, MP, "output"])


def test_split_cell_param_count_by_hand():
    # stem 9, one cell 9 -> 9: the output's 9 channels split 5 (vertex 2) + 4 (vertex 3),
    # vertex 1 takes max(5, 4) = 5. Projection 9->5: 45 + 10; conv3x3 5->5: 225 + 10;
    # conv1x1 5->5: 25 + 10; max pool: 0. Stem 3*9*9 + 18 = 261; head 9*10 + 10 = 100.
    net = nb101.build(*SPLIT, stem_channels=9, num_stacks=1, cells_per_stack=1)
    assert net.layers[0].vertex_channels == [9, 5, 5, 4, 9]
    assert n_params(net) == 261 + 55 + 235 + 35 + 100 == 686


def test_input_to_output_only_cell_is_a_projection():
    # 2 vertices: each cell is one 1x1 Conv-BN-ReLU. Stem 4: 3*4*9 + 8 = 116; stack0 two
    # cells 4->4: 2 * (16 + 8); pool; stack1 cells 4->8 (32 + 16) and 8->8 (64 + 16); head 8*3 + 3.
    net = nb101.build([[0, 1], [0, 0]], ["input", "output"], stem_channels=4, num_stacks=2,
                      cells_per_stack=2, num_classes=3)
    assert n_params(net) == 116 + 2 * 24 + 48 + 80 + 27


# ---------------------------------------------------------------- forward semantics


def _cbr(x, module):
    h = F.conv2d(x, module.conv.weight, padding=module.conv.padding)
    return F.relu(F.batch_norm(h, None, None, module.bn.weight, module.bn.bias, training=True, eps=module.bn.eps))


def test_split_cell_matches_functional_composition_with_truncation_and_concat():
    torch.manual_seed(0)
    net = nb101.build(*SPLIT, stem_channels=9, num_stacks=1, cells_per_stack=1).train()
    cell = net.layers[0]
    with torch.no_grad():
        for m in cell.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(3, 9, 6, 6)
    v1 = _cbr(_cbr(x, cell.projections[1]), cell.vertex_ops[1])
    v2 = _cbr(v1, cell.vertex_ops[2])  # 5 channels from a 5-channel source: no truncation
    v3 = F.max_pool2d(v1[:, :4], 3, stride=1, padding=1)  # 5 -> 4 channels: truncated
    torch.testing.assert_close(cell(x), torch.cat([v2, v3], dim=1))


def test_cell_adds_projected_input_when_input_feeds_output():
    m = [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]  # 0->1->2->out and 0->out
    torch.manual_seed(1)
    net = nb101.build(m, ["input", C1, MP, "output"], stem_channels=6, num_stacks=1, cells_per_stack=1).train()
    cell = net.layers[0]
    x = torch.randn(2, 6, 5, 5)
    v1 = _cbr(_cbr(x, cell.projections[1]), cell.vertex_ops[1])
    v2 = F.max_pool2d(v1, 3, stride=1, padding=1)
    torch.testing.assert_close(cell(x), v2 + _cbr(x, cell.projections[3]))


def test_network_shapes_downsampling_and_bn_settings():
    net = nb101.build(*INCEPTION, stem_channels=8, num_stacks=3, cells_per_stack=1, num_classes=7, in_channels=1)
    out = net(torch.randn(2, 1, 15, 15))  # 15 -> 8 -> 4 with ceil_mode, as TensorFlow's 'same'
    assert out.shape == (2, 7)
    pools = [m for m in net.layers if isinstance(m, torch.nn.MaxPool2d)]
    assert len(pools) == 2
    assert [m.vertex_channels[-1] for m in net.layers if isinstance(m, nb101.Cell)] == [8, 16, 32]
    for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        assert bn.momentum == pytest.approx(0.003) and bn.eps == 1e-5
    assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))


def test_build_accepts_a_spec_and_rejects_bad_sizes():
    s = nb101.spec(*INCEPTION)
    assert n_params(nb101.build(s)) == 2_694_282
    with pytest.raises(ValueError, match="stem_channels must be a positive integer"):
        nb101.build(*INCEPTION, stem_channels=0)
    with pytest.raises(ValueError, match="ops is required"):
        nb101.build(INCEPTION[0])
    with pytest.raises(ValueError, match="too small"):
        nb101.build(*INCEPTION, stem_channels=2)  # 4 vertices feed the output


def test_vmap_per_sample_grads_match_loop():
    torch.manual_seed(2)
    model = nb101.build(*SPLIT, stem_channels=6, num_stacks=2, cells_per_stack=1, num_classes=3).eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    x, y = torch.randn(3, 3, 8, 8), torch.tensor([0, 2, 1])

    def loss(p, xi, yi):
        return F.cross_entropy(functional_call(model, (p, buffers), (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        for k, p in model.named_parameters():
            torch.testing.assert_close(per_sample[k][i], p.grad)


def test_same_seed_same_weights():
    torch.manual_seed(4)
    a = nb101.build(*NNI_EXAMPLE, stem_channels=4, num_stacks=1, cells_per_stack=1)
    torch.manual_seed(4)
    b = nb101.build(*NNI_EXAMPLE, stem_channels=4, num_stacks=1, cells_per_stack=1)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)

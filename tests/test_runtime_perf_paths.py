"""The performance engineer's build-time decisions keep results and files unchanged: nodes
nobody reads are skipped at build (the export still writes them), Context.thread_num is the
session's BLAS thread count, the feature cache keyed by ArrayDataset indices trains as the
uncached model does."""

from __future__ import annotations

import numpy as np

from tests.test_lite_export import transfer_files
from tests.test_runtime_graphs import BATCH, IN, OUT, train_graph
from todkit import lite
from todkit.formats import ms
from todkit.opset import emit
from todkit.runtime.session import Session


def with_dead_transpose():
    g = train_graph("momentum")
    w = g.value("fc.weight")
    emit(g, "Transpose", [w], {"perm": (1, 0)}, name="fc.weight_post_perm")
    return g


def test_unread_nodes_are_skipped_and_the_rest_trains_the_same(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = rng.integers(0, OUT, BATCH).astype(np.int32)
    weights = []
    for g in (train_graph("momentum"), with_dead_transpose()):
        s = Session(g)
        assert all(n.op != "Transpose" for n in s.train.nodes)
        for v, a in zip(s.inputs, (x, y)):
            s.train.array(v)[...] = a
        for _ in range(3):
            s.run_step()
        weights.append(g.value("fc.weight").data.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    assert len(s.skipped_nodes) == 1
    # The file keeps the node: a train export writes the graph as it was read.
    ms.write(with_dead_transpose(), tmp_path / "t.ms")
    model = lite.Model()
    model.build_from_file(tmp_path / "t.ms", train_cfg=lite.TrainCfg())
    model.export(tmp_path / "out.ms")
    again = ms.read(tmp_path / "out.ms").graph
    assert [n.name for n in again.nodes if n.op == "Transpose"] == ["fc.weight_post_perm"]


def test_context_thread_num_is_the_sessions_blas_threads(tmp_path):
    ms.write(train_graph("sgd"), tmp_path / "t.ms")
    for ctx, want in ((None, 1), (lite.Context(), 1), (lite.Context(thread_num=2), 2)):
        model = lite.Model()
        model.build_from_file(tmp_path / "t.ms", context=ctx)
        assert model.session.blas_threads == want


def test_indexed_feature_cache_skips_the_data_and_matches_uncached(tmp_path):
    bb, head = transfer_files(tmp_path)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, OUT, 16).astype(np.int32)
    got = {}
    for cache in (False, True):
        model = lite.build_transfer_learning(bb, head, train_cfg=lite.TrainCfg(),
                                             feature_cache=cache)
        ds = lite.ArrayDataset(x, y, batch_size=BATCH, shuffle=True, seed=3)
        model.train(2, ds, [])
        if cache:  # later epochs never load the image input
            model._bb_input.set_data_from_numpy(np.full((BATCH, 5), np.nan, np.float32))
        model.train(2, ds, [])
        got[cache] = (model.head.session.graph.value("fc.weight").data.copy(),
                      model.backbone_runs)
    np.testing.assert_array_equal(got[True][0], got[False][0])
    assert got[False][1] == 4 * 8 and got[True][1] == 8

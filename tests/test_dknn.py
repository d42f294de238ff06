import json
import os

import numpy
import pytest

import dknn
import nets
import run_dknn
from toolkit import runs
import search
from errors import UserError


class FakeModel:
    """Stands in for a classifier where only activations matter."""
    layer_names = ['h1', 'h2']
    n_class = 2


def head(layers='all', k=3, backend='brute', scoring='conformity'):
    return dknn.DkNN(FakeModel(), dknn.Settings(
        layers=layers, k=k, backend=backend, scoring=scoring))


@pytest.mark.parametrize('backend', ['kdtree', 'faiss'])
def test_exact_backends_return_the_brute_neighbours(backend):
    """Every exact backend finds the same neighbours, apart from ties."""
    rng = numpy.random.RandomState(2)
    points = rng.randn(2000, 30).astype(numpy.float32)
    points[1000:1010] = points[0]          # ties: equal points
    queries = numpy.concatenate([rng.randn(200, 30), points[:3]]).astype('f')
    i_b, d_b = search.BruteIndex(points).query(queries, 25)
    i_x, d_x = search.BACKENDS[backend](points).query(queries, 25)
    # squared distances: sqrt magnifies float32 rounding near 0
    numpy.testing.assert_allclose(d_x ** 2, d_b ** 2, rtol=1e-4, atol=1e-3)
    for row_b, row_x, d in zip(i_b, i_x, d_b):
        # the same set, except among points at the k-th distance
        inside = d < d[-1] - 1e-4
        assert set(row_b[inside]) == set(row_x[inside])


@pytest.mark.parametrize('backend,options', [
    ('faiss-ivf', {'nlist': 16, 'nprobe': 4}),
    ('faiss-hnsw', {'M': 8, 'ef_search': 32})])
def test_approximate_faiss_backends_report_recall(run_copy, backend, options):
    flags = [['--nlist', '16', '--nprobe', '4'] if backend == 'faiss-ivf'
             else ['--hnsw-m', '8', '--ef-search', '32']][0]
    r = run_dknn.main(['--model-setup', run_copy, '--k', '5', '--backend',
                       backend] + flags)
    assert r['backend_options'] == options
    assert 0 < r['recall_at_k']['mlp1'] <= 1
    with pytest.raises(SystemExit, match='--nprobe 20 must be between 1 '
                                         'and --nlist 16'):
        run_dknn.main(['--model-setup', run_copy, '--k', '5', '--backend',
                       'faiss-ivf', '--nlist', '16', '--nprobe', '20'])
    with pytest.raises(SystemExit, match='--hnsw-m must be at least 2'):
        run_dknn.main(['--model-setup', run_copy, '--k', '5', '--backend',
                       'faiss-hnsw', '--hnsw-m', '1'])


def test_ivfpq_stores_codes_and_refines_to_high_recall():
    """Product-quantised candidates, ranked exactly: with every cell
    probed, recall@25 is high; its distances are exact ones."""
    rng = numpy.random.RandomState(4)
    centres = rng.randn(8, 32) * 3
    points = (centres[rng.randint(0, 8, 3000)] + rng.randn(3000, 32)
              ).astype(numpy.float32)
    queries = points[:100] + 0.1 * rng.randn(100, 32).astype('f')
    exact_idx, exact_d = search.BruteIndex(points).query(queries, 25)
    index = search.FaissIVFPQIndex(points, nlist=8, nprobe=8)
    assert index.pq_m == 8 and index.index.code_size == 8   # 32 dims / 4
    idx, dist = index.query(queries, 25)
    assert search.recall_at_k(idx, exact_idx) > 0.9
    same = idx == exact_idx
    numpy.testing.assert_allclose(dist[same], exact_d[same], rtol=1e-6)
    with pytest.raises(UserError, match='--pq-m 5 must divide'):
        search.FaissIVFPQIndex(points, nlist=8, nprobe=8, pq_m=5)
    with pytest.raises(UserError, match='at least 256 points'):
        search.FaissIVFPQIndex(points[:100], nlist=8, nprobe=8)


def test_brute_and_kdtree_return_identical_neighbours():
    rng = numpy.random.RandomState(0)
    points = rng.randn(3000, 40).astype(numpy.float32)
    queries = rng.randn(300, 40).astype(numpy.float32)
    brute = search.BruteIndex(points, max_bytes=1 << 20)  # forces chunking
    assert brute.chunk < len(queries)
    i_b, d_b = brute.query(queries, 75)
    i_k, d_k = search.KDTreeIndex(points).query(queries, 75)
    numpy.testing.assert_array_equal(i_b, i_k)
    numpy.testing.assert_allclose(d_b, d_k, rtol=1e-5)
    # nearest first, and truly the nearest
    assert (numpy.diff(d_b, axis=1) >= 0).all()
    full = numpy.linalg.norm(points[None] - queries[:5, None], axis=2)
    numpy.testing.assert_array_equal(i_b[:5], numpy.argsort(full, 1)[:, :75])


def test_lsh_honours_k_and_reports_recall():
    rng = numpy.random.RandomState(1)
    points = rng.randn(500, 8).astype(numpy.float32)
    queries = rng.randn(20, 8).astype(numpy.float32)
    lsh = search.LSHIndex(points, n_bits=3, n_tables=2)
    idx, dist = lsh.query(queries, 10)
    assert idx.shape == dist.shape == (20, 10)
    assert all(len(set(row)) == 10 for row in idx)
    exact, _ = search.BruteIndex(points).query(queries, 10)
    recall = search.recall_at_k(idx, exact)
    assert 0.3 < recall <= 1.0
    assert search.recall_at_k(exact, exact) == 1.0


def acts(layers, labels=None):
    """Precomputed activations: {name: (N, D)} and (N,) labels."""
    n = len(next(iter(layers.values())))
    labels = numpy.zeros(n, numpy.int32) if labels is None else labels
    return nets.Activations(numpy.zeros((n, 2), 'f'), layers,
                            numpy.asarray(labels, numpy.int32))


def test_separable_data_has_credibility_one():
    rng = numpy.random.RandomState(0)
    labels = numpy.repeat([0, 1], 50)
    layers = {name: (rng.rand(100, 4) + 10 * labels[:, None]).astype('f')
              for name in ('h1', 'h2')}
    for scoring in dknn.SCORINGS:
        h = head(k=5, scoring=scoring)
        h.fit(acts(layers, labels)).calibrate(acts(layers, labels))
        out = h.predict_activations(layers)
        numpy.testing.assert_array_equal(out.pred, labels)
        if scoring in dknn.PAPER:   # a unanimous vote; graded: a distance
            numpy.testing.assert_array_equal(out.credibility, 1.0)


def test_conformal_p_values_by_hand():
    """Five training points on a line, k=3, one layer."""
    train = {'h1': numpy.array([[0.], [1.], [2.], [10.], [11.]], 'f'),
             'h2': numpy.zeros((5, 1), 'f')}
    h = head(layers=['h1'], k=3, scoring='conformal')
    h.fit(acts(train, [0, 0, 1, 1, 1]))
    # calibration: x=0.5 (y=0): neighbours 0,1,2 -> labels 0,0,1 -> alpha 1
    #              x=10.5 (y=1): neighbours 3,4,2 -> 1,1,1 -> alpha 0
    #              x=1.6 (y=0): neighbours 2,1,0 -> 1,0,0 -> alpha 1
    #              x=9 (y=0): neighbours 3,4,2 -> 1,1,1 -> alpha 3
    calib = {'h1': numpy.array([[.5], [10.5], [1.6], [9.]], 'f'),
             'h2': numpy.zeros((4, 1), 'f')}
    h.calibrate(acts(calib, [0, 1, 0, 0]))
    assert sorted(h.calib_nonconformity.tolist()) == [0, 1, 1, 3]
    # test x=1.4: neighbours 1,2,0 -> labels 0,1,0: alpha(0)=1, alpha(1)=2
    # p(0) = #{s >= 1}/4 = 3/4, p(1) = #{s >= 2}/4 = 1/4
    query = {'h1': numpy.array([[1.4]], 'f')}
    out = h.predict_activations(query)
    numpy.testing.assert_allclose(out.scores, [[0.75, 0.25]])
    assert out.pred[0] == 0
    assert out.credibility[0] == 0.75 and out.confidence[0] == 0.75
    # conformity: shares of the 3 neighbours
    conf = h.with_scoring('conformity').predict_activations(query)
    numpy.testing.assert_allclose(conf.scores, [[2 / 3, 1 / 3]])
    idx, dist, lab = conf.neighbours['h1']
    assert idx.tolist() == [[1, 2, 0]] and lab.tolist() == [[0, 1, 0]]
    numpy.testing.assert_allclose(dist, [[0.4, 0.6, 1.4]], rtol=1e-6)
    assert h.scoring == 'conformal'   # the copy did not change it


def test_all_layers_pool_their_votes():
    train = {'h1': numpy.array([[0.], [1.], [5.]], 'f'),
             'h2': numpy.array([[5.], [1.], [0.]], 'f')}
    h = head(layers='all', k=1).fit(acts(train, [0, 1, 1]))
    out = h.predict_activations({'h1': numpy.array([[0.1]], 'f'),
                                 'h2': numpy.array([[0.1]], 'f')})
    assert out.counts.tolist() == [[1, 1]]  # h1 votes 0, h2 votes 1


def test_bad_settings():
    with pytest.raises(dknn.DkNNError, match='unknown layer nope.*h1, h2'):
        head(layers=['nope'])
    five = acts({'h1': numpy.zeros((5, 2), 'f'),
                 'h2': numpy.zeros((5, 2), 'f')})
    with pytest.raises(dknn.DkNNError, match='larger than'):
        head(k=10).fit(five)
    with pytest.raises(dknn.DkNNError, match='calibration set is empty'):
        head(k=1).fit(five).calibrate(acts({'h1': numpy.zeros((0, 2), 'f'),
                                            'h2': numpy.zeros((0, 2), 'f')}))
    with pytest.raises(dknn.DkNNError, match='needs calibrate'):
        head(k=1, scoring='conformal').fit(five).predict_activations(
            five.layers)


def test_run_dknn_end_to_end(run_copy):
    results = run_dknn.main(['--model-setup', run_copy, '--k', '5'])
    folder = os.path.dirname(run_copy)
    saved = json.load(open(os.path.join(folder, 'dknn_results.json')))
    assert saved == json.loads(json.dumps(results))
    assert saved['k'] == 5 and saved['layers'] == ['mlp1']
    assert set(saved['seconds']) == {'build', 'calibrate', 'evaluate'}
    # the numbers are recomputed from the per-example file and the model
    cred = numpy.load(os.path.join(folder, 'dknn_credibility.npz'))
    labels = cred['labels']
    for s in dknn.PAPER:
        pred = cred[s + '_pred']
        assert saved[s]['accuracy'] == pytest.approx((pred == labels).mean())
        right = pred == labels
        assert saved[s]['credibility_correct'] == pytest.approx(
            cred[s + '_credibility'][right].mean())
    run = runs.load(run_copy)
    test = nets.predict_dataset(run.model, run.splits.test, None)
    softmax_pred = test.logits.argmax(axis=1)
    assert saved['softmax']['accuracy'] == pytest.approx(
        (softmax_pred == labels).mean())
    assert saved['conformity']['agreement_with_softmax'] == pytest.approx(
        (cred['conformity_pred'] == softmax_pred).mean())
    # the DkNN answer is a vote of the 5 nearest training examples
    train = nets.predict_dataset(run.model, run.splits.train, None)
    d = numpy.linalg.norm(test.layers['mlp1'][:, None] -
                          train.layers['mlp1'][None], axis=2)
    votes = train.labels[numpy.argsort(d, axis=1, kind='stable')[:, :5]]
    assert ((votes == cred['conformity_pred'][:, None]).sum(1) >=
            (votes != cred['conformity_pred'][:, None]).sum(1)).all()
    # a second run reuses the cached forward passes, other settings too
    stamp = os.path.getmtime(os.path.join(folder, 'activations',
                                          'train.logits.npy'))
    again = run_dknn.main(['--model-setup', run_copy, '--k', '5'])
    assert again['conformal'] == results['conformal']
    alls = run_dknn.main(['--model-setup', run_copy, '--k', '5', '--layers',
                          'all', '--backend', 'kdtree', '--scoring',
                          'conformity'])
    assert alls['layers'] == ['cnn', 'mlp1'] and 'conformal' not in alls
    assert os.path.getmtime(os.path.join(folder, 'activations',
                                         'train.logits.npy')) == stamp
    lsh = run_dknn.main(['--model-setup', run_copy, '--k', '5', '--lsh'])
    assert lsh['backend'] == 'lsh' and 0 < lsh['recall_at_k']['mlp1'] <= 1


def fails(argv, match):
    with pytest.raises(SystemExit, match=match):
        run_dknn.main(argv)


def test_run_dknn_bad_input(run_copy, tmp_path):
    fails(['--model-setup', run_copy, '--k', '100000'],
          'error: k=100000 is larger than')
    fails(['--model-setup', run_copy, '--layers', 'lstm9'],
          'error: unknown layer lstm9')
    fails(['--model-setup', str(tmp_path / 'args.json')], 'no such file')
    setup = json.load(open(run_copy))
    setup['model_path'] = 'gone.npz'
    with open(run_copy, 'w') as f:
        json.dump(setup, f)
    fails(['--model-setup', run_copy], 'gone.npz: missing')


def test_k_in_total_splits_the_neighbours_over_the_layers():
    train = {'h1': numpy.array([[0.], [1.], [2.], [9.]], 'f'),
             'h2': numpy.array([[9.], [2.], [1.], [0.]], 'f')}
    per_layer = head(layers='all', k=2).fit(acts(train, [0, 0, 1, 1]))
    total = dknn.DkNN(FakeModel(), dknn.Settings(layers='all', k=4, pool='total')).fit(
        acts(train, [0, 0, 1, 1]))
    assert (per_layer.n_votes, total.k, total.n_votes) == (4, 2, 4)
    query = {'h1': numpy.array([[0.1]], 'f'), 'h2': numpy.array([[0.1]], 'f')}
    # h1: points 0, 1 (labels 0, 0); h2: points 3, 2 (labels 1, 1)
    assert total.predict_activations(query).counts.tolist() == [[2, 2]]
    with pytest.raises(dknn.DkNNError, match='unknown pool'):
        dknn.DkNN(FakeModel(), dknn.Settings(layers='all', k=4, pool='each'))


def test_faiss_missing_is_one_line(run_copy, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'faiss', None)   # import fails
    with pytest.raises(SystemExit, match='error: the faiss backends need the '
                                         'faiss-cpu package: pip install'):
        run_dknn.main(['--model-setup', run_copy, '--k', '5', '--backend',
                       'faiss'])


def test_faiss_index_holds_one_float32_copy(tmp_path, monkeypatch):
    """The default backend fills faiss's storage in place, a chunk at a
    time, from memory-mapped float16 activations: exactly N x D float32,
    and the brute neighbours."""
    rng = numpy.random.RandomState(4)
    path = str(tmp_path / 'layer.npy')
    numpy.save(path, rng.randn(1000, 24).astype(numpy.float16))
    points = numpy.load(path, mmap_mode='r')
    monkeypatch.setattr(search.FaissIndex, 'chunk_bytes', 300 * 24 * 4)  # 4
    index = search.BACKENDS[search.DEFAULT](points)
    assert search.DEFAULT == 'faiss'
    assert index.index.ntotal == 1000
    assert index.index.codes.size() == 1000 * 24 * 4
    queries = rng.randn(50, 24).astype(numpy.float32)
    i_f, d_f = index.query(queries, 7)
    i_b, d_b = search.BruteIndex(points).query(queries, 7)
    numpy.testing.assert_array_equal(i_f, i_b)
    numpy.testing.assert_array_equal(d_f, d_b)


def test_brute_index_memory_stays_near_the_activations():
    """The index holds only the points' norms beyond the activations, and a
    search's scratch stays under max_bytes (tracemalloc)."""
    import tracemalloc
    rng = numpy.random.RandomState(3)
    points = (rng.randn(20000, 64) + 5).astype(numpy.float32)   # 4.9 MiB
    queries = (rng.randn(300, 64) + 5).astype(numpy.float32)
    budget = 2 << 20
    tracemalloc.start()
    index = search.BruteIndex(points, max_bytes=budget)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    idx, _ = index.query(queries, 10)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert held <= 0.25 * points.nbytes          # index <= 1.25x activations
    assert peak - held <= budget + 300 * 64 * 8  # scratch, plus the queries
    exact = numpy.argsort(((points[None] - queries[:5, None]) ** 2).sum(-1),
                          axis=1, kind='stable')[:, :10]
    numpy.testing.assert_array_equal(idx[:5], exact)


def test_share_cores_divides_the_machine_between_ranks():
    """Ranks on one machine split its cores for faiss and BLAS."""
    import faiss
    from threadpoolctl import threadpool_info
    try:
        threads = search.share_cores(2)
        assert threads == max(1, (os.cpu_count() or 1) // 2)
        assert faiss.omp_get_max_threads() == threads
        assert all(p['num_threads'] <= threads for p in threadpool_info())
    finally:
        search.share_cores(1)

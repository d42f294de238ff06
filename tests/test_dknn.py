import json
import os

import numpy
import pytest

import dknn
import run_dknn
import runs
from cli import UserError


class FakeModel:
    """Stands in for a classifier where only activations matter."""
    layer_names = ['h1', 'h2']
    n_class = 2


def head(layers='all', k=3, backend='brute', scoring='conformity'):
    return dknn.DkNN(FakeModel(), layers, k, backend, scoring)


def test_brute_and_kdtree_return_identical_neighbours():
    rng = numpy.random.RandomState(0)
    points = rng.randn(3000, 40).astype(numpy.float32)
    queries = rng.randn(300, 40).astype(numpy.float32)
    brute = dknn.BruteIndex(points, max_bytes=1 << 20)  # forces chunking
    assert brute.chunk < len(queries)
    i_b, d_b = brute.query(queries, 75)
    i_k, d_k = dknn.KDTreeIndex(points).query(queries, 75)
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
    lsh = dknn.LSHIndex(points, n_bits=3, n_tables=2)
    idx, dist = lsh.query(queries, 10)
    assert idx.shape == dist.shape == (20, 10)
    assert all(len(set(row)) == 10 for row in idx)
    exact, _ = dknn.BruteIndex(points).query(queries, 10)
    recall = dknn.recall_at_k(idx, exact)
    assert 0.3 < recall <= 1.0
    assert dknn.recall_at_k(exact, exact) == 1.0


def test_separable_data_has_credibility_one():
    rng = numpy.random.RandomState(0)
    labels = numpy.repeat([0, 1], 50)
    acts = {name: (rng.rand(100, 4) + 10 * labels[:, None]).astype('f')
            for name in ('h1', 'h2')}
    for scoring in dknn.SCORINGS:
        h = head(k=5, scoring=scoring)
        h.set_training(acts, labels)
        h.set_calibration(acts, labels)
        out = h.score(numpy.zeros((100, 2), 'f'), acts)
        numpy.testing.assert_array_equal(out.pred, labels)
        numpy.testing.assert_array_equal(out.credibility, 1.0)


def test_conformal_p_values_by_hand():
    """Five training points on a line, k=3, one layer."""
    train = {'h1': numpy.array([[0.], [1.], [2.], [10.], [11.]], 'f'),
             'h2': numpy.zeros((5, 1), 'f')}
    labels = numpy.array([0, 0, 1, 1, 1])
    h = head(layers=['h1'], k=3, scoring='conformal')
    h.set_training(train, labels)
    # calibration: x=0.5 (y=0): neighbours 0,1,2 -> labels 0,0,1 -> alpha 1
    #              x=10.5 (y=1): neighbours 3,4,2 -> 1,1,1 -> alpha 0
    #              x=1.6 (y=0): neighbours 2,1,0 -> 1,0,0 -> alpha 1
    #              x=9 (y=0): neighbours 3,4,2 -> 1,1,1 -> alpha 3
    calib = {'h1': numpy.array([[.5], [10.5], [1.6], [9.]], 'f'),
             'h2': numpy.zeros((4, 1), 'f')}
    h.set_calibration(calib, numpy.array([0, 1, 0, 0]))
    assert sorted(h.calib_scores.tolist()) == [0, 1, 1, 3]
    # test x=1.4: neighbours 1,2,0 -> labels 0,1,0: alpha(0)=1, alpha(1)=2
    # p(0) = #{s >= 1}/4 = 3/4, p(1) = #{s >= 2}/4 = 1/4
    out = h.score(numpy.zeros((1, 2), 'f'), {'h1': numpy.array([[1.4]], 'f')})
    numpy.testing.assert_allclose(out.scores, [[0.75, 0.25]])
    assert out.pred[0] == 0
    assert out.credibility[0] == 0.75 and out.confidence[0] == 0.75
    # conformity on the same search: shares of the 3 neighbours
    conf = h.score(numpy.zeros((1, 2), 'f'), {'h1': numpy.array([[1.4]], 'f')},
                   scoring='conformity')
    numpy.testing.assert_allclose(conf.scores, [[2 / 3, 1 / 3]])
    idx, dist, lab = conf.neighbours['h1']
    assert idx.tolist() == [[1, 2, 0]] and lab.tolist() == [[0, 1, 0]]


def test_all_layers_pool_their_votes():
    train = {'h1': numpy.array([[0.], [1.], [5.]], 'f'),
             'h2': numpy.array([[5.], [1.], [0.]], 'f')}
    h = head(layers='all', k=1)
    h.set_training(train, numpy.array([0, 1, 1]))
    out = h.score(numpy.zeros((1, 2), 'f'), {'h1': numpy.array([[0.1]], 'f'),
                                             'h2': numpy.array([[0.1]], 'f')})
    assert out.counts.tolist() == [[1, 1]]  # h1 votes 0, h2 votes 1


def test_bad_settings():
    with pytest.raises(dknn.DkNNError, match='unknown layer nope.*h1, h2'):
        head(layers=['nope'])
    with pytest.raises(dknn.DkNNError, match='larger than'):
        head(k=10).set_training({'h1': numpy.zeros((5, 2), 'f'),
                                 'h2': numpy.zeros((5, 2), 'f')},
                                numpy.zeros(5))
    with pytest.raises(dknn.DkNNError, match='calibration set is empty'):
        h = head(k=1)
        h.set_training({'h1': numpy.zeros((5, 2), 'f'),
                        'h2': numpy.zeros((5, 2), 'f')}, numpy.zeros(5))
        h.set_calibration({'h1': numpy.zeros((0, 2), 'f'),
                           'h2': numpy.zeros((0, 2), 'f')}, numpy.zeros(0))


def test_run_dknn_end_to_end(run_copy):
    tiny_run = run_copy
    results = run_dknn.main(['--model-setup', tiny_run, '--k', '5',
                             '--rebuild'])
    run = os.path.dirname(tiny_run)
    saved = json.load(open(os.path.join(run, 'dknn_results.json')))
    assert saved['k'] == 5 and saved['layers'] == ['mlp1']
    for s in ('conformity', 'conformal'):
        assert 0 <= saved[s]['accuracy'] <= 1
        assert 0 <= saved[s]['agreement_with_softmax'] <= 1
    assert saved['softmax']['accuracy'] == results['softmax']['accuracy']
    assert set(saved['seconds']) == {'build', 'calibrate', 'evaluate'}
    assert os.path.exists(os.path.join(run, 'dknn_index.npz'))
    # a second run loads the saved index and gives the same answers
    again = run_dknn.main(['--model-setup', tiny_run, '--k', '5'])
    assert again['conformal'] == results['conformal']
    assert again['seconds']['calibrate'] == 0.0
    # other layers and backends reuse it too
    alls = run_dknn.main(['--model-setup', tiny_run, '--k', '5', '--layers',
                          'all', '--backend', 'kdtree', '--scoring',
                          'conformity'])
    assert alls['layers'] == ['cnn', 'mlp1'] and 'conformal' not in alls
    lsh = run_dknn.main(['--model-setup', tiny_run, '--k', '5', '--lsh'])
    assert lsh['backend'] == 'lsh' and 0 < lsh['lsh_recall_at_k']['mlp1'] <= 1


def test_saved_index_round_trips_and_refuses_another_model(tiny_run,
                                                           tmp_path):
    run = runs.load(tiny_run)
    model, splits = run.model, run.splits
    h = dknn.DkNN(model, 'all', k=4, scoring='conformal').fit(splits.train)
    h.calibrate(splits.calib)
    path = str(tmp_path / 'index.npz')
    with open(path, 'wb') as f:
        h.save(f, run.model_sha256)
    h2 = dknn.DkNN(model, 'all', k=4, scoring='conformal').load(
        path, run.model_sha256)
    numpy.testing.assert_array_equal(h.calib_scores, h2.calib_scores)
    a, _ = h.predict_dataset(splits.test)
    b, _ = h2.predict_dataset(splits.test)
    numpy.testing.assert_array_equal(a.scores, b.scores)
    with pytest.raises(dknn.DkNNError, match='another model'):
        dknn.DkNN(model, 'all', k=4).load(path, '0' * 64)
    # a foreign archive (the model itself) and a truncated one
    with pytest.raises(dknn.DkNNError, match='not a DkNN index.*--rebuild'):
        dknn.DkNN(model, 'all', k=4).load(run.model_path, run.model_sha256)
    with open(path, 'rb') as f:
        head = f.read(200)
    with open(path, 'wb') as f:
        f.write(head)
    with pytest.raises(UserError, match='index.npz: not a valid .npz.*'
                                        '--rebuild'):
        dknn.DkNN(model, 'all', k=4).load(path, run.model_sha256)


def fails(argv, match):
    with pytest.raises(SystemExit, match=match):
        run_dknn.main(argv)


def test_run_dknn_bad_input(run_copy, tmp_path):
    fails(['--model-setup', run_copy, '--k', '100000', '--rebuild'],
          'error: k=100000 is larger than')
    fails(['--model-setup', run_copy, '--layers', 'lstm9'],
          'error: unknown layer lstm9')
    fails(['--model-setup', str(tmp_path / 'args.json')], 'no such file')
    setup = json.load(open(run_copy))
    setup['model_path'] = 'gone.npz'
    with open(run_copy, 'w') as f:
        json.dump(setup, f)
    fails(['--model-setup', run_copy], 'gone.npz: missing')

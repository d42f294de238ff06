"""The relevance metrics (toolkit/relevance.py): a planted neighbour comes
first under every metric, the gradient cosine is Chainer's backward pass,
random weights change the ranking, and the top k agrees with the full
ranking."""
import numpy
import pytest

import chainer
import chainer.functions as F

import nets
from toolkit import relevance
from toolkit import runs

METRICS = [m for m in relevance.METRICS if m != 'random']


def planted(rng, n=40, j=17):
    """Training points on the unit circle in both layers, logits from a
    fixed map; a query that is point j itself (same label as predicted)."""
    angles = rng.rand(n) * 2 * numpy.pi
    h = numpy.stack([numpy.cos(angles), numpy.sin(angles)], 1).astype('f')
    W = numpy.array([[2., -1.], [-1., 2.]], 'f')
    logits = h @ W.T
    labels = logits.argmax(axis=1)
    train = relevance.Inputs({'h1': 3 * h, 'h2': h}, logits, labels)
    query = relevance.Inputs({'h1': 3 * h[[j]], 'h2': h[[j]]}, logits[[j]],
                             labels[[j]])
    return train, query


@pytest.mark.parametrize('name', METRICS)
def test_the_planted_neighbour_is_most_relevant(name):
    train, query = planted(numpy.random.RandomState(0))
    rel = relevance.Relevance(name, train, 'h2')
    top, score = rel.top(query, 3)
    assert top[0, 0] == 17
    full = rel.scores(query)[0]
    assert int(numpy.argmax(full)) == 17
    numpy.testing.assert_allclose(full[top[0]], score[0], rtol=1e-4,
                                  atol=1e-5)


def test_the_random_baseline_is_a_permutation():
    train, query = planted(numpy.random.RandomState(0))
    top, _ = relevance.Relevance('random', train, 'h2').top(query, 40)
    assert sorted(top[0]) == list(range(40))


def gradient(model, x, y):
    """The output layer's loss gradient, by Chainer's backward pass."""
    model.cleargrads()
    with chainer.using_config('train', False):
        loss = F.softmax_cross_entropy(model.logits([x]),
                                       numpy.array([y], numpy.int32))
    loss.backward()
    return numpy.concatenate([model.output.W.grad.ravel(),
                              model.output.b.grad.ravel()])


def test_gradient_cosine_is_chainers_backward_pass(tiny_run):
    run = runs.load(tiny_run)
    train = run.forward('train')
    test = run.forward('test')
    rel = relevance.Relevance('grad-cos', relevance.train_inputs(train),
                              run.model.layer_names[-1])
    queries = relevance.test_inputs(test)
    got = rel.scores(queries)                                 # (B, N)
    for b in range(3):
        g = gradient(run.model, run.splits.test[b][0], queries.labels[b])
        for i in range(0, len(train.labels), 7):
            x, y = run.splits.train[i]
            h = gradient(run.model, x, int(y[0]))
            want = g @ h / (numpy.linalg.norm(g) * numpy.linalg.norm(h))
            assert got[b, i] == pytest.approx(want, abs=1e-5)


def test_random_weights_change_the_ranking(tiny_run):
    run = runs.load(tiny_run)
    train = relevance.train_inputs(run.forward('train'))
    queries = relevance.test_inputs(run.forward('test'))
    numpy.random.seed(123)
    model = nets.build_model(run.setup)
    r_train = relevance.train_inputs(nets.predict_dataset(
        model, run.examples('train'), None))
    r_queries = relevance.test_inputs(nets.predict_dataset(
        model, run.examples('test'), None))
    import sys
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..',
                                    'bench'))
    import neighbour_tests
    last = run.model.layer_names[-1]
    for name in ('grad-cos', 'l2', 'cos-all'):
        rho = neighbour_tests.spearman_rows(
            relevance.Relevance(name, train, last).scores(queries),
            relevance.Relevance(name, r_train, last).scores(r_queries))
        assert rho.mean() < 0.9, name
    same = neighbour_tests.spearman_rows(
        relevance.Relevance('l2', train, last).scores(queries),
        relevance.Relevance('l2', train, last).scores(queries))
    numpy.testing.assert_allclose(same, 1.0)   # the statistic can reach 1

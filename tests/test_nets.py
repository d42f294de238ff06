import chainer
import numpy
import pytest

import nets

V, E, U = 12, 6, 9


def make(model, n_layers=2, pair=False, dtype=numpy.float32):
    setup = {'model': model, 'n_vocab': V, 'n_embed': E, 'unit': U,
             'layer': n_layers, 'dropout': 0.1, 'n_class': 3, 'pair': pair}
    numpy.random.seed(0)
    with chainer.using_config('dtype', dtype):
        return nets.build_model(setup)


def sentences(lengths, seed=0):
    rng = numpy.random.RandomState(seed)
    return [rng.randint(0, V, n).astype(numpy.int32) for n in lengths]


EXPECTED_LAYERS = {
    'cnn': [('cnn', 9), ('mlp1', U), ('mlp2', U)],
    'rnn': [('lstm1', U), ('lstm2', U)],
    'bilstm': [('bilstm1', 2 * U), ('bilstm2', 2 * U)],
    'bow': [('bow', E), ('mlp1', U), ('mlp2', U)],
}


@pytest.mark.parametrize('model', sorted(EXPECTED_LAYERS))
def test_encoder_shapes_and_layers(model):
    clf = make(model)
    xs = sentences([1, 4, 7])
    logits, layers = clf.predict(xs)
    assert logits.shape == (3, 3)
    assert [(k, v.shape) for k, v in layers.items()] == \
        [(k, (3, d)) for k, d in EXPECTED_LAYERS[model]]
    assert clf.layer_names == [k for k, _ in EXPECTED_LAYERS[model]]
    assert clf.logits(xs).shape == (3, 3)


@pytest.mark.parametrize('model', sorted(EXPECTED_LAYERS))
def test_predictions_do_not_depend_on_the_batch(model):
    clf = make(model)
    xs = sentences([2, 9, 5])
    together, layers = clf.predict(xs)
    for i, x in enumerate(xs):
        alone, alone_layers = clf.predict([x])
        numpy.testing.assert_allclose(alone[0], together[i], atol=1e-5)
        for name in layers:
            numpy.testing.assert_allclose(alone_layers[name][0],
                                          layers[name][i], atol=1e-5)


@pytest.mark.parametrize('model', ['cnn', 'bow', 'bilstm'])
def test_snli_classifier(model):
    clf = make(model, pair=True)
    pairs = list(zip(sentences([3, 5]), sentences([2, 6], seed=1)))
    logits, layers = clf.predict(pairs)
    enc = clf.encoder.out_units
    assert logits.shape == (2, 3)
    assert [(k, v.shape) for k, v in layers.items()] == \
        [('features', (2, 4 * enc)), ('mlp1', (2, U)), ('mlp2', (2, U))]
    # the features are [u, v, |u - v|, u * v]
    f = layers['features']
    u, v = f[:, :enc], f[:, enc:2 * enc]
    numpy.testing.assert_allclose(f[:, 2 * enc:3 * enc], abs(u - v), atol=1e-6)
    numpy.testing.assert_allclose(f[:, 3 * enc:], u * v, atol=1e-6)
    grads, embs = clf.embedding_gradients(pairs)
    assert [(g.shape, h.shape) for g, h in grads] == [((3, E), (2, E)),
                                                        ((5, E), (6, E))]


def loss_of(clf, x, y, emb):
    """Loss of one sentence given its embedding matrix (L, E)."""
    with chainer.using_config('train', False):
        logits, _ = clf.forward_embedded([chainer.Variable(emb)])
        return float(chainer.functions.softmax_cross_entropy(
            logits, numpy.array([y], numpy.int32)).array)


@pytest.mark.parametrize('model', sorted(EXPECTED_LAYERS))
def test_embedding_gradient_equals_finite_difference(model):
    clf = make(model, dtype=numpy.float64)
    xs = sentences([4, 6])
    ys = numpy.array([0, 2], numpy.int32)
    grads, embs = clf.embedding_gradients(xs, ys)
    eps = 1e-6
    for i in range(2):
        assert grads[i].shape == (len(xs[i]), E)
        numpy.testing.assert_array_equal(embs[i],
                                         clf.encoder.embed.W.array[xs[i]])
        for t, k in [(0, 0), (len(xs[i]) - 1, E - 1), (1, 3)]:
            plus, minus = embs[i].copy(), embs[i].copy()
            plus[t, k] += eps
            minus[t, k] -= eps
            fd = (loss_of(clf, xs[i], ys[i], plus) -
                  loss_of(clf, xs[i], ys[i], minus)) / (2 * eps)
            assert grads[i][t, k] == pytest.approx(fd, rel=1e-4, abs=1e-8)


def test_cnn_widths_set_the_filters():
    setup = {'model': 'cnn', 'n_vocab': 10, 'n_embed': 4, 'unit': 12,
             'layer': 1, 'dropout': 0.0, 'n_class': 2, 'widths': [2, 7]}
    model = nets.build_model(setup)
    convs = list(model.encoder.convs)
    assert [c.W.shape[2] for c in convs] == [2, 7]
    assert [c.W.shape[0] for c in convs] == [6, 6]   # 12 // 2 each
    x = numpy.array([1, 2, 3, 0], numpy.int32)
    _, layers = model.predict([x])
    assert layers['cnn'].shape == (1, 12)


@pytest.mark.parametrize('model', ['cnn', 'bilstm'])
def test_predict_inputs_answers_in_input_order(model):
    """Batches are formed from inputs of similar lengths; the answers come
    back in the order of the inputs."""
    clf = make(model)
    xs = sentences([9, 2, 7, 3, 8, 1, 5])
    logits, layers = nets.predict_inputs(clf, xs, None, batchsize=2)
    for i, x in enumerate(xs):
        alone, alone_layers = clf.predict([x])
        numpy.testing.assert_allclose(logits[i], alone[0], atol=1e-5)
        for name in layers:
            numpy.testing.assert_allclose(layers[name][i],
                                          alone_layers[name][0], atol=1e-5)


def test_embedding_gradients_can_return_their_logits():
    clf = make('cnn')
    xs = sentences([4, 6, 2])
    grads, embs, logits = clf.embedding_gradients(xs, with_logits=True)
    numpy.testing.assert_allclose(logits, clf.predict(xs)[0], atol=1e-5)
    assert [g.shape for g in grads] == [e.shape for e in embs]

"""Which training examples explain a prediction? Relevance metrics, one
registry (:data:`METRICS`), after Hanawa, Yokoi, Hara & Inui (2021),
"Evaluation of similarity-based explanations" (ICLR).

Each metric scores every training example for a test input, higher = more
relevant. Each is an embedding of the training and test inputs and a
similarity between embeddings (an inner product, or minus the L2
distance), so its top k comes from one faiss search (:class:`Relevance`)
and its full ranking from one matrix product (:meth:`Relevance.scores`):

* ``l2``, ``cos``, ``dot``: the last hidden layer (``l2`` is the DkNN's and
  the paper's neighbours);
* ``l2-all``, ``cos-all``: every hidden layer, each centred and scaled to
  unit root-mean-square norm on the training set, concatenated;
* ``grad-cos``: the cosine of the loss gradients of the output layer, the
  test input's against its predicted label, a training example's against
  its own. The output layer maps the last hidden layer h to logits
  W h + b, so the gradient of the cross-entropy is (p - y) [h; 1]^T, an
  outer product: the gradients' inner product is
  ((p - y) . (p' - y')) ([h; 1] . [h'; 1]), the inner product of the
  Kronecker products (p - y) (x) [h; 1]; their cosine needs no backward
  pass per pair, only those (C (D + 1))-vectors, normalised;
* ``graded``: the graded DkNN's class-conditional neighbours: the nearest
  (L2, last layer) among the training examples of the predicted label;
* ``random``: a random ranking, the baseline.
"""
from dataclasses import dataclass

import numpy

import search
from toolkit import metrics

DEFAULT = 'grad-cos'   # passes the three tests best (RESULTS.md)
PAPER = 'l2'           # the paper's neighbours


@dataclass(frozen=True)
class Metric:
    """A relevance metric: its title and how it embeds the inputs."""
    title: str
    embed: object          # (Inputs, which) -> (N, E) float32
    similarity: str        # 'ip' or 'l2'
    by_label: bool = False


@dataclass
class Inputs:
    """What the metrics read of N inputs: every hidden layer (name ->
    (N, D)), the logits (N, C), and the label each one's gradient is taken
    against (the training label; a test input's prediction)."""
    layers: dict
    logits: numpy.ndarray
    labels: numpy.ndarray


def _last(inputs, stats):
    return numpy.asarray(inputs.layers[stats['last']], numpy.float32)


def _unit(x):
    x = numpy.asarray(x, numpy.float32)
    return x / numpy.maximum(numpy.linalg.norm(x, axis=1, keepdims=True),
                             1e-12)


def _all_layers(inputs, stats):
    """Every layer centred and scaled by its training RMS norm."""
    return numpy.concatenate([
        (numpy.asarray(inputs.layers[n], numpy.float32) - m) / s
        for n, (m, s) in stats['layers'].items()], axis=1)


def _gradients(inputs, stats):
    """(N, C (D + 1)) the output layer's loss gradients, flattened:
    (p - y) (x) [h; 1]."""
    h = _last(inputs, stats)
    h1 = numpy.concatenate([h, numpy.ones((len(h), 1), numpy.float32)], 1)
    delta = metrics.softmax(numpy.asarray(inputs.logits, numpy.float64))
    delta[numpy.arange(len(h)), inputs.labels] -= 1.0
    return (delta[:, :, None].astype(numpy.float32) *
            h1[:, None, :]).reshape(len(h), -1)


METRICS = {
    'l2': Metric('L2, last layer (the paper\'s)', _last, 'l2'),
    'cos': Metric('cosine, last layer', lambda i, s: _unit(_last(i, s)),
                  'ip'),
    'dot': Metric('dot product, last layer', _last, 'ip'),
    'l2-all': Metric('L2, all layers standardised', _all_layers, 'l2'),
    'cos-all': Metric('cosine, all layers standardised',
                      lambda i, s: _unit(_all_layers(i, s)), 'ip'),
    'grad-cos': Metric('cosine of last-layer loss gradients',
                       lambda i, s: _unit(_gradients(i, s)), 'ip'),
    'graded': Metric('graded DkNN: L2 within the predicted label', _last,
                     'l2', by_label=True),
    'random': Metric('random (baseline)', None, 'random'),
}


def statistics(train, last):
    """What the embeddings need of the training set: the last layer's name
    and each layer's training mean and RMS norm (for ``-all``)."""
    layers = {}
    for name, h in train.layers.items():
        h = numpy.asarray(h, numpy.float32)
        mean = h.mean(axis=0)
        rms = float(numpy.sqrt(((h - mean) ** 2).sum(axis=1).mean()))
        layers[name] = (mean, max(rms, 1e-12))
    return {'last': last, 'layers': layers}


class Relevance:
    """One metric over a training set: its top k and its full ranking.

    Args:
        name (str): a key of :data:`METRICS`.
        train (Inputs): the training set (labels: its own).
        last (str): the last hidden layer's name.
        seed (int): of the random baseline.
    """

    def __init__(self, name, train, last, seed=0):
        self.name, self.metric = name, METRICS[name]
        self.labels = numpy.asarray(train.labels)
        self.n, self.seed = len(self.labels), seed
        self.stats = statistics(train, last)
        if self.metric.embed is None:
            return
        self.points = self.metric.embed(train, self.stats)
        if self.metric.by_label:
            self.index = search.ByLabel(search.FaissIndex, self.points,
                                        self.labels,
                                        int(self.labels.max()) + 1)
        else:
            self.index = (search.FaissInnerProduct if self.metric.similarity
                          == 'ip' else search.FaissIndex)(self.points)

    def top(self, test, k):
        """(B, k) training indices, most relevant first, and their scores.
        """
        b = len(test.labels)
        if self.metric.embed is None:
            rng = numpy.random.RandomState(self.seed)
            idx = numpy.stack([rng.permutation(self.n)[:k] for _ in range(b)])
            return idx, numpy.zeros((b, k))
        q = self.metric.embed(test, self.stats)
        if self.metric.by_label:
            parts = self.index.query_by_label(q, k)
            idx = numpy.stack([parts[y][0][i] for i, y in
                               enumerate(test.labels)])
            dist = numpy.stack([parts[y][1][i] for i, y in
                                enumerate(test.labels)])
            return idx, -dist
        idx, value = self.index.query(q, k)
        return idx, (value if self.metric.similarity == 'ip' else -value)

    def scores(self, test):
        """(B, N) the relevance of every training example (``graded``:
        minus infinity outside the predicted label)."""
        b = len(test.labels)
        if self.metric.embed is None:
            rng = numpy.random.RandomState(self.seed)
            return rng.rand(b, self.n)
        q = numpy.asarray(self.metric.embed(test, self.stats), numpy.float64)
        p = numpy.asarray(self.points, numpy.float64)
        if self.metric.similarity == 'ip':
            return q @ p.T
        d2 = (q ** 2).sum(1)[:, None] - 2 * q @ p.T + (p ** 2).sum(1)[None]
        out = -numpy.sqrt(numpy.maximum(d2, 0))
        if self.metric.by_label:
            out[numpy.asarray(test.labels)[:, None] != self.labels[None]] = \
                -numpy.inf
        return out


def test_inputs(acts, layers=None):
    """:class:`Inputs` of test inputs: their gradient against the label the
    model predicts (Hanawa et al.'s identical class test)."""
    logits = numpy.asarray(acts.logits)
    return Inputs(layers or acts.layers, logits, logits.argmax(axis=1))


def train_inputs(acts):
    """:class:`Inputs` of the training set: each against its own label."""
    return Inputs(acts.layers, numpy.asarray(acts.logits),
                  numpy.asarray(acts.labels, numpy.int64))

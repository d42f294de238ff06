"""Deep k-Nearest Neighbours (Papernot & McDaniel 2018) for text classifiers.

At test time the softmax is replaced by a vote of the training examples
whose hidden representations lie closest to the input's, layer by layer.

Scoring rules (``scoring=``):

* ``conformity`` (Wallace et al. 2018): the share of the k neighbours,
  pooled over the chosen layers, that carry each label. Prediction is the
  label with the largest share, credibility is that share and confidence is
  1 minus the second largest share.
* ``conformal`` (Papernot & McDaniel 2018): the nonconformity of label j is
  the number of neighbours, summed over the chosen layers, whose label
  differs from j. Its p-value is the fraction of calibration nonconformities
  (each calibration example scored against its true label) that are at
  least as large. Prediction is argmax p, credibility is max p and
  confidence is 1 minus the second largest p.

Neighbours carry the *true* labels of the training examples (Papernot &
McDaniel), and the calibration examples are kept out of the index.

Search backends share one interface (:class:`NeighbourIndex`): ``brute``
(exact, chunked BLAS, the default), ``kdtree`` (scikit-learn) and ``lsh``
(nearpy; approximate).
"""
import os
import time
from dataclasses import dataclass

import numpy

import nets
import nlp_utils
import safeio
from cli import UserError
from metrics import softmax

SCORINGS = ('conformity', 'conformal')


class DkNNError(UserError):
    """Bad DkNN settings or state: k, layers, calibration, saved index."""


# ------------------------------------------------------------- backends

class NeighbourIndex:
    """Exact or approximate k-NN over the rows of an (N, D) array.

    ``query(q, k)`` returns (M, k) int64 indices and (M, k) float32
    Euclidean distances, nearest first.
    """

    def __init__(self, points):
        self.points = numpy.ascontiguousarray(points, numpy.float32)

    def __len__(self):
        return len(self.points)

    def query(self, queries, k):
        raise NotImplementedError


def _exact_rerank(points, queries, candidates, k):
    """Sort (M, C) candidate indices by float64 distance; keep k."""
    diff = points[candidates].astype(numpy.float64) - \
        queries[:, None, :].astype(numpy.float64)            # (M, C, D)
    dist = numpy.sqrt(numpy.einsum('mcd,mcd->mc', diff, diff))
    order = numpy.argsort(dist, axis=1, kind='stable')[:, :k]
    rows = numpy.arange(len(queries))[:, None]
    return candidates[rows, order].astype(numpy.int64), \
        dist[rows, order].astype(numpy.float32)


class BruteIndex(NeighbourIndex):
    """Exact search by matrix multiply: ``|q|^2 - 2 q.x + |x|^2``, top-k by
    argpartition, then the k sorted. Queries go in chunks whose (m, N)
    distance block stays under ``max_bytes``. Points and queries are
    centred on the points' mean first, which keeps float32 rounding in the
    expansion small."""

    def __init__(self, points, max_bytes=64 << 20):
        super().__init__(points)
        self.mean = self.points.mean(axis=0) if len(self.points) else 0
        self.centred = self.points - self.mean
        self.sq_norms = numpy.einsum('nd,nd->n', self.centred, self.centred)
        self.chunk = max(1, max_bytes // (4 * max(len(self.points), 1)))

    def query(self, queries, k):
        queries = numpy.asarray(queries, numpy.float32) - self.mean
        idx = [numpy.zeros((0, k), numpy.int64)]
        dist = [numpy.zeros((0, k), numpy.float32)]
        for start in range(0, len(queries), self.chunk):
            q = queries[start:start + self.chunk]
            d2 = q @ self.centred.T                           # (m, N)
            d2 *= -2
            d2 += self.sq_norms
            top = numpy.argpartition(d2, k - 1, axis=1)[:, :k] \
                if k < d2.shape[1] else numpy.tile(numpy.arange(
                    d2.shape[1]), (len(q), 1))
            top_d2 = numpy.take_along_axis(d2, top, axis=1)
            order = numpy.argsort(top_d2, axis=1, kind='stable')
            rows = numpy.arange(len(q))[:, None]
            top_d2 = top_d2[rows, order] + numpy.einsum('md,md->m', q, q)[
                :, None]
            idx.append(top[rows, order].astype(numpy.int64))
            dist.append(numpy.sqrt(numpy.maximum(top_d2, 0)))
        return numpy.concatenate(idx), numpy.concatenate(dist)


class KDTreeIndex(NeighbourIndex):
    """scikit-learn's KDTree, queried with the whole batch at once."""

    def __init__(self, points):
        from sklearn.neighbors import KDTree
        super().__init__(points)
        self.tree = KDTree(self.points)

    def query(self, queries, k):
        dist, idx = self.tree.query(numpy.asarray(queries, numpy.float64), k)
        return idx.astype(numpy.int64), dist.astype(numpy.float32)


class LSHIndex(NeighbourIndex):
    """nearpy random binary projections (``n_tables`` hashes of ``n_bits``).

    Candidates from the matching buckets are re-ranked exactly. A query
    whose buckets hold fewer than k points is topped up by exact search;
    ``self.topped_up`` counts them, and :func:`recall_at_k` measures the
    result against exact search.
    """

    def __init__(self, points, n_bits=10, n_tables=4, seed=0):
        from nearpy import Engine
        from nearpy.hashes import RandomBinaryProjections
        super().__init__(points)
        hashes = [RandomBinaryProjections('rbp%d' % t, n_bits,
                                          rand_seed=seed + t)
                  for t in range(n_tables)]
        self.engine = Engine(self.points.shape[1], lshashes=hashes)
        for i, p in enumerate(self.points):
            self.engine.store_vector(p, i)
        self.topped_up = 0

    def _candidates(self, q):
        keys = set()
        for lshash in self.engine.lshashes:
            for key in lshash.hash_vector(q, querying=True):
                for _, data in self.engine.storage.get_bucket(
                        lshash.hash_name, key):
                    keys.add(data)
        return numpy.fromiter(keys, numpy.int64, len(keys))

    def query(self, queries, k):
        queries = numpy.asarray(queries, numpy.float32)
        idx = numpy.empty((len(queries), k), numpy.int64)
        dist = numpy.empty((len(queries), k), numpy.float32)
        exact = None
        for m, q in enumerate(queries):
            cand = self._candidates(q)
            if len(cand) < k:
                self.topped_up += 1
                if exact is None:
                    exact = BruteIndex(self.points)
                idx[m], dist[m] = (a[0] for a in exact.query(q[None], k))
                continue
            i, d = _exact_rerank(self.points, q[None], cand[None], k)
            idx[m], dist[m] = i[0], d[0]
        return idx, dist


BACKENDS = {'brute': BruteIndex, 'kdtree': KDTreeIndex, 'lsh': LSHIndex}


def recall_at_k(approx_idx, exact_idx):
    """Mean share of the exact k neighbours that an approximate search found.
    """
    hits = [len(set(a) & set(e)) for a, e in zip(approx_idx, exact_idx)]
    return float(numpy.mean(hits)) / exact_idx.shape[1]


# ------------------------------------------------------------------ DkNN

@dataclass
class DkNNOutput:
    """Predictions for B inputs (C classes, k neighbours per layer).

    Attributes:
        probs: (B, C) softmax probabilities.
        softmax_pred, softmax_conf: (B,) argmax and its probability.
        counts: (B, C) neighbours of each label, summed over layers.
        scores: (B, C) conformity shares or conformal p-values.
        pred, credibility, confidence: (B,) DkNN prediction and its scores.
        neighbours: layer -> (indices (B, k), distances (B, k),
            labels (B, k)) into the index's training examples.
    """
    probs: numpy.ndarray
    softmax_pred: numpy.ndarray
    softmax_conf: numpy.ndarray
    counts: numpy.ndarray
    scores: numpy.ndarray
    pred: numpy.ndarray
    credibility: numpy.ndarray
    confidence: numpy.ndarray
    neighbours: dict


def top_two(scores):
    """(B, C) -> argmax, max and second largest value per row."""
    order = numpy.argsort(-scores, axis=1, kind='stable')
    rows = numpy.arange(len(scores))
    second = scores[rows, order[:, 1]] if scores.shape[1] > 1 else \
        numpy.zeros(len(scores))
    return order[:, 0], scores[rows, order[:, 0]], second


def conformal_p_values(nonconformity, calib_scores):
    """p_j = fraction of calibration scores >= alpha_j.

    Args:
        nonconformity: (B, C) alpha of each label.
        calib_scores: (M,) calibration nonconformities.
    """
    ranked = numpy.sort(calib_scores)
    at_least = len(ranked) - numpy.searchsorted(ranked, nonconformity,
                                                side='left')
    return at_least / len(ranked)


def _require_calibration(n):
    if not n:
        raise DkNNError('the calibration set is empty; train with '
                        '--n-calib > 0')


class DkNN:
    """A trained classifier with a DkNN head.

    Args:
        model: a classifier from :mod:`nets`.
        layers: ``'last'`` (the paper), ``'all'``, or a list of names
            from ``model.layer_names``.
        k (int): neighbours per layer.
        backend (str): a key of :data:`BACKENDS`.
        scoring (str): ``'conformity'`` or ``'conformal'``.
        device: Chainer device the model runs on.
    """

    def __init__(self, model, layers='last', k=75, backend='brute',
                 scoring='conformity', device=None, batchsize=256):
        self.model, self.device, self.batchsize = model, device, batchsize
        self.layers = self._resolve_layers(layers)
        if backend not in BACKENDS:
            raise DkNNError('unknown backend {!r}; choose one of {}'.format(
                backend, ', '.join(BACKENDS)))
        if scoring not in SCORINGS:
            raise DkNNError('unknown scoring {!r}; choose one of {}'.format(
                scoring, ', '.join(SCORINGS)))
        if k < 1:
            raise DkNNError('k must be at least 1, not {}'.format(k))
        self.k, self.backend, self.scoring = k, backend, scoring
        self.indices, self.train_layers = {}, {}
        self.train_labels = self.calib_scores = None
        self.calib_layers = self.calib_labels = None

    def _resolve_layers(self, layers):
        names = list(self.model.layer_names)
        if layers == 'last':
            return names[-1:]
        if layers == 'all':
            return names
        if isinstance(layers, str):
            layers = [x for x in layers.split(',') if x]
        unknown = [x for x in layers if x not in names]
        if unknown or not layers:
            raise DkNNError('unknown layer {}; this model has {} (or use '
                            '"last" or "all")'.format(
                                ', '.join(unknown) or '(none)',
                                ', '.join(names)))
        return list(layers)

    @property
    def n_class(self):
        return self.model.n_class

    # -- building --------------------------------------------------------

    def activations(self, examples, desc=None):
        """(N, C) logits, {layer: (N, D)} of every layer, (N,) labels."""
        return nets.predict_dataset(self.model, examples, self.device,
                                    self.batchsize, desc)

    def fit(self, train_examples, desc='DkNN: training activations'):
        """Store the training set's activations and build one index per
        layer."""
        _, layers, labels = self.activations(train_examples, desc)
        self.set_training(layers, labels)
        return self

    def set_training(self, layers, labels):
        if self.k > len(labels):
            raise DkNNError('k={} is larger than the {} training examples in '
                            'the index; lower --k'.format(self.k, len(labels)))
        self.train_layers = dict(layers)
        self.train_labels = numpy.asarray(labels, numpy.int32)
        self.indices = {name: BACKENDS[self.backend](layers[name])
                        for name in self.layers}

    def calibrate(self, calib_examples, desc='DkNN: calibration'):
        """Score the calibration set against its true labels."""
        _require_calibration(len(calib_examples))
        _, layers, labels = self.activations(calib_examples, desc)
        self.set_calibration(layers, labels)
        return self

    def set_calibration(self, layers, labels):
        _require_calibration(len(labels))
        self.calib_layers = dict(layers)
        self.calib_labels = numpy.asarray(labels, numpy.int32)
        counts, _ = self.neighbour_counts(self.calib_layers)
        n_total = self.k * len(self.layers)
        rows = numpy.arange(len(labels))
        self.calib_scores = n_total - counts[rows, self.calib_labels]

    # -- answering -------------------------------------------------------

    def neighbour_counts(self, layers):
        """Neighbours of each label summed over layers: ((B, C), per-layer
        (indices, distances, labels))."""
        if self.train_labels is None:
            raise DkNNError('the DkNN has no training index: call fit()')
        counts, found = None, {}
        for name in self.layers:
            idx, dist = self.indices[name].query(layers[name], self.k)
            labels = self.train_labels[idx]                   # (B, k)
            found[name] = (idx, dist, labels)
            c = numpy.stack([(labels == j).sum(axis=1)
                             for j in range(self.n_class)], axis=1)
            counts = c if counts is None else counts + c
        return counts, found

    def label_scores(self, counts, scoring=None):
        """(B, C) neighbour counts -> (B, C) conformity shares or p-values.
        """
        scoring = scoring or self.scoring
        n_total = float(self.k * len(self.layers))
        if scoring == 'conformity':
            return counts / n_total
        if self.calib_scores is None:
            raise DkNNError('conformal scoring needs calibrate() first')
        return conformal_p_values(n_total - counts, self.calib_scores)

    def output(self, logits, counts, found, scoring=None):
        """Assemble a :class:`DkNNOutput` from a finished search."""
        scores = self.label_scores(counts, scoring)
        pred, cred, second = top_two(scores)
        probs = softmax(logits)
        return DkNNOutput(probs, probs.argmax(1), probs.max(1), counts,
                          scores, pred, cred, 1 - second, found)

    def score(self, logits, layers, scoring=None):
        """DkNN output from (B, C) logits and {layer: (B, D)} activations."""
        counts, found = self.neighbour_counts(layers)
        return self.output(logits, counts, found, scoring)

    def predict(self, xs):
        """DkNN output for a list of B model inputs (see :mod:`nets`)."""
        logits, layers = self.model.predict(nlp_utils.send_xs(xs,
                                                              self.device))
        return self.score(nets.to_cpu(logits),
                          {k: nets.to_cpu(layers[k]) for k in self.layers})

    def predict_dataset(self, examples, desc=None):
        """DkNN output for array examples, and their (N,) labels."""
        logits, layers, labels = self.activations(examples, desc)
        return self.score(logits, layers), labels

    # -- saving ----------------------------------------------------------

    def save(self, f, model_sha256):
        """Write every layer's activations and the labels (training and
        calibration) as an ``.npz`` into the open file ``f``, stamped with
        the model file's sha256, so any k, layers, backend or scoring can
        reuse it."""
        arrays = {'train_labels': self.train_labels,
                  'calib_labels': self.calib_labels,
                  'model_sha256': numpy.array(model_sha256)}
        for name in self.train_layers:
            arrays['train/' + name] = self.train_layers[name]
            arrays['calib/' + name] = self.calib_layers[name]
        numpy.savez(f, **arrays)

    def load(self, path, model_sha256):
        """Restore a saved index, read without unpickling and checked; refuse
        one made with another model or lacking a chosen layer. Rebuilds the
        search indices and calibration for this DkNN's k, layers and
        backend."""
        fix = 'rebuild it with --rebuild'
        f = safeio.load_npz(path, fix)
        if 'model_sha256' not in f or 'train_labels' not in f or \
                'calib_labels' not in f:
            raise DkNNError('{}: not a DkNN index (no model_sha256, '
                            'train_labels, calib_labels); {}'.format(path, fix))
        if str(f['model_sha256']) != model_sha256:
            raise DkNNError('{} was built for another model; {}'.format(
                path, fix))
        missing = [n for n in self.layers if 'train/' + n not in f or
                   'calib/' + n not in f]
        if missing:
            raise DkNNError('{} lacks layer {}; {}'.format(
                path, ', '.join(missing), fix))
        train = {n[6:]: f[n] for n in f if n.startswith('train/')}
        calib = {n[6:]: f[n] for n in f if n.startswith('calib/')}
        for part, layers, labels in (('train', train, f['train_labels']),
                                     ('calib', calib, f['calib_labels'])):
            self._check_saved(path, part, layers, labels, fix)
        self.set_training(train, f['train_labels'])
        self.set_calibration(calib, f['calib_labels'])
        return self

    def _check_saved(self, path, part, layers, labels, fix):
        ok = labels.ndim == 1 and labels.dtype.kind in 'iu' and (
            not len(labels) or 0 <= labels.min() <= labels.max() <
            self.n_class)
        for name in self.layers:
            a = layers[name]
            ok = ok and a.ndim == 2 and a.dtype.kind == 'f' and \
                len(a) == len(labels) and numpy.isfinite(a).all()
        if not ok:
            raise DkNNError('{}: the {} arrays are inconsistent (shapes, '
                            'dtypes or labels outside 0..{}); {}'.format(
                                path, part, self.n_class - 1, fix))


def for_run(run, out=None, rebuild=False, **options):
    """A fitted, calibrated DkNN for a trained :class:`runs.Run`.

    Loads the run's saved ``dknn_index.npz`` when it matches the model;
    otherwise runs the training and calibration sets through the model and,
    given an :class:`safeio.OutputSet` ``out``, saves the index with the
    command's other outputs. ``options`` go to :class:`DkNN`.

    Returns:
        tuple: (the DkNN, seconds spent building and calibrating; both
        are in ``build`` when the index was loaded).
    """
    head = DkNN(run.model, device=run.device, **options)
    path = run.path('index')
    start = time.time()
    if os.path.exists(path) and not rebuild:
        head.load(path, run.model_sha256)
        return head, {'build': time.time() - start, 'calibrate': 0.0}
    head.fit(run.splits.train)
    built = time.time()
    head.calibrate(run.splits.calib)
    if out is not None:
        out.write(os.path.basename(path),
                  lambda f: head.save(f, run.model_sha256))
    return head, {'build': built - start, 'calibrate': time.time() - built}

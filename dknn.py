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

Both count labels among k neighbours, so an input whose neighbourhood is
unanimous cannot move, and a deletion that swaps no neighbour across the
class boundary changes nothing: leave-one-out on them is mostly exactly 0.
Two graded rules answer from distances instead (docs/dknn.md, RESULTS.md
"Graded DkNN rules"):

* ``graded``: per label c, D_c is the mean log distance to the k nearest
  training examples *of label c* in each chosen layer (the log of their
  geometric mean distance), summed over the layers;
  p(c | x) = softmax(-D / T), T fitted by NLL on the calibration set: the
  labels' geometric mean distances, each to the power -1/T, normalised.
  A distance counts as at least 5% of the median neighbour distance (an
  exact copy would otherwise weigh without bound).
  Prediction, credibility and confidence as for conformity. (Of the
  summaries measured, mean, minimum, kernel sum and log mean distance at
  k = 10 to 150, this one was the calibrated one: RESULTS.md.)
* ``graded-conformal``: the nonconformity of label j is
  alpha_j = D_j - min_{i != j} D_i, its p-value that of ``conformal``
  against the calibration examples' alpha of their true label: the
  prediction sets keep their coverage, and credibility has no ties.

One index per layer and label (:class:`search.ByLabel`) serves all four:
the k nearest overall are merged from each label's k nearest.

Neighbours carry the *true* labels of the training examples (Papernot &
McDaniel), and the calibration examples are kept out of the index.

The neighbours come from a search backend of :mod:`search`.
"""
import copy
import dataclasses
import functools
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy

import nets
import nlp_utils
import search

from errors import UserError

PAPER = ('conformity', 'conformal')
GRADED = ('graded', 'graded-conformal')
SCORINGS = PAPER + GRADED
POOLS = ('layer', 'total')


class DkNNError(UserError):
    """Bad DkNN settings or state: k, layers, calibration."""


@dataclass(frozen=True)
class Settings:
    """How a DkNN searches and scores; the defaults are the paper's.

    Attributes:
        k (int): neighbours per layer, or in total with ``pool='total'``.
        layers: ``'last'`` (the paper), ``'all'``, a comma-separated string
            or a tuple of names from ``model.layer_names``.
        pool (str): ``'layer'``: k neighbours in each chosen layer (the
            original code); ``'total'``: k in all, split evenly over the
            layers (k must be at least the number of layers).
        backend (str): a key of :data:`search.BACKENDS`.
        scoring (str): a key of :data:`SCORINGS`: the paper's
            ``'conformity'`` or ``'conformal'``, or the graded
            ``'graded'`` or ``'graded-conformal'``.
        batchsize (int): inputs per forward pass.
        nlist, nprobe: faiss-ivf, faiss-ivfpq: k-means cells, cells
            searched per query.
        pq_m, refine: faiss-ivfpq: bytes of code per point (0: the largest
            divisor of the width <= width / 4), candidates ranked exactly
            (refine * k).
        hnsw_m, ef_search: faiss-hnsw: links per node, search queue length.
    """
    k: int = 75
    layers: object = 'last'
    pool: str = 'layer'
    backend: str = search.DEFAULT
    scoring: str = 'conformity'
    batchsize: int = 256
    nlist: int = 256
    nprobe: int = 16
    pq_m: int = 0
    refine: int = 4
    hnsw_m: int = 32
    ef_search: int = 128

    def __post_init__(self):
        for name, value, known in (('backend', self.backend, search.BACKENDS),
                                   ('scoring', self.scoring, SCORINGS),
                                   ('pool', self.pool, POOLS)):
            if value not in known:
                raise DkNNError('unknown {} {!r}; choose one of {}'.format(
                    name, value, ', '.join(known)))
        if self.k < 1:
            raise DkNNError('k must be at least 1, not {}'.format(self.k))
        if not 1 <= self.nprobe <= self.nlist:
            raise DkNNError('--nprobe {} must be between 1 and --nlist {}'
                            .format(self.nprobe, self.nlist))
        if self.hnsw_m < 2:
            raise DkNNError('--hnsw-m must be at least 2, not {}'.format(
                self.hnsw_m))

    def replace(self, **changes):
        """A copy with ``changes``: ``settings.replace(k=10)``."""
        return dataclasses.replace(self, **changes)

    def backend_options(self):
        """The keyword arguments of the chosen search backend."""
        ivf = {'nlist': self.nlist, 'nprobe': self.nprobe}
        return {'faiss-ivf': ivf,
                'faiss-ivfpq': dict(ivf, pq_m=self.pq_m, refine=self.refine),
                'faiss-hnsw': {'M': self.hnsw_m, 'ef_search': self.ef_search}
                }.get(self.backend, {})

    def public(self):
        """The settings that apply to this backend, for results files."""
        out = {k: getattr(self, k) for k in ('k', 'layers', 'pool',
                                             'backend', 'scoring',
                                             'batchsize')}
        out['layers'] = out['layers'] if isinstance(out['layers'], str) \
            else list(out['layers'])
        return dict(out, **self.backend_options())


# ------------------------------------------------------------------ DkNN

class Neighbours(NamedTuple):
    """The k neighbours of B inputs in one layer, nearest first: (B, k)
    training-set ``indices``, ``distances`` and gold ``labels``."""
    indices: numpy.ndarray
    distances: numpy.ndarray
    labels: numpy.ndarray


@dataclass
class DkNNOutput:
    """The DkNN's answer for B inputs (C classes).

    Attributes:
        scores: (B, C) conformity shares or conformal p-values.
        pred, credibility, confidence: (B,) the DkNN's prediction, its
            score, and 1 minus the second largest score.
        counts: (B, C) neighbours of each label, summed over the layers.
        neighbours: layer name -> :class:`Neighbours`.
        distances: (B, C) class-conditional distances (see :class:`Search`).
        by_label: layer name -> per label (B, k_c) nearest training indices.
    """
    scores: numpy.ndarray
    pred: numpy.ndarray
    credibility: numpy.ndarray
    confidence: numpy.ndarray
    counts: numpy.ndarray
    neighbours: dict
    distances: numpy.ndarray = None
    by_label: dict = None


def top_two(scores):
    """(B, C) -> argmax, max and second largest value per row."""
    order = numpy.argsort(-scores, axis=1, kind='stable')
    rows = numpy.arange(len(scores))
    second = scores[rows, order[:, 1]] if scores.shape[1] > 1 else \
        numpy.zeros(len(scores))
    return order[:, 0], scores[rows, order[:, 0]], second


def vote_counts(labels, n_class):
    """(B, k) neighbour labels -> (B, C) int64 votes for each label."""
    labels = numpy.asarray(labels, numpy.int64)
    offsets = numpy.arange(len(labels))[:, None] * n_class           # (B, 1)
    return numpy.bincount((labels + offsets).ravel(),
                          minlength=len(labels) * n_class).reshape(
                              len(labels), n_class)


def p_values(nonconformity, calib_nonconformity, smoothed=False):
    """Conformal p-values: p_j = share of calibration nonconformities that
    are >= alpha_j; ``smoothed`` counts the test input among them,
    (1 + #{calib >= alpha_j}) / (M + 1), the split-conformal p-value that
    gives the coverage guarantee (see :mod:`toolkit.conformal`).

    Args:
        nonconformity: (B, C) alpha of each label (any shape works).
        calib_nonconformity: (M,) each calibration example's alpha of its
            true label.

    Returns:
        p-values of the shape of ``nonconformity``, in [0, 1].
    """
    ranked = numpy.sort(numpy.asarray(calib_nonconformity, numpy.float64))
    at_least = len(ranked) - numpy.searchsorted(
        ranked, numpy.asarray(nonconformity, numpy.float64), side='left')
    if smoothed:
        return (1.0 + at_least) / (len(ranked) + 1.0)
    return at_least / len(ranked)


def require_calibration(n):
    """Refuse an empty calibration set: the one check and message."""
    if not n:
        raise DkNNError('the calibration set is empty (the run was trained '
                        'with --n-calib 0); train with --n-calib of a few '
                        'hundred or more')


def resolve_layers(names, layers):
    """``'last'``, ``'all'``, a comma-separated string or a list -> the
    chosen names among ``names`` (a model's ``layer_names``)."""
    names = list(names)
    if layers == 'last':
        return names[-1:]
    if layers == 'all':
        return names
    if isinstance(layers, str):
        layers = [x for x in layers.split(',') if x]
    unknown = [x for x in layers if x not in names]
    if unknown or not layers:
        raise DkNNError('unknown layer {}; this model has {} (or use "last" '
                        'or "all")'.format(', '.join(unknown) or '(none)',
                                           ', '.join(names)))
    twice = [x for i, x in enumerate(layers) if x in layers[:i]]
    if twice:
        once = list(dict.fromkeys(layers))
        raise DkNNError('layer {} is named twice; name each layer once: '
                        '--layers {}'.format(twice[0], ','.join(once)))
    return list(layers)


class Search(NamedTuple):
    """What one search of B inputs found, for every rule.

    Attributes:
        counts: (B, C) labels of the k neighbours, summed over the layers.
        neighbours: layer name -> :class:`Neighbours` (the k nearest).
        distances: (B, C) each label's class-conditional distance: the mean
            log distance to its k nearest training examples in each layer
            (the log of their geometric mean), summed over the layers.
        by_label: layer name -> per label (B, k_c) training indices of its
            nearest examples, nearest first.
    """
    counts: numpy.ndarray
    neighbours: dict
    distances: numpy.ndarray
    by_label: dict


class DkNN:
    """A trained classifier with a DkNN head.

    ``fit(train)`` indexes the training set (one index per layer and label:
    :class:`search.ByLabel`), ``calibrate(calib)`` scores the calibration
    set, ``predict(xs)`` answers model inputs and
    ``predict_activations(layers)`` answers precomputed activations (the
    batched leave-one-out uses it). ``fit`` and ``calibrate`` take array
    examples or their :class:`nets.Activations`. One search per layer and
    label serves every rule (:meth:`answer`).

    Args:
        model: a classifier from :mod:`nets`.
        settings (Settings): k, layers, pool, backend, scoring, batch size.
        device: Chainer device the model runs on.
    """

    def __init__(self, model, settings=Settings(), device=None):
        self.model, self.settings, self.device = model, settings, device
        self.layers = resolve_layers(model.layer_names, settings.layers)
        if settings.pool == 'total' and settings.k < len(self.layers):
            raise DkNNError(
                'pool "total" shares k={} neighbours over {} layers, fewer '
                'than one per layer; raise --k to {} or more, or use --pool '
                'layer'.format(settings.k, len(self.layers),
                               len(self.layers)))
        self.k = settings.k if settings.pool == 'layer' else \
            settings.k // len(self.layers)
        self.indices, self.train_labels, self.train_points = {}, None, {}
        self.shard = (0, None)   # (offset, comm) of this rank's rows
        self.calib_nonconformity = self.calib_labels = None
        self.calib_distances = self.calib_alpha = self.floors = None
        self.temperature = None   # of the graded rule

    @property
    def scoring(self):
        return self.settings.scoring

    @property
    def batchsize(self):
        return self.settings.batchsize

    @property
    def n_class(self):
        return self.model.n_class

    @property
    def n_votes(self):
        """Neighbours per input, pooled over the chosen layers."""
        return self.k * len(self.layers)

    def with_scoring(self, scoring):
        """The same fitted, calibrated DkNN answering with another rule."""
        other = copy.copy(self)
        other.settings = self.settings.replace(scoring=scoring)
        return other

    def _activations(self, data, desc):
        if isinstance(data, nets.Activations):
            return data
        return nets.predict_dataset(self.model, data, self.device,
                                    self.batchsize, desc)

    def fit(self, train, desc='DkNN: training activations', comm=None,
            offset=0, cache=None):
        """Index the training set's chosen layers: one index per layer and
        label (:class:`search.ByLabel`).

        Args:
            comm: a ChainerMN communicator when ``train`` is this rank's
                shard (rows ``offset ..`` of the whole training set); every
                rank then answers every query together.
            cache (dict): layer name -> an index of this training set built
                with these settings' backend, taken from it and added to it
                (DkNNs of other k share their indexes).
        """
        acts = self._activations(train, desc)
        local = numpy.asarray(acts.labels, numpy.int32)
        labels = local if comm is None else \
            numpy.concatenate(comm.mpi_comm.allgather(local))
        if self.k > len(labels):
            raise DkNNError('k={} is larger than the {} training examples in '
                            'the index; lower --k'.format(self.k, len(labels)))
        self.train_labels, self.shard = labels, (offset, comm)
        make = functools.partial(search.BACKENDS[self.settings.backend],
                                 **self.settings.backend_options())
        self.indices, self.train_points = {}, {}
        for name in self.layers:
            index = cache.get(name) if cache is not None else None
            if index is None:
                index = search.ByLabel(make, acts.layers[name], local,
                                       self.n_class, comm, offset)
            if cache is not None:
                cache[name] = index
            self.indices[name] = index
            self.train_points[name] = acts.layers[name]
        return self

    def calibrate(self, calib, desc='DkNN: calibration'):
        """Score the calibration set: each example's nonconformity under its
        true label (votes against it; and the graded rule's distance
        margin), and the graded rule's temperature, fitted by NLL."""
        require_calibration(len(calib.labels) if isinstance(
            calib, nets.Activations) else len(calib))
        acts = self._activations(calib, desc)
        labels = numpy.asarray(acts.labels, numpy.int64)
        self.floors = distance_floors(self.search(acts.layers).neighbours)
        found = self.search(acts.layers)
        distances = found.distances
        rows = numpy.arange(len(labels))
        self.calib_labels = labels
        self.calib_nonconformity = self.n_votes - found.counts[rows, labels]
        self.calib_distances = distances
        self.calib_alpha = margins(distances)[rows, labels]
        self.temperature = fit_graded_temperature(distances, labels)
        return self

    def search(self, layers):
        """Every chosen layer searched once per label.

        Returns:
            Search (with ``by_label_distances``, layer -> (B, C) mean
            distances, before they are scaled and summed).
        """
        if self.train_labels is None:
            raise DkNNError('the DkNN has no training index: call fit()')
        n = len(layers[self.layers[0]])
        counts = numpy.zeros((n, self.n_class), numpy.int64)        # (B, C)
        found, by_label, means = {}, {}, {}
        for name in self.layers:
            parts = self.indices[name].query_by_label(layers[name], self.k)
            idx, dist = search.merge(parts, self.k)                  # (B, k)
            found[name] = Neighbours(idx, dist, self.train_labels[idx])
            counts += vote_counts(found[name].labels, self.n_class)
            by_label[name] = [i for i, _ in parts]
            means[name] = class_means(parts, n, self._floor(name))   # (B, C)
        return _Found(counts, found, self._distances(means), by_label,
                      means)

    def _floor(self, name):
        return (self.floors or {}).get(name, 1e-12)

    def _distances(self, means):
        """(B, C) the layers' mean log distances, summed: a layer's units
        cancel in every rule (they shift all labels alike)."""
        return sum(means[name] for name in self.layers)

    def predict_activations(self, layers):
        """The DkNN's answer for precomputed activations.

        Args:
            layers: layer name -> (B, D) array for (at least) the chosen
                layers, or :class:`nets.Activations`.

        Returns:
            DkNNOutput
        """
        layers = getattr(layers, 'layers', layers)
        return self.answer(self.search(layers))

    def answer(self, found):
        """The DkNN's answer, by its scoring rule, from what a search found
        (:meth:`_search`, or :meth:`search_excluding` for the audit).

        Returns:
            DkNNOutput
        """
        rule = self.scoring
        if rule != 'conformity' and self.calib_nonconformity is None:
            raise DkNNError('the {} rule needs calibrate() first'.format(rule))
        if rule == 'conformity':
            scores = found.counts / float(self.n_votes)             # (B, C)
        elif rule == 'conformal':
            scores = p_values(self.n_votes - found.counts,
                              self.calib_nonconformity)             # (B, C)
        elif rule == 'graded':
            scores = graded_probabilities(found.distances, self.temperature)
        else:
            scores = p_values(margins(found.distances), self.calib_alpha)
        pred, cred, second = top_two(scores)
        return DkNNOutput(scores, pred, cred, 1 - second, found.counts,
                          found.neighbours, found.distances, found.by_label)

    def label_p_values(self, output, labels):
        """(B,) p-value of each row's ``labels`` (B,) under the conformal
        rule of this rule's family (``conformal`` for the vote rules,
        ``graded-conformal`` for the graded ones), from a DkNNOutput: the
        share of calibration examples at least as strange under their own
        true label."""
        if self.calib_nonconformity is None:
            raise DkNNError('conformal p-values need calibrate() first')
        rows = numpy.arange(len(labels))
        if self.scoring in GRADED:
            return p_values(margins(output.distances)[rows, labels],
                            self.calib_alpha)
        given = output.counts[rows, labels]
        return p_values(self.n_votes - given, self.calib_nonconformity)

    def search_excluding(self, layers, rows, groups, chunk=4096):
        """What a search of B *training* examples finds in each chosen
        layer, leaving out the example itself and its exact copies: the
        training-set audit's search.

        Copies (equal ``groups``) have equal activations, so each group is
        searched once, for k + its size neighbours per label, and its own
        members are dropped: the cost grows with the number of groups, not
        with the square of a group's size.

        Args:
            layers: layer name -> (B, D) activations of those examples.
            rows: (B,) their indices into the training set.
            groups: (N,) group of every training example: equal token ids,
                equal group.

        Returns:
            Search, for :meth:`answer`.
        """
        rows, groups = numpy.asarray(rows), numpy.asarray(groups)
        if len(groups) != len(self.train_labels):
            raise DkNNError('groups must give one group per training '
                            'example')
        size = numpy.bincount(groups)
        most = int(size.max())
        if self.k > len(groups) - most:
            raise DkNNError(
                'k={} is too large to audit {} training examples: leaving '
                'out an example{} leaves {} to vote; lower --k to {} or '
                'less'.format(
                    self.k, len(groups), ' and its {} copies'.format(most - 1)
                    if most > 1 else '', len(groups) - most,
                    max(len(groups) - most, 1)))
        _, first, back = numpy.unique(groups[rows], return_index=True,
                                      return_inverse=True)
        own = groups[rows[first]]
        counts = numpy.zeros((len(rows), self.n_class), numpy.int64)
        found, by_label, means = {}, {}, {}
        for name in self.layers:
            parts = self._without_group(
                numpy.asarray(layers[name])[first], own, groups, size, name,
                chunk)
            parts = [(i[back], d[back]) for i, d in parts]
            idx, dist = search.merge(parts, self.k)
            found[name] = Neighbours(idx, dist, self.train_labels[idx])
            counts += vote_counts(found[name].labels, self.n_class)
            by_label[name] = [i for i, _ in parts]
            means[name] = class_means(parts, len(rows), self._floor(name))
        return _Found(counts, found, self._distances(means), by_label, means)

    def _without_group(self, points, own, groups, size, name, chunk):
        """Per label, (G, <= k) neighbours of G points outside the point's
        group."""
        out = [None] * self.n_class
        for m in numpy.unique(size[own]):
            at = numpy.flatnonzero(size[own] == m)
            for start in range(0, len(at), chunk):
                part = at[start:start + chunk]
                answers = self.indices[name].query_by_label(points[part],
                                                            self.k + int(m))
                for c, (idx, dist) in enumerate(answers):
                    keep = groups[idx] != own[part][:, None]
                    kc = min(self.k, int(keep.sum(axis=1).min()))
                    pick = numpy.argsort(~keep, axis=1, kind='stable')[:, :kc]
                    got = (numpy.take_along_axis(idx, pick, axis=1),
                           numpy.take_along_axis(dist, pick, axis=1))
                    out[c] = _put(out[c], part, got, len(points))
        return out

    def predict(self, xs):
        """The DkNN's answer for a list of B model inputs (see :mod:`nets`).
        """
        _, layers = self.model.predict(nlp_utils.send_xs(xs, self.device))
        return self.predict_activations(
            {k: nets.to_cpu(layers[k]) for k in self.layers})


class _Found(NamedTuple):
    """:class:`Search`, with each layer's unscaled class means."""
    counts: numpy.ndarray
    neighbours: dict
    distances: numpy.ndarray
    by_label: dict
    by_label_distances: dict


def _put(acc, rows, got, n):
    """Rows ``rows`` of a (n, k) (indices, distances) pair, made on first
    use; a narrower answer (a small label) narrows it."""
    idx, dist = got
    if acc is None or acc[0].shape[1] > idx.shape[1]:
        acc = (numpy.zeros((n, idx.shape[1]), numpy.int64),
               numpy.zeros((n, idx.shape[1])))
    acc[0][rows], acc[1][rows] = idx[:, :acc[0].shape[1]], \
        dist[:, :acc[0].shape[1]]
    return acc


# ------------------------------------------------------- the graded rules

def class_means(parts, n, floor=1e-12):
    """(B, C) mean log distance to each label's nearest examples: the log of
    their geometric mean distance (inf for a label with none), each
    distance at least ``floor``."""
    out = numpy.full((n, len(parts)), numpy.inf)
    for c, (_, dist) in enumerate(parts):
        if dist.shape[1]:
            out[:, c] = numpy.log(numpy.maximum(dist, floor)).mean(axis=1)
    return out


FLOOR = 0.05   # of the median neighbour distance: the least distance counted


def distance_floors(neighbours):
    """Layer name -> the least distance the graded rules count:
    :data:`FLOOR` of the calibration examples' median neighbour distance.
    A copy of a training text (distance 0) would otherwise weigh without
    bound (log 0), and its label's probability round to 1."""
    return {name: max(FLOOR * float(numpy.median(nb.distances)), 1e-12)
            for name, nb in neighbours.items()}


def margins(distances):
    """(B, C) the graded conformal nonconformity of each label:
    alpha_j = D_j - min_{i != j} D_i, its class-conditional distance minus
    the nearest other label's (negative where j is the nearest)."""
    d = numpy.asarray(distances, numpy.float64)
    order = numpy.sort(d, axis=1)
    other = numpy.where(d == order[:, :1], order[:, 1:2], order[:, :1])
    return d - other


def graded_probabilities(distances, T):
    """(B, C) softmax(-D / T): the graded rule's probabilities."""
    z = -numpy.asarray(distances, numpy.float64) / T
    z -= z.max(axis=1, keepdims=True)
    e = numpy.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def graded_log_odds(distances, T):
    """(B, C) log(p_c / (1 - p_c)) of the graded probabilities, computed
    from the distances (z_c - logsumexp of the others), exact where p
    rounds to 1."""
    z = -numpy.asarray(distances, numpy.float64) / T
    out = numpy.empty_like(z)
    for c in range(z.shape[1]):
        others = numpy.delete(z, c, axis=1)
        top = others.max(axis=1, keepdims=True)
        out[:, c] = z[:, c] - (top[:, 0] + numpy.log(
            numpy.exp(others - top).sum(axis=1)))
    return out


def fit_graded_temperature(distances, labels):
    """The T minimising the NLL of softmax(-D / T) on the calibration set
    (a search over log T)."""
    from scipy.optimize import minimize_scalar
    d = numpy.asarray(distances, numpy.float64)
    rows = numpy.arange(len(labels))

    def nll(log_t):
        p = graded_probabilities(d, numpy.exp(log_t))[rows, labels]
        return -numpy.log(numpy.maximum(p, 1e-300)).mean()
    best = minimize_scalar(nll, bounds=(-12, 8), method='bounded')
    return float(numpy.exp(best.x))


def shard(n, comm):
    """This rank's contiguous slice of ``n`` rows: (start, stop)."""
    return n * comm.rank // comm.size, n * (comm.rank + 1) // comm.size


def for_run(run, settings=Settings(), comm=None, out=None):
    """A fitted DkNN for a trained :class:`toolkit.runs.Run`, calibrated
    when the run has a calibration set (or conformal scoring needs one).

    The training and calibration activations come from the run's
    forward-pass cache (computed on first use, and saved into ``out``, a
    :class:`toolkit.fileio.Outputs`, when given). With a ChainerMN
    ``comm``, each rank computes and indexes only its shard of the
    training set.

    Returns:
        tuple: (the DkNN, seconds spent on ``build`` and ``calibrate``,
        forward passes included).
    """
    head = DkNN(run.model, settings, run.device)
    start = time.time()
    if comm is None:
        head.fit(run.forward('train', settings.batchsize, out))
    else:
        a, b = shard(len(run.examples('train')), comm)
        head.fit(run.examples('train')[a:b], comm=comm, offset=a)
    built = time.time()
    if len(run.examples('calib')) or settings.scoring != 'conformity':
        head.calibrate(run.forward('calib', settings.batchsize, out))
    return head, {'build': built - start, 'calibrate': time.time() - built}

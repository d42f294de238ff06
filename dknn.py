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

The neighbours come from a search backend of :mod:`search`.
"""
import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy

import nets
import nlp_utils
import search

from errors import UserError

SCORINGS = ('conformity', 'conformal')
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
        scoring (str): ``'conformity'`` or ``'conformal'``.
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
    """
    scores: numpy.ndarray
    pred: numpy.ndarray
    credibility: numpy.ndarray
    confidence: numpy.ndarray
    counts: numpy.ndarray
    neighbours: dict


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


class DkNN:
    """A trained classifier with a DkNN head.

    ``fit(train)`` indexes the training set, ``calibrate(calib)`` scores
    the calibration set, ``predict(xs)`` answers model inputs and
    ``predict_activations(layers)`` answers precomputed activations (the
    batched leave-one-out uses it). ``fit`` and ``calibrate`` take array
    examples or their :class:`nets.Activations`.

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
        self.indices, self.train_labels = {}, None
        self.calib_nonconformity = None

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
        """Index the training set's chosen layers (one index per layer).

        Args:
            comm: a ChainerMN communicator when ``train`` is this rank's
                shard (rows ``offset ..`` of the whole training set); every
                rank then answers every query together (see
                :class:`search.ShardedIndex`).
            cache (dict): layer name -> an index of this training set built
                with these settings' backend, taken from it and added to it
                (DkNNs of other k share their indexes).
        """
        acts = self._activations(train, desc)
        labels = numpy.asarray(acts.labels, numpy.int32)
        if comm is not None:   # every rank needs every neighbour's label
            labels = numpy.concatenate(comm.mpi_comm.allgather(labels))
        if self.k > len(labels):
            raise DkNNError('k={} is larger than the {} training examples in '
                            'the index; lower --k'.format(self.k, len(labels)))
        self.train_labels = labels
        self.indices = {}
        for name in self.layers:
            index = cache.get(name) if cache is not None else None
            if index is None:
                index = search.BACKENDS[self.settings.backend](
                    acts.layers[name], **self.settings.backend_options())
            if cache is not None:
                cache[name] = index
            self.indices[name] = index if comm is None else \
                search.ShardedIndex(index, offset, comm)
        return self

    def calibrate(self, calib, desc='DkNN: calibration'):
        """Score the calibration set: each example's nonconformity (votes
        against its true label), for conformal p-values."""
        require_calibration(len(calib.labels) if isinstance(
            calib, nets.Activations) else len(calib))
        acts = self._activations(calib, desc)
        counts, _ = self._search(acts.layers)                   # (M, C)
        rows = numpy.arange(len(acts.labels))
        self.calib_nonconformity = self.n_votes - counts[rows, acts.labels]
        return self

    def _search(self, layers):
        """Neighbours in every chosen layer, and their label counts.

        Returns:
            tuple: (B, C) int counts summed over layers, and layer name ->
            :class:`Neighbours`.
        """
        if self.train_labels is None:
            raise DkNNError('the DkNN has no training index: call fit()')
        n = len(layers[self.layers[0]])
        counts = numpy.zeros((n, self.n_class), numpy.int64)        # (B, C)
        found = {}
        for name in self.layers:
            idx, dist = self.indices[name].query(layers[name], self.k)
            labels = self.train_labels[idx]                          # (B, k)
            found[name] = Neighbours(idx, dist, labels)
            counts += vote_counts(labels, self.n_class)              # (B, C)
        return counts, found

    def search_excluding(self, layers, rows, groups, chunk=4096, desc=None):
        """The k nearest training examples of B *training* examples in each
        chosen layer, leaving out the example itself and its exact copies:
        the training-set audit's search.

        Copies (equal ``groups``) have equal activations, so each group is
        searched once, for k + its size neighbours, and its own members are
        dropped: the cost grows with the number of groups, not with the
        square of a group's size.

        Args:
            layers: layer name -> (B, D) activations of those examples.
            rows: (B,) their indices into the training set.
            groups: (N,) group of every training example: equal token ids,
                equal group.

        Returns:
            tuple: (B, C) label counts summed over the layers, and layer
            name -> :class:`Neighbours` (B, k), nearest first.
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
        counts = numpy.zeros((len(rows), self.n_class), numpy.int64)
        found = {}
        for name in self.layers:
            idx, dist = self._without_group(
                numpy.asarray(layers[name])[first], groups[rows[first]],
                groups, size, name, chunk, desc)
            idx, dist = idx[back], dist[back]                       # (B, k)
            found[name] = Neighbours(idx, dist, self.train_labels[idx])
            counts += vote_counts(found[name].labels, self.n_class)
        return counts, found

    def _without_group(self, points, own, groups, size, name, chunk, desc):
        """(G, k) neighbours of G points, none in the point's group."""
        n, k = len(groups), self.k
        idx_out = numpy.empty((len(points), k), numpy.int64)
        dist_out = numpy.empty((len(points), k), numpy.float64)
        for m in numpy.unique(size[own]):
            at = numpy.flatnonzero(size[own] == m)
            for start in range(0, len(at), chunk):
                part = at[start:start + chunk]
                idx, dist = self.indices[name].query(points[part],
                                                     min(k + int(m), n))
                keep = groups[idx] != own[part][:, None]
                pick = numpy.argsort(~keep, axis=1, kind='stable')[:, :k]
                idx_out[part] = numpy.take_along_axis(idx, pick, axis=1)
                dist_out[part] = numpy.take_along_axis(dist, pick, axis=1)
        return idx_out, dist_out

    def label_p_values(self, counts, labels):
        """(B,) conformal p-value of each row's ``labels`` (B,), from its
        (B, C) neighbour counts: the share of calibration examples at least
        as strange under their own true label."""
        if self.calib_nonconformity is None:
            raise DkNNError('conformal p-values need calibrate() first')
        given = counts[numpy.arange(len(labels)), labels]
        return p_values(self.n_votes - given, self.calib_nonconformity)

    def predict_activations(self, layers):
        """The DkNN's answer for precomputed activations.

        Args:
            layers: layer name -> (B, D) array for (at least) the chosen
                layers, or :class:`nets.Activations`.

        Returns:
            DkNNOutput
        """
        layers = getattr(layers, 'layers', layers)
        return self.answer(*self._search(layers))

    def answer(self, counts, found=None):
        """The DkNN's answer from neighbour votes found by any search (the
        training-set audit finds them leaving each example out).

        Args:
            counts: (B, C) neighbours of each label, summed over the chosen
                layers (``n_votes`` per row).
            found: layer name -> :class:`Neighbours`, kept in the output.

        Returns:
            DkNNOutput
        """
        if self.scoring == 'conformity':
            scores = counts / float(self.n_votes)                   # (B, C)
        else:
            if self.calib_nonconformity is None:
                raise DkNNError('conformal scoring needs calibrate() first')
            scores = p_values(self.n_votes - counts,
                                        self.calib_nonconformity)  # (B, C)
        pred, cred, second = top_two(scores)
        return DkNNOutput(scores, pred, cred, 1 - second, counts,
                          found or {})

    def predict(self, xs):
        """The DkNN's answer for a list of B model inputs (see :mod:`nets`).
        """
        _, layers = self.model.predict(nlp_utils.send_xs(xs, self.device))
        return self.predict_activations(
            {k: nets.to_cpu(layers[k]) for k in self.layers})


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
    if len(run.examples('calib')) or settings.scoring == 'conformal':
        head.calibrate(run.forward('calib', settings.batchsize, out))
    return head, {'build': built - start, 'calibrate': time.time() - built}

"""A 2-D map of a hidden layer: PCA, fitted on the training examples.

PCA keeps distances along the two directions of largest variance and drops
the rest, so two points close on the map may be far apart in the layer;
:attr:`PCA.explained` says how much of the variance the two axes hold. It
is linear and deterministic, and places a new input by the same matrix, so
the input and its neighbours sit where the training points do. (UMAP would
draw tighter clusters but needs numba, and places a new input only
approximately; see docs/explore.md.)
"""
from dataclasses import dataclass

import numpy

FIT_POINTS = 20000   # training points the axes are fitted on, at most


@dataclass
class PCA:
    """Two principal axes of a layer.

    Attributes:
        mean: (D,) the training mean.
        axes: (2, D) unit principal directions.
        explained: (2,) share of the total variance along each axis.
    """
    mean: numpy.ndarray
    axes: numpy.ndarray
    explained: numpy.ndarray

    def transform(self, h):
        """(N, D) activations -> (N, 2) coordinates."""
        return (numpy.asarray(h, numpy.float64) - self.mean) @ self.axes.T


def fit(points, seed=0, n_fit=FIT_POINTS):
    """PCA of (N, D) ``points`` (a random ``n_fit`` of them when there are
    more), by the SVD of the centred points."""
    points = numpy.asarray(points)
    rows = numpy.arange(len(points))
    if len(points) > n_fit:
        rows = numpy.sort(numpy.random.RandomState(seed).choice(
            len(points), n_fit, replace=False))
    x = numpy.asarray(points[rows], numpy.float64)
    mean = x.mean(axis=0)
    _, s, vt = numpy.linalg.svd(x - mean, full_matrices=False)
    var = s ** 2
    total = var.sum()
    axes = numpy.zeros((2, x.shape[1]))
    explained = numpy.zeros(2)
    n = min(2, len(s))
    axes[:n] = vt[:n]
    if total > 0:
        explained[:n] = var[:n] / total
    return PCA(mean, axes, explained)


def subsample(n, size, keep=(), seed=0):
    """At most ``size`` of ``range(n)``, sorted, always holding ``keep``."""
    keep = numpy.unique(numpy.asarray(list(keep), numpy.int64))
    if n <= size:
        return numpy.arange(n)
    rest = numpy.setdiff1d(numpy.arange(n), keep)
    drawn = numpy.random.RandomState(seed).choice(
        rest, max(size - len(keep), 0), replace=False)
    return numpy.sort(numpy.concatenate([keep, drawn]))

#!/usr/bin/env python
"""Temperature scaling and calibration error for a trained classifier.

    python scaling.py --model-setup result/stsa.binary_cnn/args.json

fits one temperature T on the run's calibration set (the examples listed in
``calib.json``, kept out of training), prints NLL, ECE and accuracy before
and after scaling on the calibration and test sets, and writes beside the
model ``temperature.json`` (T and those numbers) and ``reliability.png``
(reliability diagrams of the test set). If the run folder holds
``dknn_credibility.npz`` (arrays ``credibility`` and ``correct``), the
figure gets a third panel for DkNN credibility.

The library part (metrics, :class:`TemperatureScaling`,
:func:`fit_temperature`, :func:`load_temperature`) imports without side
effects; other scripts take ``expected_calibration_error`` and the saved
temperature from here.
"""
import argparse
import collections
import json
import os

import numpy
import scipy.optimize

import chainer
import chainer.functions as F

import nets
import nlp_utils
import text_datasets

TEMPERATURE_FILE = 'temperature.json'
RELIABILITY_FILE = 'reliability.png'
DKNN_CREDIBILITY_FILE = 'dknn_credibility.npz'
N_BINS = 15
# Search range of T, relative to the largest spread of a logit row.
_T_RANGE = (1e-4, 1e4)
_LOG_T_TOL = 1e-7


# ---------------------------------------------------------------- metrics

def softmax(logits):
    """Row-wise softmax.

    Args:
        logits: an (N, C) float array.

    Returns:
        numpy.ndarray: (N, C) float64 probabilities.
    """
    z = numpy.asarray(logits, numpy.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = numpy.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - numpy.log(numpy.exp(z).sum(axis=1, keepdims=True))


def nll(logits, labels, T=1.0):
    """Mean negative log-likelihood of ``softmax(logits / T)``.

    Args:
        logits: an (N, C) float array.
        labels: an (N,) int array of classes in ``[0, C)``.
        T (float): temperature, positive.

    Returns:
        float: the mean NLL in nats.
    """
    z = numpy.asarray(logits, numpy.float64) / T
    labels = numpy.asarray(labels, numpy.int64)
    return float(-_log_softmax(z)[numpy.arange(len(labels)), labels].mean())


def accuracy(logits, labels):
    """Share of rows whose arg-max is the label: a float in [0, 1]."""
    return float((numpy.asarray(logits).argmax(axis=1) ==
                  numpy.asarray(labels)).mean())


ReliabilityBins = collections.namedtuple(
    'ReliabilityBins', ['lower', 'upper', 'count', 'confidence', 'accuracy'])
ReliabilityBins.__doc__ = """Per-bin statistics, each an (n_bins,) array.

``lower`` and ``upper`` are a bin's edges (the bin is ``(lower, upper]``),
``count`` its number of examples, ``confidence`` and ``accuracy`` their mean
confidence and share correct (NaN in an empty bin)."""


def _check_scores(confidences, correct, n_bins):
    confidences = numpy.asarray(confidences, numpy.float64).ravel()
    correct = numpy.asarray(correct).ravel()
    if len(confidences) != len(correct):
        raise nlp_utils.UserError(
            'calibration error: {} confidences but {} correctness values'
            .format(len(confidences), len(correct)))
    if not len(confidences):
        raise nlp_utils.UserError('calibration error of an empty set')
    if not numpy.isfinite(confidences).all() or \
            confidences.min() < 0 or confidences.max() > 1:
        raise nlp_utils.UserError(
            'calibration error: confidences must be finite and in [0, 1]')
    if int(n_bins) < 1:
        raise nlp_utils.UserError('the number of bins must be at least 1')
    return confidences, correct.astype(numpy.float64), int(n_bins)


def reliability_bins(confidences, correct, n_bins=N_BINS):
    """Bin predictions by confidence into ``n_bins`` equal-width bins.

    Bin m is ``((m - 1) / M, m / M]`` as in Guo et al. (2017); a confidence
    of exactly 0 goes into the first bin.

    Args:
        confidences: an (N,) float array in [0, 1], e.g. max softmax.
        correct: an (N,) bool or 0/1 array, 1 where the prediction is right.
        n_bins (int): M.

    Returns:
        ReliabilityBins: (M,)-shaped ``lower``, ``upper``, ``count``,
        ``confidence``, ``accuracy``.
    """
    confidences, correct, n_bins = _check_scores(confidences, correct,
                                                 n_bins)
    edges = numpy.linspace(0., 1., n_bins + 1)
    # searchsorted 'left': edges[i - 1] < c <= edges[i] gives i
    index = numpy.clip(numpy.searchsorted(edges, confidences, 'left') - 1,
                       0, n_bins - 1)
    count = numpy.bincount(index, minlength=n_bins)
    with numpy.errstate(invalid='ignore', divide='ignore'):
        conf = numpy.bincount(index, confidences, n_bins) / count
        acc = numpy.bincount(index, correct, n_bins) / count
    return ReliabilityBins(edges[:-1], edges[1:], count, conf, acc)


def expected_calibration_error(confidences, correct, n_bins=N_BINS):
    """Expected calibration error (ECE) over equal-width confidence bins.

    ``ECE = sum_m |B_m| / N * |acc(B_m) - conf(B_m)|`` over M bins of width
    1/M on (0, 1] (Naeini, Cooper and Hauskrecht, 2015, "Obtaining well
    calibrated probabilities using Bayesian binning", AAAI; with M = 15 as
    in Guo, Pleiss, Sun and Weinberger, 2017, "On calibration of modern
    neural networks", ICML).

    Args:
        confidences: an (N,) float array in [0, 1].
        correct: an (N,) bool or 0/1 array.
        n_bins (int): M.

    Returns:
        float: ECE in [0, 1].
    """
    bins = reliability_bins(confidences, correct, n_bins)
    full = bins.count > 0
    gaps = numpy.abs(bins.accuracy[full] - bins.confidence[full])
    return float((bins.count[full] * gaps).sum() / bins.count.sum())


def max_calibration_error(confidences, correct, n_bins=N_BINS):
    """Maximum calibration error (MCE): the largest ``|acc - conf|`` of a
    non-empty bin (Naeini et al., 2015; Guo et al., 2017).

    Args and bins as in :func:`expected_calibration_error`.

    Returns:
        float: MCE in [0, 1].
    """
    bins = reliability_bins(confidences, correct, n_bins)
    full = bins.count > 0
    return float(numpy.abs(bins.accuracy[full] - bins.confidence[full]).max())


# ---------------------------------------------------- temperature scaling

class TemperatureScaling(chainer.Chain):
    """A trained classifier whose logits are divided by a temperature T.

    Guo et al. (2017), section 4.2: one scalar, fitted on held-out data,
    that changes confidences but never the arg-max. T is kept as log T so
    it stays positive. Fit it with :func:`fit_temperature` on logits
    collected once, then pass the result here.

    Args:
        model: a classifier with ``logits(xs)`` -> (B, C) Variable.
        temperature (float): initial T, positive.
    """

    def __init__(self, model, temperature=1.0):
        super().__init__()
        _check_temperature(temperature)
        with self.init_scope():
            self.model = model
            self.log_temperature = chainer.Parameter(
                numpy.array(numpy.log(temperature), numpy.float32))

    @property
    def temperature(self):
        """T as a Python float."""
        return float(numpy.exp(chainer.backend.CpuDevice().send(
            self.log_temperature.array)))

    def logits(self, xs):
        """Inputs -> (B, C) Variable: the model's logits / T."""
        return self.model.logits(xs) / F.exp(self.log_temperature)

    def predict(self, xs):
        """Like the model's ``predict``: (B, C) scaled logits array and
        its ordered dict of (B, D) hidden layers (which T does not touch)."""
        logits, layers = self.model.predict(xs)
        return logits / self.xp.exp(self.log_temperature.array), layers


def _check_temperature(T):
    if not (numpy.isfinite(T) and T > 0):
        raise nlp_utils.UserError('the temperature must be positive and '
                                  'finite, got {!r}'.format(T))


def _check_logits(logits, labels):
    """Validate a calibration set: float64 (N, C) logits, int64 labels."""
    logits = numpy.asarray(logits, numpy.float64)
    labels = numpy.asarray(labels)
    if logits.ndim != 2 or labels.ndim != 1 or \
            len(logits) != len(labels):
        raise nlp_utils.UserError(
            'temperature fit: expected (N, C) logits and (N,) labels, got '
            'shapes {} and {}'.format(logits.shape, labels.shape))
    if not len(labels):
        raise nlp_utils.UserError(
            'temperature fit: the calibration set is empty')
    if not numpy.issubdtype(labels.dtype, numpy.integer) or \
            labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise nlp_utils.UserError(
            'temperature fit: labels must be ints in [0, {})'.format(
                logits.shape[1]))
    if not numpy.isfinite(logits).all():
        raise nlp_utils.UserError(
            'temperature fit: {} of the {} logits are NaN or infinite'.format(
                int((~numpy.isfinite(logits)).sum()), logits.size))
    if len(numpy.unique(labels)) < 2:
        raise nlp_utils.UserError(
            'temperature fit: every calibration label is {}; a single class '
            'says nothing about confidence. Use a larger --n-calib'.format(
                labels[0]))
    return logits, labels.astype(numpy.int64)


def fit_temperature(logits, labels):
    """The temperature T that minimises the NLL of ``softmax(logits / T)``.

    NLL is convex in 1/T, so it has one minimum; it is found with bounded
    Brent search over log T (``scipy.optimize.minimize_scalar``). A finite
    positive minimum exists exactly when some example is misclassified and
    the logits beat the uniform distribution; otherwise, and if the search
    ends at its bound, a :class:`nlp_utils.UserError` says why.

    Args:
        logits: an (N, C) float array, collected once from the
            calibration set (test mode).
        labels: an (N,) int array.

    Returns:
        float: T > 0.
    """
    z, labels = _check_logits(logits, labels)
    spread = numpy.ptp(z, axis=1).max()
    if spread == 0:
        raise nlp_utils.UserError(
            'temperature fit: all logits of every example are equal, so no '
            'temperature changes the probabilities')
    rows = numpy.arange(len(labels))
    true = z[rows, labels]
    # d NLL / d(1/T) at 1/T = 0 is mean(mean_c z - z_y): not negative means
    # NLL is lowest at T = infinity (or a negative T)
    if (z.mean(axis=1) - true).mean() >= 0:
        raise nlp_utils.UserError(
            'temperature fit: the logits do no better than the uniform '
            'distribution on the calibration set (NLL falls as T grows '
            'without bound); is the model trained?')
    # ... and as 1/T grows it tends to mean(max_c z - z_y) >= 0, zero when
    # every label is an arg-max: then NLL keeps falling as T -> 0
    if (z.max(axis=1) == true).all():
        raise nlp_utils.UserError(
            'temperature fit: the model classifies all {} calibration '
            'examples correctly, so NLL keeps falling as T -> 0 and no '
            'temperature minimises it. Use a larger --n-calib'.format(
                len(labels)))
    lo, hi = numpy.log(spread * _T_RANGE[0]), numpy.log(spread * _T_RANGE[1])
    res = scipy.optimize.minimize_scalar(
        lambda log_t: nll(z, labels, numpy.exp(log_t)), bounds=(lo, hi),
        method='bounded', options={'xatol': _LOG_T_TOL, 'maxiter': 500})
    T = float(numpy.exp(res.x))
    if not res.success or not (numpy.isfinite(T) and T > 0):
        raise nlp_utils.UserError(
            'temperature fit failed ({}); got T = {!r}'.format(res.message, T))
    if min(res.x - lo, hi - res.x) < 1e3 * _LOG_T_TOL:
        raise nlp_utils.UserError(
            'temperature fit: the minimum lies at the edge of the search '
            'range (T = {:.3g}); the calibration set is too small or too '
            'easy to fix a temperature'.format(T))
    return T


# -------------------------------------------------------- saved temperature

def temperature_path(setup):
    """Path of ``temperature.json`` in a run folder (``setup['run_dir']``)."""
    return os.path.join(setup['run_dir'], TEMPERATURE_FILE)


def load_temperature(setup):
    """The temperature :func:`main` saved for a run.

    Args:
        setup (dict): a run's settings, as :func:`nets.read_setup` returns.

    Returns:
        float: T > 0.
    """
    path = temperature_path(setup)
    if not os.path.isfile(path):
        raise nlp_utils.UserError(
            '{}: missing. Fit the temperature first: python scaling.py '
            '--model-setup {}'.format(
                path, os.path.join(setup['run_dir'], 'args.json')))
    try:
        with open(path) as f:
            T = float(json.load(f)['temperature'])
    except (ValueError, KeyError, TypeError) as e:
        raise nlp_utils.UserError('{}: unreadable ({}: {}); run scaling.py '
                                  'again'.format(path, type(e).__name__, e))
    _check_temperature(T)
    return T


# ---------------------------------------------------------------- plots

def plot_reliability(panels, path, n_bins=N_BINS):
    """Reliability diagrams side by side, written to a PNG.

    Each panel shows per-bin accuracy as bars against confidence, the gap
    to the diagonal (at the bin's mean confidence) shaded, and the ECE in
    its title. Uses the Agg canvas directly, so no global backend is set.

    Args:
        panels (list): ``(title, confidences, correct)`` triples, each with
            (N,)-shaped arrays; one panel per triple.
        path (str): the PNG to write (atomically).
        n_bins (int): bins per panel.

    Returns:
        matplotlib.figure.Figure: the figure, one axes per panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4 * len(panels), 4.3))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, confidences, correct) in zip(axes, panels):
        bins = reliability_bins(confidences, correct, n_bins)
        ece = expected_calibration_error(confidences, correct, n_bins)
        full = bins.count > 0
        width = bins.upper - bins.lower
        x, w = bins.lower[full], width[full]
        acc, conf = bins.accuracy[full], bins.confidence[full]
        ax.bar(x, acc, w, align='edge', color='#4c72b0', label='accuracy',
               zorder=2)
        # the gap between accuracy and the bin's mean confidence
        ax.bar(x, conf - acc, w, bottom=acc, align='edge', color='#dd5555',
               alpha=0.4, hatch='//', edgecolor='#aa0000', linewidth=0,
               label='gap to diagonal', zorder=3)
        ax.bar(x, acc, w, align='edge', fill=False, edgecolor='black',
               zorder=4)
        ax.plot([0, 1], [0, 1], '--', color='gray', label='perfect')
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel='confidence',
               title='{}\nECE = {:.4f}  (n = {})'.format(
                   title, ece, int(bins.count.sum())))
        ax.set_aspect('equal')
    axes[0].set_ylabel('accuracy')
    axes[0].legend(loc='upper left')
    fig.tight_layout()
    nlp_utils.save_atomic(path, lambda f: fig.savefig(f, format='png',
                                                      dpi=100))
    return fig


def load_dknn_panel(run_dir):
    """The DkNN panel from ``dknn_credibility.npz``, or None without it.

    Returns:
        tuple: ``(title, (N,) credibility, (N,) correct)``.
    """
    path = os.path.join(run_dir, DKNN_CREDIBILITY_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with numpy.load(path) as f:
            return ('DkNN credibility (test)', f['credibility'],
                    f['correct'])
    except (KeyError, ValueError, OSError) as e:
        raise nlp_utils.UserError(
            '{}: expected arrays "credibility" and "correct" ({}: {})'.format(
                path, type(e).__name__, e))


# ---------------------------------------------------------------- script

def build_parser():
    p = argparse.ArgumentParser(
        description='Fit a temperature on the calibration set; report NLL '
                    'and ECE before and after.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--model-setup', required=True,
                   help="the trained run's args.json")
    nlp_utils.add_device_args(p)
    p.add_argument('--data-dir', default=None,
                   help='data folder; unset: the one training used, else '
                        '$%s' % text_datasets.DATA_ENV)
    p.add_argument('--batchsize', '-b', type=int, default=256,
                   help='examples per forward pass')
    p.add_argument('--n-bins', type=int, default=N_BINS,
                   help='equal-width confidence bins for ECE and the plots')
    return p


def load_splits(setup, vocab, data_dir=None):
    """The run's splits (checked against ``calib.json``); refuses an empty
    calibration set."""
    splits = text_datasets.splits_for_setup(setup, vocab, data_dir)
    if not splits.calib:
        raise nlp_utils.UserError(
            'the calibration set is empty (trained with --n-calib 0); train '
            'with --n-calib of a few hundred or more')
    return splits


def evaluate(logits, labels, T, n_bins=N_BINS):
    """Accuracy, NLL, ECE and MCE of ``logits`` before and after T."""
    correct = logits.argmax(axis=1) == labels
    before = softmax(logits).max(axis=1)
    after = softmax(logits / T).max(axis=1)
    return {'n': int(len(labels)), 'accuracy': accuracy(logits, labels),
            'nll_before': nll(logits, labels),
            'nll_after': nll(logits, labels, T),
            'ece_before': expected_calibration_error(before, correct, n_bins),
            'ece_after': expected_calibration_error(after, correct, n_bins),
            'mce_before': max_calibration_error(before, correct, n_bins),
            'mce_after': max_calibration_error(after, correct, n_bins)}


def format_table(results):
    head = '{:<6} {:>6} {:>8} {:>10} {:>10} {:>10} {:>10}'
    row = '{:<6} {:>6d} {:>8.4f} {:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f}'
    lines = [head.format('split', 'n', 'accuracy', 'NLL before', 'NLL after',
                         'ECE before', 'ECE after')]
    for split in ('calib', 'test'):
        r = results[split]
        lines.append(row.format(split, r['n'], r['accuracy'], r['nll_before'],
                                r['nll_after'], r['ece_before'],
                                r['ece_after']))
    return '\n'.join(lines)


def run(args):
    for flag in ('batchsize', 'n_bins'):
        if getattr(args, flag) < 1:
            raise nlp_utils.UserError('--{} must be at least 1'.format(
                flag.replace('_', '-')))
    device = nlp_utils.device_from_args(args)
    device.use()
    model, setup, vocab = nets.load_model(args.model_setup, device)
    splits = load_splits(setup, vocab, args.data_dir)
    calib_logits, _, calib_labels = nets.predict_dataset(
        model, splits.calib, device, args.batchsize, desc='calibration set')
    test_logits, _, test_labels = nets.predict_dataset(
        model, splits.test, device, args.batchsize, desc='test set')
    T = fit_temperature(calib_logits, calib_labels)
    results = {'temperature': T, 'n_bins': args.n_bins,
               'calib': evaluate(calib_logits, calib_labels, T, args.n_bins),
               'test': evaluate(test_logits, test_labels, T, args.n_bins)}

    correct = test_logits.argmax(axis=1) == test_labels
    panels = [('softmax (test)', softmax(test_logits).max(axis=1), correct),
              ('temperature scaled, T = {:.3g} (test)'.format(T),
               softmax(test_logits / T).max(axis=1), correct)]
    dknn = load_dknn_panel(setup['run_dir'])
    if dknn is None:
        print('note: no {} in the run folder; the DkNN credibility panel is '
              'left out'.format(DKNN_CREDIBILITY_FILE))
    else:
        panels.append(dknn)
    plot_reliability(panels, os.path.join(setup['run_dir'],
                                          RELIABILITY_FILE), args.n_bins)
    results['panels'] = [title for title, _, _ in panels]
    nlp_utils.save_json(temperature_path(setup), results)
    return setup, results


def main(argv=None):
    args = build_parser().parse_args(argv)
    print(json.dumps(vars(args), indent=2))
    try:
        setup, results = run(args)
    except nlp_utils.UserError as e:
        raise SystemExit('error: {}'.format(e))
    print(format_table(results))
    print('{}: T = {:.4f}; test NLL {:.4f} -> {:.4f}, ECE {:.4f} -> {:.4f} '
          '(wrote {} and {})'.format(
              setup['run_dir'], results['temperature'],
              results['test']['nll_before'], results['test']['nll_after'],
              results['test']['ece_before'], results['test']['ece_after'],
              TEMPERATURE_FILE, RELIABILITY_FILE))
    return results


if __name__ == '__main__':
    nlp_utils.exit_on_sigterm()
    main()

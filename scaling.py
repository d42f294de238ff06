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
import json
import os

import numpy

import chainer
import chainer.functions as F

import cli
import nets
import runs
import safeio
import text_datasets
from cli import UserError
from metrics import (N_BINS, accuracy, expected_calibration_error,  # NOQA
                     max_calibration_error, nll, reliability_bins, softmax)

TEMPERATURE_FILE = runs.ARTIFACTS['temperature']
RELIABILITY_FILE = runs.ARTIFACTS['reliability']
DKNN_CREDIBILITY_FILE = runs.ARTIFACTS['credibility']
# Search range of T, relative to the largest spread of a logit row.
_T_RANGE = (1e-4, 1e4)
_LOG_T_TOL = 1e-7


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
        raise UserError('the temperature must be positive and '
                                  'finite, got {!r}'.format(T))


def _check_logits(logits, labels):
    """Validate a calibration set: float64 (N, C) logits, int64 labels."""
    logits = numpy.asarray(logits, numpy.float64)
    labels = numpy.asarray(labels)
    if logits.ndim != 2 or labels.ndim != 1 or \
            len(logits) != len(labels):
        raise UserError(
            'temperature fit: expected (N, C) logits and (N,) labels, got '
            'shapes {} and {}'.format(logits.shape, labels.shape))
    if not len(labels):
        raise UserError(
            'temperature fit: the calibration set is empty')
    if not numpy.issubdtype(labels.dtype, numpy.integer) or \
            labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise UserError(
            'temperature fit: labels must be ints in [0, {})'.format(
                logits.shape[1]))
    if not numpy.isfinite(logits).all():
        raise UserError(
            'temperature fit: {} of the {} logits are NaN or infinite'.format(
                int((~numpy.isfinite(logits)).sum()), logits.size))
    if len(numpy.unique(labels)) < 2:
        raise UserError(
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
    ends at its bound, a :class:`UserError` says why.

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
        raise UserError(
            'temperature fit: all logits of every example are equal, so no '
            'temperature changes the probabilities')
    rows = numpy.arange(len(labels))
    true = z[rows, labels]
    # d NLL / d(1/T) at 1/T = 0 is mean(mean_c z - z_y): not negative means
    # NLL is lowest at T = infinity (or a negative T)
    if (z.mean(axis=1) - true).mean() >= 0:
        raise UserError(
            'temperature fit: the logits do no better than the uniform '
            'distribution on the calibration set (NLL falls as T grows '
            'without bound); is the model trained?')
    # ... and as 1/T grows it tends to mean(max_c z - z_y) >= 0, zero when
    # every label is an arg-max: then NLL keeps falling as T -> 0
    if (z.max(axis=1) == true).all():
        raise UserError(
            'temperature fit: the model classifies all {} calibration '
            'examples correctly, so NLL keeps falling as T -> 0 and no '
            'temperature minimises it. Use a larger --n-calib'.format(
                len(labels)))
    import scipy.optimize  # only here: importing this module stays light
    lo, hi = numpy.log(spread * _T_RANGE[0]), numpy.log(spread * _T_RANGE[1])
    res = scipy.optimize.minimize_scalar(
        lambda log_t: nll(z, labels, numpy.exp(log_t)), bounds=(lo, hi),
        method='bounded', options={'xatol': _LOG_T_TOL, 'maxiter': 500})
    T = float(numpy.exp(res.x))
    if not res.success or not (numpy.isfinite(T) and T > 0):
        raise UserError(
            'temperature fit failed ({}); got T = {!r}'.format(res.message, T))
    if min(res.x - lo, hi - res.x) < 1e3 * _LOG_T_TOL:
        raise UserError(
            'temperature fit: the minimum lies at the edge of the search '
            'range (T = {:.3g}); the calibration set is too small or too '
            'easy to fix a temperature'.format(T))
    return T


# ---------------------------------------------------------------- plots

def plot_reliability(panels, n_bins=N_BINS):
    """Reliability diagrams side by side.

    Each panel shows per-bin accuracy as bars against confidence, the gap
    to the diagonal (at the bin's mean confidence) shaded, and the ECE in
    its title. Uses the Agg canvas directly, so no global backend is set.

    Args:
        panels (list): ``(title, confidences, correct)`` triples, each with
            (N,)-shaped arrays; one panel per triple.
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
    return fig


def load_dknn_panel(run_dir):
    """The DkNN panel from ``dknn_credibility.npz``, or None without it.

    Returns:
        tuple: ``(title, (N,) credibility, (N,) correct)``.
    """
    path = os.path.join(run_dir, DKNN_CREDIBILITY_FILE)
    if not os.path.exists(path):
        return None
    fix = 'run run_dknn.py again'
    arrays = safeio.load_npz(path, fix)
    cred, correct = arrays.get('credibility'), arrays.get('correct')
    if cred is None or correct is None or cred.ndim != 1 or \
            cred.shape != correct.shape or cred.dtype.kind != 'f' or \
            correct.dtype.kind != 'b' or not numpy.isfinite(cred).all() or \
            (len(cred) and not 0 <= cred.min() <= cred.max() <= 1):
        raise UserError('{}: expected (N,) arrays "credibility" (in [0, 1]) '
                        'and "correct" (bool); {}'.format(path, fix))
    return 'DkNN credibility (test)', cred, correct


# ---------------------------------------------------------------- script

def build_parser():
    p = cli.parser('Fit a temperature on the calibration set; report NLL '
                   'and ECE before and after.')
    p.add_argument('--model-setup', required=True,
                   help="the trained run's args.json")
    cli.add_device_args(p)
    p.add_argument('--data-dir', default=None,
                   help='data folder; unset: $%s, else the one training '
                        'used' % text_datasets.DATA_ENV)
    p.add_argument('--batchsize', '-b', type=cli.int_at_least(1),
                   default=256, help='examples per forward pass')
    p.add_argument('--n-bins', type=cli.int_at_least(1), default=N_BINS,
                   help='equal-width confidence bins for ECE and the plots')
    return p


def require_calibration(splits):
    """Refuse an empty calibration set (a run trained with --n-calib 0)."""
    if not splits.calib:
        raise UserError('the calibration set is empty (trained with '
                        '--n-calib 0); train with --n-calib of a few hundred '
                        'or more')


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
    device = cli.device_from_args(args)
    run = runs.load(args.model_setup, device, args.data_dir)
    with run.writing() as out:
        require_calibration(run.splits)
        calib_logits, _, calib_labels = nets.predict_dataset(
            run.model, run.splits.calib, device, args.batchsize,
            desc='calibration set')
        test_logits, _, test_labels = nets.predict_dataset(
            run.model, run.splits.test, device, args.batchsize,
            desc='test set')
        T = fit_temperature(calib_logits, calib_labels)
        results = {'temperature': T, 'n_bins': args.n_bins,
                   'calib': evaluate(calib_logits, calib_labels, T,
                                     args.n_bins),
                   'test': evaluate(test_logits, test_labels, T, args.n_bins)}
        correct = test_logits.argmax(axis=1) == test_labels
        panels = [('softmax (test)', softmax(test_logits).max(axis=1),
                   correct),
                  ('temperature scaled, T = {:.3g} (test)'.format(T),
                   softmax(test_logits / T).max(axis=1), correct)]
        dknn = load_dknn_panel(run.folder)
        if dknn is None:
            print('note: no {} in the run folder; the DkNN credibility panel '
                  'is left out'.format(DKNN_CREDIBILITY_FILE))
        else:
            panels.append(dknn)
        fig = plot_reliability(panels, args.n_bins)
        out.write(RELIABILITY_FILE, lambda f: fig.savefig(f, format='png',
                                                          dpi=100))
        results['panels'] = [title for title, _, _ in panels]
        out.write_json(TEMPERATURE_FILE, results)
    return run, results


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    print(json.dumps(vars(args), indent=2))
    run_, results = run(args)
    print(format_table(results))
    print('{}: T = {:.4f}; test NLL {:.4f} -> {:.4f}, ECE {:.4f} -> {:.4f} '
          '(wrote {} and {})'.format(
              run_.folder, results['temperature'],
              results['test']['nll_before'], results['test']['nll_after'],
              results['test']['ece_before'], results['test']['ece_after'],
              TEMPERATURE_FILE, RELIABILITY_FILE))
    return results


if __name__ == '__main__':
    main()

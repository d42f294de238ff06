#!/usr/bin/env python
"""Fit a temperature on the calibration set; report NLL and ECE before and
after scaling, and draw reliability diagrams.

    python scaling.py --model-setup result/stsa.binary_cnn/args.json

Fits one temperature T (:class:`toolkit.temperature.TemperatureScaling`) on the
run's calibration set (the ``calib.json`` examples, kept out of training),
prints accuracy, NLL and ECE before and after scaling on the calibration and
test sets, and writes beside the model ``temperature.json`` (T and those
numbers) and ``reliability.png``: reliability diagrams of the test set for
the softmax, the temperature-scaled softmax and DkNN credibility (k, layers
and scoring rule as given; ``--no-dknn`` leaves that panel out).
"""

import dknn

from toolkit import cli
from toolkit import metrics
from toolkit import render
from toolkit import runfiles
from toolkit import runs
from toolkit.metrics import N_BINS
from toolkit.temperature import TemperatureScaling


def build_parser():
    p = cli.parser(__doc__)
    cli.add_run_flags(p)
    p.add_argument('--n-bins', type=cli.int_in(1, 10000), default=N_BINS,
                   help='equal-width confidence bins for ECE and the plots')
    cli.add_switches(p, {'--no-dknn': 'leave the DkNN panel out'})
    cli.add_dknn_flags(p)
    cli.add_tag_flag(p)
    cli.add_device_args(p)
    return p


def before_after(logits, labels, scaled, n_bins=N_BINS):
    """Accuracy, NLL, ECE and MCE of ``logits`` before and after scaling.

    Args:
        logits: (N, C) array; labels: (N,) ints.
        scaled (TemperatureScaling): the fitted wrapper.
    """
    correct = logits.argmax(axis=1) == labels
    T = scaled.temperature
    out = {'n': int(len(labels)), 'accuracy': float(correct.mean())}
    for when, probs, t in (('before', metrics.softmax(logits), 1.0),
                           ('after', scaled.probs(logits), T)):
        conf = probs.max(axis=1)
        out['nll_' + when] = metrics.nll(logits, labels, t)
        out['ece_' + when] = metrics.expected_calibration_error(
            conf, correct, n_bins)
        out['mce_' + when] = metrics.max_calibration_error(conf, correct,
                                                           n_bins)
    return out


def dknn_panel(run, settings):
    """``(title, (N,) credibility, (N,) correct)`` of the DkNN on the test
    set, from the run's forward-pass cache, and its settings."""
    head, _ = dknn.for_run(run, settings)
    test = run.forward('test', settings.batchsize)
    out = head.predict_activations(test)
    title = 'DkNN {} (k={}, {}) (test)'.format(
        settings.scoring, settings.k, '+'.join(head.layers))
    return (title, out.credibility, out.pred == test.labels), \
        {'k': settings.k, 'layers': head.layers, 'scoring': settings.scoring}


def calibrate(run, settings=dknn.Settings(), n_bins=N_BINS,
              dknn_panel_too=True):
    """Fit T on the run's calibration set; numbers and the figure.

    Returns:
        tuple: (results dict, as saved in ``temperature.json``; the
        reliability-diagram Figure).
    """
    dknn.require_calibration(len(run.examples('calib')))
    calib, test = (run.forward(s, settings.batchsize)
                   for s in ('calib', 'test'))
    scaled = TemperatureScaling().fit(calib.logits, calib.labels)
    T = scaled.temperature
    results = {'temperature': T, 'n_bins': n_bins,
               'calib': before_after(calib.logits, calib.labels, scaled,
                                     n_bins),
               'test': before_after(test.logits, test.labels, scaled,
                                    n_bins)}
    correct = test.logits.argmax(axis=1) == test.labels
    panels = [('softmax (test)', metrics.softmax(test.logits).max(axis=1),
               correct),
              ('temperature scaled, T = {:.3g} (test)'.format(T),
               scaled.probs(test.logits).max(axis=1), correct)]
    if dknn_panel_too:
        panel, results['dknn'] = dknn_panel(run, settings)
        _, cred, right = panel
        results['dknn'].update(accuracy=float(right.mean()),
                               ece=metrics.expected_calibration_error(
                                   cred, right, n_bins))
        panels.append(panel)
    results['panels'] = [title for title, _, _ in panels]
    return results, render.plot_reliability(panels, n_bins)


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


def calibrate_run(run, settings=dknn.Settings(), n_bins=N_BINS,
                  dknn_panel_too=True, flags=None, tag=None):
    """:func:`calibrate`, writing ``reliability.png``, then
    ``temperature.json`` (last: it records completion) into the run
    folder (with ``tag``: ``_TAG`` files, kept beside; only the untagged
    ``temperature.json`` is the one later commands use). Returns the
    results dict, with ``written``."""
    names = [runfiles.tagged(runs.ARTIFACTS[r], tag)
             for r in ('reliability', 'temperature')]
    with run.writing() as out:
        out.expect(*names)
        runfiles.replace_set(out, names[1], set(names))
        results, fig = calibrate(run, settings, n_bins, dknn_panel_too)
        out.write(names[0], render.png_writer(fig))
        results['settings'] = dict(flags or {}, dknn=settings.public())
        out.finish(names[1], results)
    results['written'] = names
    return results


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    run = runs.from_args(args)
    results = calibrate_run(run, cli.dknn_settings(args), args.n_bins,
                            not args.no_dknn, cli.settings_of(args), args.tag)
    print(format_table(results))
    print('{}: T = {:.4f}; test NLL {:.4f} -> {:.4f}, ECE {:.4f} -> {:.4f} '
          '(wrote {})'.format(
              run.folder, results['temperature'],
              results['test']['nll_before'], results['test']['nll_after'],
              results['test']['ece_before'], results['test']['ece_after'],
              ' and '.join(results.pop('written'))))
    return results


if __name__ == '__main__':
    main()

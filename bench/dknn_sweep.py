#!/usr/bin/env python
"""How DkNN accuracy and calibration depend on k, layers and scoring.

    python bench/dknn_sweep.py --runs result/grid/s0/stsa.binary_cnn result/grid/s0/stsa.binary_bilstm

For each run (its cached forward passes are reused), evaluates every combination of k, layer choice
and scoring rule, and writes the ``dknn-sweep`` section of RESULTS.md:
DkNN accuracy minus softmax accuracy, and ECE of the credibility against
the softmax's.
"""
import argparse
import os

from report import RESULTS, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
import dknn  # NOQA
from toolkit import metrics  # NOQA
from toolkit import runs  # NOQA
from toolkit.metrics import expected_calibration_error  # NOQA

KS = (5, 10, 25, 75, 200)
LAYERS = ('last', 'all')


def sweep(run):
    r = runs.load(os.path.join(run, 'args.json'))
    setup = r.setup
    test = r.forward('test')
    labels = test.labels
    softmax = metrics.softmax(test.logits)
    sm_correct = softmax.argmax(1) == labels
    sm = (float(sm_correct.mean()),
          expected_calibration_error(softmax.max(1), sm_correct))
    rows = []
    for which in LAYERS:
        for k in KS:
            head, _ = dknn.for_run(r, dknn.Settings(layers=which, k=k))
            for scoring in dknn.PAPER:
                out = head.with_scoring(scoring).predict_activations(test)
                correct = out.pred == labels
                rows.append((which, k, scoring, float(correct.mean()),
                             expected_calibration_error(out.credibility,
                                                        correct)))
    return setup, sm, rows


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--runs', nargs='+', required=True)
    args = p.parse_args(argv)
    lines = ['## DkNN: k, layers and scoring (`bench/dknn_sweep.py`)', '',
             'Command: `python bench/dknn_sweep.py --runs {}`. Test sets; '
             'difference = DkNN accuracy - softmax accuracy, in points.'
             .format(' '.join(args.runs)), '']
    for run in args.runs:
        setup, (sm_acc, sm_ece), rows = sweep(run)
        lines += ['### {} {}: softmax accuracy {:.2%}, ECE {:.4f}'.format(
            setup['dataset'], setup['model'] + (' (char)' if setup[
                'char_based'] else ''), sm_acc, sm_ece), '',
            '| layers | k | scoring | DkNN accuracy | difference | '
            'credibility ECE |', '|---|---|---|---|---|---|']
        for which, k, scoring, acc, ece in rows:
            lines.append('| {} | {} | {} | {:.2%} | {:+.2f} | {:.4f}{} |'
                         .format(which, k, scoring, acc,
                                 100 * (acc - sm_acc), ece,
                                 ' (below softmax)' if ece <= sm_ece
                                 else ''))
        lines.append('')
    body = '\n'.join(lines)
    write_section('dknn-sweep', body, RESULTS)


if __name__ == '__main__':
    main()

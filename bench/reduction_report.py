#!/usr/bin/env python
"""Input reduction on trained models: the paper's robustness claim, and
the cost of batched reduction. Into RESULTS.md and BENCHMARKS.md.

    python bench/reduction_report.py --runs result/stsa.binary_cnn \\
        result/sst2_grid/glove/stsa.binary_bilstm result/snli/snli_bow

For each run: reduce every test input (gradient-guided, beam 5, as the
authors' rawr.py), measure softmax, temperature-scaled and DkNN confidences
on the original and the reduced inputs, and write ``reduction.json``,
``.png`` and ``.html`` into the run folder. The first run is also reduced
under conformity leave-one-out guidance on its first 200 test inputs, for
the timing. Writes the ``reduction`` section of RESULTS.md and of
BENCHMARKS.md.
"""
import argparse
import os

import numpy

from report import BENCHMARKS, RESULTS, read_json, write_section  # NOQA
from toolkit import cli  # NOQA
from toolkit import attribution  # NOQA
from toolkit import explanations  # NOQA
from toolkit import reduction  # NOQA
from toolkit import render  # NOQA
from toolkit import runs  # NOQA


def reduce_one(folder, method='grad', first=None, beam=5):
    """Reduce a run's test set (or its first ``first`` inputs); write the
    files into the run folder; return the payload."""
    run = runs.load(os.path.join(folder, 'args.json'))
    n = len(run.splits.test)
    indices = list(range(n if first is None else min(first, n)))
    explainer = attribution.Explainer(run.model, run)
    if first is None:
        payload = explanations.reduce_run(explainer, indices, method, beam)
    else:
        payload = reduction.reduce_run(run, explainer, indices, method, beam)
    payload['name'] = '{} {}'.format(run.setup['dataset'], run.setup['model'])
    return payload


def _change(m):
    d = m['mean_reduced'] - m['mean_original']
    return '{} by {:.3f} ({:.3f} -> {:.3f})'.format(
        'rises' if d > 0 else 'falls', abs(d), m['mean_original'],
        m['mean_reduced'])


def claim_holds(s):
    """Does the paper's claim hold on this model? It holds if DkNN
    credibility falls on reduced inputs, by more than the softmax
    confidence, and fewer reduced inputs keep a credibility above 0.9 than
    a softmax confidence above 0.9. ``s``: a reduction summary."""
    soft, cred = s['softmax'], s['conformity']
    fall_soft = soft['mean_original'] - soft['mean_reduced']
    fall_cred = cred['mean_original'] - cred['mean_reduced']
    return bool(fall_cred > max(fall_soft, 0) and
                cred['above_0.9_reduced'] < soft['above_0.9_reduced'])


def verdict(s):
    """The verdict of :func:`claim_holds`, in a sentence."""
    soft, cred = s['softmax'], s['conformity']
    holds = claim_holds(s)
    return ('On reduced inputs the mean softmax confidence {} and the mean '
            'DkNN conformity credibility {}; {:.1%} of reduced inputs keep a '
            'softmax confidence above 0.9, {:.1%} a credibility above 0.9. '
            'The claim (credibility falls on reduced inputs while the '
            'softmax stays confident) **{}** on this model.'.format(
                _change(soft), _change(cred), soft['above_0.9_reduced'],
                cred['above_0.9_reduced'],
                'holds' if holds else 'does not hold'))


def results_section(payloads):
    lines = ['## Input reduction: confidence on original and reduced inputs '
             '(`bench/reduction_report.py`)', '',
             'Command: `python bench/reduction_report.py --runs {}`. Every '
             'test input is reduced (Feng et al. 2018: remove the least '
             'important token by the gradient, re-rank, keep going while the '
             'prediction holds; beam 5), then each confidence is measured on '
             'the original and the reduced input. DkNN: k = 75, last layer. '
             'Figures: `RUN/reduction.png`; inputs side by side: '
             '`RUN/reduction.html`.'.format(
                 ' '.join(p['folder'] for p in payloads)), '']
    for p in payloads:
        s = p['summary']
        one = numpy.mean([len(e['reduced_tokens']) == 1
                          for e in p['examples']])
        lines += ['### {} ({} test inputs)'.format(p['name'],
                                                  len(p['examples'])), '',
                  render.reduction_table(s), '',
                  '{:.1%} of inputs are reduced to a single token. {}'.format(
                      one, verdict(s)), '']
    lines += ['Reading: the softmax\'s pathology that Feng et al. (2018) '
              'describe (confident on a single remaining word) is there; '
              'but DkNN credibility does not flag those inputs either: its '
              'neighbours of a one-word input mostly share its label.']
    return '\n'.join(lines)


def bench_section(grad, loo):
    def sizes(p):
        return ', '.join('{}/{}'.format(s['beams'], s['candidates'])
                         for s in p['steps'])
    return '\n'.join([
        '## Input reduction (`bench/reduction_report.py`)', '',
        '| run | guidance | inputs | seconds | steps | beams scored / '
        'candidates tried, per step |', '|---|---|---|---|---|---|',
        '| {} | gradient, beam 5 | {} | **{:.1f}** | {} | {} |'.format(
            grad['name'], len(grad['examples']), grad['seconds'],
            len(grad['steps']), sizes(grad)),
        '| {} | conformity leave-one-out, beam 5 | {} | **{:.1f}** | {} | {} '
        '|'.format(loo['name'], len(loo['examples']), loo['seconds'],
                   len(loo['steps']), sizes(loo)), '',
        'Every beam of every input goes through one importance call and one '
        'forward pass per step (the authors reduced one batch of 64 inputs '
        'at a time). The goal for the whole SST-2 test set by gradient was '
        'about a minute.'])


def saved(folder):
    """The payload a run's ``reduction.json`` holds."""
    run = runs.load(os.path.join(folder, 'args.json'))
    payload = read_json(run.path('reduction'))
    payload['name'] = '{} {}'.format(run.setup['dataset'], run.setup['model'])
    return payload


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', nargs='+', required=True)
    p.add_argument('--from-saved', action='store_true',
                   help='rewrite the RESULTS.md section from the runs\' '
                        'reduction.json, without reducing again')
    p.add_argument('--timing-only', action='store_true',
                   help='only the BENCHMARKS.md section, on the first run')
    args = p.parse_args(argv)
    if args.timing_only:
        grad = reduce_one(args.runs[0])
        loo = reduce_one(args.runs[0], 'dknn', first=200)
        write_section('reduction', bench_section(grad, loo), BENCHMARKS)
        return
    payloads = []
    for folder in args.runs:
        payloads.append(saved(folder) if args.from_saved
                        else reduce_one(folder))
        payloads[-1]['folder'] = folder
    write_section('reduction', results_section(payloads), RESULTS)
    if not args.from_saved:
        loo = reduce_one(args.runs[0], 'dknn', first=200)
        write_section('reduction', bench_section(payloads[0], loo),
                      BENCHMARKS)


if __name__ == '__main__':
    main()

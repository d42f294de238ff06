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

from report import BENCHMARKS, RESULTS, write_section  # NOQA (first)
import interpretations  # NOQA
import reduction  # NOQA
import render  # NOQA
import runs  # NOQA


def reduce_one(folder, method='grad', first=None, beam=5):
    """Reduce a run's test set (or its first ``first`` inputs); write the
    files into the run folder; return the payload."""
    run = runs.load(os.path.join(folder, 'args.json'))
    n = len(run.splits.test)
    indices = list(range(n if first is None else min(first, n)))
    explainer = interpretations.Explainer(run.model, run)
    with run.writing() as out:
        payload = reduction.reduce_run(run, explainer, indices, method, beam)
        if first is None:
            reduction.write(out, run, payload)
    payload['name'] = '{} {}'.format(run.setup['dataset'], run.setup['model'])
    return payload


def verdict(s):
    """One sentence: does the paper's claim hold on this model?"""
    soft = s['softmax']['mean_original'] - s['softmax']['mean_reduced']
    cred = s['conformity']['mean_original'] - s['conformity']['mean_reduced']
    high_soft = s['softmax']['above_0.9_reduced']
    high_cred = s['conformity']['above_0.9_reduced']
    holds = cred > soft and high_cred < high_soft
    return ('On reduced inputs the mean softmax confidence falls by {:.3f} and '
            'the mean DkNN conformity credibility by {:.3f}; {:.1%} of reduced '
            'inputs keep a softmax confidence above 0.9 and {:.1%} a '
            'credibility above 0.9. The claim that the DkNN is the more '
            'robust uncertainty measure (credibility falls, the softmax stays '
            'confident) **{}** on this model.'.format(
                soft, cred, high_soft, high_cred,
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', nargs='+', required=True)
    args = p.parse_args(argv)
    payloads = []
    for folder in args.runs:
        payloads.append(reduce_one(folder))
        payloads[-1]['folder'] = folder
    loo = reduce_one(args.runs[0], 'dknn', first=200)
    write_section('reduction', results_section(payloads), RESULTS)
    write_section('reduction', bench_section(payloads[0], loo), BENCHMARKS)


if __name__ == '__main__':
    main()

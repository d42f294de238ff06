#!/usr/bin/env python
"""Leave-one-out speed on SST-2, batched against one sentence at a time.

    python bench/bench_interpretations.py --model-setup result/stsa.binary_cnn/args.json

Times conformity leave-one-out over the whole test set, batched (the
library's way), against a reference loop that explains one sentence at a
time (one batch of n variants per sentence, as the original did), in the
same run. Writes the ``interpretations`` section of BENCHMARKS.md. (The
methods' faithfulness is in ``bench/saturation.py``.)
"""
import argparse
import time

import numpy

from report import write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
from toolkit import attribution  # NOQA
from toolkit import runs  # NOQA


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json')
    p.add_argument('--reference-sentences', type=cli.int_in(0, 10 ** 7),
                   default=0,
                   help='time the reference on the first N only (0: all)')
    args = p.parse_args(argv)
    run = runs.load(args.model_setup)
    xs = [x for x, _ in run.splits.test]
    ex = attribution.Explainer(run.model, run)
    body, _ = timing_section(ex, xs, args)
    write_section('interpretations', body)


def timing_section(ex, xs, args):
    """Batched conformity leave-one-out against one sentence at a time:
    the ``interpretations`` section of BENCHMARKS.md, and the batched
    attributions."""
    t = time.perf_counter()
    ex.head  # loads (or builds) the DkNN index
    t_head = time.perf_counter() - t
    t = time.perf_counter()
    batched = attribution.explain(ex, xs, 'dknn')
    t_batched = time.perf_counter() - t
    ref_xs = xs[:args.reference_sentences or len(xs)]
    t = time.perf_counter()
    ref = [attribution.INTERPRETERS['dknn'].explain(ex, [x])[0] for x in ref_xs]
    t_ref = (time.perf_counter() - t) * len(xs) / len(ref_xs)
    gaps = [float(numpy.abs(a.importance - b.importance).max())
            if len(a.importance) else 0.0 for a, b in zip(batched, ref)]
    same = sum(g <= 1e-6 for g in gaps)
    n_variants = sum(len(x) for x in xs)
    body = '\n'.join([
        '## Conformity leave-one-out (`bench/bench_interpretations.py`)', '',
        'Command: `python bench/bench_interpretations.py --model-setup '
        '{}`'.format(args.model_setup), '',
        'The whole SST-2 test set: {} sentences, {} inputs with the '
        'leave-one-out variants, k = 75, last layer, exact search (the default backend).'.format(
            len(xs), n_variants), '',
        '| | seconds |', '|---|---|',
        '| building the DkNN from the cached forward passes (once) | '
        '{:.2f} |'.format(t_head),
        '| batched (64 sentences per forward pass and search) | **{:.2f}** '
        '|'.format(t_batched),
        '| reference: one sentence at a time{} | {:.2f} |'.format(
            '' if len(ref_xs) == len(xs) else
            ' (timed on {}, scaled)'.format(len(ref_xs)), t_ref),
        '', '- Batched is **{:.1f}x** faster than the one-sentence loop '
        '(goal: the whole test set in under 120 s: {:.1f} s).'.format(
            t_ref / t_batched, t_batched),
        agreement(same, len(ref), max(gaps), ex.k)])
    return body, batched


def agreement(same, n, gap, k):
    """The bullet comparing batched and one-at-a-time importances."""
    if same == n:
        return '- The two give identical importances for all {} ' \
            'sentences.'.format(n)
    return ('- The two give the same importances for {} of {} sentences; the '
            'others differ by at most {:.4f} (one neighbour in {}): float '
            'rounding differs with the batch shape (activations by about '
            '1e-6), which flips a near-tie among the neighbours.'.format(
                same, n, gap, k))


if __name__ == '__main__':
    main()

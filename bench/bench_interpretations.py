#!/usr/bin/env python
"""Leave-one-out speed, and the faithfulness of every method, on SST-2.

    python bench/bench_interpretations.py --model-setup result/stsa.binary_cnn/args.json

1. Times conformity leave-one-out over the whole test set, batched (the
   library's way), against a reference loop that explains one sentence at a
   time (one batch of n variants per sentence, as the original did), in the
   same run. Writes the ``interpretations`` section of BENCHMARKS.md.
2. Runs the four methods over the test set and their faithfulness metrics
   (interpretations.faithfulness). Writes the ``faithfulness`` section of
   RESULTS.md.
"""
import argparse
import time

import numpy

from report import RESULTS, write_section  # NOQA (first: sets sys.path)
import interpretations as interp  # NOQA
import faithfulness  # NOQA
import render  # NOQA
import runs  # NOQA


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json')
    p.add_argument('--reference-sentences', type=int, default=0,
                   help='time the reference on the first N only (0: all)')
    args = p.parse_args(argv)
    run = runs.load(args.model_setup)
    xs = [x for x, _ in run.splits.test]
    ex = interp.Explainer(run.model, run)
    body, batched = timing_section(ex, xs, args)
    write_section('interpretations', body)
    body = faithfulness_section(ex, xs, batched, args)
    write_section('faithfulness', body, RESULTS)


def timing_section(ex, xs, args):
    """Batched conformity leave-one-out against one sentence at a time:
    the ``interpretations`` section of BENCHMARKS.md, and the batched
    attributions."""
    t = time.perf_counter()
    ex.head  # loads (or builds) the DkNN index
    t_head = time.perf_counter() - t
    t = time.perf_counter()
    batched = interp.explain(ex, xs, 'dknn')
    t_batched = time.perf_counter() - t
    ref_xs = xs[:args.reference_sentences or len(xs)]
    t = time.perf_counter()
    ref = [interp.INTERPRETERS['dknn'].explain(ex, [x])[0] for x in ref_xs]
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
        'leave-one-out variants, k = 75, last layer, brute search.'.format(
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
        '- The two give the same importances for {} of {} sentences; the '
        'others differ by at most {:.4f} (one neighbour in {}): float '
        'rounding differs with the batch shape (logits by about 1e-6), which '
        'flips a near-tie among the neighbours.'.format(
            same, len(ref), max(gaps), ex.k)])
    return body, batched


def faithfulness_section(ex, xs, batched, args):
    """Faithfulness of the four methods on the whole test set: the
    ``faithfulness`` section of RESULTS.md."""
    metrics = {}
    for m in ('dknn', 'softmax', 'calibrated', 'grad'):
        atts = batched if m == 'dknn' else interp.explain(ex, xs, m)
        metrics[m] = faithfulness.summary(
            lambda inputs: ex.scores(inputs, 'softmax'), xs, atts)
    table = render.faithfulness_table(
        metrics, {m: interp.INTERPRETERS[m].title for m in metrics})
    curve = ['| {} | {} |'.format(interp.INTERPRETERS[m].title, ' '.join(
        '%.3f' % v for v in r['deletion_curve'])) for m, r in metrics.items()]
    return '\n'.join([
        '## Faithfulness of the interpretations on SST-2 '
        '(`bench/bench_interpretations.py`)', '',
        'Model: {} (test accuracy in `train_results.json`); all {} test '
        'sentences. Every metric uses the model\'s softmax probability of '
        'its predicted label on the full sentence, the same yardstick for '
        'every method.'.format(args.model_setup, len(xs)), '',
        '- AOPC: mean drop of that probability as the top 1..10 tokens are '
        'removed (higher: the ranking finds what matters).',
        '- Comprehensiveness at q: drop after removing the top q of tokens '
        '(higher is better); sufficiency at q: drop when keeping only them '
        '(lower is better) (ERASER, DeYoung et al. 2020).',
        '- Reduced length: tokens left after removing, least important '
        'first, every token whose removal keeps the prediction (Feng et al. '
        '2018; lower: the ranking knows what does not matter), against the '
        'mean length.',
        '- Entropy of the normalised |importance| over a sentence, divided '
        'by log n (lower: more concentrated); zero share: tokens with '
        'importance exactly 0.', '', table, '', 'Deletion curves (mean '
        'drop after removing the top k tokens, k = 1..10):', '',
        '| method | k = 1 ... 10 |', '|---|---|'] + curve)


if __name__ == '__main__':
    main()

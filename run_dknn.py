#!/usr/bin/env python
"""Evaluate a trained classifier with and without its DkNN head.

    python run_dknn.py --model-setup result/stsa.binary_cnn/args.json

Builds (or loads) the DkNN index of the run's training set, calibrates it
on the ``calib.json`` examples, and evaluates the test set. Prints and
writes ``dknn_results.json``; also saves the index (``dknn_index.npz``)
and the test credibilities (``dknn_credibility.npz``) beside the model.
"""
import json
import os
import time

import numpy

import cli
import dknn
import runs
from metrics import expected_calibration_error


def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--model-setup', required=True,
                   help='args.json of a trained run')
    p.add_argument('--k', type=cli.int_at_least(1), default=75,
                   help='neighbours per layer')
    p.add_argument('--layers', default='last',
                   help='"last" (the paper), "all", or names joined by ","')
    p.add_argument('--backend', default='brute', choices=sorted(
        dknn.BACKENDS), help='nearest-neighbour search')
    p.add_argument('--lsh', action='store_true',
                   help='alias for --backend lsh (the original flag)')
    p.add_argument('--scoring', default='both',
                   choices=dknn.SCORINGS + ('both',))
    p.add_argument('--batchsize', type=cli.int_at_least(1), default=256)
    p.add_argument('--data-dir', default=None,
                   help='overrides the data folder the run was trained with')
    p.add_argument('--rebuild', action='store_true',
                   help='ignore a saved %s' % runs.ARTIFACTS['index'])
    cli.add_device_args(p)
    return p


def summarise(out, labels, n_bins=15):
    """Accuracy, agreement with softmax, credibility of right and wrong
    predictions and ECE of one scoring rule's output."""
    correct = out.pred == labels
    mean = lambda a: float(a.mean()) if len(a) else float('nan')  # NOQA
    return {'accuracy': mean(correct),
            'agreement_with_softmax': mean(out.pred == out.softmax_pred),
            'credibility_correct': mean(out.credibility[correct]),
            'credibility_wrong': mean(out.credibility[~correct]),
            'ece': expected_calibration_error(out.credibility, correct,
                                              n_bins)}


def evaluate(head, test, scorings):
    """Test-set DkNN outputs for each scoring rule, labels, and the LSH
    recall@k per layer (None for exact backends)."""
    logits, layers, labels = head.activations(test, desc='DkNN: test set')
    counts, found = head.neighbour_counts(layers)
    outs = {s: head.output(logits, counts, found, s) for s in scorings}
    recall = None
    if head.backend == 'lsh':
        recall = {name: dknn.recall_at_k(found[name][0], dknn.BruteIndex(
            head.train_layers[name]).query(layers[name], head.k)[0])
            for name in head.layers}
    return outs, labels, recall


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.lsh:
        args.backend = 'lsh'
    print(json.dumps(vars(args), indent=2))
    scorings = dknn.SCORINGS if args.scoring == 'both' else (args.scoring,)
    device = cli.device_from_args(args)
    run = runs.load(args.model_setup, device, args.data_dir)
    with run.writing() as out:
        head, timing = dknn.for_run(
            run, out, args.rebuild, layers=args.layers, k=args.k,
            backend=args.backend, batchsize=args.batchsize)
        start = time.time()
        outs, labels, recall = evaluate(head, run.splits.test, scorings)
        timing['evaluate'] = time.time() - start
        results = summarise_run(args, head, run.splits, outs, labels, timing)
        if recall is not None:
            results['lsh_recall_at_k'] = recall
        write_outputs(out, results, outs, labels)
    report(results, scorings)
    return results


def summarise_run(args, head, splits, outs, labels, timing):
    """The ``dknn_results.json`` dict: settings, softmax and each rule."""
    first = next(iter(outs.values()))
    softmax_correct = first.softmax_pred == labels
    results = {
        'model_setup': os.path.abspath(args.model_setup),
        'k': args.k, 'layers': head.layers, 'backend': args.backend,
        'n_train': len(splits.train), 'n_calib': len(splits.calib),
        'n_test': len(splits.test),
        'softmax': {'accuracy': float(softmax_correct.mean()),
                    'ece': expected_calibration_error(first.softmax_conf,
                                                      softmax_correct)},
        'seconds': timing}
    for s, out in outs.items():
        results[s] = summarise(out, labels)
    return results


def report(results, scorings):
    """Print one row for softmax and one per scoring rule."""
    row = '{:<16} {:>9} {:>9} {:>10} {:>10} {:>7}'
    fmt = lambda *xs: ['' if x is None else '%.4f' % x for x in xs]  # NOQA
    print(row.format('', 'accuracy', 'agree', 'cred(ok)', 'cred(bad)', 'ECE'))
    sm = results['softmax']
    print(row.format('softmax', *fmt(sm['accuracy'], None, None, None,
                                     sm['ece'])))
    for s in scorings:
        r = results[s]
        print(row.format('dknn ' + s, *fmt(
            r['accuracy'], r['agreement_with_softmax'],
            r['credibility_correct'], r['credibility_wrong'], r['ece'])))
    print('seconds: ' + ', '.join('{} {:.2f}'.format(k, v) for k, v in
                                  results['seconds'].items()))


def write_outputs(out, results, outs, labels):
    """``dknn_results.json``, and ``dknn_credibility.npz`` for scaling.py's
    reliability diagram (``credibility``/``correct`` of the first rule),
    into the command's :class:`safeio.OutputSet`."""
    out.write_json(runs.ARTIFACTS['dknn_results'], results)
    first = next(iter(outs.values()))
    arrays = {'labels': labels, 'credibility': first.credibility,
              'correct': first.pred == labels}
    for s, o in outs.items():
        arrays[s + '_credibility'] = o.credibility
        arrays[s + '_pred'] = o.pred
    out.write(runs.ARTIFACTS['credibility'],
              lambda f: numpy.savez(f, **arrays))


if __name__ == '__main__':
    main()

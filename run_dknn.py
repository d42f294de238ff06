#!/usr/bin/env python
"""Evaluate a trained classifier with and without its DkNN head.

    python run_dknn.py --model-setup result/stsa.binary_cnn/args.json

Indexes the run's training set (without the calibration examples) in the
chosen layers, calibrates on the ``calib.json`` examples, and evaluates the
test set with the softmax and with the DkNN. Prints a table and writes
``dknn_results.json`` and ``dknn_credibility.npz`` (per test example: each
rule's prediction and credibility) beside the model; the forward passes go
to the run's ``activations/`` cache, which later commands reuse.

Three uses of the DkNN's conformal p-values and credibility (see
:mod:`uncertainty`), each adding a key to ``dknn_results.json`` and a
figure beside it:

    --conformal-sets   prediction sets, coverage and size   conformal_sets.png
    --ood SST,...      out-of-distribution AUROC, FPR@95     ood_roc.png
    --selective        risk-coverage and AURC                risk_coverage.png

``--audit-train`` audits the training set instead (see
:mod:`toolkit.audit` and docs/audit.md): every training example scored by
its k nearest other training examples, most suspicious first, into
``train_audit.json``, ``train_audit.html`` (the ``--audit-top`` first, with
their neighbours) and ``train_audit.png``.
"""
import argparse
import os
import time

import dknn
import search
import text_datasets

from toolkit import audit
from toolkit import cli
from toolkit import conformal
from toolkit import metrics
from toolkit import render
from toolkit import runfiles
from toolkit import runs
from toolkit import fileio
from toolkit import uncertainty
from toolkit import user_data


def build_parser():
    p = cli.parser(__doc__)
    cli.add_run_flags(p)
    cli.add_dknn_flags(p, scoring_both=True)
    cli.add_switches(p, {
        '--float16': 'store the hidden layers as float16 (half the memory '
                     'and disk of the index; logits stay float32)',
        '--distributed': cli.DISTRIBUTED,
        '--rebuild': 'compute the forward passes again instead of reading '
                     'the run\'s activations/ cache'})
    add_uncertainty_args(p)
    add_audit_args(p)
    cli.add_tag_flag(p)
    cli.add_device_args(p)
    return p


def add_audit_args(p):
    g = p.add_argument_group('training-set audit (docs/audit.md)')
    g.add_argument('--audit-train', action='store_true',
                   help='instead of the test set, score every training '
                        'example by its nearest other training examples: '
                        'likely label errors first')
    g.add_argument('--audit-top', type=cli.int_in(1, 10 ** 6), default=100,
                   help='examples shown, with their neighbours, in '
                        'train_audit.html (the JSON holds all)')
    cli.add_metric_flag(g)


def ood_names(text):
    """argparse type: data set names joined by ','."""
    names = [n for n in text.split(',') if n]
    known = sorted(text_datasets.DATASETS) + list(uncertainty.OOD_EXTRA)
    unknown = [n for n in names if n not in known and
               not user_data.is_path(n)]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            'unknown data set {}; choose from {}, or give the path of your '
            'own data'.format(', '.join(unknown) or '(none)',
                              ', '.join(known)))
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError('a data set is named twice')
    return names


def add_uncertainty_args(p):
    g = p.add_argument_group('prediction sets, out-of-distribution inputs, '
                             'abstention')
    g.add_argument('--conformal-sets', action='store_true',
                   help='conformal prediction sets from the DkNN votes, '
                        'against softmax LAC and APS sets')
    g.add_argument('--epsilon', nargs='+', default=list(conformal.EPSILONS),
                   type=cli.float_in(0, 1, low_open=True, high_open=True),
                   help='significance levels: each set holds the true '
                        'label with probability >= 1 - eps')
    g.add_argument('--mondrian', action='store_true',
                   help='calibrate each class on its own examples '
                        '(coverage per class)')
    g.add_argument('--ood', type=ood_names, default=[],
                   metavar='DATASET[,DATASET...]',
                   help='test inputs of other data sets, scored against '
                        'this test set (their labels are not used, so any '
                        'label set will do); imdb-sentences: sentences cut '
                        'from IMDB reviews')
    g.add_argument('--ood-limit', type=cli.int_at_least(0), default=2000,
                   help='at most this many inputs per --ood data set, drawn '
                        'with the run\'s seed (0: all)')
    g.add_argument('--selective', action='store_true',
                   help='risk-coverage curves: abstain on the inputs each '
                        'score trusts least')


def summarise(out, labels, softmax_pred, n_bins=metrics.N_BINS):
    """Accuracy, agreement with the softmax, credibility of right and wrong
    predictions and ECE of one scoring rule's output."""
    correct = out.pred == labels
    mean = lambda a: float(a.mean()) if len(a) else None  # NOQA: none
    return {'accuracy': mean(correct),
            'agreement_with_softmax': mean(out.pred == softmax_pred),
            'credibility_correct': mean(out.credibility[correct]),
            'credibility_wrong': mean(out.credibility[~correct]),
            'ece': metrics.expected_calibration_error(out.credibility,
                                                      correct, n_bins)}


def evaluate(run, settings=dknn.Settings(), scorings=dknn.PAPER,
             comm=None, out=None):
    """Softmax and DkNN on the run's test set.

    Args:
        settings (dknn.Settings): k, layers, backend ...; its scoring rule
            is replaced by each of ``scorings``.
        out (fileio.Outputs): where to save the forward passes (None: keep
            them in memory).

    Returns:
        tuple: (the ``dknn_results.json`` dict; scoring rule ->
        :class:`dknn.DkNNOutput` of the test set; the fitted
        :class:`dknn.DkNN`).
    """
    settings = settings.replace(scoring=scorings[0])
    if 'conformal' in scorings:
        dknn.require_calibration(len(run.examples('calib')))
    head, timing = dknn.for_run(run, settings, comm, out)
    start = time.time()
    test = run.forward('test', settings.batchsize, out)
    outs = {s: head.with_scoring(s).predict_activations(test)
            for s in scorings}
    timing['evaluate'] = time.time() - start
    probs = metrics.softmax(test.logits)
    softmax_pred = probs.argmax(axis=1)
    correct = softmax_pred == test.labels
    results = {
        'model_setup': os.path.join(run.folder, runs.ARTIFACTS['setup']),
        'k': settings.k, 'pool': settings.pool, 'k_per_layer': head.k,
        'layers': head.layers, 'backend': settings.backend,
        'n_train': len(run.examples('train')),
        'n_calib': len(run.examples('calib')), 'n_test': len(test.labels),
        'label_names': run.label_names,
        'shared_with_train': text_datasets.overlap(run.splits),
        'softmax': {'accuracy': float(correct.mean()),
                    'ece': metrics.expected_calibration_error(
                        probs.max(axis=1), correct)},
        'seconds': timing}
    for s, o in outs.items():
        results[s] = summarise(o, test.labels, softmax_pred)
    if comm is not None:
        results['ranks'] = comm.size
    if settings.backend not in search.EXACT:
        results['backend_options'] = settings.backend_options()
        results['recall_at_k'] = recall(head, run, outs[scorings[0]], test)
    return results, outs, head


def uncertainty_reports(run, head, results, args):
    """The uses asked for by the flags: each adds a key to ``results``.

    Returns:
        dict: artifact role -> matplotlib Figure.
    """
    figures, scores = {}, None
    if args.conformal_sets:
        sets = uncertainty.conformal_sets(run, head, args.epsilon,
                                          args.mondrian)
        results['conformal_sets'] = sets
        figures['conformal_figure'] = render.plot_conformal_sets(sets)
    if args.ood:
        results['ood'], arrays = uncertainty.ood(
            run, head, args.ood, args.ood_limit, args.batchsize)
        figures['ood_figure'] = render.plot_roc(arrays)
        scores = arrays['in']
    if args.selective:
        results['selective'], curves = uncertainty.selective(run, head,
                                                             scores)
        figures['selective_figure'] = render.plot_risk_coverage(
            curves, results['selective'])
    return figures


def recall(head, run, out, test):
    """recall@k of an approximate backend's neighbours against exact
    search, per layer."""
    train = run.forward('train')
    return {name: search.recall_at_k(
        out.neighbours[name].indices,
        search.BACKENDS[search.DEFAULT](train.layers[name]).query(
            test.layers[name], head.k)[0])
        for name in head.layers}


def credibility_arrays(outs, labels):
    """The ``dknn_credibility.npz`` arrays: labels, and each rule's
    prediction and credibility (plus ``credibility``/``correct`` of the
    first rule)."""
    first = next(iter(outs.values()))
    arrays = {'labels': labels, 'credibility': first.credibility,
              'correct': first.pred == labels}
    for s, o in outs.items():
        arrays[s + '_credibility'] = o.credibility
        arrays[s + '_pred'] = o.pred
    return arrays


def report(results, scorings):
    """Print one row for softmax and one per scoring rule."""
    row = '{:<22} {:>9} {:>9} {:>10} {:>10} {:>7}'
    # None: no example to average (cred(bad) with no error) is shown '-'
    fmt = lambda *xs: ['-' if x is None else x if isinstance(x, str)  # NOQA
                       else '%.4f' % x for x in xs]
    print(row.format('', 'accuracy', 'agree', 'cred(ok)', 'cred(bad)', 'ECE'))
    sm = results['softmax']
    print(row.format('softmax', *fmt(sm['accuracy'], '', '', '',
                                     sm['ece'])))
    for s in scorings:
        r = results[s]
        print(row.format('dknn ' + s, *fmt(
            r['accuracy'], r['agreement_with_softmax'],
            r['credibility_correct'], r['credibility_wrong'], r['ece'])))
    if 'recall_at_k' in results:
        print('recall@{} of the {} neighbours against exact search: {}'
              .format(results['k'], results['backend'], ', '.join(
                  '{} {:.3f}'.format(n, v)
                  for n, v in results['recall_at_k'].items())))
    print('seconds: ' + ', '.join('{} {:.2f}'.format(k, v) for k, v in
                                  results['seconds'].items()))


def report_uncertainty(results):
    """Print the tables of the uses that ran."""
    row = '{:<30}' + ' {:>9}' * 3
    if 'conformal_sets' in results:
        for eps, _ in next(iter(results['conformal_sets']['table'].values()))\
                .items():
            print(row.format('sets at eps = ' + eps, 'coverage', 'size',
                             'single'))
            for name, t in results['conformal_sets']['table'].items():
                r = t[eps]
                print(row.format('  ' + render.SCORE_TITLES[name],
                                 *('%.4f' % r[x] for x in (
                                     'coverage', 'mean_size', 'singleton'))))
    for name, t in results.get('ood', {}).items():
        if isinstance(t, dict):
            print(row.format('ood: ' + name, 'AUROC', 'FPR@95', ''))
            for score in uncertainty.SCORES:
                print(row.format('  ' + render.SCORE_TITLES[score], '%.4f' %
                                 t[score]['auroc'], '%.4f' %
                                 t[score]['fpr_at_95_tpr'], ''))
    if 'selective' in results:
        print(row.format('selective prediction', 'AURC', 'risk@80%', ''))
        for score, t in results['selective'].items():
            print(row.format('  ' + render.SCORE_TITLES[score], '%.4f' %
                             t['aurc'], '%.4f' % t['risk_at']['0.8'], ''))


def outputs_of(uses):
    """The roles of the files :func:`evaluate_run` writes."""
    asked = [] if uses is None else [
        role for role, flag in (('conformal_figure', uses.conformal_sets),
                                ('ood_figure', uses.ood),
                                ('selective_figure', uses.selective)) if flag]
    return ['credibility', 'dknn_results'] + asked


def evaluate_run(run, settings=dknn.Settings(), scorings=dknn.PAPER,
                 comm=None, uses=None, flags=None, tag=None):
    """:func:`evaluate`, writing the forward passes, then
    ``dknn_credibility.npz`` and the figures, then ``dknn_results.json``
    (last: it records completion) into the run folder. Returns the
    results dict. With a ChainerMN ``comm``, every rank searches and rank 0
    alone writes.

    Args:
        uses: parsed flags of :func:`add_uncertainty_args` (None: none),
            for :func:`uncertainty_reports`.
        flags (dict): the command's settings, kept in the results.
        tag (str): ``--tag``: the files get ``_TAG`` (kept beside others).

    A set written before with other settings is replaced, and the figures
    it has and this one has not are removed (said in one line).
    """
    if uses is not None and (uses.conformal_sets or uses.ood or
                             uses.selective):
        dknn.require_calibration(len(run.examples('calib')))
    names = {role: runfiles.tagged(runs.ARTIFACTS[role], tag)
             for role in outputs_of(uses)}
    with run.writing(comm) as out:
        out.expect(*names.values())
        if out.folder is not None:
            runfiles.replace_set(out, names['dknn_results'],
                                 set(names.values()))
        results, outs, head = evaluate(run, settings, scorings, comm, out)
        figures = uncertainty_reports(run, head, results, uses) \
            if uses is not None else {}
        arrays = credibility_arrays(outs, run.forward('test').labels)
        out.write(names['credibility'], fileio.npz_writer(arrays))
        for role, fig in figures.items():
            out.write(names[role], render.png_writer(fig))
        results['settings'] = dict(flags or {}, dknn=settings.public())
        out.finish(names['dknn_results'], results)
    results['written'] = list(out.written)
    return results


def audit_files(run, settings=dknn.Settings(), top=100, flags=None,
                tag=None, metric='l2'):
    """:func:`toolkit.audit.audit_run`, writing the forward passes, then
    ``train_audit.html`` and ``.png``, then ``train_audit.json`` (last: it
    records completion) into the run folder.

    Returns:
        dict: the ``train_audit.json`` content.
    """
    names = {r: runfiles.tagged(runs.ARTIFACTS[r], tag)
             for r in ('audit_page', 'audit_figure', 'audit')}
    with run.writing() as out:
        out.expect(*names.values())
        found = audit.audit_run(run, settings, out)
        record = audit.payload(run, found)
        note = ('{} training examples of {}, scored by their k = {} nearest '
                'other training examples in {} ({} votes); p-value of the '
                'given label against {} calibration examples, most '
                'suspicious first.'.format(
                    len(found.p), run.folder, found.k,
                    ', '.join(found.layers), found.k * len(found.layers),
                    len(run.examples('calib'))))
        out.write(names['audit_page'], lambda f: f.write(
            render.audit_page('Training-set audit', audit.page_records(
                run, found, top, metric), note)), 'w')
        out.write(names['audit_figure'], render.png_writer(
            render.plot_audit_scores(found.p, found.out.pred != found.labels,
                                     audit.ALPHA)))
        record['settings'] = dict(flags or {}, dknn=settings.public())
        out.finish(names['audit'], record)
    record['written'] = list(out.written)
    return record


def audit_line(record):
    """The one line ``--audit-train`` prints."""
    s = record['summary']
    return ('audit: {} training examples; {} flagged as likely label errors '
            '(the confident joint of their neighbours\' votes); {} with p < '
            '{:g} for their own label; suggested label differs for {}; wrote '
            '{}'.format(s['n_train'], s['flagged'], s['below_alpha'],
                        s['alpha'], s['suggested_differs'],
                        ', '.join(record['written'])))


def check_audit_flags(args):
    """``--audit-train`` runs alone: refuse flags it would ignore."""
    others = [flag for flag, on in (
        ('--distributed', args.distributed),
        ('--conformal-sets', args.conformal_sets), ('--ood', args.ood),
        ('--selective', args.selective)) if on]
    if others:
        raise dknn.DkNNError('--audit-train runs on its own; drop {}'.format(
            ', '.join(others)))


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    if args.audit_train:
        check_audit_flags(args)
        record = audit_files(runs.from_args(args, cached=not args.rebuild),
                             cli.dknn_settings(args), args.audit_top,
                             cli.settings_of(args), args.tag,
                             args.neighbour_metric)
        print(audit_line(record) + ' in ' + os.path.dirname(os.path.abspath(
            args.model_setup)))
        return record
    comm = cli.communicator() if args.distributed else None
    run = runs.from_args(args, cached=not args.rebuild)
    cli.agree(comm, cli.fingerprint(args, run))
    results = evaluate_run(run, cli.dknn_settings(args), cli.scorings(args),
                           comm, args, cli.settings_of(args), args.tag)
    if cli.is_rank0():
        warning = text_datasets.overlap_warning(results['shared_with_train'],
                                                run.splits)
        if warning:
            print(warning)
        report(results, cli.scorings(args))
        report_uncertainty(results)
        print('wrote {} in {}'.format(', '.join(results.pop('written')),
                                      run.folder))
    return results


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""Conformal prediction sets, out-of-distribution detection and selective
prediction on the grid's models, into RESULTS.md (and the cost of one OOD
pair into BENCHMARKS.md).

    python bench/uncertainty_report.py [--grid result/grid/s0]

1. ``conformal-sets``: coverage and mean size of DkNN and softmax (LAC,
   APS) prediction sets at eps = 0.05, 0.1 on every grid data set's seed-0
   CNN, marginal and Mondrian. A coverage more than two standard errors
   below 1 - eps (of the calibration draw and of the test sample) counts
   as a failure of the guarantee.
2. ``ood``: AUROC and FPR at 95% TPR of the six trust scores, the SST-2 CNN
   against TREC, SUBJ, SNLI hypotheses and IMDB sentences; the TREC CNN
   against SST-2. ROC figures go to ``docs/figures/ood_roc_*.png``.
3. ``selective``: AURC of each score on every grid data set.

Reads the grid's runs (``make grid``); SNLI comes from the offline
stand-in of ``bench/snli_report.py`` (written here if missing). k = 75, the
last layer, as the paper.
"""
import argparse
import os
import time

import numpy

from report import BENCHMARKS, RESULTS, ROOT, write_section  # NOQA (first)
from toolkit import cli  # NOQA
from toolkit import snli_standin  # NOQA
import dknn  # NOQA
from toolkit import render  # NOQA
from toolkit import runs  # NOQA
import text_datasets  # NOQA
from toolkit import uncertainty  # NOQA

DATASETS = ('stsa.binary', 'stsa.fine', 'TREC', 'subj', 'mpqa',
            'rt-polarity')
OOD_PAIRS = {'stsa.binary': ('TREC', 'subj', 'snli', 'imdb-sentences'),
             'TREC': ('stsa.binary',)}
EPS = (0.05, 0.1)
SETS = ('dknn', 'dknn_all', 'softmax_lac', 'softmax_aps')
SCORES = uncertainty.SCORES + ('conformity_all',)
TITLES = dict(render.SCORE_TITLES,
              dknn_all='DkNN votes (conformal), all layers',
              conformity_all='DkNN conformity, all layers')


def data_folder(shared):
    """A folder of links to the shared data plus the SNLI stand-in."""
    folder = os.path.join(ROOT, 'result', 'ood_data')
    os.makedirs(folder, exist_ok=True)
    standin = os.path.join(ROOT, 'result', 'snli', 'data')
    if not os.path.isdir(os.path.join(standin, 'snli_1.0')):
        snli_standin.write_snli_standin(
            os.path.join(shared, 'snli', 'e-snli'), standin)
    for name in os.listdir(shared):
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(shared, name), link)
    link = os.path.join(folder, 'snli_1.0')
    if not os.path.lexists(link):
        os.symlink(os.path.join(standin, 'snli_1.0'), link)
    return folder


def load(args, dataset):
    """The seed-0 CNN of ``dataset``, its DkNN on the last layer (the
    paper), and one on all layers (Papernot & McDaniel's)."""
    run = runs.load(os.path.join(args.grid, dataset + '_cnn', 'args.json'),
                    data_dir=args.data)
    return run, dknn.for_run(run, dknn.Settings(k=75))[0], \
        dknn.for_run(run, dknn.Settings(k=75, layers='all'))[0]


def slack(eps, n_calib, n_test):
    """Two standard errors of the coverage of one calibration draw on one
    test sample."""
    return 2 * numpy.sqrt(eps * (1 - eps) * (1.0 / n_calib + 1.0 / n_test))


def set_cell(r, e, n_calib, n_test):
    """'coverage / size / singletons' of one summary; Mondrian
    (``n_calib``, ``n_test`` per class): the class furthest below its
    bound."""
    if numpy.ndim(n_calib) == 0:
        cover, fails, which = r['coverage'], r['coverage'] < 1 - e - slack(
            e, n_calib, n_test), ''
    else:
        margins = [(c - (1 - e - slack(e, nc, nt)), c, j) for j, (c, nc, nt)
                   in enumerate(zip(r['class_coverage'], n_calib, n_test))
                   if c is not None and nc > 0]
        margin, cover, j = min(margins)
        fails, which = margin < 0, ' (class {}, {} test)'.format(
            j, n_test[j])
    return '{:.3f}{}{} / {:.2f} / {:.0%}'.format(
        cover, which, ' **fails**' if fails else '', r['mean_size'],
        r['singleton'])


def sets_rows(dataset, run, last, every):
    calib, test = run.forward('calib').labels, run.forward('test').labels
    per_class = [numpy.bincount(y, minlength=run.setup['n_class'])
                 for y in (calib, test)]
    rows = []
    for mondrian in (False, True):
        tables = uncertainty.conformal_sets(run, last, EPS, mondrian)['table']
        tables['dknn_all'] = uncertainty.conformal_sets(
            run, every, EPS, mondrian)['table']['dknn']
        counts = per_class if mondrian else (len(calib), len(test))
        for score in SETS:
            rows.append('| {} | {}{} | {} |'.format(
                dataset, TITLES[score], ', Mondrian (worst class)'
                if mondrian else '', ' | '.join(
                    set_cell(tables[score]['{:g}'.format(e)], e, *counts)
                    for e in EPS)))
    return rows


def with_all_layers(table, every_table):
    """A score table (score -> ...) plus the all-layers conformity."""
    table = dict(table)
    table['conformity_all'] = every_table['conformity']
    return table


def selective_row(dataset, run, last, every):
    table = with_all_layers(uncertainty.selective(run, last)[0],
                            uncertainty.selective(run, every)[0])
    best = min(table, key=lambda s: table[s]['aurc'])
    return '| {} | {} |'.format(dataset, ' | '.join(
        ('**{:.4f}**' if s == best else '{:.4f}').format(table[s]['aurc'])
        for s in SCORES))


def ood_rows(dataset, run, last, every, limit):
    table, arrays = uncertainty.ood(run, last, OOD_PAIRS[dataset], limit)
    every_table, _ = uncertainty.ood(run, every, OOD_PAIRS[dataset], limit)
    render.plot_roc(arrays).savefig(os.path.join(
        ROOT, 'docs', 'figures', 'ood_roc_{}_cnn.png'.format(dataset)),
        dpi=100)
    rows = []
    for name in OOD_PAIRS[dataset]:
        t = with_all_layers(table[name], every_table[name])
        best = max(SCORES, key=lambda s: t[s]['auroc'])
        rows.append('| {} | {} ({}) | {} |'.format(
            dataset, name, table[name]['n'], ' | '.join(
                ('**{:.3f} / {:.2f}**' if s == best else '{:.3f} / {:.2f}')
                .format(t[s]['auroc'], t[s]['fpr_at_95_tpr'])
                for s in SCORES)))
    return rows


def timing(args):
    """One OOD pair end to end against run_dknn's own work, on SST-2."""
    start = time.time()
    run, head, _ = load(args, 'stsa.binary')
    test = run.forward('test')
    uncertainty.answers(head, test)
    dknn_seconds = time.time() - start
    start = time.time()
    uncertainty.ood(run, head, ['TREC'], args.limit)
    return dknn_seconds, time.time() - start


def write_tables(sets, selective, ood, limit):
    """The three RESULTS.md sections."""
    write_section('conformal-sets', '\n'.join([
        '## Conformal prediction sets (`bench/uncertainty_report.py`)', '',
        'Command: `python bench/uncertainty_report.py` (also: `python '
        'run_dknn.py --model-setup ... --conformal-sets [--mondrian]`). '
        'The grid\'s seed-0 CNNs, k = 75 per layer, in the last layer (the '
        'paper) or in all four (Papernot & McDaniel); 1000 calibration '
        'examples. Each cell: coverage / mean set size / share of '
        'singletons. **fails**: coverage more than two standard errors '
        '(calibration draw and test sample) below 1 - eps. Mondrian rows '
        'give the class furthest below its own bound (two standard errors '
        'from that class\'s calibration and test counts).', '',
        '| data set | sets from | eps = 0.05 | eps = 0.1 |',
        '|---|---|---|---|'] + sets), RESULTS)
    titles = [TITLES[s] for s in SCORES]
    write_section('ood', '\n'.join([
        '## Out-of-distribution detection (`bench/uncertainty_report.py`)',
        '', 'Command: `python bench/uncertainty_report.py` (also: `python '
        'run_dknn.py --model-setup ... --ood TREC,subj,snli,imdb-sentences`). '
        'In: the model\'s own test set; out: up to {} test inputs of another '
        'data set (SNLI: hypotheses of the offline stand-in; '
        'imdb-sentences: sentences cut from IMDB test reviews). Each cell: '
        'AUROC / FPR at 95% TPR; the best AUROC of a row in bold.'
        .format(limit), '',
        '| model | out (n) | ' + ' | '.join(titles) + ' |',
        '|---|---|' + '---|' * len(titles)] + ood), RESULTS)
    write_section('selective', '\n'.join([
        '## Selective prediction (`bench/uncertainty_report.py`)', '',
        'Command: `python bench/uncertainty_report.py` (also: `python '
        'run_dknn.py --model-setup ... --selective`). AURC, the mean error '
        'rate over coverages 1/N .. 1 when abstaining on the least trusted '
        'test inputs (lower is better; the best of a row in bold). The two '
        'DkNN credibilities rank the DkNN\'s answers, the other scores the '
        'softmax\'s.', '',
        '| data set | ' + ' | '.join(titles) + ' |',
        '|---|' + '---|' * len(titles)] + selective), RESULTS)


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--grid', default='result/grid/s0')
    p.add_argument('--limit', type=cli.int_in(0, 10 ** 7), default=2000)
    args = p.parse_args(argv)
    args.data = data_folder(text_datasets.data_dir_from(None))
    sets, selective, ood = [], [], []
    for dataset in DATASETS:
        run, last, every = load(args, dataset)
        sets += sets_rows(dataset, run, last, every)
        selective.append(selective_row(dataset, run, last, every))
        if dataset in OOD_PAIRS:
            ood += ood_rows(dataset, run, last, every, args.limit)
    write_tables(sets, selective, ood, args.limit)
    dknn_s, ood_s = timing(args)
    write_section('ood-cost', '\n'.join([
        '## The cost of one out-of-distribution pair '
        '(`bench/uncertainty_report.py`)', '',
        'SST-2 CNN against up to {} TREC questions, after the forward passes '
        'are cached: {:.2f} s for the OOD scores (read TREC, one forward '
        'pass, both DkNN rules, the normalised kNN index) against {:.2f} s '
        'for run_dknn\'s own work (index, calibration, both rules on the '
        'test set): **{:.1f}x**.'.format(args.limit, ood_s, dknn_s,
                                          ood_s / dknn_s)]), BENCHMARKS)


if __name__ == '__main__':
    main()

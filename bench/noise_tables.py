"""The markdown of bench/label_noise.py: detection, cleaning, real labels.

Every function turns the saved results (``result/label_noise/results.json``)
into a string; nothing here trains or reads a run.
"""
import numpy

from report import ROOT  # NOQA (sets sys.path)
from toolkit import render  # NOQA

TITLES = {'dknn_paper': 'DkNN audit, k = 75, last layer (the paper)',
          'dknn_best': 'DkNN audit, all layers, k = {dknn_k}',
          'loss': 'the model\'s loss',
          'logit_knn': 'kNN on the logits, k = {logit_k} (Bahri et al. 2020)',
          'cleanlab': 'cleanlab, 5-fold cross-validation (self-confidence '
                      'rank; own flags: find_label_issues)'}
SHORT = {'dknn_paper': 'DkNN k=75 last', 'dknn_best': 'DkNN all k={dknn_k}',
         'loss': 'loss', 'logit_knn': 'logit kNN k={logit_k}',
         'cleanlab': 'cleanlab (5-fold)'}
DATA = {'stsa.binary': 'SST-2', 'TREC': 'TREC', 'subj': 'SUBJ',
        'snli': 'SNLI stand-in'}


def title(name, tuned, short=False):
    return (SHORT if short else TITLES)[name].format(**tuned)


def noise_label(d):
    if d['noise'] == 'uniform':
        return 'uniform {:.0%}'.format(d['rate'])
    return '{} {:.0%} of each'.format(' <-> '.join(d['classes']), d['rate'])


def row_name(d):
    model = '' if d['model'] == 'cnn' else ' ({})'.format(d['model'])
    return DATA.get(d['dataset'], d['dataset']) + model


def headline(detect, tuned):
    """AUROC per data set at 20% uniform noise, and cleanlab's time."""
    names = list(TITLES)
    lines = ['| data set | ' + ' | '.join(title(n, tuned, True)
                                          for n in names) +
             ' | cleanlab time / DkNN audit time | the same, training the '
             'audited model included |',
             '|---|' + '---|' * (len(names) + 2)]
    for d in detect.values():
        if d['noise'] != 'uniform' or d['rate'] != 0.2:
            continue
        r = d['rankers']
        best = max(r[n]['auroc'] for n in names)
        cells = [('**{:.3f}**' if r[n]['auroc'] == best else '{:.3f}')
                 .format(r[n]['auroc']) for n in names]
        audit = r['dknn_paper']['seconds']
        lines.append('| {} | {} | {:.0f}x | {:.1f}x |'.format(
            row_name(d), ' | '.join(cells), r['cleanlab']['seconds'] / audit,
            r['cleanlab']['seconds'] / (audit + d['train_seconds'])))
    return '\n'.join(lines)


def goal(detect, tuned):
    """The issue's goal, per DkNN setting: AUROC at least cleanlab's on
    two of the three data sets at 20% noise, at a fifth of its time."""
    rows = [d for d in detect.values() if d['noise'] == 'uniform' and
            d['rate'] == 0.2 and d['model'] == 'cnn']
    out = []
    for name in ('dknn_paper', 'dknn_best'):
        wins = [row_name(d) for d in rows if d['rankers'][name]['auroc'] >=
                d['rankers']['cleanlab']['auroc']]
        ratio = max(d['rankers'][name]['seconds'] /
                    d['rankers']['cleanlab']['seconds'] for d in rows)
        out.append('{}: AUROC at least cleanlab\'s on {} of {} ({}); at '
                   'most {:.2f} of its wall time: goal {}.'.format(
                       title(name, tuned, True), len(wins), len(rows),
                       ', '.join(wins) or 'none', ratio,
                       'met' if len(wins) >= 2 and ratio <= 0.2 else
                       '**not met**'))
    return ' '.join(out)


def _own(r):
    if 'own_count' not in r:
        return '-'
    return '{} ({:.2f} / {:.2f})'.format(r['own_count'], r['own_precision'],
                                         r['own_recall'])


def every_condition(detect, tuned):
    lines = ['| data set | noise | flipped / training | ranker | AUROC | '
             'AUPRC | precision at n (= recall at n) | own flags: count '
             '(precision / recall) | seconds | time / DkNN audit |',
             '|' + '---|' * 10]
    for d in detect.values():
        base = d['rankers']['dknn_paper']['seconds']
        for n, r in d['rankers'].items():
            lines.append('| {} | {} | {} / {} | {} | {:.3f} | {:.3f} | '
                         '{:.3f} | {} | {:.1f} | {:.1f} |'.format(
                             row_name(d), noise_label(d), d['n_flipped'],
                             d['n_train'], title(n, tuned, True),
                             r['auroc'], r['auprc'], r['p_at_n'], _own(r),
                             r['seconds'], r['seconds'] / base))
    return '\n'.join(lines)


def models(detect):
    """The noisy models: test accuracy, and how much noise they fit."""
    lines = ['| data set | noise | test accuracy | flipped labels the model '
             'predicts (training) | other training labels it predicts |',
             '|---|---|---|---|---|']
    for d in detect.values():
        lines.append('| {} | {} | {:.2%} | {} | {} |'.format(
            row_name(d), noise_label(d), d['noisy_test_accuracy'],
            *('{:.1%}'.format(d[k]) if k in d else '-'
              for k in ('fits_flipped', 'fits_rest'))))
    return '\n'.join(lines)


def tuning(tuned):
    grid = tuned['grid']
    ks = sorted(next(iter(grid.values())), key=int)
    lines = ['| AUROC on the tuning draw | ' + ' | '.join(
        'k = {}'.format(k) for k in ks) + ' |', '|---|' + '---|' * len(ks)]
    for name, row in grid.items():
        lines.append('| {} | {} |'.format(name.replace('_', ' '), ' | '.join(
            '{:.3f}'.format(row[k]) for k in ks)))
    return '\n'.join(lines)


def _spread(values):
    v = 100 * numpy.asarray(values)
    if len(v) == 1:
        return '{:.2f}%'.format(v[0])
    return '{:.2f} ± {:.2f}%'.format(v.mean(), v.std(ddof=1))


def cleaning(result, tuned):
    lines = ['| training set | test accuracy, mean ± std over seeds {} |'
             .format(', '.join(map(str, result['seeds']))), '|---|---|']
    for key, accs in result['accuracy'].items():
        name = key if not key.startswith('minus_') else \
            'noisy, top {} of {} removed'.format(result['n_removed'],
                                                 title(key[6:], tuned, True))
        lines.append('| {} | {} ({}) |'.format(
            name, _spread(accs), ', '.join('{:.4f}'.format(a)
                                            for a in accs)))
    return '\n'.join(lines)


def real_table(real):
    """The top 20 of the audit of the real SST-2 training labels."""
    lines = ['| rank | line of stsa.binary.train | text | label | suggested '
             '| p-value | votes (negative / positive) |',
             '|---|---|---|---|---|---|---|']
    for rank, e in enumerate(real['top'], 1):
        lines.append('| {} | {} | {} | {} | {} | {:.3f} | {} |'.format(
            rank, e['line'], render.md_escape(e['text']), e['label'],
            e['suggested'], e['score'], ' / '.join(
                str(v) for v in e['counts'].values())))
    return '\n'.join(lines)


def real_section(real):
    s = real['summary']
    return '\n'.join([
        '## The real SST-2 training labels, audited (`bench/label_noise.py`)',
        '', 'Command: `python bench/label_noise.py --stages real` (as `python '
        'run_dknn.py --model-setup RUN/args.json --audit-train` on the `make '
        'train` model, test accuracy {:.2%}; k = 75, last layer). Of {} '
        'training sentences, {} have p < 0.05 for their own label and the '
        'neighbours suggest the other label for {}; {} sentences have an '
        'exact copy elsewhere in the training split. The 20 most suspicious:'
        .format(real['test_accuracy'], s['n_train'], s['below_alpha'],
                s['suggested_differs'], s['duplicates']), '',
        real_table(real)])


def setup_text(done, args):
    tuned = done['tune']
    return (
        'Command: `python bench/label_noise.py{}` (run here in pieces with '
        '`--stages` and `--datasets`; finished trainings are reused, so the '
        'pieces add up to the one command). Every model is the `make train` '
        'recipe on the noisy labels '
        '(CNN, GloVe 6B 50d, `--epoch 5 --batchsize 32 --dropout 0.2`, seed '
        '0; the SNLI stand-in of docs/snli.md: bow pair model, 15 epochs). '
        'Labels are flipped '
        'in the training split only, seeded (noise seed 0), uniformly to '
        'another class, or for TREC between DESC and ENTY (20% of each); the '
        'calibration (1000), validation and test splits keep their labels: '
        'the noisy set is written as a user data set whose splits equal the '
        'built-in ones (`bench/noisy_data.py`), and the flipped indices are '
        'in `{}/results.json`. k of the all-layer audit and of kNN on the '
        'logits was chosen by AUROC on a separate draw ({}, table below), '
        'never on the measured draws. AUROC and AUPRC: scikit-learn, the '
        'flipped examples as positives. Precision at n, n = the number '
        'flipped, equals recall at n. Own flags: the audit\'s p < 0.05, '
        'cleanlab\'s `find_label_issues` (default `prune_by_noise_rate`). '
        'Seconds are wall time on a 2-core machine shared with other jobs '
        '(noisy, so compare ratios): the audit, loss and logit kNN from a '
        'cold start (forward passes included), given the trained model; '
        'cleanlab includes its 5 trainings. Training the audited model took '
        '{:.0f} s on SST-2.'.format(
            ' --extra ' + ' '.join(args.extra) if args.extra else '',
            args.out, tuned['condition'],
            done['detect'].get('sst2_u20_n0', {}).get('train_seconds', 0)))


def sections(done, args, cost):
    """Section name -> markdown, for the stages that have results;
    ``cost``: (trainings, their wall seconds in all)."""
    out = {}
    tuned = done.get('tune')
    if 'detect' in done:
        parts = ['## Finding flipped training labels '
                 '(`bench/label_noise.py`)', '', setup_text(done, args), '',
                 'AUROC at 20% uniform noise (best of a row in bold):', '',
                 headline(done['detect'], tuned), '',
                 goal(done['detect'], tuned),
                 '', 'Every condition:', '',
                 every_condition(done['detect'], tuned), '',
                 'The models trained on the noisy labels (seed 0):', '',
                 models(done['detect']), '',
                 'The tuning draw:', '', tuning(tuned)]
        if 'clean' in done:
            parts += ['', 'Cleaning SST-2 at 20% uniform noise: remove each '
                      'ranker\'s top n (n = the number flipped), retrain '
                      'with the same recipe and seed:', '',
                      cleaning(done['clean'], tuned)]
        parts += ['', 'Cost: {} trainings on noisy, clean and cleaned '
                  'sets, {:.0f} minutes of wall time in all on the shared '
                  '2-core machine.'.format(cost[0], cost[1] / 60)]
        out['label-noise'] = '\n'.join(parts)
    if 'real' in done:
        out['label-noise-real'] = real_section(done['real'])
    if 'flagged' in done:
        out['label-noise-flagged'] = flagged_section(done['flagged'])
    return out


def flagged_section(rows):
    """Precision / recall of each flagged list, calibration clean or noisy.
    """
    lines = ['## The flagged list when the calibration set is noisy too '
             '(`bench/label_noise.py --stages flagged`)', '',
             'The `make train` recipe on each noisy training set, seed 0; '
             'the calibration examples either clean or flipped by the same '
             'noise (another draw). Each cell: precision / recall (the '
             'number flagged). The audit\'s flagged list is the confident '
             'joint of the leave-self-out votes (toolkit/audit.py); its '
             '`p < 0.05` list reads the calibration set; cleanlab\'s '
             'find_label_issues reads 5-fold cross-validated probabilities '
             'and no calibration set.', '',
             '| condition | flipped | audit, clean calib. | audit, noisy '
             'calib. | p < 0.05, clean calib. | p < 0.05, noisy calib. | '
             'cleanlab |', '|---|---|---|---|---|---|---|']
    cell = lambda r: '{:.2f} / {:.2f} ({})'.format(  # NOQA
        r['precision'], r['recall'], r['count'])
    for name, r in rows.items():
        lines.append('| {} | {} | {} | {} | {} | {} | {} |'.format(
            name, r['n_flipped'], cell(r['clean']['confident joint']),
            cell(r['noisy']['confident joint']), cell(r['clean']['p < 0.05']),
            cell(r['noisy']['p < 0.05']), cell(r['cleanlab'])))
    return '\n'.join(lines)

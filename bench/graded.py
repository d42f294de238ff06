#!/usr/bin/env python
"""A DkNN explanation that never goes blank? The graded rules against the
paper's, on the paper's yardsticks.

    python bench/graded.py              # measure every cell, write RESULTS
    python bench/graded.py --report     # the section from measured cells

Rules (:mod:`dknn`): ``conformity`` and ``conformal`` (the paper's), and the
graded rules of class-conditional distances, ``graded`` and
``graded-conformal``; beside them confidence leave-one-out (``softmax``)
and the gradient (``grad``). Models: SST-2 CNN and BiLSTM with the ``make
train`` recipe (a) and the overconfident recipe (b: no dropout, 30 epochs,
the last kept), the TREC and SUBJ CNNs with recipe a; 2 seeds each (the
data split fixed by ``--seed 0``, the weights by ``--init-seed``). A model
whose run folder exists is not trained again (``result/models/RECIPE/
sSEED/DATA_MODEL``, shared with bench/neighbour_tests.py).

Per model and rule (:func:`measure`): DkNN accuracy minus softmax accuracy
and the ECE of credibility (whole test set); exact zeros and importances
below 0.01, AOPC, comprehensiveness and sufficiency (the top 20% of
tokens) on the softmax and on the rule's own score, Kendall tau against
confidence leave-one-out, VADER sign and rank (SST-2; zeros counted as
misses, and on nonzero importances only), on the first ``--n-explain``
test sentences; credibility on the first ``--n-reduce`` test sentences and
their gradient-guided reductions; OOD AUROC against SNLI hypotheses and
IMDB sentences; conformal coverage and set size at epsilon 0.1; seconds per
1,000 inputs. A measured cell is kept in ``OUT/cells/``.
"""
import functools
import os
import time

import numpy

from report import read_json, write_table  # NOQA (first)
import dknn  # NOQA
import text_datasets  # NOQA
import human_alignment  # NOQA
import train_text_classifier  # NOQA
from errors import UserError  # NOQA
from toolkit import attribution  # NOQA
from toolkit import cli  # NOQA
from toolkit import faithfulness  # NOQA
from toolkit import fileio  # NOQA
from toolkit import metrics  # NOQA
from toolkit import reduction  # NOQA
from toolkit import runs  # NOQA
from toolkit import uncertainty  # NOQA
from toolkit.settings import TrainSettings  # NOQA

GLOVE = os.path.join('glove', 'glove.6B.50d.txt.gz')
K = 75
RECIPES = {
    'a': dict(epoch=5, batchsize=32, dropout=0.2, word_vectors=GLOVE),
    'b': dict(epoch=30, batchsize=32, dropout=0.0, keep='last',
              word_vectors=GLOVE),
}
MODELS = {'cnn': dict(unit=300, layer=3), 'bilstm': dict(unit=150, layer=1)}
CELLS = [('stsa.binary', 'cnn', 'a'), ('stsa.binary', 'bilstm', 'a'),
         ('stsa.binary', 'cnn', 'b'), ('stsa.binary', 'bilstm', 'b'),
         ('TREC', 'cnn', 'a'), ('subj', 'cnn', 'a')]
SEEDS = (0, 1)
RULES = dknn.SCORINGS
METHODS = RULES + ('softmax', 'grad')
OOD = ('snli', 'imdb-sentences')
FRACTION = 0.2     # of the tokens, for comprehensiveness and sufficiency
EPSILON = 0.1


def folder_of(models_dir, dataset, model, recipe, seed):
    return os.path.join(models_dir, recipe, 's{}'.format(seed),
                        '{}_{}'.format(dataset, model))


def train(models_dir, dataset, model, recipe, seed, data_dir):
    """The cell's run folder, trained when it is not there."""
    folder = folder_of(models_dir, dataset, model, recipe, seed)
    if not os.path.isfile(os.path.join(folder, 'train_results.json')):
        train_text_classifier.train_run(TrainSettings(
            dataset=dataset, model=model, seed=0, init_seed=seed,
            data_dir=data_dir, out=os.path.dirname(folder),
            **dict(MODELS[model], **RECIPES[recipe])))
    return folder


# ------------------------------------------------------------ measuring

def calibration(run, head):
    """Softmax and every rule on the whole test set, from one search."""
    test = run.forward('test')
    probs = metrics.softmax(test.logits)
    right = probs.argmax(axis=1) == test.labels
    start = time.time()
    found = head.search(test.layers)
    searched = time.time() - start
    row = {'softmax': {'accuracy': float(right.mean()),
                       'ece': metrics.expected_calibration_error(
                           probs.max(axis=1), right)},
           'search_seconds_per_1000': 1000 * searched / len(test.labels)}
    for rule in RULES:
        out = head.with_scoring(rule).answer(found)
        ok = out.pred == test.labels
        row[rule] = {'accuracy': float(ok.mean()),
                     'agreement': float((out.pred == probs.argmax(1)).mean()),
                     'credibility': float(out.credibility.mean()),
                     'ece': metrics.expected_calibration_error(
                         out.credibility, ok)}
    return row


def explainers(run, head):
    """rule -> an Explainer whose ``dknn`` method leaves one out of that
    rule's score (one head for all)."""
    T = run.temperature_or_fit()
    return {rule: attribution.Explainer(
        run.model, run, settings=dknn.Settings(k=K, scoring=rule),
        head=head, temperature=T) for rule in RULES}


def own_score(ex, rule):
    """``score(inputs) -> (M, C)`` of a rule (its probabilities or
    p-values), or the softmax."""
    if rule in RULES:
        return lambda inputs: ex.head.predict_activations(
            ex.forward(inputs)[1]).scores if len(inputs) else \
            numpy.zeros((0, ex.model.n_class))
    return lambda inputs: attribution.softmax_scores(ex, inputs)


def importances(exs, xs):
    """method -> (attributions, seconds per 1,000 inputs)."""
    out = {}
    for m in METHODS:
        ex = exs[m] if m in RULES else exs['conformity']
        start = time.time()
        atts = attribution.explain(ex, xs, 'dknn' if m in RULES else m,
                                   chunk=64)
        out[m] = (atts, 1000 * (time.time() - start) / max(len(xs), 1))
    return out


def method_row(exs, m, xs, atts, reference, tokens, lex, field):
    """Saturation, faithfulness on both yardsticks, agreement."""
    ex = exs[m] if m in RULES else exs['conformity']
    row = {'zero': faithfulness.zero_share(atts),
           'small': faithfulness.zero_share(atts, 0.01),
           'tau_loo': faithfulness.kendall_tau(atts, reference)}
    for name, score in (('softmax', own_score(ex, 'softmax')),
                        ('own', own_score(ex, m))):
        curve = faithfulness.deletion_curve(score, xs, atts, field)
        row['aopc_' + name] = faithfulness.aopc(curve)
        row['comp_' + name] = faithfulness.comprehensiveness(
            score, xs, atts, FRACTION, field)
        row['suff_' + name] = faithfulness.sufficiency(
            score, xs, atts, FRACTION, field)
    if lex is not None:
        a = human_alignment.alignment(atts, tokens, lex)
        row.update(sign=a['sign'], sign_all=a['sign'] * (1 - a['zero']),
                   lexicon_zero=a['zero'], spearman=a['spearman'])
    return row


def robust(reds):
    """Mean credibility of each rule (and the softmax) on original and
    reduced inputs, and whether the paper's claim holds for the rule: it
    falls, by more than the softmax, and fewer reduced inputs keep it
    above 0.9 than keep a softmax confidence above 0.9."""
    s = reds['summary']
    names = {'softmax': 'softmax', 'conformity': 'conformity',
             'conformal': 'conformal_credibility',
             'graded': 'graded_credibility',
             'graded-conformal': 'graded_conformal_credibility'}
    soft = s['softmax']
    fall_soft = soft['mean_original'] - soft['mean_reduced']
    out = {}
    for rule, key in names.items():
        m = s[key]
        fall = m['mean_original'] - m['mean_reduced']
        out[rule] = {'original': m['mean_original'],
                     'reduced': m['mean_reduced'],
                     'above_0.9_reduced': m['above_0.9_reduced'],
                     'holds': bool(rule != 'softmax' and
                                   fall > max(fall_soft, 0) and
                                   m['above_0.9_reduced'] <
                                   soft['above_0.9_reduced'])}
    return out


def measure(folder, lex, n_explain, n_reduce):
    """Every number of one model (see the module docstring)."""
    run = runs.load(os.path.join(folder, 'args.json'))
    head = dknn.for_run(run, dknn.Settings(k=K))[0]
    row = {'calibration': calibration(run, head),
           'n_test': len(run.splits.test)}
    exs = explainers(run, head)
    xs = [x for x, _ in run.splits.test][:n_explain or None]
    tokens = [f[0] for f, _ in run.splits.raw['test']][:len(xs)]
    atts = importances(exs, xs)
    sentiment = run.setup['dataset'] == 'stsa.binary'
    row['methods'] = {m: dict(method_row(
        exs, m, xs, atts[m][0], atts['softmax'][0], tokens,
        lex if sentiment else None, exs[RULES[0]].field),
        seconds_per_1000=atts[m][1]) for m in METHODS}
    n = min(n_reduce or len(run.splits.test), len(run.splits.test))
    row['reduction'] = robust(reduction.reduce_run(
        run, exs['conformity'], list(range(n)), 'grad', 5))
    ood, _ = uncertainty.ood(run, head, OOD, limit=2000)
    row['ood'] = {d: {s: ood[d][s]['auroc'] for s in uncertainty.SCORES}
                  for d in OOD}
    sets = uncertainty.conformal_sets(run, head, [EPSILON])['table']
    row['conformal'] = {name: sets[name][str(EPSILON)]
                        for name in ('dknn', 'dknn_graded', 'softmax_lac')}
    row.update(n_explain=len(xs), n_reduce=n,
               temperature=exs['conformity'].temperature[0],
               graded_temperature=head.temperature)
    return row


def measure_cell(args, lexicon, dataset, model, recipe, seed):
    """One cell's row: read from ``OUT/cells/`` when measured, else
    measured and kept; ``lexicon()`` gives VADER's lexicon, asked for
    only when a cell is measured."""
    path = os.path.join(args.out, 'cells', '{}_{}_{}_s{}.json'.format(
        dataset, model, recipe, seed))
    if os.path.exists(path):
        return read_json(path)
    folder = train(args.models_dir, dataset, model, recipe, seed,
                   args.data_dir)
    start = time.time()
    row = measure(folder, lexicon(), args.n_explain, args.n_reduce)
    row.update(dataset=dataset, model=model, recipe=recipe, seed=seed,
               folder=folder, seconds=time.time() - start)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.save_json(path, row)
    return row


# ---------------------------------------------------------------- tables

def _pm(values, fmt='{:.3f}'):
    v = numpy.asarray([x for x in values if x is not None], numpy.float64)
    if not len(v):
        return '–'
    if len(v) == 1:
        return fmt.format(v[0])
    return (fmt + ' ± ' + fmt).format(v.mean(), v.std(ddof=1))


def by_cell(rows):
    """Rows grouped by (dataset, model, recipe), in :data:`CELLS` order."""
    out = {}
    for cell in CELLS:
        rs = [r for r in rows if (r['dataset'], r['model'], r['recipe'])
              == cell]
        if rs:
            out[cell] = rs
    return out


def cell_name(cell):
    dataset, model, recipe = cell
    return '{} {} {}'.format({'stsa.binary': 'SST-2', 'TREC': 'TREC',
                              'subj': 'SUBJ'}[dataset], model, recipe)


def table(rows, columns, get, fmt='{:.3f}', title='cell'):
    """A markdown table: a row per cell, a column per name, mean ± sd of
    ``get(row, name)`` over the cell's seeds."""
    lines = ['| {} | {} |'.format(title, ' | '.join(columns)),
             '|' + '---|' * (len(columns) + 1)]
    for cell, rs in by_cell(rows).items():
        lines.append('| {} | {} |'.format(cell_name(cell), ' | '.join(
            _pm([get(r, c) for r in rs], fmt) for c in columns)))
    return '\n'.join(lines)


def m(key):
    """A method measure, None where the row lacks it (VADER off SST-2)."""
    return lambda r, name: r['methods'][name].get(key)


def tables(rows):
    """Every table of the section, in order: (title, markdown)."""
    acc = lambda r, c: (r['calibration']['softmax']['accuracy'] if  # NOQA
                        c == 'softmax' else 100 * (
                            r['calibration'][c]['accuracy'] -
                            r['calibration']['softmax']['accuracy']))
    return [
        ('Accuracy (softmax) and DkNN accuracy minus it, in points',
         table(rows, ('softmax',) + RULES, acc)),
        ('ECE of the softmax confidence and of each rule\'s credibility',
         table(rows, ('softmax',) + RULES,
               lambda r, c: r['calibration'][c]['ece'])),
        ('Share of importances exactly 0', table(rows, METHODS, m('zero'),
                                                  '{:.1%}')),
        ('Share of importances below 0.01',
         table(rows, METHODS, m('small'), '{:.1%}')),
        ('AOPC on the softmax (deletion of the top 1..10 tokens)',
         table(rows, METHODS, m('aopc_softmax'))),
        ('AOPC on the rule\'s own score',
         table(rows, RULES, m('aopc_own'))),
        ('Comprehensiveness on the softmax (top 20% removed)',
         table(rows, METHODS, m('comp_softmax'))),
        ('Sufficiency on the softmax (top 20% kept; lower is better)',
         table(rows, METHODS, m('suff_softmax'))),
        ('Comprehensiveness on the rule\'s own score',
         table(rows, RULES, m('comp_own'))),
        ('Sufficiency on the rule\'s own score',
         table(rows, RULES, m('suff_own'))),
        ('Kendall tau against confidence leave-one-out',
         table(rows, METHODS, m('tau_loo'), '{:.2f}')),
        ('VADER sign agreement, zeros counted as misses (SST-2)',
         table(rows, METHODS, m('sign_all'), '{:.1%}')),
        ('VADER sign agreement on nonzero importances (SST-2)',
         table(rows, METHODS, m('sign'), '{:.1%}')),
        ('VADER Spearman rank correlation (SST-2)',
         table(rows, METHODS, m('spearman'), '{:.2f}')),
        ('Mean credibility on original → reduced inputs (seeds where the '
         'paper\'s claim holds)', robust_table(rows)),
        ('OOD AUROC against SNLI hypotheses',
         table(rows, ('softmax',) + RULES,
               lambda r, c: r['ood']['snli'][c])),
        ('OOD AUROC against IMDB sentences',
         table(rows, ('softmax',) + RULES,
               lambda r, c: r['ood']['imdb-sentences'][c])),
        ('Conformal sets at epsilon 0.1: coverage / mean size',
         sets_table(rows)),
        ('Seconds per 1,000 test inputs (leave-one-out or gradient)',
         table(rows, METHODS, m('seconds_per_1000'), '{:.1f}')),
    ]


def robust_table(rows):
    names = ('softmax',) + RULES
    lines = ['| cell | ' + ' | '.join(names) + ' |',
             '|' + '---|' * (len(names) + 1)]
    for cell, rs in by_cell(rows).items():
        cells = []
        for n in names:
            o = numpy.mean([r['reduction'][n]['original'] for r in rs])
            d = numpy.mean([r['reduction'][n]['reduced'] for r in rs])
            held = sum(r['reduction'][n]['holds'] for r in rs)
            cells.append('{:.3f} → {:.3f}{}'.format(o, d, '' if n ==
                                                     'softmax' else
                                                     ' ({}/{})'.format(
                                                         held, len(rs))))
        lines.append('| {} | {} |'.format(cell_name(cell), ' | '.join(cells)))
    return '\n'.join(lines)


def sets_table(rows):
    names = {'dknn': 'conformal', 'dknn_graded': 'graded-conformal',
             'softmax_lac': 'softmax (LAC)'}
    lines = ['| cell | ' + ' | '.join(names.values()) + ' |',
             '|' + '---|' * (len(names) + 1)]
    for cell, rs in by_cell(rows).items():
        lines.append('| {} | {} |'.format(cell_name(cell), ' | '.join(
            '{:.3f} / {:.2f}'.format(
                numpy.mean([r['conformal'][n]['coverage'] for r in rs]),
                numpy.mean([r['conformal'][n]['mean_size'] for r in rs]))
            for n in names)))
    return '\n'.join(lines)


def goals(rows):
    """The issue's goals, per cell: (cell, goal -> seeds where it holds)."""
    out = []
    for cell, rs in by_cell(rows).items():
        def count(test):
            return sum(bool(test(r)) for r in rs)
        out.append((cell, len(rs), {
            'no exact zeros (graded)': count(
                lambda r: r['methods']['graded']['zero'] == 0),
            'AOPC >= confidence LOO (graded, softmax yardstick)': count(
                lambda r: r['methods']['graded']['aopc_softmax'] >=
                r['methods']['softmax']['aopc_softmax']),
            'VADER sign >= confidence LOO (graded, zeros as misses)': count(
                lambda r: r['methods']['graded']['sign_all'] >=
                r['methods']['softmax']['sign_all'])
            if 'sign_all' in rs[0]['methods']['graded'] else None,
            'accuracy at most 0.5 point below the softmax (graded)': count(
                lambda r: r['calibration']['graded']['accuracy'] >=
                r['calibration']['softmax']['accuracy'] - 0.005),
            'credibility ECE <= softmax ECE (graded)': count(
                lambda r: r['calibration']['graded']['ece'] <=
                r['calibration']['softmax']['ece'])}))
    return out


def goals_table(rows):
    entries = goals(rows)
    names = list(entries[0][2]) if entries else []
    lines = ['| cell | ' + ' | '.join(names) + ' |',
             '|' + '---|' * (len(names) + 1)]
    for cell, n, held in entries:
        lines.append('| {} | {} |'.format(cell_name(cell), ' | '.join(
            '–' if held[k] is None else '{}/{}'.format(held[k], n)
            for k in names)))
    return '\n'.join(lines)


def section(rows, args):
    parts = ['Command: `python bench/graded.py` ({} models: {} cells x '
             'seeds {}; k = {}, last layer; leave-one-out on the first {} '
             'test sentences, reduction of the first {}). Each cell is '
             'mean ± sd over its seeds.'.format(
                 len(rows), len(by_cell(rows)), ', '.join(map(str, args.seeds)),
                 K, args.n_explain, args.n_reduce),
             '### The goals, per cell (seeds where each holds)',
             goals_table(rows)]
    for title, body in tables(rows):
        parts += ['### ' + title, body]
    return '\n\n'.join(parts)


def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--out', default='result/graded', type=cli.path_arg)
    p.add_argument('--models-dir', default=os.path.join('result', 'models'),
                   type=cli.path_arg)
    p.add_argument('--data-dir', default=None, type=cli.path_arg)
    p.add_argument('--seeds', nargs='+', type=cli.int_in(0, 2 ** 32 - 1),
                   default=list(SEEDS))
    p.add_argument('--cells', nargs='+', default=None,
                   help='DATASET:MODEL:RECIPE, of ' + ', '.join(
                       ':'.join(c) for c in CELLS))
    p.add_argument('--n-explain', type=cli.int_in(1, 10 ** 6), default=500)
    p.add_argument('--n-reduce', type=cli.int_in(1, 10 ** 6), default=250)
    p.add_argument('--report', action='store_true',
                   help='only write the section from the measured cells')
    p.add_argument('--no-results', action='store_true',
                   help='do not write RESULTS.md')
    return p


def chosen_cells(args):
    if args.cells is None:
        return CELLS
    known = {':'.join(c): c for c in CELLS}
    bad = [c for c in args.cells if c not in known]
    if bad or len(set(args.cells)) < len(args.cells):
        raise UserError('--cells {}: unknown or repeated; choose from {}'
                        .format(', '.join(bad) or 'repeated', ', '.join(known)))
    return [known[c] for c in args.cells]


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    if len(set(args.seeds)) < len(args.seeds):
        raise UserError('--seeds names a seed twice; name each once')
    cells = chosen_cells(args)
    args.data_dir = text_datasets.data_dir_from(args.data_dir)
    lexicon = functools.lru_cache(maxsize=None)(human_alignment.lexicon)
    rows = []
    for dataset, model, recipe in cells:
        for seed in args.seeds:
            path = os.path.join(args.out, 'cells', '{}_{}_{}_s{}.json'.format(
                dataset, model, recipe, seed))
            if args.report and not os.path.exists(path):
                continue
            rows.append(measure_cell(args, lexicon, dataset, model, recipe, seed))
    table = write_table(args.out, 'graded', section(rows, args),
                        not args.no_results)
    print('{} models measured; wrote {}'.format(len(rows), table))
    return rows


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""The paper's claims across a controlled sweep of overconfidence on SST-2.

    python bench/overconfidence.py              # train, measure, report
    python bench/overconfidence.py --stage train  # only the training

The paper argues about overconfident models: a softmax near 1 barely moves
when one word is left out, so confidence leave-one-out saturates, and the
DkNN's vote should be the better signal. Our well-regularised models do
not show it (RESULTS.md, "claims"). This sweep makes the models more and
more confident, with the data, its split and the calibration set fixed
(``--seed 0``; each model seed is an ``--init-seed``), and measures every
claim on every model. Recipes (:data:`RECIPES`, data, not argv strings):

* ``a``: today's recipe (``make train``): 5 epochs, dropout 0.2, GloVe 50d,
  the best validation epoch;
* ``b``: no dropout, 30 epochs, the **last** epoch kept;
* ``c``: as ``b`` with 300-d embeddings learnt from scratch;
* ``d``: ``b``'s weights with the logits divided by T = 0.5 at test time
  (the output layer's W and b are scaled in a copy of the run): every
  ranking, hidden layer and DkNN vote is ``b``'s, the softmax is sharper.
* ``e``: as ``b``, stopped after 4 epochs: a model between ``a`` and ``b``.

Per model (one cell, :func:`measure`): accuracy, mean confidence and ECE of
the softmax and of DkNN credibility (k = 75, last layer); saturation,
faithfulness and Kendall tau of each leave-one-out method
(``bench/saturation.py``); agreement with the VADER lexicon
(``bench/human_alignment.py``); confidences on the first ``--n-reduce``
test sentences and their gradient-guided reductions
(``toolkit/reduction.py``); and leave-one-out by replacement instead of
deletion (Hase, Xie and Bansal 2021). A finished cell (``cell.json``) is
not recomputed, so an interrupted sweep resumes. Writes ``OUT/table.md``,
``docs/figures/overconfidence.png`` and the ``overconfidence`` section of
RESULTS.md.
"""
import argparse
import contextlib
import functools
import json
import os
import time

import numpy
from tqdm import tqdm

from report import RESULTS, ROOT, read_json, write_section  # NOQA (first)
import dknn  # NOQA
import human_alignment  # NOQA
from toolkit import attribution  # NOQA
import reduction_report  # NOQA
import saturation  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA
from toolkit import cli  # NOQA
from toolkit import faithfulness  # NOQA
from toolkit import metrics  # NOQA
from toolkit import reduction  # NOQA
from toolkit import runs  # NOQA
from toolkit import fileio  # NOQA

GLOVE = os.path.join('glove', 'glove.6B.50d.txt.gz')   # in the data folder
DATA_SEED = 0      # --seed: the validation and calibration draws, fixed
K = 75
# The recipes. 'train' holds training settings (flags without dashes);
# 'from' + 'temperature' derive a model from another recipe's weights.
RECIPES = {
    'a': {'title': 'make train: 5 epochs, dropout 0.2, best epoch',
          'train': dict(epoch=5, batchsize=32, dropout=0.2,
                        word_vectors=GLOVE)},
    'b': {'title': 'no dropout, 30 epochs, last epoch',
          'train': dict(epoch=30, batchsize=32, dropout=0.0, keep='last',
                        word_vectors=GLOVE)},
    'c': {'title': 'as b, 300-d embeddings from scratch',
          'train': dict(epoch=30, batchsize=32, dropout=0.0, keep='last',
                        unit=300, embed=300)},
    'd': {'title': 'as b, logits / 0.5 at test time',
          'from': 'b', 'temperature': 0.5},
    'e': {'title': 'as b, stopped after 4 epochs (between a and b)',
          'train': dict(epoch=4, batchsize=32, dropout=0.0, keep='last',
                        word_vectors=GLOVE)},
}
# Per encoder: the settings every recipe shares (the grid's CPU-sized
# BiLSTM), then each cell's own changes.
MODELS = {'cnn': dict(unit=300, layer=3), 'bilstm': dict(unit=150, layer=1)}
# Cells: (recipe, encoder, the cell's own training settings). The BiLSTM
# runs the paper's two regimes, a and b.
CELLS = [('a', 'cnn', {}), ('e', 'cnn', {}), ('b', 'cnn', {}),
         ('d', 'cnn', {}), ('c', 'cnn', {}), ('a', 'bilstm', {}),
         ('b', 'bilstm', {})]
SEEDS = (0, 1)
LOO = ('dknn', 'softmax', 'calibrated')
# Deletion, and the two replacements of Hase, Xie and Bansal (2021)
FILLERS = ('<unk>', 'the')


def training_settings(recipe, model, extra):
    """A cell's training settings: the encoder's, the recipe's, then the
    cell's own (a later one wins)."""
    out = dict(MODELS[model])
    out.update(RECIPES[recipe]['train'])
    out.update(extra)
    return out


def folder_of(out, recipe, model, seed):
    return os.path.join(out, recipe, 's{}'.format(seed),
                        'stsa.binary_' + model)


def train_cell(out, recipe, model, extra, seed, data_dir=None):
    """Train (or find trained) one model; returns its run folder. A derived
    recipe copies its source's run and scales the output layer."""
    spec = RECIPES[recipe]
    if 'from' in spec:
        source = train_cell(out, spec['from'], model, extra, seed, data_dir)
        return sharpen(source, folder_of(out, recipe, model, seed),
                       spec['temperature'])
    settings = TrainSettings(
        dataset='stsa.binary', model=model, seed=DATA_SEED, init_seed=seed,
        data_dir=data_dir, out=os.path.dirname(
            folder_of(out, recipe, model, seed)),
        **training_settings(recipe, model, extra))
    folder, r = train_text_classifier.train_run(settings)
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f}'.format(
        folder, r['val_accuracy'], r['test_accuracy']))
    return folder


def sharpen(source, folder, T):
    """A copy of the run ``source`` in ``folder`` whose logits are those of
    ``source`` divided by ``T`` (output layer W / T, b / T). The hidden
    layers, and so the DkNN, are unchanged; only the softmax sharpens."""
    done = os.path.join(folder, runs.ARTIFACTS['train_results'])
    if os.path.exists(done):
        return folder
    os.makedirs(folder, exist_ok=True)
    out = fileio.Outputs(folder)
    for role in ('vocab', 'calib', 'setup', 'log'):
        name = runs.ARTIFACTS[role]
        out.write(name, lambda f, n=name: f.write(
            open(os.path.join(source, n), 'rb').read()))
    with numpy.load(os.path.join(source, runs.ARTIFACTS['model']),
                    allow_pickle=False) as z:
        weights = {k: z[k] / T if k.startswith('output/') else z[k]
                   for k in z.files}
    out.write(runs.ARTIFACTS['model'], lambda f: numpy.savez(f, **weights))
    record = read_json(os.path.join(source, runs.ARTIFACTS['train_results']))
    record.pop('files', None)
    out.finish(runs.ARTIFACTS['train_results'], dict(
        record, test_temperature=T, source=os.path.abspath(source)))
    return folder


# ------------------------------------------------------------ measuring

def calibration(run, ex):
    """Accuracy, mean confidence and ECE of the softmax and of the DkNN's
    conformity credibility on the test set."""
    test = run.forward('test')
    probs = metrics.softmax(test.logits)
    right = probs.argmax(axis=1) == test.labels
    out = ex.head.predict_activations(test)
    dk_right = out.pred == test.labels
    return {'accuracy': float(right.mean()),
            'confidence': float(probs.max(axis=1).mean()),
            'ece': metrics.expected_calibration_error(probs.max(axis=1),
                                                      right),
            'dknn_accuracy': float(dk_right.mean()),
            'dknn_credibility': float(out.credibility.mean()),
            'dknn_ece': metrics.expected_calibration_error(out.credibility,
                                                           dk_right)}


def spread_and_alignment(atts, reference, tokens, lex):
    """Saturation (bench/saturation.py) and VADER alignment
    (bench/human_alignment.py) of one method's importances."""
    a = human_alignment.alignment(atts, tokens, lex)
    return {'zero': faithfulness.zero_share(atts),
            'small': faithfulness.zero_share(atts, 0.01),
            'entropy': faithfulness.entropy(atts),
            'tau_loo': faithfulness.kendall_tau(atts, reference),
            'sign': a['sign'], 'sign_all': a['sign'] * (1 - a['zero']),
            'lexicon_zero': a['zero'], 'spearman': a['spearman']}


def aopc(ex, xs, atts):
    """AOPC of the deletion curve on both yardsticks of
    bench/saturation.py (the softmax and the DkNN conformity)."""
    return {'aopc_' + name: faithfulness.aopc(
        faithfulness.deletion_curve(score, xs, atts, ex.field))
        for name, score in saturation.yardsticks(ex).items()}


def replaced(ex, xs, tokens, lex, filler):
    """Leave-one-out with each token replaced by ``filler`` (an id)."""
    atts = {m: attribution.explain(ex, xs, m) if filler is None else
            [a for i in range(0, len(xs), 64) for a in attribution.leave_one_out(
                ex, xs[i:i + 64], attribution.INTERPRETERS[m].scores, filler)]
            for m in LOO}
    return atts, {m: spread_and_alignment(a, atts['softmax'], tokens, lex)
                  for m, a in atts.items()}


def first(items, n):
    return items if not n else items[:n]


def measure(folder, lex, n_explain, n_reduce, data_dir=None):
    """Every number of one model's row (see the module docstring): the
    calibration on the whole test set, the importances on its first
    ``n_explain`` sentences, the reduction of its first ``n_reduce`` (0:
    all)."""
    run = runs.load(os.path.join(folder, 'args.json'), data_dir=data_dir)
    ex = attribution.Explainer(run.model, run, settings=dknn.Settings(k=K))
    row, times = calibration(run, ex), {}
    row['n_test'] = len(run.splits.test)
    xs = first([x for x, _ in run.splits.test], n_explain)
    tokens = first([f[0] for f, _ in run.splits.raw['test']], n_explain)
    start = time.time()
    atts, row['methods'] = replaced(ex, xs, tokens, lex, None)
    times['loo'] = time.time() - start
    for m in LOO:
        row['methods'][m].update(aopc(ex, xs, atts[m]))
    times['aopc'] = time.time() - start - times['loo']
    start = time.time()
    n = len(first(run.splits.test, n_reduce))
    red = reduction.reduce_run(run, ex, list(range(n)), 'grad', 5)
    row['reduction'] = dict(red['summary'], n=n, single_token=float(
        numpy.mean([len(e['reduced_tokens']) == 1 for e in red['examples']])))
    times['reduction'] = time.time() - start
    start = time.time()
    row['replaced'] = {name: replaced(ex, xs, tokens, lex, run.vocab[name])[1]
                       for name in FILLERS}
    times['replaced'] = time.time() - start
    train = read_json(run.path('train_results'))
    row.update(temperature=ex.temperature[0], seconds=times, n_explain=len(
        xs), n_lexicon=human_alignment.alignment(atts['softmax'], tokens,
                                                 lex)['n'],
               epochs=train['epochs'], kept_epoch=train.get(
                   'kept_epoch', train['best_epoch']))
    return row


def todo(seeds=SEEDS):
    """Every (recipe, model, cell settings, seed), in :data:`CELLS` order."""
    return [(r, m, extra, s) for r, m, extra in CELLS for s in seeds]


def cell_path(out, recipe, model, seed):
    return os.path.join(out, 'cells', '{}_{}_s{}.json'.format(
        recipe, model, seed))


def trained(out, recipe, model, seed):
    """Whether the model (for a derived recipe: its source) is trained."""
    source = RECIPES[recipe].get('from', recipe)
    return os.path.exists(os.path.join(folder_of(out, source, model, seed),
                                       runs.ARTIFACTS['train_results']))


def measure_cell(args, lexicon, recipe, model, extra, seed):
    """One finished cell's row: read from ``cells/``, else measured and
    saved (the file records completion); ``lexicon()`` gives VADER's
    lexicon, asked for only when a cell is measured."""
    path = cell_path(args.out, recipe, model, seed)
    if os.path.exists(path):
        return read_json(path)
    folder = train_cell(args.out, recipe, model, extra, seed, args.data_dir)
    row = measure(folder, lexicon(), args.n_explain, args.n_reduce,
                  args.data_dir)
    row.update(recipe=recipe, model=model, seed=seed, folder=folder,
               settings=dict(RECIPES[recipe].get('train', {}), **extra,
                             temperature=RECIPES[recipe].get('temperature')))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.save_json(path, row)
    return row


# ------------------------------------------------------------ verdicts

def claims(row):
    """Does each claim hold on this model? (bool per claim)

    * ``robust``: on reduced inputs DkNN credibility falls, by more than the
      softmax, and fewer reduced inputs keep a credibility above 0.9 than a
      softmax confidence above 0.9 (bench/reduction_report.py);
    * ``graded``: conformity leave-one-out gives fewer importances below
      0.01 than confidence leave-one-out (the blog's "small for many
      words"; for conformity, below 0.01 is less than one vote of 75);
    * ``zeros``: the same for importances of exactly 0 (at most 1e-7: no
      vote moves, or a softmax so close to 1 that it does not move);
    * ``human``: conformity leave-one-out agrees with VADER more than
      confidence leave-one-out, in sign (nonzero importances) and in
      Spearman rank; ``sign``: in sign alone, on the words it gives a
      nonzero importance.
    """
    m = row['methods']
    return {'robust': reduction_report.claim_holds(row['reduction']),
            **replacement_claims(m)}


def replacement_claims(m):
    """The two interpretation claims on one set of method rows."""
    c, s = m['dknn'], m['softmax']
    return {'graded': bool(c['small'] < s['small']),
            'zeros': bool(c['zero'] < s['zero']),
            'human': bool(c['sign'] > s['sign'] and
                          c['spearman'] > s['spearman']),
            'sign': bool(c['sign'] > s['sign'])}


CLAIMS = {'robust': '"a more robust uncertainty metric" on reduced inputs',
          'graded': 'conformity leave-one-out saturates less than '
                    'confidence leave-one-out (fewer importances below '
                    '0.01)',
          'zeros': 'the same, counting importances of exactly 0',
          'human': 'conformity leave-one-out aligns better with human '
                   'word polarities (VADER), in sign and in rank',
          'sign': 'the same in sign alone, on the words with a nonzero '
                  'importance'}


INTERPRETATION = ('graded', 'zeros', 'human', 'sign')   # not about reduction


def groups(rows):
    """Rows by cell (recipe, model), in :data:`CELLS` order."""
    out = {}
    for r in rows:
        out.setdefault((r['recipe'], r['model']), []).append(r)
    return out


def cell_verdicts(rows, claims_of=claims):
    """Per cell: mean ECE, its seeds, and per claim the seeds on which it
    holds."""
    out = []
    for (recipe, model), rs in groups(rows).items():
        verdicts = [claims_of(r) for r in rs]
        out.append({'recipe': recipe, 'model': model,
                    'seeds': [r['seed'] for r in rs],
                    'ece': float(numpy.mean([r['ece'] for r in rs])),
                    'holds': {c: sum(v[c] for v in verdicts)
                              for c in verdicts[0]}})
    return sorted(out, key=lambda c: c['ece'])


def regime(cells, claim):
    """The answer for one claim over the cells (sorted by ECE): where it
    holds on every seed of a cell, and where on none."""
    every = [c for c in cells if c['holds'][claim] == len(c['seeds'])]
    some = [c for c in cells if 0 < c['holds'][claim] < len(c['seeds'])]
    name = lambda c: '{} {}'.format(c['model'], c['recipe'])  # NOQA
    span = '(ECE {:.3f} to {:.3f})'.format(cells[0]['ece'], cells[-1]['ece'])
    if not every and not some:
        return 'does not hold in any regime we tried ' + span
    if not every:
        return 'does not hold on every seed of any cell we tried {}; on ' \
            'some seeds of {}'.format(span, ', '.join(map(name, some)))
    below = [c for c in cells if c not in every]
    if every and not below:
        return 'holds on every cell ' + span
    x = max(c['ece'] for c in below)
    if every and all(c['ece'] > x for c in every):
        return 'holds for models with ECE above {:.3f} ({} on every seed; ' \
            'no model between ECE {:.3f} and {:.3f} was tried)'.format(
                x, ', '.join(name(c) for c in every), x,
                min(c['ece'] for c in every))
    x = min(c['ece'] for c in below)
    if every and not some and all(c['ece'] < x for c in every):
        y = max(c['ece'] for c in every)
        return 'holds only for models with ECE below {:.3f} ({} on every ' \
            'seed; no model between ECE {:.3f} and {:.3f} was tried), the ' \
            'reverse of the paper\'s argument'.format(
                x, ', '.join(name(c) for c in every), y, x)
    return 'mixed: holds on every seed of {}; on some seeds of {}; not ' \
        'monotone in ECE'.format(', '.join(map(name, every)) or 'no cell',
                                 ', '.join(map(name, some)) or 'no cell')


# ------------------------------------------------------------ tables

def _pm(values, fmt='{:.3f}'):
    v = numpy.asarray(values, numpy.float64)
    if len(v) == 1:
        return fmt.format(v[0])
    return (fmt + ' ± ' + fmt).format(v.mean(), v.std(ddof=1))


def _three(r, key, fmt='{:.1%}'):
    """conformity / confidence / calibrated leave-one-out."""
    return ' / '.join(fmt.format(r['methods'][m][key]) for m in LOO)


def _red(r, measure):
    s = r['reduction'][measure]
    return '{:.3f} → {:.3f}; {:.0%} → {:.0%}'.format(
        s['mean_original'], s['mean_reduced'], s['above_0.9_original'],
        s['above_0.9_reduced'])


# One row per model: header -> cell text.
COLUMNS = [
    ('recipe', lambda r: r['recipe']),
    ('model', lambda r: r['model']),
    ('seed', lambda r: str(r['seed'])),
    ('epoch kept', lambda r: str(r['kept_epoch'])),
    ('accuracy', lambda r: '{:.2%}'.format(r['accuracy'])),
    ('mean confidence', lambda r: '{:.3f}'.format(r['confidence'])),
    ('ECE', lambda r: '{:.3f}'.format(r['ece'])),
    ('DkNN accuracy', lambda r: '{:.2%}'.format(r['dknn_accuracy'])),
    ('DkNN ECE', lambda r: '{:.3f}'.format(r['dknn_ece'])),
    ('exactly 0', lambda r: _three(r, 'zero')),
    ('below 0.01', lambda r: _three(r, 'small')),
    ('entropy', lambda r: _three(r, 'entropy', '{:.3f}')),
    ('AOPC softmax', lambda r: _three(r, 'aopc_softmax', '{:.3f}')),
    ('AOPC conformity', lambda r: _three(r, 'aopc_conformity', '{:.3f}')),
    ('Kendall tau vs confidence LOO',
     lambda r: _three(r, 'tau_loo', '{:.2f}')),
    ('VADER sign, nonzero', lambda r: _three(r, 'sign')),
    ('VADER sign, 0 = no', lambda r: _three(r, 'sign_all')),
    ('VADER Spearman', lambda r: _three(r, 'spearman', '{:.2f}')),
    ('softmax conf. original → reduced (mean; > 0.9)',
     lambda r: _red(r, 'softmax')),
    ('DkNN credibility original → reduced (mean; > 0.9)',
     lambda r: _red(r, 'conformity')),
]


def table(rows):
    """Markdown: one row per model, every column of :data:`COLUMNS`."""
    lines = ['| ' + ' | '.join(h for h, _ in COLUMNS) + ' |',
             '|' + '---|' * len(COLUMNS)]
    for r in rows:
        lines.append('| ' + ' | '.join(f(r) for _, f in COLUMNS) + ' |')
    return '\n'.join(lines)


def cell_table(rows):
    """Markdown: one row per cell, mean ± std over seeds, and on how many
    seeds each claim holds."""
    lines = ['| recipe | model | seeds | ECE | mean confidence | accuracy | '
             'DkNN ECE | ' + ' | '.join(CLAIMS) + ' |',
             '|' + '---|' * (7 + len(CLAIMS))]
    verdicts = {(c['recipe'], c['model']): c for c in cell_verdicts(rows)}
    for key, rs in groups(rows).items():
        get = lambda f: [r[f] for r in rs]  # NOQA
        v = verdicts[key]
        lines.append('| {} | {} | {} | {} | {} | {} | {} | {} |'.format(
            key[0], key[1], ', '.join(map(str, v['seeds'])),
            _pm(get('ece')), _pm(get('confidence')),
            _pm(get('accuracy'), '{:.4f}'), _pm(get('dknn_ece')),
            ' | '.join('{}/{}'.format(v['holds'][c], len(rs))
                       for c in CLAIMS)))
    return '\n'.join(lines)


def filler_table(rows):
    """Deletion against replacement: per model, the interpretation
    measures and verdicts under each way of leaving a token out."""
    lines = ['| recipe | model | seed | left out by | exactly 0 | below 0.01 '
             '| VADER sign, nonzero | VADER Spearman | graded | zeros | '
             'human | sign |', '|' + '---|' * 12]
    for r in rows:
        ways = [('deletion', r['methods'])] + [
            ('`{}`'.format(f), r['replaced'][f]) for f in FILLERS]
        for name, m in ways:
            c = replacement_claims(m)
            three = lambda k, fmt='{:.1%}': ' / '.join(  # NOQA
                fmt.format(m[x][k]) for x in LOO)
            lines.append('| {} | {} | {} | {} | {} | {} | {} | {} | {} |'
                         .format(r['recipe'], r['model'], r['seed'], name,
                                 three('zero'), three('small'),
                                 three('sign'), three('spearman', '{:.2f}'),
                                 ' | '.join('yes' if c[k] else 'no' for k in
                                            INTERPRETATION)))
    return '\n'.join(lines)


def filler_regimes(rows):
    """Per filler, the regime of each interpretation claim."""
    out = {}
    for f in (None,) + FILLERS:
        of = (lambda r: replacement_claims(r['methods'])) if f is None \
            else (lambda r, f=f: replacement_claims(r['replaced'][f]))
        cells = cell_verdicts(rows, of)
        out[f or 'deletion'] = {c: regime(cells, c) for c in INTERPRETATION}
    return out


# ------------------------------------------------------------ the figure

COLOURS = {'dknn': 'tab:green', 'softmax': 'tab:blue',
           'calibrated': 'tab:orange'}


def panels():
    """The figure's panels: (title, [(label, method, row -> value)])."""
    titles = {m: attribution.INTERPRETERS[m].title for m in LOO}
    per_method = lambda key: [  # NOQA
        (titles[m], m, lambda r, m=m: r['methods'][m][key]) for m in LOO]
    return [
        ('robustness: mean on reduced − on original inputs', [
            ('softmax confidence', 'softmax', lambda r: _shift(r, 'softmax')),
            ('temperature-scaled confidence', 'calibrated',
             lambda r: _shift(r, 'calibrated')),
            ('DkNN conformity credibility', 'dknn',
             lambda r: _shift(r, 'conformity'))]),
        ('saturation: share of importances below 0.01', per_method('small')),
        ('human alignment: VADER sign agreement (nonzero)',
         per_method('sign')),
        ('faithfulness: AOPC on the softmax', per_method('aopc_softmax'))]


MARKERS = {'cnn': ('o', '-'), 'bilstm': ('s', ':')}   # marker, line
NAMES = {'cnn': 'CNN', 'bilstm': 'BiLSTM'}


def mean_ece(rs):
    """A cell's ECE: the mean over its seeds' rows."""
    return numpy.mean([r['ece'] for r in rs])


def plot(rows, path):
    """Each claim's measure against the model's ECE, one line per method
    and encoder (cell means over seeds; error bars: the seeds' standard
    deviation)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cells = sorted(groups(rows).values(), key=mean_ece)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for ax, (title, lines) in zip(axes.ravel(), panels()):
        for model in MODELS:
            mine = [rs for rs in cells if rs[0]['model'] == model]
            if mine:
                draw_lines(ax, mine, lines, model)
        for rs in cells:   # name each cell once, at the top
            ax.annotate('{} {}'.format(rs[0]['model'], rs[0]['recipe']),
                        (mean_ece(rs), 1),
                        xycoords=('data', 'axes fraction'), xytext=(0, -10),
                        textcoords='offset points', ha='center', fontsize=6,
                        alpha=0.7, rotation=30)
        ax.set_title(title, fontsize=10, pad=18)
        ax.set_xlabel('softmax ECE on test (cell mean)')
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].axhline(0, color='grey', lw=0.8)
    fig.suptitle('SST-2: the paper\'s claims against overconfidence '
                 '(bench/overconfidence.py)')
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def draw_lines(ax, cells, lines, model):
    """One panel's lines for one encoder's cells (sorted by ECE)."""
    x = [mean_ece(rs) for rs in cells]
    marker, style = MARKERS[model]
    for label, key, get in lines:
        ys = [[get(r) for r in rs] for rs in cells]
        ax.errorbar(x, [numpy.mean(y) for y in ys],
                    yerr=[numpy.std(y, ddof=1) if len(y) > 1 else 0
                          for y in ys], marker=marker, capsize=3,
                    label='{} ({})'.format(label, model),
                    color=COLOURS[key], ls=style,
                    alpha=0.6 if key == 'calibrated' else 1.0)


def _shift(r, measure):
    s = r['reduction'][measure]
    return s['mean_reduced'] - s['mean_original']


# ------------------------------------------------------------ the section

def section(rows, args):
    cells = cell_verdicts(rows)
    answers = {c: regime(cells, c) for c in CLAIMS}
    per_model = {c: {m: regime([x for x in cells if x['model'] == m], c)
                     for m in MODELS if any(x['model'] == m for x in cells)}
                 for c in CLAIMS}
    fill = filler_regimes(rows)
    n_exp, n_red = rows[0]['n_explain'], rows[0]['reduction']['n']
    recipes = '; '.join('{}: {}'.format(k, v['title'])
                        for k, v in RECIPES.items())
    ran = '; '.join('{} {}: `{}`'.format(m, r, train_text_classifier_flags(
        r, m, extra)) for r, m, extra in CELLS
        if 'train' in RECIPES[r] and m in args.models)
    lines = [
        '## Overconfidence: the claims across a sweep of ECE '
        '(`bench/overconfidence.py`)', '',
        'Command: `{}` (needs `pip install -r '
        'requirements-bench.txt`). SST-2, one data split and one calibration '
        'set for every model (`--seed {}`); model seeds are `--init-seed` '
        '{}. Recipes: {}. Training flags as run: {}. Recipe d is b\'s '
        'weights with the output layer divided by T = 0.5: the same '
        'hidden layers, DkNN and rankings, a sharper softmax. DkNN: k = {}, '
        'last layer. Calibration (accuracy, confidence, ECE) on all {} '
        'test sentences; importances on the first {}; input reduction '
        '(gradient, beam 5) on the first {}. In a cell of three methods: '
        'conformity / confidence / calibrated (temperature-scaled) '
        'confidence leave-one-out. Figure: '
        '`docs/figures/overconfidence.png`. Each model\'s files: `{}/RECIPE/'
        'sSEED/`; its numbers: `{}/cells/`.'.format(
            command(args), DATA_SEED, args.seeds, recipes, ran, K,
            max(r.get('n_test', 0) for r in rows), n_exp, n_red, args.out,
            args.out), '',
        'Cells of `CELLS` not run (`--models`): {}.'.format(
            ', '.join('{} {}'.format(m, r) for r, m, _ in CELLS
                      if m not in args.models) or 'none'), '',
        '### Per cell (mean ± std over seeds; claims: seeds on which it '
        'holds)', '', cell_table(rows), '',
        '### The answer, per claim', '']
    lines += ['- {}: **{}**. {}.'.format(CLAIMS[c], answers[c], '; '.join(
        '{}: {}'.format(NAMES[m], v)
        for m, v in per_model[c].items())) for c in CLAIMS]
    lines += ['', '![each claim against ECE]({})'.format(
        os.path.relpath(args.figure, ROOT).replace(os.sep, '/'))]
    lines += ['', '### Per model', '', table(rows), '',
              '### Deletion or replacement (Hase, Xie and Bansal 2021)', '',
              'Leave-one-out by deleting the token, or replacing it by '
              '`<unk>` or by `the` (the most frequent training word, in 53% '
              'of training sentences, of which 52.6% positive against a '
              'prior of 52.2%; `movie` leans negative, 42.3%).', '']
    lines += ['- {}: conformity saturates less: {}; counting exact zeros: '
              '{}; aligns better: {}; in sign alone: {}.'.format(
                  f, v['graded'], v['zeros'], v['human'], v['sign'])
              for f, v in fill.items()]
    lines += ['', filler_table(rows)]
    return '\n'.join(lines), answers, fill


def command(args):
    """The command line that reproduces the section."""
    defaults, words = build_parser().parse_args([]), []
    for flag in ('models', 'seeds', 'n_explain', 'n_reduce', 'out'):
        value = getattr(args, flag)
        if value != getattr(defaults, flag):
            words.append('--{} {}'.format(flag.replace('_', '-'), ' '.join(
                map(str, value)) if isinstance(value, list) else value))
    return ' '.join(['python bench/overconfidence.py'] + words)


def train_text_classifier_flags(recipe, model, extra):
    import grid
    return grid.flags(training_settings(recipe, model, extra))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='result/overconfidence',
                   type=cli.path_arg)
    p.add_argument('--stage', default='all',
                   choices=['train', 'measure', 'report', 'all'],
                   help='train only; measure the trained models only; '
                        'report the measured ones; or all three')
    p.add_argument('--seeds', type=cli.int_in(0, 2 ** 32 - 1), nargs='+',
                   default=list(SEEDS),
                   help='--init-seed of each model (the data seed is 0)')
    p.add_argument('--models', nargs='+', default=list(MODELS),
                   choices=list(MODELS))
    p.add_argument('--data-dir', default=None, type=cli.folder_arg)
    p.add_argument('--n-explain', type=cli.int_in(0), default=500,
                   help='explain the first N test sentences (all: 0)')
    p.add_argument('--n-reduce', type=cli.int_in(0), default=250,
                   help='reduce the first N test sentences (all: 0)')
    p.add_argument('--figure', default=os.path.join(
        ROOT, 'docs', 'figures', 'overconfidence.png'))
    p.add_argument('--no-results', action='store_true',
                   help='do not write RESULTS.md (tests)')
    return p


def _logged(args, name, fn, *a):
    log = os.path.join(args.out, 'logs', name + '.log')
    with open(log, 'a') as f, contextlib.redirect_stdout(f), \
            contextlib.redirect_stderr(f):
        return fn(*a)


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.once(args.seeds, '--seeds')
    os.makedirs(os.path.join(args.out, 'logs'), exist_ok=True)
    jobs = [j for j in todo(args.seeds) if j[1] in args.models]
    if args.stage in ('train', 'all'):
        for recipe, model, extra, seed in tqdm(jobs, desc='train'):
            _logged(args, '{}_{}_s{}.train'.format(recipe, model, seed),
                    train_cell, args.out, recipe, model, extra, seed,
                    args.data_dir)
    if args.stage == 'train':
        return None
    lexicon = functools.lru_cache(maxsize=None)(human_alignment.lexicon)
    rows = []
    for recipe, model, extra, seed in tqdm(jobs, desc='measure'):
        done = os.path.exists(cell_path(args.out, recipe, model, seed))
        if args.stage == 'report' and not done or \
                not trained(args.out, recipe, model, seed):
            continue
        rows.append(_logged(args, '{}_{}_s{}.measure'.format(
            recipe, model, seed), measure_cell, args, lexicon, recipe, model,
            extra, seed))
    if args.stage == 'measure' or not rows:
        return rows
    body, answers, fill = section(rows, args)
    with open(os.path.join(args.out, 'table.md'), 'w') as f:
        f.write(body + '\n')
    plot(rows, args.figure)
    if not args.no_results:
        write_section('overconfidence', body, RESULTS)
    else:
        print(body)
    return {'rows': rows, 'answers': answers, 'fillers': fill}


if __name__ == '__main__':
    main()

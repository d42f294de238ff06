#!/usr/bin/env python
"""Reproduce the paper's accuracy table: train, DkNN and scaling per cell.

    python bench/grid.py            # the full grid (make grid)
    python bench/grid.py --quick    # the same grid, tiny settings (make grid-quick)

Every cell (dataset x model x seed, from :func:`cells`; hyperparameters
from :data:`RECIPES`) trains a classifier until validation accuracy stops
improving (GloVe 6B 50d where word-level), evaluates the DkNN (both scoring
rules) and temperature scaling, and logs each step to
``OUT/logs/CELL_sSEED.log``. A finished cell is not recomputed. The table goes
to ``OUT/grid.md`` and, for the full grid, to the ``grid`` section of
RESULTS.md. Then the supplementary-site page for SST-2 is regenerated:
dknn, softmax, calibrated and grad side by side.
"""
import argparse
import contextlib
import os
import time
from dataclasses import dataclass

import numpy
from tqdm import tqdm

from report import RESULTS, write_section, read_json  # NOQA (first)
from toolkit import cli  # NOQA
import dknn  # NOQA
from toolkit import attribution  # NOQA
from toolkit import explanations  # NOQA
import run_dknn  # NOQA
from toolkit import runs  # NOQA
from toolkit import fileio  # NOQA
import scaling  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA
from errors import UserError  # NOQA


@dataclass(frozen=True)
class Cell:
    dataset: str
    model: str
    char_based: bool = False
    seed: int = 0

    @property
    def name(self):
        return '{}_{}{}'.format(self.dataset, self.model,
                                '_char' if self.char_based else '')

    @property
    def key(self):
        """The cell without its seed: one row of the table."""
        return (self.dataset, self.model, self.char_based)

    @property
    def recipe(self):
        return self.model + ('-char' if self.char_based else '')


DATASETS = ('stsa.binary', 'stsa.fine', 'TREC', 'subj', 'mpqa', 'rt-polarity')


def cells(seeds, bilstm_seeds, datasets=DATASETS):
    """Every (dataset, model, seed) of the grid: CNN and BiLSTM per data
    set, and the character-level CNN on SST-2."""
    out = []
    for d in datasets:
        out += [Cell(d, 'cnn', seed=s) for s in seeds]
        out += [Cell(d, 'bilstm', seed=s) for s in bilstm_seeds]
        if d == 'stsa.binary':
            out += [Cell(d, 'cnn', True, seed=s) for s in bilstm_seeds]
    return out


# Training settings per recipe: until validation accuracy stops improving
# (patience 3, at most 30 epochs), keeping the best validation epoch.
# CPU-sized: see RESULTS.md for why the BiLSTM is smaller than the paper's
# 3 x 300.
RECIPES = {
    # with patience 3, TREC seed 0 stopped at epoch 6 on a noisy
    # 545-question validation plateau (test 82.2% against 90.6 and 91.2% for
    # the other seeds); see RESULTS.md 'grid-analysis'
    'cnn': dict(epoch=30, patience=3, batchsize=32, dropout=0.2, unit=300,
                layer=3),
    'bilstm': dict(epoch=30, patience=3, batchsize=32, dropout=0.2,
                   unit=150, layer=1),
    'cnn-char': dict(epoch=30, patience=4, batchsize=32, dropout=0.25,
                     unit=480, layer=1, embed=64,
                     widths=[3, 4, 5, 6, 7, 8, 9, 10]),   # see char_report
    'bow': dict(epoch=5, batchsize=32, dropout=0.2, unit=300,
                layer=3),   # bench/train_sst2.py only
}
QUICK = dict(epoch=1, patience=0, unit=24, layer=1, batchsize=64)

# The original project's published softmax accuracies (glove.840B.300d;
# the char CNN from the authors' logs).
ORIGINAL = {('stsa.binary', 'cnn', False): 84.5,
            ('stsa.binary', 'bilstm', False): 85.7,
            ('TREC', 'bilstm', False): 91.2, ('subj', 'cnn', False): 93.5,
            ('subj', 'bilstm', False): 94.8, ('mpqa', 'cnn', False): 89.2,
            ('mpqa', 'bilstm', False): 87.9,
            ('stsa.binary', 'cnn', True): 79.4}


def train_cell(cell, args, vectors):
    """Train one cell's classifier; returns its run folder."""
    recipe = dict(RECIPES[cell.recipe], **(QUICK if args.quick else {}))
    settings = TrainSettings(
        dataset=cell.dataset, model=cell.model, force=True, seed=cell.seed,
        out=os.path.join(args.out, 's{}'.format(cell.seed)),
        n_calib=args.n_calib, char_based=cell.char_based,
        word_vectors=None if cell.char_based else vectors,
        data_dir=args.data_dir, **recipe)
    folder, r = train_text_classifier.train_run(settings)
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f}'.format(
        folder, r['val_accuracy'], r['test_accuracy']))
    return folder, recipe


def scale(run, args):
    """Temperature scaling of a cell; a run without a finite T is kept,
    with the reason."""
    try:
        results = scaling.calibrate_run(run, dknn.Settings(k=args.k))
        print(scaling.format_table(results))
        print('T = {:.4f}'.format(results['temperature']))
        return results
    except UserError as e:
        print('error: {}'.format(e))
        return {'temperature': None, 'error': str(e),
                'test': {'ece_before': None, 'ece_after': None}}


def run_cell(cell, args, vectors):
    """Train, DkNN, scaling for one cell; returns its summary dict."""
    summary_path = os.path.join(args.out, 's{}'.format(cell.seed),
                                cell.name, 'grid_cell.json')
    if os.path.exists(summary_path):
        return read_json(summary_path)
    times, start = {}, time.time()
    folder, recipe = train_cell(cell, args, vectors)
    times['train'] = time.time() - start
    run = runs.load(os.path.join(folder, 'args.json'),
                    data_dir=args.data_dir)
    start = time.time()
    dk = run_dknn.evaluate_run(run, dknn.Settings(k=args.k))
    run_dknn.report(dk, dknn.PAPER)
    times['dknn'] = time.time() - start
    start = time.time()
    ts = scale(run, args)
    times['scaling'] = time.time() - start
    train = read_json(run.path('train_results'))
    summary = {
        'cell': cell.name, 'dataset': cell.dataset, 'model': cell.model,
        'char_based': cell.char_based, 'seed': cell.seed, 'recipe': recipe,
        'epochs': train.get('epochs'), 'best_epoch': train.get('best_epoch'),
        'n_train': train['n_train'], 'n_test': train['n_test'],
        'softmax_accuracy': dk['softmax']['accuracy'],
        'dknn_accuracy': dk['conformity']['accuracy'],
        'conformal_accuracy': dk['conformal']['accuracy'],
        'agreement': dk['conformity']['agreement_with_softmax'],
        'ece_softmax': dk['softmax']['ece'],
        'ece_scaled': ts['test']['ece_after'],
        'ece_dknn': dk['conformity']['ece'],
        'ece_conformal': dk['conformal']['ece'],
        'temperature': ts['temperature'], 'scaling_error': ts.get('error'),
        'seconds': times}
    fileio.save_json(summary_path, summary)
    return summary


def _spread(values):
    """'mean ± std' in points (std over seeds; none for one seed)."""
    v = 100 * numpy.asarray(values)
    if len(v) == 1:
        return '{:.2f}'.format(v[0])
    return '{:.2f} ± {:.2f}'.format(v.mean(), v.std(ddof=1))


def goal_met(gaps):
    """|mean DkNN - softmax| within 0.5 point or one standard deviation of
    the gap over seeds, whichever is larger."""
    g = 100 * numpy.asarray(gaps)
    bound = max(0.5, g.std(ddof=1) if len(g) > 1 else 0.0)
    return bool(abs(g.mean()) <= bound)


def table(rows):
    """Markdown: one row per cell, mean ± std over its seeds."""
    groups = {}
    for r in rows:
        groups.setdefault((r['dataset'], r['model'], r['char_based']),
                          []).append(r)
    lines = ['| dataset | model | seeds | epochs (best) | softmax acc. | DkNN '
             'acc. (conformity) | difference | within goal | original '
             'softmax | ECE softmax | ECE scaled | ECE DkNN | wall time (s) '
             '|', '|' + '---|' * 13]
    for key, rs in groups.items():
        get = lambda f: [r[f] for r in rs]  # NOQA
        gaps = [r['dknn_accuracy'] - r['softmax_accuracy'] for r in rs]
        scaled = [x for x in get('ece_scaled') if x is not None]
        lines.append('| {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {:.4f} '
                     '| {} | {:.4f} | {:.0f} |'.format(
                         key[0], key[1], ' (char)' if key[2] else '',
                         len(rs), ', '.join('{}'.format(e) for e in
                                            get('best_epoch')),
                         _spread(get('softmax_accuracy')),
                         _spread(get('dknn_accuracy')), _spread(gaps),
                         'yes' if goal_met(gaps) else '**no**',
                         ORIGINAL.get(key, '-'),
                         float(numpy.mean(get('ece_softmax'))),
                         '%.4f' % numpy.mean(scaled) if scaled else 'no T',
                         float(numpy.mean(get('ece_dknn'))),
                         sum(sum(r['seconds'].values()) for r in rs)))
    return '\n'.join(lines)


def supplementary_page(args):
    """The SST-2 page comparing the four methods on the same examples."""
    setup = os.path.join(args.out, 's0', 'stsa.binary_cnn', 'args.json')
    if os.path.exists(setup):
        run = runs.load(setup, data_dir=args.data_dir)
        scaled = os.path.exists(run.path('temperature'))
        methods = list(attribution.INTERPRETERS) if scaled else \
            ['dknn', 'softmax', 'grad']
        explanations.explain_run(
            attribution.Explainer(
                run.model, run, settings=dknn.Settings(k=args.k)), methods,
            list(range(min(args.page_examples, len(run.splits.test)))),
            neighbours=3)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--quick', action='store_true',
                   help='1 epoch, 24 units: a smoke test of the whole grid')
    p.add_argument('--out', default=None,
                   help='default: result/grid (result/grid-quick)')
    p.add_argument('--datasets', nargs='+', default=list(DATASETS),
                   help='only the cells of these datasets')
    p.add_argument('--seeds', type=cli.int_in(0, 2 ** 32 - 1), nargs='+',
                   default=[0, 1, 2],
                   help='seeds of the CNN cells')
    p.add_argument('--bilstm-seeds', type=cli.int_in(0, 2 ** 32 - 1),
                   nargs='+', default=[0],
                   help='seeds of the BiLSTM and char-CNN cells (slow)')
    p.add_argument('--data-dir', default=None)
    p.add_argument('--word-vectors', default=None,
                   help='default: DATA/glove/glove.6B.50d.txt.gz')
    p.add_argument('--k', type=cli.int_in(1, 10 ** 6), default=75)
    p.add_argument('--n-calib', type=cli.int_in(0, 10 ** 9), default=1000)
    p.add_argument('--page-examples', type=cli.int_in(0, 10 ** 6), default=50)
    return p


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    args.out = args.out or ('result/grid-quick' if args.quick
                            else 'result/grid')
    data = text_datasets.data_dir_from(args.data_dir) or ''
    vectors = args.word_vectors or os.path.join(data, 'glove',
                                                'glove.6B.50d.txt.gz')
    if args.quick:
        args.seeds = args.bilstm_seeds = [0]
    todo = cells(args.seeds, args.bilstm_seeds, args.datasets)
    os.makedirs(os.path.join(args.out, 'logs'), exist_ok=True)
    rows, start = [], time.time()
    bar = tqdm(todo, desc='grid')
    for cell in bar:
        bar.set_postfix_str('{} seed {}'.format(cell.name, cell.seed))
        log = os.path.join(args.out, 'logs', '{}_s{}.log'.format(
            cell.name, cell.seed))
        with open(log, 'a') as f, contextlib.redirect_stdout(f), \
                contextlib.redirect_stderr(f):
            rows.append(run_cell(cell, args, vectors))
        r = rows[-1]
        tqdm.write('{:<24} softmax {:.2%}  DkNN {:.2%}  ({:.0f} s; log: {})'
                   .format(cell.name, r['softmax_accuracy'],
                           r['dknn_accuracy'], sum(r['seconds'].values()),
                           log))
    md = table(rows)
    fileio.save_atomic(os.path.join(args.out, 'grid.md'),
                       lambda f: f.write(md + '\n'), 'w')
    print(md)
    if args.quick:
        print('smoke test: 1 epoch, 24 units, one seed. It shows that every '
              'cell trains, runs the DkNN and writes its files; the '
              'accuracies are not the paper\'s, so most "within" cells '
              'say no. For the table: make grid.')
    else:
        write_section('grid', grid_section(md, rows, args,
                                           time.time() - start), RESULTS)
    with open(os.path.join(args.out, 'logs', 'page.log'), 'a') as f, \
            contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        supplementary_page(args)
    return rows


def flags(recipe):
    """A recipe dict as command-line flags."""
    return ' '.join('--{} {}'.format(f.replace('_', '-'), ' '.join(
        map(str, v)) if isinstance(v, list) else v)
        for f, v in recipe.items())


def grid_section(md, rows, args, seconds):
    recipes = '; '.join('{}: `{}`'.format(k, flags(r))
                        for k, r in RECIPES.items())
    return '\n'.join([
        '## The paper\'s table: softmax vs DkNN (`bench/grid.py`)', '',
        'Command: `make grid` (`python bench/grid.py`). k = {}, the last '
        'layer, exact search; DkNN credibility is the conformity share. '
        'Recipes: {}. Word-level models use GloVe 6B 50d; the char-level '
        'CNN learns its embeddings. Seeds: {} for the CNN cells, {} for '
        'the BiLSTM and char-CNN cells; mean ± standard deviation over '
        'seeds. "Within goal": |DkNN - softmax| at most 0.5 point or one '
        'standard deviation of the difference, whichever is larger. Each '
        'run\'s files are in `{}/sSEED/CELL/`, its log in `{}/logs/`. Cost: '
        '{:.0f} minutes for all cells (training, DkNN and scaling, summed '
        'over the cells\' own timings, on 2 CPU cores); this invocation '
        'took {:.0f} minutes (finished cells '
        'are reused).'.format(args.k, recipes, args.seeds, args.bilstm_seeds,
                              args.out, args.out, sum(
                                  sum(r['seconds'].values()) for r in rows)
                              / 60, seconds / 60), '', md])


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""Are the nearest training examples a faithful explanation? The three
minimal tests of Hanawa, Yokoi, Hara & Inui (2021), "Evaluation of
similarity-based explanations" (ICLR), for every relevance metric of
:mod:`toolkit.relevance`.

    python bench/neighbour_tests.py              # train, test, report
    python bench/neighbour_tests.py --stage train

Tests, on ``--n-test`` (500) test inputs per model (Hanawa et al.'s
protocol; their code: ``k-hanawa/criteria_for_instance_based_explanation``):

* **identical class**: the most relevant training example carries the
  label the model *predicted* for the test input;
* **identical subclass**: on a model trained on super-classes (TREC's six
  classes in two groups, {NUM, HUM, ENTY} and {LOC, DESC, ABBR}, the split
  of the authors' own TREC figure; SST-5's five in negative {0, 1}, neutral
  {2}, positive {3, 4}), over the test inputs whose super-class it predicts
  right, the most relevant training example comes from the test input's
  original sub-class;
* **model randomisation**: the ranking of all training examples under the
  trained model against the ranking under the same architecture with fresh
  random weights (Spearman's rank correlation per test input); a metric
  that ignores the model scores near 1, one that follows it near 0.

Success rates get a 95% bootstrap interval over the test inputs (2,000
resamples). Models: TREC and SST-5 (``stsa.fine``) with the CNN and the
BiLSTM of the ``make train`` recipe (5 epochs, dropout 0.2, GloVe 50d), and
the same on the super-classes, 2 seeds each (``--init-seed``; the data
split fixed with ``--seed 0``). A run folder that exists is not trained
again. Writes ``OUT/results.json`` and the ``neighbour-tests`` section of
RESULTS.md.
"""
import csv
import os
import time

import numpy

from report import read_json, write_table  # NOQA (first)
import nets  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from errors import UserError  # NOQA
from toolkit import cli  # NOQA
from toolkit import fileio  # NOQA
from toolkit import relevance  # NOQA
from toolkit import runs  # NOQA
from toolkit.settings import TrainSettings  # NOQA

GLOVE = os.path.join('glove', 'glove.6B.50d.txt.gz')
RECIPE = dict(epoch=5, batchsize=32, dropout=0.2, word_vectors=GLOVE)
MODELS = {'cnn': dict(unit=300, layer=3), 'bilstm': dict(unit=150, layer=1)}
DATASETS = ('TREC', 'stsa.fine')
SEEDS = (0, 1)
# super-classes: data set -> (name, {original label id: super-class name})
SUPER = {
    'TREC': ('trec-super', {4: 'LOC+DESC+ABBR', 0: 'LOC+DESC+ABBR',
                            2: 'LOC+DESC+ABBR', 5: 'NUM+HUM+ENTY',
                            3: 'NUM+HUM+ENTY', 1: 'NUM+HUM+ENTY'}),
    'stsa.fine': ('sst5-super', {0: 'negative', 1: 'negative', 2: 'neutral',
                                 3: 'positive', 4: 'positive'}),
}
FILES = {'TREC': {'train': 'TREC.train.all', 'test': 'TREC.test.all'},
         'stsa.fine': {'train': 'stsa.fine.train', 'dev': 'stsa.fine.dev',
                       'test': 'stsa.fine.test'}}


# ---------------------------------------------------------------- tables

def _ci(values):
    """Mean over seeds of the mean, and of each bound: 'm [lo, hi]'."""
    v = numpy.asarray(values, numpy.float64)
    return '{:.3f} [{:.3f}, {:.3f}]'.format(*v.mean(axis=0))


def section(cells_, args):
    """The RESULTS.md section: per data set and model, every metric's
    success rates and rank correlation, averaged over the seeds."""
    parts = ['Command: `python bench/neighbour_tests.py` ({} models and {} '
             'super-class models; {} test inputs each; 95% bootstrap '
             'intervals over the inputs, averaged over seeds {}). Identical '
             'class and subclass: the share of test inputs whose most '
             'relevant training example has the predicted class, or the '
             'input\'s own sub-class (higher is better). Randomisation: '
             'Spearman\'s rank correlation of all training examples\' '
             'relevance under the trained model against a model with '
             'random weights (lower is better; a metric that ignores the '
             'model scores 1).'.format(len(cells_), len(cells_), args.n_test,
                                        ', '.join(map(str, args.seeds)))]
    groups = {}
    for c in cells_:
        groups.setdefault((c['dataset'], c['model']), []).append(c)
    for (dataset, model), cs in groups.items():
        parts.append('### {} {} (test accuracy {:.1%}; super-class model '
                     '{:.1%})'.format(
                         {'TREC': 'TREC', 'stsa.fine': 'SST-5'}[dataset],
                         model, numpy.mean([c['accuracy'] for c in cs]),
                         numpy.mean([c['super_accuracy'] for c in cs])))
        lines = ['| metric | identical class | identical subclass | '
                 'randomisation (Spearman) |', '|---|---|---|---|']
        for name, metric in relevance.METRICS.items():
            lines.append('| {} | {} | {} | {} |'.format(
                metric.title, *(_ci([c['metrics'][name][t] for c in cs])
                                for t in ('class', 'subclass',
                                          'randomisation'))))
        parts.append('\n'.join(lines))
    return '\n\n'.join(parts)


# ---------------------------------------------------------------- the data

def write_super_data(dataset, data_dir, out):
    """The super-class copy of a data set as CSV files (``text``,
    ``label`` the super-class, ``subclass`` the original label id, which
    the reader ignores and this script reads back by line), under
    ``out/data/NAME``. Returns the folder."""
    name, groups = SUPER[dataset]
    folder = os.path.join(out, 'data', name)
    os.makedirs(folder, exist_ok=True)
    for split, fname in FILES[dataset].items():
        path = text_datasets.locate([fname], None, data_dir)
        rows, _ = text_datasets.read_labelled(path)
        target = os.path.join(folder, split + '.csv')
        if os.path.exists(target):
            continue

        def write(f, rows=rows):
            w = csv.writer(f)
            w.writerow(['text', 'label', 'subclass'])
            for (tokens,), y in rows:
                w.writerow([' '.join(tokens), groups[y], y])
        fileio.save_atomic(target, write, 'w')
    return folder


def subclasses(csv_path):
    """line number -> the original label id of a super-class CSV."""
    out = {}
    for lineno, line in fileio.read_lines(csv_path):
        if lineno > 1 and line.strip():
            out[lineno] = int(next(csv.reader([line]))[-1])
    return out


# ------------------------------------------------------------ the models

MODELS_DIR = os.path.join('result', 'models', 'a')   # shared with graded.py


def run_folder(models_dir, dataset, model, seed):
    name = dataset if dataset in text_datasets.DATASETS else \
        os.path.basename(dataset)
    return os.path.join(models_dir, 's{}'.format(seed),
                        '{}_{}'.format(name, model))


def train(dataset, model, seed, models_dir, data_dir):
    """Train (or find trained) one model; returns its run folder."""
    folder = run_folder(models_dir, dataset, model, seed)
    if os.path.isfile(os.path.join(folder, 'train_results.json')):
        return folder
    s = TrainSettings(dataset=dataset, model=model, seed=0, init_seed=seed,
                      data_dir=data_dir, out=os.path.dirname(folder),
                      **dict(MODELS[model], **RECIPE))
    folder, r = train_text_classifier.train_run(s)
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f}'.format(
        folder, r['val_accuracy'], r['test_accuracy']))
    return folder


def cells(out, data_dir, models, seeds, datasets):
    """(data set, super data folder, model, seed) of every cell."""
    return [(d, write_super_data(d, data_dir, out), m, s)
            for d in datasets for m in models for s in seeds]


def train_all(args):
    for d, sup, m, seed in cells(args.out, args.data_dir, args.models,
                                 args.seeds, args.datasets):
        train(d, m, seed, args.models_dir, args.data_dir)
        train(sup, m, seed, args.models_dir, args.data_dir)


# ------------------------------------------------------------- the tests

N_BOOT = 2000


def bootstrap(values, seed=0):
    """(mean, 2.5th, 97.5th percentile) of the mean over resamples."""
    v = numpy.asarray(values, numpy.float64)
    if not len(v):
        return [float('nan')] * 3
    rng = numpy.random.RandomState(seed)
    means = v[rng.randint(0, len(v), (N_BOOT, len(v)))].mean(axis=1)
    return [float(v.mean()), float(numpy.percentile(means, 2.5)),
            float(numpy.percentile(means, 97.5))]


def spearman_rows(a, b):
    """Spearman's rank correlation of each row of a with the same row of b
    (ties share their mean rank)."""
    from scipy.stats import rankdata
    ra = rankdata(a, axis=1)
    rb = rankdata(b, axis=1)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    return (ra * rb).sum(1) / numpy.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))


def chosen(n, n_test, seed):
    """The test inputs of one model: ``n_test`` of ``n``, drawn with the
    seed (all of them when there are no more)."""
    if n <= n_test:
        return numpy.arange(n)
    return numpy.sort(numpy.random.RandomState(seed).permutation(n)[:n_test])


def subset(acts, rows):
    return nets.Activations(numpy.asarray(acts.logits)[rows], {
        k: numpy.asarray(v)[rows] for k, v in acts.layers.items()},
        numpy.asarray(acts.labels)[rows])


def forward_of(run):
    """(training Inputs, test activations, the last layer's name)."""
    return (relevance.train_inputs(run.forward('train')), run.forward('test'),
            run.model.layer_names[-1])


def randomised(run, seed):
    """The run's architecture with fresh random weights (no word vectors):
    (training Inputs, test activations) of that model."""
    numpy.random.seed(10 ** 6 + seed)
    model = nets.build_model(run.setup)
    train = nets.predict_dataset(model, run.examples('train'), None, 256)
    test = nets.predict_dataset(model, run.examples('test'), None, 256)
    return relevance.train_inputs(train), test


def class_and_random(run, rows, seed, metrics):
    """Identical class test and model randomisation of every metric on one
    model's test inputs ``rows``."""
    train, test, last = forward_of(run)
    test = subset(test, rows)
    r_train, r_test = randomised(run, seed)
    r_test = subset(r_test, rows)
    queries = relevance.test_inputs(test)
    r_queries = relevance.test_inputs(r_test)
    out = {}
    for name in metrics:
        start = time.time()
        rel = relevance.Relevance(name, train, last, seed)
        top, _ = rel.top(queries, 1)
        same = rel.labels[top[:, 0]] == queries.labels
        rho = spearman_rows(rel.scores(queries), relevance.Relevance(
            name, r_train, last, seed).scores(r_queries))
        out[name] = {'class': bootstrap(same, seed),
                     'randomisation': bootstrap(rho, seed),
                     'seconds': time.time() - start}
    return out


def identical_subclass(run, sub_of, rows, seed, metrics):
    """The identical subclass test on a super-class model: over the test
    inputs ``rows`` whose super-class it predicts right, does the most
    relevant training example come from the input's own sub-class?"""
    train, test, last = forward_of(run)
    test = subset(test, rows)
    queries = relevance.test_inputs(test)
    right = queries.labels == test.labels
    sub = {split: numpy.array([sub_of[os.path.basename(f)][line]
                               for f, line in run.splits.origins[split]])
           for split in ('train', 'test')}
    test_sub = sub['test'][rows][right]
    out = {}
    for name in metrics:
        rel = relevance.Relevance(name, train, last, seed)
        top, _ = rel.top(relevance.Inputs(
            {k: v[right] for k, v in queries.layers.items()},
            queries.logits[right], queries.labels[right]), 1)
        out[name] = {'subclass': bootstrap(sub['train'][top[:, 0]] ==
                                           test_sub, seed),
                     'n': int(right.sum())}
    return out


def measure_cell(args, dataset, sup, model, seed):
    """One (data set, model, seed) cell: read from ``OUT/cells`` if there,
    else measured and kept."""
    path = os.path.join(args.out, 'cells', '{}_{}_s{}.json'.format(
        dataset, model, seed))
    if os.path.exists(path):
        return read_json(path)
    start = time.time()
    metrics = list(relevance.METRICS)
    run = runs.load(os.path.join(train(dataset, model, seed, args.models_dir,
                                       args.data_dir), 'args.json'),
                    data_dir=args.data_dir)
    rows = chosen(len(run.splits.test), args.n_test, seed)
    row = class_and_random(run, rows, seed, metrics)
    sup_run = runs.load(os.path.join(train(sup, model, seed, args.models_dir,
                                           args.data_dir), 'args.json'))
    sub_of = {n: subclasses(os.path.join(sup, n))
              for n in os.listdir(sup) if n.endswith('.csv')}
    sub_rows = chosen(len(sup_run.splits.test), args.n_test, seed)
    for name, r in identical_subclass(sup_run, sub_of, sub_rows, seed,
                                      metrics).items():
        row[name].update(r)
    cell = {'dataset': dataset, 'model': model, 'seed': seed,
            'n_test': len(rows), 'metrics': row,
            'accuracy': read_json(os.path.join(run.folder,
                                               'train_results.json'))[
                                                   'test_accuracy'],
            'super_accuracy': read_json(os.path.join(
                sup_run.folder, 'train_results.json'))['test_accuracy'],
            'seconds': time.time() - start}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fileio.save_json(path, cell)
    return cell


def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--out', default='result/neighbour_tests',
                   type=cli.path_arg)
    p.add_argument('--models-dir', default=MODELS_DIR, type=cli.path_arg,
                   help='where the models are trained (S/NAME_MODEL), shared '
                        'with bench/graded.py')
    p.add_argument('--stage', default='all', choices=['train', 'test',
                                                      'report', 'all'],
                   help='report: the section from the cells tested')
    p.add_argument('--data-dir', default=None, type=cli.path_arg)
    p.add_argument('--models', nargs='+', default=list(MODELS),
                   choices=list(MODELS))
    p.add_argument('--datasets', nargs='+', default=list(DATASETS),
                   choices=list(DATASETS))
    p.add_argument('--seeds', nargs='+', type=cli.int_in(0, 2 ** 32 - 1),
                   default=list(SEEDS))
    p.add_argument('--n-test', type=cli.int_in(1, 10 ** 6), default=500)
    p.add_argument('--no-results', action='store_true',
                   help='do not write RESULTS.md')
    return p


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    if len(set(args.seeds)) < len(args.seeds):
        raise UserError('--seeds names a seed twice; name each once')
    args.data_dir = text_datasets.data_dir_from(args.data_dir)
    if args.stage in ('train', 'all'):
        train_all(args)
    if args.stage in ('test', 'all', 'report'):
        cells_ = []
        for d, sup, m, seed in cells(args.out, args.data_dir, args.models,
                                     args.seeds, args.datasets):
            path = os.path.join(args.out, 'cells', '{}_{}_s{}.json'.format(
                d, m, seed))
            if args.stage == 'report' and not os.path.exists(path):
                continue
            cells_.append(measure_cell(args, d, sup, m, seed))
        table = write_table(args.out, 'neighbour-tests',
                            section(cells_, args), not args.no_results)
        print('{} models tested; wrote {}'.format(len(cells_), table))


if __name__ == '__main__':
    main()

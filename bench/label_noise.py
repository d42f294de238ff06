#!/usr/bin/env python
"""Finding flipped training labels: the DkNN audit against the model's loss,
kNN on the logits and cleanlab, into RESULTS.md.

    python bench/label_noise.py                  # everything below
    python bench/label_noise.py --stages tune detect clean real

1. ``tune``: on a separate noise draw of SST-2 (20% uniform, noise seed 1),
   choose k for the DkNN audit on all layers and for kNN on the logits by
   AUROC; the measured draws never choose a setting.
2. ``detect``: per data set and noise (uniform 10% and 20%; TREC also a
   class-conditional DESC <-> ENTY flip), flip labels in the training split
   only (seeded; bench/noisy_data.py writes them as a user data set that
   keeps every split), train the `make train` recipe on the noisy labels,
   and rank the training examples with every ranker of
   bench/noise_rankers.py: AUROC, AUPRC and precision at n = number
   flipped, and wall time against the DkNN audit.
3. ``clean``: on SST-2 at 20%, remove each ranker's top n, retrain with the
   same recipe and seed, and compare test accuracy with the clean and the
   noisy training set (``--clean-seeds`` training seeds; the noise and the
   rankings are those of seed 0).
4. ``real``: audit the real SST-2 training labels of the `make train`
   model; its top 20 go to RESULTS.md.
5. ``flagged``: the flagged lists (the audit's confident-joint list, its
   p < 0.05 list, cleanlab's find_label_issues) on SST-2 and TREC with 20%
   uniform and 40% one-way noise, the calibration examples clean and as
   noisy as the training examples: precision and recall.

Writes the ``label-noise`` and ``label-noise-real`` sections of RESULTS.md
(``--quick``: a smoke run of the whole pipeline, tiny settings, into
``OUT/label_noise.md`` only). Finished trainings and rankings are reused.
"""
import argparse
import json
import os
import time
from dataclasses import dataclass

import numpy

from report import RESULTS, read_json, write_section  # NOQA (first)
import dknn  # NOQA
import noise_rankers as rk  # NOQA
import noise_tables  # NOQA
import noisy_data  # NOQA
import run_dknn  # NOQA
from errors import UserError  # NOQA
from toolkit import cli  # NOQA
from toolkit import runs  # NOQA
from toolkit import snli_standin  # NOQA
from toolkit import user_data  # NOQA
from toolkit import fileio  # NOQA
import text_datasets  # NOQA
import train_text_classifier  # NOQA
from toolkit.settings import TrainSettings  # NOQA

# `make train`: GloVe 6B 50d, 5 epochs, batch 32, dropout 0.2
RECIPES = {'cnn': dict(model='cnn', epoch=5, batchsize=32, dropout=0.2),
           'bilstm': dict(model='bilstm', epoch=5, batchsize=32, dropout=0.2,
                          unit=150, layer=1),
           'bow': dict(model='bow', epoch=15, batchsize=32, dropout=0.2)}
QUICK = dict(epoch=1, unit=24, layer=1)
N_CALIB, N_FOLDS = 1000, 5
K_GRID = (10, 25, 50, 75, 150, 300)
PAPER = dknn.Settings(k=75, layers='last')
RANKERS = ('dknn_paper', 'dknn_best', 'loss', 'logit_knn', 'cleanlab')


@dataclass(frozen=True)
class Condition:
    """One noisy training set: data set, noise kind and rate, seed."""
    dataset: str
    noise: str = 'uniform'          # or 'pair': between the two classes
    rate: float = 0.2
    noise_seed: int = 0
    classes: tuple = ()
    model: str = 'cnn'

    @property
    def name(self):
        short = {'stsa.binary': 'sst2', 'snli': 'snli'}.get(
            self.dataset, self.dataset.lower())
        return '{}_{}{}{}_n{}{}'.format(
            short, self.noise[0], int(round(100 * self.rate)),
            ''.join(c.lower() for c in self.classes), self.noise_seed,
            '' if self.model == 'cnn' else '_' + self.model)


CONDITIONS = [Condition('stsa.binary', rate=0.1), Condition('stsa.binary'),
              Condition('TREC', rate=0.1), Condition('TREC'),
              Condition('TREC', 'pair', 0.2, classes=('DESC', 'ENTY')),
              Condition('subj', rate=0.1), Condition('subj')]
TUNE = Condition('stsa.binary', noise_seed=1)
# The flagged lists with the calibration examples as noisy as the rest
# (issue: the calibration set is drawn from the file under audit)
FLAGGED = [Condition('stsa.binary', rate=0.2), Condition('TREC', rate=0.2),
           Condition('stsa.binary', 'one-way', 0.4,
                     classes=('negative', 'positive')),
           Condition('TREC', 'one-way', 0.4, classes=('DESC', 'ENTY'))]
CLEAN = Condition('stsa.binary')
EXTRA = {'bilstm': Condition('stsa.binary', model='bilstm'),
         'snli': Condition('snli', model='bow')}


# ------------------------------------------------------------ data and runs

_BASE = {}


def base_parts(dataset, args):
    """The seed-0 splits of a data set, labels as ids into the sorted label
    names (a user data set's order): (parts, names)."""
    if dataset not in _BASE:
        data_dir = args.snli_dir if dataset == 'snli' else args.data_dir
        s = text_datasets.get_dataset(dataset, data_dir, seed=0,
                                      n_calib=N_CALIB)
        names = user_data.label_order(s.label_names)
        ids = [names.index(n) for n in s.label_names]
        _BASE[dataset] = ({k: [(f, ids[y]) for f, y in s.raw[k]]
                           for k in ('train', 'calib', 'val', 'test')},
                          names)
    return _BASE[dataset]


def noisy_parts(cond, args):
    """(parts with the training labels flipped, flipped positions, names).
    """
    parts, names = base_parts(cond.dataset, args)
    labels = [y for _, y in parts['train']]
    rng = numpy.random.RandomState(cond.noise_seed)
    noisy, flipped = flip(cond, labels, names, rng)
    return dict(parts, train=noisy_data.with_labels(parts['train'], noisy)), \
        flipped, names


def flip(cond, labels, names, rng):
    """The condition's noise on ``labels``: (noisy labels, positions)."""
    if cond.noise == 'uniform':
        return noisy_data.flip_uniform(labels, cond.rate, len(names), rng)
    a, b = (names.index(c) for c in cond.classes)
    if cond.noise == 'one-way':
        return noisy_data.flip_one_way(labels, a, b, cond.rate, rng)
    return noisy_data.flip_pair(labels, a, b, cond.rate, rng)


def noisy_calibration(cond, parts, names):
    """``parts`` with the calibration labels flipped too, by the same noise
    (another draw)."""
    labels = [y for _, y in parts['calib']]
    noisy, _ = flip(cond, labels, names,
                    numpy.random.RandomState(cond.noise_seed + 1000))
    return dict(parts, calib=noisy_data.with_labels(parts['calib'], noisy))


def recipe(model, args):
    return dict(RECIPES[model], **(QUICK if args.quick else {}))


def train(name, parts, names, seed, model, args):
    """Write ``parts`` as the data set ``name`` and train the recipe on it
    with ``seed`` (reused when finished). Returns (args.json path, wall
    seconds of the training, data loading included)."""
    data = noisy_data.write_folder(os.path.join(args.out, 'data', name),
                                   parts, names, seed)
    noisy_data.check_folder(data, parts, names, seed)
    timing = os.path.join(args.out, 'seconds', name + '.json')
    start = time.time()
    folder, _ = train_text_classifier.train_run(
        TrainSettings(
            dataset=data, seed=seed, n_calib=len(parts['calib']),
            word_vectors=args.word_vectors, out=os.path.join(args.out,
                                                             'runs'),
            **recipe(model, args)))
    if not os.path.exists(timing):
        os.makedirs(os.path.dirname(timing), exist_ok=True)
        fileio.save_json(timing, {'seconds': time.time() - start})
    return os.path.join(folder, 'args.json'), \
        read_json(timing)['seconds']


def fitted_share(setup, flipped):
    """Share of the flipped training examples whose noisy label the
    trained model predicts (how much of the noise it memorised), and its
    accuracy on the rest of the training split."""
    logits, labels = rk.train_logits(runs.load(setup, cached=False))
    right = logits.argmax(axis=1) == labels
    rest = numpy.ones(len(labels), bool)
    rest[flipped] = False
    return float(right[flipped].mean()), float(right[rest].mean())


def test_accuracy(setup):
    folder = os.path.dirname(setup)
    return read_json(os.path.join(folder, 'train_results.json'))[
        'test_accuracy']


# ------------------------------------------------------------------ stages

def tune(args):
    """k of the all-layer audit and of logit kNN, by AUROC on TUNE."""
    path = os.path.join(args.out, 'tune.json')
    if os.path.exists(path):
        return read_json(path)
    parts, flipped, names = noisy_parts(TUNE, args)
    setup, _ = train(TUNE.name + '_s0', parts, names, 0, TUNE.model, args)
    mask = numpy.zeros(len(parts['train']), bool)
    mask[flipped] = True
    run = runs.load(setup)
    grid = {'dknn_last': {}, 'dknn_all': {}, 'logit_knn': {}}
    for layers in ('last', 'all'):
        for k in K_GRID:
            r = rk.dknn_ranker(setup, dknn.Settings(k=k, layers=layers), run)
            grid['dknn_' + layers][k] = rk.detection(mask, r)['auroc']
    idx, labels = rk.logit_neighbours(run, max(K_GRID))
    for k in K_GRID:
        s = rk.logit_knn_scores(idx, labels, k)
        grid['logit_knn'][k] = rk.detection(mask, rk.Ranking(
            s, rk.order_of(s), 0.0))['auroc']
    best = lambda g: int(max(g, key=g.get))  # NOQA
    tuned = {'grid': grid, 'dknn_k': best(grid['dknn_all']),
             'logit_k': best(grid['logit_knn']), 'condition': TUNE.name}
    fileio.save_json(path, tuned)
    return json.loads(json.dumps(tuned))


def fold_trainer(cond, names, args, spent):
    """``(fold, parts) -> args.json`` for cleanlab's cross-validation; adds
    (seconds this call took, seconds the training took when it ran) to
    ``spent``, so a fold reused from an interrupted run is still counted.
    """
    def train_fold(f, parts):
        start = time.time()
        setup, seconds = train('{}_fold{}'.format(cond.name, f), parts,
                               names, 0, cond.model, args)
        spent.append((time.time() - start, seconds))
        return setup
    return train_fold


def cleanlab_timed(cond, parts, names, args):
    """cleanlab's ranking; its seconds count every fold's training."""
    spent = []
    ranking, _ = rk.cleanlab_ranker(parts, names, fold_trainer(
        cond, names, args, spent), args.folds)
    ranking.seconds += sum(trained - took for took, trained in spent)
    return ranking


def rankings(cond, parts, names, setup, tuned, args, only=None):
    """Every ranker on one noisy run (saved; reused when found); ``only``:
    that one."""
    folder = os.path.join(args.out, 'rankings', cond.name)
    out = {}
    makers = {
        'dknn_paper': lambda: rk.dknn_ranker(setup, PAPER),
        'dknn_best': lambda: rk.dknn_ranker(setup, dknn.Settings(
            k=tuned['dknn_k'], layers='all')),
        'loss': lambda: rk.loss_ranker(setup),
        'logit_knn': lambda: rk.logit_knn_ranker(setup, tuned['logit_k']),
        'cleanlab': lambda: cleanlab_timed(cond, parts, names, args)}
    for name, make in makers.items():
        if only is not None and name != only:
            continue
        path = os.path.join(folder, name + '.npz')
        if not os.path.exists(path):
            rk.save(path, make())
        out[name] = rk.load(path)
    return out


def detect(cond, tuned, args):
    """Train on the noisy labels, rank, measure: the condition's dict."""
    parts, flipped, names = noisy_parts(cond, args)
    setup, seconds = train(cond.name + '_s0', parts, names, 0, cond.model,
                           args)
    mask = numpy.zeros(len(parts['train']), bool)
    mask[flipped] = True
    found = rankings(cond, parts, names, setup, tuned, args)
    fits_flipped, fits_rest = fitted_share(setup, flipped)
    return {'condition': cond.name, 'dataset': cond.dataset,
            'noise': cond.noise, 'rate': cond.rate,
            'classes': list(cond.classes), 'model': cond.model,
            'n_train': len(mask), 'n_flipped': int(mask.sum()),
            'flipped': flipped.tolist(), 'train_seconds': seconds,
            'noisy_test_accuracy': test_accuracy(setup),
            'fits_flipped': fits_flipped, 'fits_rest': fits_rest,
            'rankers': {n: rk.detection(mask, r) for n, r in found.items()}}


def clean(cond, args):
    """Test accuracy of clean, noisy and cleaned training sets per seed."""
    parts, flipped, names = noisy_parts(cond, args)
    clean_parts, _ = base_parts(cond.dataset, args)
    found = {n: rk.load(os.path.join(args.out, 'rankings', cond.name,
                                     n + '.npz')) for n in RANKERS}
    rows = {}
    for seed in args.clean_seeds:
        sets = {'clean': (cond.name.split('_')[0] + '_clean', clean_parts),
                'noisy': (cond.name, parts)}
        for n, r in found.items():
            drop = set(r.order[:len(flipped)].tolist())
            sets['minus_' + n] = (cond.name + '_minus_' + n, dict(
                parts, train=[e for i, e in enumerate(parts['train'])
                              if i not in drop]))
        for key, (name, p) in sets.items():
            setup, _ = train('{}_s{}'.format(name, seed), p, names, seed,
                             cond.model, args)
            rows.setdefault(key, []).append(test_accuracy(setup))
    return {'condition': cond.name, 'seeds': list(args.clean_seeds),
            'n_removed': len(flipped), 'accuracy': rows}


def flagged_lists(cond, args):
    """Precision and recall of the flagged lists under noise, with the
    calibration examples clean and as noisy as the training examples: the
    audit's confident-joint list, its p < 0.05 list, and cleanlab's
    find_label_issues (which reads no calibration set)."""
    from toolkit import audit
    parts, flipped, names = noisy_parts(cond, args)
    mask = numpy.zeros(len(parts['train']), bool)
    mask[flipped] = True
    score = lambda flags: {  # NOQA
        'count': int(flags.sum()),
        'precision': float((flags & mask).sum() / max(int(flags.sum()), 1)),
        'recall': float((flags & mask).sum() / max(int(mask.sum()), 1))}
    out = {'condition': cond.name, 'n_flipped': int(mask.sum()),
           'n_train': len(mask)}
    for calib in ('clean', 'noisy'):
        p = parts if calib == 'clean' else noisy_calibration(cond, parts,
                                                             names)
        name = cond.name + ('_s0' if calib == 'clean' else '_noisycalib_s0')
        setup, _ = train(name, p, names, 0, cond.model, args)
        found = audit.audit_run(runs.load(setup), PAPER)
        out[calib] = {'confident joint': score(found.flagged),
                      'p < 0.05': score(found.p < audit.ALPHA)}
    cl = rankings(cond, parts, names, None, None, args, only='cleanlab')
    out['cleanlab'] = score(cl['cleanlab'].flagged)
    return out


def real(args):
    """The DkNN audit (paper setting) of the real SST-2 training labels of
    the `make train` model: the files, and the top entries."""
    settings = TrainSettings(
        dataset='stsa.binary', seed=0, n_calib=N_CALIB,
        word_vectors=args.word_vectors, data_dir=args.data_dir,
        out=os.path.join(args.out, 'real'), **recipe('cnn', args))
    folder, results = train_text_classifier.train_run(settings)
    run = runs.load(os.path.join(folder, 'args.json'))
    record = run_dknn.audit_files(run, PAPER, 100, {'bench': 'label_noise'})
    print(run_dknn.audit_line(record))
    return {'folder': folder, 'test_accuracy': results['test_accuracy'],
            'summary': record['summary'], 'top': record['entries'][:20]}


# -------------------------------------------------------------------- main

def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--stages', nargs='+', default=['tune', 'detect', 'clean',
                                                    'real', 'flagged'],
                   choices=['tune', 'detect', 'clean', 'real', 'flagged'])
    p.add_argument('--extra', nargs='*', default=[], choices=sorted(EXTRA),
                   help='also the SST-2 BiLSTM, and the SNLI stand-in '
                        '(bow pair model), at 20%% uniform noise')
    p.add_argument('--datasets', nargs='+', default=None,
                   help='only the conditions of these data sets')
    p.add_argument('--clean-seeds', type=cli.int_in(0, 2 ** 32 - 1),
                   nargs='+', default=[0, 1, 2])
    p.add_argument('--folds', type=cli.int_in(2, 100), default=N_FOLDS)
    p.add_argument('--quick', action='store_true',
                   help='1 epoch, 24 units: a smoke run, no RESULTS.md')
    p.add_argument('--out', default=None,
                   help='default: result/label_noise (-quick)')
    p.add_argument('--data-dir', default=None, type=cli.folder_arg)
    p.add_argument('--snli-dir', default=None,
                   help='where the SNLI stand-in is written (default: '
                        'OUT/snli)')
    p.add_argument('--word-vectors', default=None,
                   help='default: DATA/glove/glove.6B.50d.txt.gz')
    return p


def snli_data(args, shared):
    """The SNLI stand-in of docs/snli.md (written once): its data folder.
    """
    folder = args.snli_dir or os.path.join(args.out, 'snli')
    if not os.path.isdir(os.path.join(folder, 'snli_1.0')):
        snli_standin.write_snli_standin(
            os.path.join(shared, 'snli', 'e-snli'), folder)
    return folder


def stage_results(args, conditions):
    """Run the chosen stages; each finished piece is saved under OUT."""
    done = {}
    cache = os.path.join(args.out, 'results.json')
    if os.path.exists(cache):
        done = read_json(cache)
    if 'tune' in args.stages or 'detect' in args.stages:
        done['tune'] = tune(args)
    if 'detect' in args.stages:
        for c in conditions:
            done.setdefault('detect', {})[c.name] = detect(c, done['tune'],
                                                           args)
    if 'clean' in args.stages:
        done['clean'] = clean(CLEAN, args)
    if 'real' in args.stages:
        done['real'] = real(args)
    if 'flagged' in args.stages:
        for c in FLAGGED:
            if args.datasets is None or c.dataset in args.datasets:
                done.setdefault('flagged', {})[c.name] = flagged_lists(c, args)
                fileio.save_json(cache, done)
    fileio.save_json(cache, done)
    return done


def training_cost(out):
    """(number of trainings, their wall seconds in all) under ``out``."""
    folder = os.path.join(out, 'seconds')
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return len(names), sum(read_json(os.path.join(folder, n))[
        'seconds'] for n in names)


@cli.script
def main(argv=None):
    args = build_parser().parse_args(argv)
    cli.once(args.clean_seeds, '--clean-seeds')
    known = sorted({c.dataset for c in CONDITIONS + list(EXTRA.values())})
    unknown = [d for d in args.datasets or () if d not in known]
    if unknown:
        raise UserError('--datasets: unknown {}; choose from {}'.format(
            ', '.join(unknown), ', '.join(known)))
    args.out = args.out or ('result/label_noise-quick' if args.quick
                            else 'result/label_noise')
    data = text_datasets.data_dir_from(args.data_dir) or ''
    args.word_vectors = args.word_vectors or os.path.join(
        data, 'glove', 'glove.6B.50d.txt.gz')
    if 'snli' in args.extra:
        args.snli_dir = snli_data(args, data)
    conditions = [c for c in CONDITIONS + [EXTRA[e] for e in args.extra]
                  if args.datasets is None or c.dataset in args.datasets]
    done = stage_results(args, conditions)
    sections = noise_tables.sections(done, args, training_cost(args.out))
    if args.quick:
        fileio.save_atomic(os.path.join(args.out, 'label_noise.md'),
                           lambda f: f.write('\n\n'.join(
                               sections.values()) + '\n'), 'w')
        return done
    for name, body in sections.items():
        write_section(name, body, RESULTS)
    return done


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""Train a text classifier and write its result folder.

    python train_text_classifier.py --dataset stsa.binary --model cnn

writes ``result/stsa.binary_cnn/``: ``best_model.npz`` (best validation
accuracy), ``vocab.json``, ``args.json`` (everything needed to rebuild the
model and its data; paths relative to the folder), ``calib.json`` (the
calibration examples' indices into the training pool), ``log`` and, last,
``train_results.json``, which records that the run is complete.

A folder that already holds a finished run with the same settings is left
as it is; ``--force`` trains again, after listing what it removes.
"""
import copy
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy
import chainer
from chainer import training
from chainer.training import extensions

import nets
import nlp_utils
import text_datasets

from errors import UserError

from toolkit import cli
from toolkit import runs
from toolkit import fileio

MAX = nets.MAX_SIZES
MAX_EPOCHS = 1000000
# Settings that define a run: a folder holding another value is another run.
RUN_KEYS = ('dataset', 'model', 'batchsize', 'epoch', 'patience', 'unit',
            'layer', 'dropout', 'widths', 'embed', 'char_based',
            'word_vectors', 'seed', 'n_calib', 'val_ratio', 'max_vocab',
            'init_seed', 'keep')


def build_parser():
    p = cli.parser(__doc__)
    p.add_argument('--dataset', '-data', default='stsa.binary',
                   help='one of {}, or the path of your own data: a CSV, TSV '
                        'or JSONL file (split 90/10), or a folder with '
                        'train.* [dev.*] [test.*] (docs/data.md)'.format(
                            ', '.join(text_datasets.DATASETS)))
    p.add_argument('--model', '-model', default='cnn',
                   choices=list(nets.ENCODERS), help='encoder')
    p.add_argument('--batchsize', '-b', type=cli.int_in(1, cli.MAX_BATCH),
                   default=128, help='examples per training step (with '
                                     '--communicator: per process)')
    p.add_argument('--epoch', '-e', type=cli.int_in(1, MAX_EPOCHS),
                   default=10, help='epochs (at most, with --patience)')
    p.add_argument('--patience', type=cli.int_in(0, MAX_EPOCHS), default=0,
                   help='stop after this many epochs without a better '
                        'validation accuracy (0: train every epoch)')
    p.add_argument('--keep', default='best', choices=['best', 'last'],
                   help='the weights saved as best_model.npz: the epoch with '
                        'the best validation accuracy, or the last epoch')
    add_model_flags(p)
    add_run_flags(p)
    return p


def add_model_flags(p):
    """The encoder's sizes, its inputs and its word vectors."""
    p.add_argument('--unit', '-u', type=cli.int_in(1, MAX['unit']),
                   default=300,
                   help='hidden units (and embedding size without vectors)')
    p.add_argument('--layer', '-l', type=cli.int_in(0, MAX['layer']),
                   default=3,
                   help='LSTM layers (at least 1), or MLP layers after the '
                        'CNN/BoW/pair encoder')
    p.add_argument('--dropout', '-d', type=cli.float_in(0, 1, high_open=True),
                   default=0.4, help='dropout ratio in the encoder and MLP')
    p.add_argument('--widths', type=cli.int_in(1, MAX['width']), nargs='+',
                   default=[3, 4, 5],
                   help='cnn: filter widths, in tokens (characters with '
                        '--char-based); at most {}'.format(MAX['widths']))
    p.add_argument('--embed', type=cli.int_in(1, MAX['n_embed']),
                   default=None,
                   help='embedding size without word vectors (default: '
                        '--unit)')
    p.add_argument('--max-tokens', type=cli.int_in(
        1, nlp_utils.MAX_TOKENS_LIMIT), default=None,
                   help='the most tokens of one input; a longer one is an '
                        'error (default: ${} or {})'.format(
                            nlp_utils.MAX_TOKENS_ENV, nlp_utils.MAX_TOKENS))
    p.add_argument('--char-based', action='store_true',
                   help='character tokens instead of words')
    p.add_argument('--word-vectors', '--word_vectors', default=None,
                   dest='word_vectors',
                   help='GloVe/word2vec/fastText text file (.gz ok), as a '
                        'path or inside the data folder; the embedding '
                        'takes its dimension')


def add_run_flags(p):
    """Where the data and the run live, seeds, splits, devices."""
    p.add_argument('--out', '-o', default='result',
                   help='parent folder; the run goes to OUT/DATASET_MODEL')
    cli.add_device_args(p)
    p.add_argument('--seed', type=cli.int_in(0, 2 ** 32 - 1), default=0,
                   help='seeds the validation and calibration draws, and '
                        '(without --init-seed) the initial weights and the '
                        'shuffling')
    p.add_argument('--init-seed', type=cli.int_in(0, 2 ** 32 - 1),
                   default=None,
                   help='seeds the initial weights, dropout and the shuffling '
                        'alone (default: --seed), so that models of several '
                        'seeds share one data split')
    p.add_argument('--data-dir', default=None,
                   help='data folder (default: $%s, else data/ in the '
                        'clone, else ../shared/data beside it)'
                        % text_datasets.DATA_ENV)
    p.add_argument('--n-calib', type=cli.int_in(0, runs.MAX_EXAMPLES),
                   default=1000,
                   help='training examples set aside for calibration')
    p.add_argument('--val-ratio', type=cli.float_in(0, 1, True, True),
                   default=0.1,
                   help='share of train used for validation where the '
                        'dataset has no dev file')
    p.add_argument('--max-vocab', type=cli.int_in(3, MAX['n_vocab']),
                   default=20000,
                   help='vocabulary size, <eos> and <unk> included')
    p.add_argument('--force', action='store_true',
                   help='replace a result folder that holds another run')
    p.add_argument('--communicator', default=None,
                   choices=['naive', 'flat', 'pure_nccl'],
                   help='data-parallel training over mpiexec ranks with '
                        'ChainerMN: naive or flat on CPUs, pure_nccl on GPUs')


def init_seed(args):
    """The seed of the weights, dropout and shuffling: ``--init-seed``,
    else ``--seed``."""
    return args.seed if args.init_seed is None else args.init_seed


def run_name(args):
    """``DATASET_MODEL[_char]``; a path names the run by its last part."""
    name = args.dataset
    if text_datasets.is_path(name):
        name = os.path.splitext(os.path.basename(os.path.normpath(name)))[0]
    return '{}_{}{}'.format(name, args.model,
                            '_char' if args.char_based else '')


def run_state(path, setup):
    """What ``path`` holds: ``'new'`` (nothing), ``'finished'`` (a complete
    run with these settings), ``'unfinished'`` (one whose training did not
    finish) or ``'other: ...'`` (a run with other settings). A folder that
    is not a run is an error."""
    names = [n for n in os.listdir(path) if n != runs.LOCK_FILE]
    if not names:
        return 'new'
    old_path = os.path.join(path, runs.ARTIFACTS['setup'])
    if not os.path.isfile(old_path):
        raise UserError('{} exists and is not a result folder; pass --force '
                        'to replace it or --out to write elsewhere'.format(
                            path))
    old = fileio.read_json(old_path, 'pass --force to replace the run')
    defaults = vars(build_parser().parse_args([]))   # keys older runs lack
    diff = [k for k in RUN_KEYS if not isinstance(old, dict) or
            old.get(k, defaults[k]) != setup.get(k)]
    if diff:
        return 'other: differs in ' + ', '.join(diff)
    done = os.path.isfile(os.path.join(path, runs.ARTIFACTS['train_results']))
    return 'finished' if done else 'unfinished'


def clear_run(path):
    """``--force`` (or an unfinished run): say what is removed, then empty
    the run folder. Only what this tool writes is removed: anything else
    there (a file of another name, a link, a FIFO, a folder) is an error,
    found before anything is removed."""
    names = sorted(n for n in os.listdir(path) if n != runs.LOCK_FILE)
    for name in names:
        runs.check_tool_entry(path, name)
    print('--force: removing {} entries of {}: {}'.format(
        len(names), path, ', '.join(names)))
    for name in names:
        full = os.path.join(path, name)
        if name == runs.ARTIFACTS['activations']:
            shutil.rmtree(full)
        else:
            os.unlink(full)


def vectors_path(path, data_dir):
    """``--word-vectors`` as given, else inside the data folder (so
    ``glove/glove.6B.50d.txt.gz`` works from any folder)."""
    inside = os.path.join(data_dir or '', path)
    if not os.path.exists(path) and data_dir and os.path.exists(inside):
        return inside
    return path


def initial_embeddings(path, vocab, seed, data_dir=None):
    """GloVe-style vectors for ``vocab``: ((V, D) matrix, D), with coverage
    and duplicates printed; (None, None) without a file."""
    if not path:
        print('no word vectors: the embedding starts at random')
        return None, None
    path = vectors_path(path, data_dir)
    vectors = nlp_utils.load_word_vectors(path, vocab,
                                          numpy.random.RandomState(seed))
    covered = vectors.covered[2:]  # <eos> and <unk> are never in a file
    print('word vectors: {} of {} vocabulary words covered ({:.1%}), '
          'dimension {}'.format(int(covered.sum()), len(covered),
                                covered.sum() / max(len(covered), 1),
                                vectors.matrix.shape[1]))
    if vectors.duplicates:
        word, first, again = vectors.duplicates[0]
        print('note: {} vocabulary words appear more than once in {}; the '
              'first vector of each is kept (e.g. {!r}: line {} kept, line {} '
              'ignored)'.format(len(vectors.duplicates), path, word, first,
                                again))
    return vectors.matrix, vectors.matrix.shape[1]


def make_trainer(model, splits, args, device, out, comm=None):
    """Adam + weight decay, validation each epoch, best model snapshot.

    With a ChainerMN ``comm`` (data-parallel training), each rank trains on
    its shard of the training and validation sets, gradients are averaged
    over the ranks, the validation accuracy is too, and rank 0 alone logs
    and keeps the best model.
    """
    optimizer = chainer.optimizers.Adam()
    if comm is not None:
        import chainermn
        optimizer = chainermn.create_multi_node_optimizer(optimizer, comm)
        splits = copy.copy(splits)
        splits.train = chainermn.scatter_dataset(
            splits.train, comm, shuffle=True, seed=init_seed(args))
        splits.val = chainermn.scatter_dataset(splits.val, comm)
    optimizer.setup(model)
    optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(1e-4))
    order = chainer.iterators.ShuffleOrderSampler(
        numpy.random.RandomState(init_seed(args)))
    train_iter = chainer.iterators.SerialIterator(
        splits.train, args.batchsize, order_sampler=order)
    val_iter = chainer.iterators.SerialIterator(
        splits.val, args.batchsize, repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, converter=nlp_utils.convert_seq, device=device)
    stop = (args.epoch, 'epoch')
    if args.patience:   # stop when validation accuracy stops improving
        stop = training.triggers.EarlyStoppingTrigger(
            monitor='validation/main/accuracy', mode='max',
            patience=args.patience, max_trigger=stop)
    trainer = training.Trainer(updater, stop, out=out)
    # Evaluate on the validation split (never test) every epoch
    evaluator = extensions.Evaluator(
        val_iter, model, converter=nlp_utils.convert_seq, device=device)
    if comm is not None:
        evaluator = chainermn.create_multi_node_evaluator(evaluator, comm)
    trainer.extend(evaluator)
    # Stop at the first loss or weight that is nan or inf
    trainer.extend(check_finite(model))
    if comm is None or comm.rank == 0:
        add_reports(trainer, model, args.keep)
    return trainer


class NonFinite(UserError):
    """Training stopped: the loss or a weight became nan or inf."""


def check_finite(model):
    """A Trainer extension, run after every update: stop at the first loss
    or weight that is not finite (the best model saved so far stays)."""
    @training.make_extension(trigger=(1, 'iteration'), priority=-100)
    def check(trainer):
        loss = trainer.observation.get('main/loss')
        bad = 'the loss' if loss is not None and not numpy.isfinite(
            float(getattr(loss, 'array', loss))) else next((
                'the weight {}'.format(name.lstrip('/')) for name, p in
                model.namedparams() if not bool(p.xp.isfinite(
                    p.array).all())), None)
        if bad:
            raise NonFinite('training stopped at epoch {}, iteration {}: {} '
                            'became nan or inf'.format(
                                trainer.updater.epoch + 1,
                                trainer.updater.iteration, bad))
    return check


def save_best(model, path):
    """A Trainer extension that writes ``model`` to ``path`` atomically
    (Chainer's own snapshot moves a temporary folder into place, which
    would move it into a folder standing there)."""
    def save(trainer):
        fileio.save_atomic(path, lambda f: chainer.serializers.save_npz(
            f, model))
    return save


class AtomicLog(extensions.LogReport):
    """Chainer's LogReport, its file written atomically (replacing only a
    regular file) each time an entry is added."""

    def __init__(self, path):
        super().__init__(log_name=None)
        self.path = path

    def __call__(self, trainer):
        before = len(self.log)
        super().__call__(trainer)
        if len(self.log) > before:
            fileio.save_json(self.path, self.log)


def add_reports(trainer, model, keep='best'):
    """The kept model's snapshot, the log, and what is printed."""
    # Keep the model with the best validation accuracy (or every epoch's,
    # each replacing the last, with --keep last)
    trigger = (1, 'epoch') if keep == 'last' else \
        training.triggers.MaxValueTrigger('validation/main/accuracy',
                                          (1, 'epoch'))
    trainer.extend(save_best(model, os.path.join(trainer.out,
                                                 runs.ARTIFACTS['model'])),
                   name='save_best', trigger=trigger)
    # Log and print each epoch's statistics, with a progress bar
    trainer.extend(AtomicLog(os.path.join(trainer.out,
                                          runs.ARTIFACTS['log'])),
                   name='LogReport')
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy',
         'validation/main/accuracy', 'elapsed_time'], out=sys.stdout))
    trainer.extend(extensions.ProgressBar(update_interval=10, out=sys.stdout))


def accuracy(model, examples, device, batchsize):
    logits, _, labels = nets.predict_dataset(model, examples, device,
                                             batchsize)
    return float((logits.argmax(axis=1) == labels).mean())


def run_setup(args, splits, n_embed, device):
    """The ``args.json`` dict: every flag, plus what rebuilding the model
    and its data needs, file names relative to the run folder, and the
    sha256 of every split's examples (a later change of the data is found).
    """
    setup = dict(vars(args))
    data_dir = text_datasets.data_dir_from(args.data_dir)
    setup.update(data_dir=data_dir and os.path.abspath(data_dir),
                 n_vocab=len(splits.vocab),
                 n_embed=n_embed or args.embed or args.unit,
                 n_class=splits.n_class, label_names=splits.label_names,
                 pair=splits.pair,
                 model_path=runs.ARTIFACTS['model'],
                 vocab_path=runs.ARTIFACTS['vocab'],
                 calib_path=runs.ARTIFACTS['calib'], device=str(device),
                 gpu=None, data_sha256={
                     split: runs.examples_sha256(getattr(splits, split))
                     for split in runs.SPLITS},
                 vocab_sha256=runs.vocab_sha256(splits.vocab),
                 max_tokens=nlp_utils.max_tokens(args.max_tokens))
    runs.check_model_size(setup, 'the settings')
    return setup


@dataclass
class Prepared:
    """What training needs before it writes anything: the splits, the
    initial embedding and the ``args.json`` dict."""
    splits: object
    initialW: object
    setup: dict


def prepare(args, device):
    """Load the data and the word vectors (every bad-input error happens
    here, before any file is touched)."""
    splits = text_datasets.get_dataset(
        args.dataset, args.data_dir, args.char_based, args.seed,
        args.n_calib, args.val_ratio, max_vocab_size=args.max_vocab,
        max_tokens=args.max_tokens)
    print('# train {}  validation {}  calibration {}  test {}  vocab {}  '
          'class {}  (skipped {} lines with no text)'.format(
              len(splits.train), len(splits.val), len(splits.calib),
              len(splits.test), len(splits.vocab), splits.n_class,
              splits.skipped))
    initialW, n_embed = initial_embeddings(
        args.word_vectors, splits.vocab, init_seed(args),
        text_datasets.data_dir_from(args.data_dir))
    return Prepared(splits, initialW, run_setup(args, splits, n_embed,
                                                device))


def fit(args, device, prepared, folder, comm=None):
    """Train, and write the run's files into ``folder``, each atomically,
    ``train_results.json`` last (it records completion).

    Returns:
        dict: validation and test accuracy of the best model, seconds per
        epoch and split sizes (``train_results.json``); None on a rank
        other than 0 of data-parallel training (which writes nothing).
    """
    splits, setup = prepared.splits, prepared.setup
    numpy.random.seed(init_seed(args))  # Chainer's initializers draw from it
    model = nets.build_model(setup, initialW=prepared.initialW)
    model.to_device(device)
    out = fileio.Outputs(folder)
    for role, content in (('vocab', splits.vocab),
                          ('calib', splits.calib_indices), ('setup', setup)):
        out.write_json(runs.ARTIFACTS[role], content)
    start = time.time()
    trainer = make_trainer(model, splits, args, device, folder, comm)
    trainer.run(show_loop_exception_msg=False)   # one error line, no trace
    seconds = time.time() - start
    if comm is not None and comm.rank != 0:
        return None
    out.written += [runs.ARTIFACTS['model'], runs.ARTIFACTS['log']]
    log = trainer.get_extension('LogReport').log
    val = [e['validation/main/accuracy'] for e in log]
    runs.load_weights(model, os.path.join(folder, runs.ARTIFACTS['model']))
    results = {
        'val_accuracy': accuracy(model, splits.val, device, args.batchsize),
        'test_accuracy': accuracy(model, splits.test, device, args.batchsize),
        'epochs': len(log), 'best_epoch': int(numpy.argmax(val)) + 1,
        'kept_epoch': len(log) if args.keep == 'last' else
        int(numpy.argmax(val)) + 1,
        'seconds_per_epoch': seconds / max(len(log), 1),
        'n_train': len(splits.train), 'n_val': len(splits.val),
        'n_test': len(splits.test), 'n_calib': len(splits.calib)}
    out.finish(runs.ARTIFACTS['train_results'], results)
    return results


def prepare_out(out):
    """Create the parent folder ``--out`` if needed; returns the folders
    created, outermost first. Refuses a file or a read-only folder."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise UserError('--out {} is a file; pass a folder'.format(out))
        fileio.require_writable(out, 'the --out folder')
        return []
    made, path = [], os.path.abspath(out)
    while not os.path.exists(path):
        made.insert(0, path)
        path = os.path.dirname(path)
    os.makedirs(out)
    return made


def settings(**options):
    """Training settings as the command line would give them: the parser's
    defaults, with ``options`` (``epoch=5``, ``char_based=True``) checked
    by the same flag types."""
    argv = []
    for key, value in options.items():
        flag = '--' + key.replace('_', '-')
        if key == 'word_vectors':
            flag = '--word-vectors'
        if value is True:
            argv.append(flag)
        elif isinstance(value, (list, tuple)):
            argv += [flag] + [str(v) for v in value]
        elif value is not False and value is not None:   # 0 is a value
            argv += [flag, str(value)]
    return build_parser().parse_args(argv)


def rank_device(args, comm):
    """A rank's device: its own GPU with pure_nccl, else ``--device``."""
    if args.communicator == 'pure_nccl':
        return chainer.get_device('@cupy:{}'.format(comm.intra_rank))
    return cli.device_from_args(args)


def check_settings(args):
    """Flag combinations that no single flag type can refuse. A dataset
    path is made absolute, so the run finds it from any folder."""
    if args.init_seed == args.seed:   # the same run as without the flag
        args.init_seed = None
    if text_datasets.is_path(args.dataset):
        args.dataset = os.path.abspath(args.dataset)
    elif args.dataset not in text_datasets.DATASETS:
        text_datasets.describe(args.dataset)   # says what is accepted
    if args.model in ('rnn', 'bilstm') and args.layer < 1:
        raise UserError('--layer must be at least 1 for --model {}'.format(
            args.model))
    if len(args.widths) > MAX['widths']:
        raise UserError('--widths: at most {} widths, got {}'.format(
            MAX['widths'], len(args.widths)))
    if args.model == 'cnn' and args.unit < len(args.widths):
        raise UserError('--unit must be at least {} for --model cnn with '
                        '--widths {} (unit / number of widths filters of '
                        'each)'.format(len(args.widths), ' '.join(
                            map(str, args.widths))))


def train_run(args, device=None):
    """Train the run ``args`` describe into ``OUT/DATASET_MODEL``, holding
    its lock. A finished run with the same settings is kept (unless
    ``--force``). Data-parallel with ``--communicator``: every rank trains,
    rank 0 writes.

    Returns:
        tuple: (the run folder, the :func:`fit` results, or those saved by
        the finished run); (None, None) on the other ranks.
    """
    comm = cli.communicator(args.communicator) if args.communicator \
        else None
    if comm is not None:
        device = device or rank_device(args, comm)
        if comm.rank != 0:
            with tempfile.TemporaryDirectory() as scratch:
                fit(args, device, prepare(args, device), scratch, comm)
            return None, None
    check_settings(args)
    made = prepare_out(args.out)
    final_dir = choose_folder(args)
    if not os.path.isdir(final_dir):
        os.mkdir(final_dir)
        made.append(os.path.abspath(final_dir))
    try:
        return final_dir, train_locked(args, device, final_dir, comm)
    except NonFinite as e:
        model = os.path.join(final_dir, runs.ARTIFACTS['model'])
        if os.path.isfile(model):   # the last good model stays
            raise NonFinite('{}; the best model so far is kept in {} (the '
                            'run is unfinished: no {}); lower --dropout or '
                            '--batchsize, or check the word vectors'.format(
                                e, model, runs.ARTIFACTS['train_results']))
        remove_made(made)
        raise NonFinite('{}, before any model was saved; nothing was kept'
                        .format(e)) from None
    except BaseException:
        remove_made(made)
        raise


def remove_made(made):
    """Remove the folders this command created: the disk as it was."""
    for folder in reversed(made):
        shutil.rmtree(folder, ignore_errors=True)


def choose_folder(args):
    """``OUT/DATASET_MODEL``, or, when that holds a run with other settings
    (and no ``--force``), the first ``OUT/DATASET_MODEL-N`` that is free or
    holds these settings: training never replaces another run unasked."""
    base = os.path.join(args.out, run_name(args))
    for n in range(1, 1000):
        path = base if n == 1 else '{}-{}'.format(base, n)
        if args.force or not os.path.isdir(path):
            return path
        state = run_state(path, vars(args))
        if not state.startswith('other'):
            return path
        if n == 1:
            print('{} holds another run ({}); training into a new folder '
                  'beside it (--force replaces it)'.format(path, state[7:]))
    raise UserError('{}-2 .. -999 all hold other runs; pass --out'.format(
        base))


def train_locked(args, device, final_dir, comm):
    """:func:`train_run` once the folders exist: lock, check, train."""
    with fileio.writing(final_dir, runs.LOCK_FILE):
        state = run_state(final_dir, vars(args))
        if state == 'finished' and not args.force:
            print('{}: already trained with these settings; pass --force to '
                  'train again'.format(final_dir))
            return fileio.read_json(os.path.join(
                final_dir, runs.ARTIFACTS['train_results']), RERUN)
        device = device or cli.device_from_args(args)
        prepared = prepare(args, device)
        if state != 'new':
            clear_run(final_dir)
        return fit(args, device, prepared, final_dir, comm)


RERUN = 'pass --force to train again'


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    final_dir, results = train_run(args)
    if final_dir is None:   # another rank of data-parallel training
        return results
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f} ({:.1f} s '
          'per epoch)'.format(final_dir, results['val_accuracy'],
                              results['test_accuracy'],
                              results['seconds_per_epoch']))
    return results


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""Train a text classifier and write its result folder.

    python train_text_classifier.py --dataset stsa.binary --model cnn

writes ``result/stsa.binary_cnn/``: ``best_model.npz`` (best validation
accuracy), ``vocab.json``, ``args.json`` (everything needed to rebuild the
model and its data), ``calib.json`` (the calibration examples' indices into
the training pool), ``log`` and, last, ``train_results.json``, which records
that the run is complete.

A folder that already holds a finished run with the same settings is left
as it is; ``--force`` trains again, after listing what it removes. The
settings are one :class:`toolkit.settings.TrainSettings`, which the bench
scripts build by name and pass to :func:`train_run`.
"""
import copy
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import numpy
import chainer
from chainer import training
from chainer.training import extensions

import nets
import nlp_utils
import text_datasets
from errors import UserError
from toolkit import cli
from toolkit import fileio
from toolkit import runfiles
from toolkit import runs
from toolkit import settings as train_settings
from toolkit import user_data
from toolkit.runfiles import ARTIFACTS


def build_parser():
    p = cli.parser(__doc__)
    train_settings.add_flags(p)
    cli.add_device_args(p)
    return p


# --------------------------------------------------------------- the data

def initial_embeddings(path, vocab, seed):
    """GloVe-style vectors for ``vocab``: ((V, D) matrix, D), with coverage
    and duplicates printed; (None, None) without a file."""
    if not path:
        print('no word vectors: the embedding starts at random')
        return None, None
    vectors = nlp_utils.load_word_vectors(path, vocab,
                                          numpy.random.RandomState(seed))
    covered = vectors.covered[2:]  # <eos> and <unk> are never in a file
    print('word vectors: {} of {} vocabulary words covered ({:.1%}), '
          'dimension {}'.format(int(covered.sum()), len(covered),
                                covered.sum() / max(len(covered), 1),
                                vectors.matrix.shape[1]))
    if vectors.duplicates:
        _, first, again = vectors.duplicates[0]
        print('note: {} vocabulary words appear more than once in {}; the '
              'first vector of each is kept (e.g. line {} kept, line {} '
              'ignored)'.format(len(vectors.duplicates), path, first, again))
    return vectors.matrix, vectors.matrix.shape[1]


@dataclass
class Prepared:
    """What training needs before it writes anything: the splits, the
    initial embedding and the ``args.json`` dict."""
    splits: object
    initialW: object
    setup: dict


def resolved(s):
    """The settings with the data set made absolute (a run finds it from
    any folder) and the vectors file found, refused if it is not there."""
    if s.dataset not in text_datasets.DATASETS:
        if not user_data.is_path(s.dataset):
            raise UserError('unknown --dataset; choose one of {}, or give the '
                            'path of {}'.format(', '.join(
                                text_datasets.DATASETS), user_data.FORMS))
        s = s.replace(dataset=os.path.abspath(s.dataset))
    if s.word_vectors:
        path = runs.vectors_path(s.word_vectors, text_datasets.data_dir_from(
            s.data_dir))
        if not os.path.lexists(path):
            raise UserError('--word-vectors {}: no such file (looked for it '
                            'as given and in the data folder)'.format(
                                s.word_vectors))
    return s


def identity_setup(s):
    """The part of ``args.json`` known before the data is read, for
    :func:`runs.run_state`: the settings and the sha256 of the vectors."""
    setup = asdict(s)
    setup.update(widths=list(s.widths),
                 max_tokens=nlp_utils.max_tokens(s.max_tokens))
    if s.word_vectors:
        setup['word_vectors_sha256'] = fileio.file_sha256(runs.vectors_path(
            s.word_vectors, text_datasets.data_dir_from(s.data_dir)),
            'vectors')
    return setup


def prepare(s, setup, device):
    """Load the data and the word vectors (every bad-input error happens
    here, before any file is touched) and complete ``args.json``."""
    splits = user_data.get_dataset(
        s.dataset, s.data_dir, s.char_based, s.strict, seed=s.seed,
        n_calib=s.n_calib, val_ratio=s.val_ratio,
        max_vocab_size=s.max_vocab, max_tokens=s.max_tokens)
    train_settings.check_labels(splits.label_names, s.dataset)
    print('# train {}  validation {}  calibration {}  test {}  vocab {}  '
          'class {}'.format(len(splits.train), len(splits.val),
                            len(splits.calib), len(splits.test),
                            len(splits.vocab), splits.n_class))
    for line in (splits.skipped_rows.lines() if splits.skipped_rows else ()):
        print(cli.printable(line))
    leaks = text_datasets.overlap(splits)
    if text_datasets.overlap_warning(leaks, splits):
        print(text_datasets.overlap_warning(leaks, splits))
    vectors = s.word_vectors and runs.vectors_path(
        s.word_vectors, text_datasets.data_dir_from(s.data_dir))
    initialW, n_embed = initial_embeddings(vectors, splits.vocab,
                                           s.weights_seed)
    data_dir = text_datasets.data_dir_from(s.data_dir)
    setup = dict(setup, data_dir=data_dir and os.path.abspath(data_dir),
                 n_vocab=len(splits.vocab),
                 n_embed=n_embed or s.embed or s.unit,
                 n_class=splits.n_class, label_names=splits.label_names,
                 pair=splits.pair, model_path=ARTIFACTS['model'],
                 vocab_path=ARTIFACTS['vocab'], calib_path=ARTIFACTS['calib'],
                 device=str(device), data_sha256={
                     split: runfiles.examples_sha256(getattr(splits, split))
                     for split in runfiles.SPLITS},
                 vocab_sha256=runfiles.vocab_sha256(splits.vocab),
                 max_tokens=nlp_utils.max_tokens(s.max_tokens))
    if s.dataset not in text_datasets.DATASETS:
        setup['data_files'] = runfiles.stamp_data_files(s.dataset)
    train_settings.check_setup(setup, 'the settings')   # what loading checks
    return Prepared(splits, initialW, setup)


# ----------------------------------------------------------- the training

def make_trainer(model, splits, s, device, out, comm=None):
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
            splits.train, comm, shuffle=True, seed=s.weights_seed)
        splits.val = chainermn.scatter_dataset(splits.val, comm)
    optimizer.setup(model)
    optimizer.add_hook(chainer.optimizer_hooks.WeightDecay(1e-4))
    order = chainer.iterators.ShuffleOrderSampler(
        numpy.random.RandomState(s.weights_seed))
    train_iter = chainer.iterators.SerialIterator(
        splits.train, s.batchsize, order_sampler=order)
    val_iter = chainer.iterators.SerialIterator(
        splits.val, s.batchsize, repeat=False, shuffle=False)
    updater = training.updaters.StandardUpdater(
        train_iter, optimizer, converter=nlp_utils.convert_seq, device=device)
    stop = (s.epoch, 'epoch')
    if s.patience:   # stop when validation accuracy stops improving
        stop = training.triggers.EarlyStoppingTrigger(
            monitor='validation/main/accuracy', mode='max',
            patience=s.patience, max_trigger=stop)
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
        add_reports(trainer, model, s.keep)
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
    """A Trainer extension that writes ``model`` to ``path`` atomically."""
    def save(trainer):
        fileio.save_atomic(path, lambda f: chainer.serializers.save_npz(
            f, model))
    return save


class AtomicLog(extensions.LogReport):
    """Chainer's LogReport, its file written atomically each time an entry
    is added."""

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
                                                 ARTIFACTS['model'])),
                   name='save_best', trigger=trigger)
    # Log and print each epoch's statistics, with a progress bar
    trainer.extend(AtomicLog(os.path.join(trainer.out, ARTIFACTS['log'])),
                   name='LogReport')
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/accuracy',
         'validation/main/accuracy', 'elapsed_time'], out=sys.stdout))
    trainer.extend(extensions.ProgressBar(update_interval=10, out=sys.stdout))


def accuracy(model, examples, device, batchsize):
    logits, _, labels = nets.predict_dataset(model, examples, device,
                                             batchsize)
    return float((logits.argmax(axis=1) == labels).mean())


def fit(s, device, prepared, folder, comm=None):
    """Train, and write the run's files into ``folder``, each atomically,
    ``train_results.json`` last (it records completion).

    Returns:
        dict: validation and test accuracy of the kept model, epochs,
        seconds per epoch, split sizes and the rows skipped
        (``train_results.json``); None on a rank other than 0.
    """
    splits, setup = prepared.splits, prepared.setup
    cli.agree(comm, {k: setup[k] for k in ('data_sha256', 'vocab_sha256')})
    numpy.random.seed(s.weights_seed)  # Chainer's initializers draw from it
    model = nets.build_model(setup, initialW=prepared.initialW)
    model.to_device(device)
    out = fileio.Outputs(folder)
    for role, content in (('vocab', splits.vocab),
                          ('calib', splits.calib_indices), ('setup', setup)):
        out.write_json(ARTIFACTS[role], content)
    start = time.time()
    trainer = make_trainer(model, splits, s, device, folder, comm)
    trainer.run(show_loop_exception_msg=False)   # one error line, no trace
    seconds = time.time() - start
    if comm is not None and comm.rank != 0:
        return None
    out.written += [ARTIFACTS['model'], ARTIFACTS['log']]
    log = trainer.get_extension('LogReport').log
    val = [e['validation/main/accuracy'] for e in log]
    runfiles.read_weights(model, os.path.join(folder, ARTIFACTS['model']))
    skipped = splits.skipped_rows
    results = {
        'val_accuracy': accuracy(model, splits.val, device, s.batchsize),
        'test_accuracy': accuracy(model, splits.test, device, s.batchsize),
        'epochs': len(log), 'best_epoch': int(numpy.argmax(val)) + 1,
        'kept_epoch': len(log) if s.keep == 'last' else
        int(numpy.argmax(val)) + 1,
        'seconds_per_epoch': seconds / max(len(log), 1),
        'n_train': len(splits.train), 'n_val': len(splits.val),
        'n_test': len(splits.test), 'n_calib': len(splits.calib),
        'skipped_rows': skipped.record() if skipped else {'count': 0},
        'shared_with_train': text_datasets.overlap(splits)}
    out.finish(ARTIFACTS['train_results'], results)
    return results


# ------------------------------------------------------------- the folder

def rank_device(s, comm, device):
    """A rank's device: its own GPU with pure_nccl, else ``device``."""
    if s.communicator == 'pure_nccl':
        return chainer.get_device('@cupy:{}'.format(comm.intra_rank))
    return device


def train_run(s, device=None):
    """Train the run the settings ``s`` describe into ``OUT/DATASET_MODEL``,
    holding its lock. A finished run with the same settings is kept (unless
    ``force``). Data-parallel with ``communicator``: every rank trains,
    rank 0 writes. A failed run leaves the disk as it found it (a run that
    stopped at a nan keeps its best model so far, unfinished).

    Returns:
        tuple: (the run folder, the :func:`fit` results, or those saved by
        the finished run); (None, None) on the other ranks.
    """
    s = resolved(s)
    device = device or chainer.get_device('@numpy')
    comm = cli.communicator(s.communicator) if s.communicator else None
    setup = identity_setup(s)
    if comm is not None:
        cli.agree(comm, {'settings': setup})
        device = rank_device(s, comm, device)
        if comm.rank != 0:
            with tempfile.TemporaryDirectory() as scratch:
                fit(s, device, prepare(s, setup, device), scratch, comm)
            return None, None
    made = runs.prepare_out(s.out)
    final_dir = runs.choose_folder(os.path.join(s.out, s.run_name()), setup,
                                   s.force)
    if not os.path.isdir(final_dir):
        os.mkdir(final_dir)
        made.append(os.path.abspath(final_dir))
    try:
        return final_dir, train_locked(s, setup, device, final_dir, comm)
    except NonFinite as e:
        model = os.path.join(final_dir, ARTIFACTS['model'])
        if os.path.isfile(model):   # the last good model stays
            raise NonFinite('{}; the best model so far is kept in {} (the '
                            'run is unfinished: no {}); lower --dropout or '
                            '--batchsize, or check the word vectors'.format(
                                e, model, ARTIFACTS['train_results']))
        runs.remove_made(made)
        raise NonFinite('{}, before any model was saved; nothing was kept'
                        .format(e)) from None
    except BaseException:
        runs.remove_made(made)
        raise


def train_locked(s, setup, device, final_dir, comm):
    """:func:`train_run` once the folders exist: lock, check, train."""
    with fileio.writing(final_dir):
        state = runs.run_state(final_dir, setup)
        if state == 'finished' and not s.force:
            print('{}: already trained with these settings; pass --force to '
                  'train again'.format(final_dir))
            return fileio.read_json(os.path.join(
                final_dir, ARTIFACTS['train_results']), RERUN)
        prepared = prepare(s, setup, device)
        if state != 'new':
            runs.clear_run(final_dir, '--force' if state == 'finished' or
                           state.startswith('other') else
                           'an unfinished run (its training did not finish)')
        return fit(s, device, prepared, final_dir, comm)


RERUN = 'pass --force to train again'


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    s = train_settings.from_args(args)
    final_dir, results = train_run(s, cli.device_from_args(args))
    if final_dir is None:   # another rank of data-parallel training
        return results
    print('{}: validation accuracy {:.4f}, test accuracy {:.4f} ({:.1f} s '
          'per epoch, {} epoch{})'.format(
              cli.printable(final_dir), results['val_accuracy'],
              results['test_accuracy'], results['seconds_per_epoch'],
              results['epochs'], '' if results['epochs'] == 1 else 's'))
    return results


if __name__ == '__main__':
    main()

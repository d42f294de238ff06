"""The bad-input battery: every case must end in a non-zero exit, exactly
one ``error:`` line naming the file or flag, no traceback, and every file
of the result folders as it was (same sha256, no new files).

Each case runs a script's ``main([...])`` in process, on a private copy of
a tiny trained run (with its forward-pass cache, DkNN results and
temperature) and of the tiny data folder. An exception other than ``SystemExit`` would fail the test,
which is how "no traceback" is checked; one case per script also runs as a
subprocess to check what a user sees on the terminal.
"""
import errno
import gzip
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections import namedtuple

import numpy
import pytest

import interpretations
import run_dknn
from toolkit import safeio
import scaling
import train_text_classifier
from conftest import ROOT, TINY_TRAIN, copy_run, write_tiny_sst

SCRIPTS = {'train': train_text_classifier.main, 'dknn': run_dknn.main,
           'scaling': scaling.main, 'interp': interpretations.main}

Case = namedtuple('Case', 'kind name script argv setup names')
# argv: ws -> list; setup: ws -> None (breaks something); names: regex the
# error line must match (the file or flag it names)


class Workspace:
    """Paths of one case's private copies."""

    def __init__(self, root, setup_path):
        self.root = root
        self.data = write_tiny_sst(os.path.join(root, 'data'))
        self.out = os.path.join(root, 'out')
        self.args = copy_run(setup_path, os.path.join(self.out, 'run'))
        self.run = os.path.dirname(self.args)
        for name in ('dknn_credibility.npz', 'dknn_results.json',
                     'temperature.json'):
            shutil.copy(os.path.join(os.path.dirname(setup_path), name),
                        os.path.join(self.run, name))
        shutil.copytree(os.path.join(os.path.dirname(setup_path),
                                     'activations'), self.cache(''))

    def file(self, name):
        return os.path.join(self.run, name)

    def cache(self, name):
        return os.path.join(self.run, 'activations', name)

    def train(self, *extra):
        return TINY_TRAIN + ['--model', 'cnn', '--data-dir', self.data,
                             '--out', self.out] + list(extra)

    def model(self, *extra):
        return ['--model-setup', self.args] + list(extra)

    def edit_args(self, **changes):
        setup = json.load(open(self.args))
        setup.update(changes)
        with open(self.args, 'w') as f:
            json.dump(setup, f)


def write(path, content, mode='w'):
    with open(path, mode) as f:
        f.write(content)


def truncate(path, keep=100):
    data = open(path, 'rb').read()
    write(path, data[:keep], 'wb')


class Payload:
    """Unpickling it creates a file: proof that a pickle ran."""

    def __reduce__(self):
        return (open, ('/tmp/dknn-battery-pwned', 'w'))


def vectors(ws, text, name='vec.txt', gz=False):
    path = os.path.join(ws.root, name)
    if gz:
        with gzip.open(path, 'wt') as f:
            f.write(text)
    else:
        write(path, text)
    return path


def data_file(ws, split, text, mode='w'):
    write(os.path.join(ws.data, 'stsa.binary.' + split), text, mode)


def nothing(ws):
    pass


def imdb_tree(ws, bad_name):
    """A tiny aclImdb tree in the data folder, with one odd file."""
    for split in ('train', 'test'):
        for pol, rating in (('pos', 8), ('neg', 2)):
            folder = os.path.join(ws.data, 'aclImdb', split, pol)
            os.makedirs(folder)
            for i in range(3):
                write(os.path.join(folder, '{}_{}.txt'.format(i, rating)),
                      'a fine film' if pol == 'pos' else 'a dull film')
    write(os.path.join(ws.data, 'aclImdb', 'train', 'pos', bad_name), 'x')


def dbpedia_with_folder_member(ws):
    import tarfile
    with tarfile.open(os.path.join(ws.data, 'dbpedia_csv.tar.gz'), 'w:gz') \
            as tf:
        info = tarfile.TarInfo('dbpedia_csv/train.csv')
        info.type = tarfile.DIRTYPE
        tf.addfile(info)


def outside_victim(ws):
    """A file outside the run folder (in the data folder, also watched)."""
    path = os.path.join(ws.data, 'victim.txt')
    write(path, 'precious')
    return path


def relabel(ws, split):
    """Flip every label of a split's data file (same size, same lines)."""
    path = os.path.join(ws.data, 'stsa.binary.' + split)
    lines = open(path).read().splitlines()
    write(path, '\n'.join(str(1 - int(l[0])) + l[1:] for l in lines) + '\n')


def flag(script, *argv, names=None):
    """A case of a bad flag value; the error must name the flag."""
    def make(ws):
        return ws.train(*argv) if script == 'train' else ws.model(*argv)
    return Case('flags', '{} {}'.format(script, ' '.join(argv)), script,
                make, nothing, names or re.escape(argv[0]))


def full_disk(ws):
    """Every file written through safeio fails with ENOSPC: the files of
    :func:`safeio.save_atomic` (it opens them with the ``open`` of safeio's
    namespace, replaced here) and the forward-pass cache, whose memory-
    mapped arrays get their space from ``safeio._fallocate``."""
    class Full:
        def __init__(self, *a, **k):
            self.f = open(*a, **k)

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC),
                          self.f.name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __getattr__(self, name):
            return getattr(self.f, name)
    safeio.open = Full

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    safeio._fallocate = no_space


CASES = [
    Case('data files', 'empty train file', 'train', Workspace.train,
         lambda ws: data_file(ws, 'train', ''), r'stsa\.binary\.train'),
    Case('data files', 'binary garbage', 'train', Workspace.train,
         lambda ws: data_file(ws, 'dev', bytes(range(256)) * 4, 'wb'),
         r'stsa\.binary\.dev:\d+'),
    Case('data files', 'no space after label', 'train', Workspace.train,
         lambda ws: data_file(ws, 'test', '1good\n', 'a'),
         r'stsa\.binary\.test:17'),
    Case('data files', 'label outside the classes', 'train', Workspace.train,
         lambda ws: data_file(ws, 'train', '7 good film\n', 'a'),
         r'stsa\.binary\.train:61: label 7'),
    Case('data files', 'data folder is a file', 'train',
         lambda ws: ws.train('--data-dir', os.path.join(ws.data,
                                                        'stsa.binary.dev')),
         nothing, r'stsa\.binary\.dev is a file'),
    Case('data files', 'data file is a folder', 'train', Workspace.train,
         lambda ws: (os.remove(os.path.join(ws.data, 'stsa.binary.dev')),
                     os.mkdir(os.path.join(ws.data, 'stsa.binary.dev'))),
         r'stsa\.binary\.dev: is a folder'),
    Case('data files', 'a non-ASCII digit as label', 'train',
         Workspace.train,
         lambda ws: data_file(ws, 'train', '\u00b2 good movie\n', 'a'),
         r'stsa\.binary\.train:61'),
    Case('data files', 'data folder path with a line break', 'train',
         lambda ws: ws.train('--data-dir', os.path.join(ws.root, 'a\nb')),
         nothing, r'data folder .*a b'),
    Case('data files', 'IMDB file that is not a review', 'train',
         lambda ws: ws.train('--dataset', 'imdb.fine'),
         lambda ws: imdb_tree(ws, 'readme.txt'), r'readme\.txt is not an '
                                                  r'IMDB review'),
    Case('data files', 'IMDB rating 5', 'train',
         lambda ws: ws.train('--dataset', 'imdb.fine'),
         lambda ws: imdb_tree(ws, '9_5.txt'), r'9_5\.txt is not an IMDB'),
    Case('data files', 'DBpedia csv that is a folder', 'train',
         lambda ws: ws.train('--dataset', 'dbpedia'),
         dbpedia_with_folder_member, r'dbpedia_csv\.tar\.gz: no file'),
    Case('data files', 'truncated SNLI zip', 'train',
         lambda ws: ws.train('--dataset', 'snli'),
         lambda ws: write(os.path.join(ws.data, 'snli_1.0.zip'),
                          'PK\x03\x04 cut short'),
         r'snli_1\.0\.zip: not a valid zip'),
    Case('word vectors', 'vectors missing', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root, 'no')),
         nothing, r'/no: no such file'),
    Case('word vectors', 'vectors a folder', 'train',
         lambda ws: ws.train('--word_vectors', ws.root), nothing,
         r'is a folder'),
    Case('word vectors', 'vectors truncated gz', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'v.txt.gz')),
         lambda ws: truncate(vectors(ws, 'good 1 2\n' * 3000, 'v.txt.gz',
                                     gz=True), 80), r'v\.txt\.gz'),
    Case('word vectors', 'vectors fake gz', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'f.txt.gz')),
         lambda ws: vectors(ws, 'good 1 2\n', 'f.txt.gz'), r'f\.txt\.gz'),
    Case('word vectors', 'vectors nan', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good 1 2\nbad nan 1\n'), r'vec\.txt:2'),
    Case('word vectors', 'vectors inf', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good inf 2\n'), r'vec\.txt:1'),
    Case('word vectors', 'vectors ragged line', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good 1 2\nzzz 1 2 3\n'), r'vec\.txt:2'),
    flag('train', '--batchsize', '0'),
    flag('train', '--epoch', '-1'),
    flag('train', '--unit', '0'),
    flag('train', '--layer', '-1'),
    flag('train', '--layer', '0', '--model', 'rnn'),
    flag('train', '--dropout', '1'),
    flag('train', '--dropout', 'nan'),
    flag('train', '--n-calib', '-5'),
    flag('train', '--val-ratio', '0'),
    flag('train', '--max-vocab', '1'),
    flag('train', '--dataset', 'sst9', names="unknown dataset 'sst9'"),
    flag('dknn', '--k', '0'),
    flag('interp', '--k', 'abc'),
    flag('dknn', '--k', '100000', names='k=100000'),
    flag('dknn', '--layers', 'lstm9', names='lstm9'),
    flag('dknn', '--batchsize', '0'),
    flag('interp', '--neighbours', '-3'),
    flag('interp', '--first', '0'),
    flag('interp', '--figure', '-1'),
    flag('interp', '--index', '99', names='--index 99'),
    flag('interp', '--interp_method', 'lime', names='--interp.method lime'),
    flag('interp', '--field', 'title'),
    flag('scaling', '--n-bins', '0'),
    flag('interp', '--reduce', '--beam', '0', names='--beam'),
    flag('interp', '--reduce', '--reduce-by', 'lime', names='--reduce-by'),
    flag('train', '--patience', '-1'),
    flag('dknn', '--pool', 'each'),
    flag('dknn', '--pool', 'total', '--layers', 'all', '--k', '1',
         names='pool "total" shares k=1 neighbours over 2 layers'),
    flag('dknn', '--backend', 'faiss-ivf', '--nlist', '8', '--nprobe', '9',
         '--k', '5', names='--nprobe 9 must be between 1 and --nlist 8'),
    flag('dknn', '--backend', 'faiss-hnsw', '--hnsw-m', '1', '--k', '5',
         names='--hnsw-m must be at least 2'),
    flag('dknn', '--device', '@nope', names='device'),
    flag('dknn', '--device', '@cupy:0', names='device'),
    flag('train', '--unit', '1', names='--unit must be at least 3 for'),
    flag('train', '--widths', '0'),
    flag('train', '--seed', '-1'),
    flag('train', '--seed', str(2 ** 32)),
    flag('scaling', '--n-bins', '100000000000000000000'),
    flag('interp', '--neighbours', '20', '--k', '5',
         names='--neighbours 20 is more than the --k 5'),
    flag('dknn', '--backend', 'faiss-ivfpq', '--nlist', '4', '--k', '5',
         names='faiss-ivfpq needs at least 256 points'),
    flag('dknn', '--conformal-sets', '--epsilon', '0', names='--epsilon'),
    flag('dknn', '--conformal-sets', '--epsilon', '0.1', '1.5',
         names='--epsilon'),
    flag('dknn', '--ood', 'TREC,nosuch', names='--ood: unknown data set '
                                                'nosuch'),
    Case('data files', 'out-of-distribution data set malformed', 'dknn',
         lambda ws: ws.model('--k', '5', '--ood', 'TREC', '--data-dir',
                             ws.data),
         lambda ws: (write(os.path.join(ws.data, 'TREC.train.all'),
                           '1 what is this\n'),
                     write(os.path.join(ws.data, 'TREC.test.all'),
                           '1 who\nwhere is it\n')),
         r'TREC\.test\.all:2: expected "LABEL text"'),
    Case('result folders', 'args.json truncated', 'dknn', Workspace.model,
         lambda ws: truncate(ws.args, 40), r'args\.json: not valid JSON'),
    Case('result folders', 'args.json of another kind', 'scaling',
         Workspace.model,
         lambda ws: shutil.copy(ws.file('dknn_results.json'), ws.args),
         r'args\.json: not the args\.json of a training run'),
    Case('result folders', 'args.json with wrong types', 'interp',
         Workspace.model,
         lambda ws: ws.edit_args(unit='300'), r'args\.json: "unit"'),
    Case('result folders', 'args.json is a folder', 'dknn',
         lambda ws: ['--model-setup', ws.run], nothing, r'is a folder'),
    Case('untrusted files', 'model path traversal', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(model_path='../../../../etc/passwd'),
         r'model_path in args\.json'),
    Case('untrusted files', 'absolute vocab path', 'interp', Workspace.model,
         lambda ws: ws.edit_args(vocab_path='/etc/passwd'),
         r'vocab_path in args\.json'),
    Case('untrusted files', 'symlink out of the folder', 'scaling',
         Workspace.model,
         lambda ws: (shutil.move(ws.file('best_model.npz'),
                                 os.path.join(ws.root, 'm.npz')),
                     os.symlink(os.path.join(ws.root, 'm.npz'),
                                ws.file('best_model.npz'))),
         r'best_model\.npz is a link .* outside'),
    Case('untrusted files', 'pickled model', 'dknn', Workspace.model,
         lambda ws: write(ws.file('best_model.npz'), pickle.dumps(Payload()),
                          'wb'),
         r'best_model\.npz: not a valid \.npz'),
    Case('untrusted files', 'object array in the model', 'interp',
         Workspace.model,
         lambda ws: numpy.savez(ws.file('best_model.npz'),
                                x=numpy.array([Payload()], object)),
         r'best_model\.npz: not a valid \.npz'),
    Case('result folders', 'model truncated', 'scaling', Workspace.model,
         lambda ws: truncate(ws.file('best_model.npz'), 300),
         r'best_model\.npz'),
    Case('result folders', 'model empty', 'dknn', Workspace.model,
         lambda ws: write(ws.file('best_model.npz'), ''),
         r'best_model\.npz'),
    Case('result folders', 'model is a folder', 'dknn', Workspace.model,
         lambda ws: (os.remove(ws.file('best_model.npz')),
                     os.mkdir(ws.file('best_model.npz'))),
         r'best_model\.npz'),
    Case('result folders', 'model missing', 'interp', Workspace.model,
         lambda ws: os.remove(ws.file('best_model.npz')),
         r'best_model\.npz: missing'),
    Case('result folders', 'vocab id out of range', 'dknn', Workspace.model,
         lambda ws: write(ws.file('vocab.json'), json.dumps(dict(
             json.load(open(ws.file('vocab.json'))), good=10 ** 6))),
         r'vocab\.json'),
    Case('result folders', 'calib index out of range', 'scaling',
         Workspace.model,
         lambda ws: write(ws.file('calib.json'), '[0, 100000]'),
         r'calib\.json'),
    Case('result folders', 'cached activations truncated', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: truncate(ws.cache('train.layer.mlp1.npy'), 100),
         r'activations/train\.layer\.mlp1\.npy.*--rebuild'),
    Case('result folders', 'cached activations of another shape', 'interp',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('train.layer.mlp1.npy'),
                               numpy.zeros((3, 2), 'f')),
         r'activations/train\.layer\.mlp1\.npy: unexpected'),
    Case('untrusted files', 'cached activations pickled', 'scaling',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('test.logits.npy'),
                               numpy.array([Payload()], object),
                               allow_pickle=True),
         r'activations/test\.logits\.npy'),
    Case('result folders', 'cache stamp not JSON', 'scaling',
         lambda ws: ws.model('--k', '5'),
         lambda ws: write(ws.cache('calib.json'), '{'),
         r'activations/calib\.json: not valid JSON'),
    Case('result folders', 'temperature corrupt', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: write(ws.file('temperature.json'), '{"temperature": 0}'),
         r'temperature\.json'),
    Case('result folders', 'args.json seed out of range', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(seed=-1),
         r'args\.json: "seed"'),
    Case('result folders', 'args.json with too few label names', 'interp',
         Workspace.model, lambda ws: ws.edit_args(label_names=['one']),
         r'args\.json: .*label_names'),
    Case('result folders', 'model archive with a text member', 'scaling',
         Workspace.model,
         lambda ws: __import__('zipfile').ZipFile(
             ws.file('best_model.npz'), 'a').writestr('readme.txt', 'hi'),
         r'best_model\.npz: member .readme\.txt. is not an array'),
    Case('result folders', 'cached layer of another width', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('train.layer.mlp1.npy'),
                               numpy.zeros((50, 11), 'f')),
         r'activations/train\.layer\.mlp1\.npy: unexpected'),
    Case('result folders', 'cached labels not the data\'s', 'interp',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('train.labels.npy'), 1 - numpy.load(
             ws.cache('train.labels.npy'))),
         r'activations/train\.labels\.npy: not the labels'),
    Case('result folders', 'training labels changed since training', 'dknn',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: relabel(ws, 'train'),
         r'stsa\.binary\.train changed since training: its train examples '
         r'differ .*data_sha256'),
    Case('result folders', 'test file replaced since training', 'scaling',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: data_file(ws, 'test', '1 good good good\n' * 16),
         r'stsa\.binary\.test changed since training'),
    Case('result folders', 'temperature too small to use', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: write(ws.file('temperature.json'),
                          '{"temperature": 1e-320}'),
         r'temperature\.json: "temperature" must be a number in'),
    Case('untrusted files', 'temperature.json a link outside', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: (os.remove(ws.file('temperature.json')),
                     os.symlink(outside_victim(ws),
                                ws.file('temperature.json'))),
         r'temperature\.json is a link to .* outside'),
    Case('untrusted files', 'activations folder a link outside', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: (shutil.move(ws.cache(''), os.path.join(ws.data, 'c')),
                     os.symlink(os.path.join(ws.data, 'c'),
                                ws.file('activations'))),
         r'activations is a link to .* outside'),
    Case('untrusted files', 'lock file a link to a file outside', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: os.symlink(outside_victim(ws), ws.file('.lock')),
         r'\.lock is a link'),
    Case('untrusted files', 'lock file a hard link to a file outside',
         'train', Workspace.train,
         lambda ws: (os.mkdir(os.path.join(ws.out, 'stsa.binary_cnn')),
                     os.link(outside_victim(ws), os.path.join(
                         ws.out, 'stsa.binary_cnn', '.lock'))),
         r'stsa\.binary_cnn/\.lock is a link'),
    Case('untrusted files', 'run lock file a hard link to a file outside',
         'scaling', Workspace.model,
         lambda ws: os.link(outside_victim(ws), ws.file('.lock')),
         r'run/\.lock is a link'),
    Case('disk and concurrency', 'nested --out with bad data', 'train',
         lambda ws: ws.train()[:-1] + [os.path.join(ws.out, 'n', 'a', 'b')],
         lambda ws: data_file(ws, 'train', ''), r'stsa\.binary\.train'),
    Case('disk and concurrency', 'out is a file', 'train',
         lambda ws: ws.train()[:-1] + [os.path.join(ws.data,
                                                    'stsa.binary.dev')],
         nothing, r'--out .*stsa\.binary\.dev is a file'),
    Case('result folders', 'a folder where reliability.png goes',
         'scaling', lambda ws: ws.model('--k', '5'),
         lambda ws: (os.mkdir(ws.file('reliability.png')),
                     write(ws.file('reliability.png/mine.txt'), 'mine')),
         r'reliability\.png: a folder stands where'),
    Case('result folders', 'a FIFO where dknn_credibility.npz goes', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: (os.remove(ws.file('dknn_credibility.npz')),
                     os.mkfifo(ws.file('dknn_credibility.npz'))),
         r'dknn_credibility\.npz: a special file stands where'),
    Case('result folders', 'a link where dknn_results.json goes', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: (os.remove(ws.file('dknn_results.json')),
                     os.symlink(outside_victim(ws),
                                ws.file('dknn_results.json'))),
         r'dknn_results\.json: a link stands where'),
    Case('disk and concurrency', 'read-only run folder', 'dknn',
         Workspace.model,
         lambda ws: os.chmod(ws.run, 0o555), r'run: the result folder is '
                                             r'read-only'),
    Case('disk and concurrency', 'read-only out folder', 'train',
         Workspace.train,
         lambda ws: os.chmod(ws.out, 0o555), r'out: the --out folder is '
                                             r'read-only'),
    Case('disk and concurrency', 'full disk (dknn)', 'dknn',
         lambda ws: ws.model('--rebuild', '--k', '5'), full_disk,
         r'activations/train\.logits\.npy: no space left'),
    Case('disk and concurrency', 'full disk (interpretations)', 'interp',
         lambda ws: ws.model('--k', '5'), full_disk,
         r'interpretations_dknn\.html: no space left'),
    Case('disk and concurrency', 'full disk (training)', 'train',
         Workspace.train, full_disk,
         r'out/stsa\.binary_cnn/vocab\.json: no space left'),
    Case('disk and concurrency', 'another command holds the lock', 'scaling',
         Workspace.model,
         lambda ws: Workspace.hold.append(safeio.FolderLock(
             ws.file('.lock'), ws.run).__enter__()),
         r'run is being written by another command'),
]
Workspace.hold = []


def snapshot(folder):
    """sha256 of every file under ``folder``, hidden ones included (a
    link by its target, a FIFO by its kind: it is never opened)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in files + [d for d in dirs
                             if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                out[rel] = 'link:' + os.readlink(path)
            elif not os.path.isfile(path):
                out[rel] = 'special:{:o}'.format(os.lstat(path).st_mode)
            else:
                out[rel] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
        out.update({os.path.relpath(os.path.join(root, d), folder) + '/': ''
                    for d in dirs})
    return out


@pytest.fixture(scope='module')
def indexed_run(tiny_run, tmp_path_factory):
    """The tiny run with a DkNN index, credibility file and temperature."""
    setup = copy_run(tiny_run, tmp_path_factory.mktemp('indexed'))
    run_dknn.main(['--model-setup', setup, '--k', '5'])
    write(os.path.join(os.path.dirname(setup), 'temperature.json'),
          json.dumps({'temperature': 1.5}))
    return setup


def outcome(case, indexed_run, folder, capture):
    """Run one case on a fresh workspace under ``folder``.

    Args:
        capture (callable): returns (and clears) what went to stderr.

    Returns:
        dict: ``code`` (exit status or message), ``lines`` (the ``error:``
        lines), ``traceback`` (an exception other than SystemExit, or None)
        and ``changed`` (True if a file of the run, out or data folders
        changed, appeared or vanished).
    """
    ws = Workspace(folder, indexed_run)
    case.setup(ws)
    argv = case.argv(ws)
    before = snapshot(ws.out), snapshot(ws.data)
    capture()
    code, crash = 0, None
    try:
        SCRIPTS[case.script](argv)
    except SystemExit as e:
        code = e.code
    except Exception as e:  # what a user would see as a traceback
        crash = e
    after = snapshot(ws.out), snapshot(ws.data)
    for lock in Workspace.hold:
        lock.__exit__()
    Workspace.hold.clear()
    for path in (ws.run, ws.out):
        if os.path.isdir(path):
            os.chmod(path, 0o755)
    lines = [line for line in capture().splitlines() if 'error:' in line]
    if isinstance(code, str):
        lines.append(code)
    return {'code': code, 'lines': lines, 'traceback': crash,
            'changed': after != before}


def record(case, r):
    """Append the outcome to $DKNN_BATTERY_REPORT, when set (for
    bench/bad_input_report.py, which tabulates it in RESULTS.md)."""
    path = os.environ.get('DKNN_BATTERY_REPORT')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps({
                'kind': case.kind, 'name': case.name, 'script': case.script,
                'lines': r['lines'], 'traceback': repr(r['traceback'])
                if r['traceback'] else None, 'changed': r['changed']}) + '\n')


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_bad_input(case, indexed_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(safeio, 'open', open, raising=False)
    monkeypatch.setattr(safeio, '_fallocate', safeio._fallocate)
    r = outcome(case, indexed_run, str(tmp_path / 'ws'),
                lambda: capsys.readouterr().err)
    record(case, r)
    if r['traceback'] is not None:
        raise r['traceback']
    assert r['code'] not in (0, None)
    assert len(r['lines']) == 1, r['lines']
    line = r['lines'][0]
    assert line.startswith('error:') or ': error: ' in line
    assert re.search(case.names, line), line
    assert not r['changed']
    assert not os.path.exists('/tmp/dknn-battery-pwned')


def test_out_holding_another_run_trains_beside_it(indexed_run, tmp_path,
                                                  capsys):
    """No longer an error: training with other settings leaves the run in
    OUT/DATASET_MODEL as it is and trains into OUT/DATASET_MODEL-2 (said so);
    the same command again finds that run finished and changes nothing."""
    ws = Workspace(str(tmp_path / 'ws'), indexed_run)
    old = os.path.join(ws.out, 'stsa.binary_cnn')
    os.rename(ws.run, old)
    before = snapshot(old)
    capsys.readouterr()
    train_text_classifier.main(ws.train('--unit', '7'))
    printed = capsys.readouterr().out
    new = old + '-2'
    assert '{} holds another run (differs in unit)'.format(old) in printed
    assert new + ': validation accuracy' in printed
    assert snapshot(old) == before
    assert sorted(os.listdir(ws.out)) == ['stsa.binary_cnn',
                                          'stsa.binary_cnn-2']
    assert json.load(open(os.path.join(new, 'args.json')))['unit'] == 7
    record = json.load(open(os.path.join(new, 'train_results.json')))
    assert sorted(record['files']) == ['args.json', 'best_model.npz',
                                       'calib.json', 'log', 'vocab.json']
    for name, sha in record['files'].items():
        assert safeio.file_sha256(os.path.join(new, name)) == sha
    done = snapshot(ws.out)
    train_text_classifier.main(ws.train('--unit', '7'))
    assert '{}: already trained with these settings; pass --force to train ' \
           'again'.format(new) in capsys.readouterr().out
    assert snapshot(ws.out) == done


def test_battery_covers_every_class():
    assert len(CASES) >= 40
    assert {c.script for c in CASES} == set(SCRIPTS)
    assert {c.kind for c in CASES} == {
        'data files', 'word vectors', 'flags', 'result folders',
        'untrusted files', 'disk and concurrency'}


@pytest.mark.parametrize('script,argv', [
    ('run_dknn.py', ['--model-setup', 'nowhere/args.json']),
    ('train_text_classifier.py', ['--epoch', '0']),
])
def test_the_terminal_shows_one_line(script, argv, tmp_path):
    """What a user sees: one ``error:`` line on stderr, no traceback."""
    proc = subprocess.run([sys.executable, os.path.join(ROOT, script)] +
                          argv, cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert [line for line in proc.stderr.splitlines()
            if 'error:' in line] == [proc.stderr.strip().splitlines()[-1]]
    assert os.listdir(str(tmp_path)) == []

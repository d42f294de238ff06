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
import importlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import time
from collections import namedtuple

import numpy
import pytest

import interpretations
import run_dknn
from toolkit import fileio
import scaling
import train_text_classifier
from conftest import ROOT, TINY_TRAIN, copy_run, write_tiny_sst

SCRIPTS = {'train': train_text_classifier.main, 'dknn': run_dknn.main,
           'scaling': scaling.main, 'interp': interpretations.main}
sys.path.insert(0, os.path.join(ROOT, 'bench'))


def script_main(name):
    """The ``main`` of a script: ``dknn`` ..., or ``bench:NAME`` for
    ``bench/NAME.py``, whose sections are never written by a case."""
    if not name.startswith('bench:'):
        return SCRIPTS[name]
    module = importlib.import_module(name[len('bench:'):])
    if hasattr(module, 'write_section'):
        module.write_section = refuse_to_write
    return module.main


def refuse_to_write(*args, **kwargs):
    raise AssertionError('a failing bench case wrote a section')

Case = namedtuple('Case', 'kind name script argv setup names')
MAX_SECONDS = 20   # a case that takes longer hangs somewhere
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

    def setenv(self, name, value):
        """Set (None: unset) an environment variable for this case only.
        """
        Workspace.env.append((name, os.environ.get(name)))
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


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


def flag(script, *argv, names=None, kind='flags'):
    """A case of a bad flag value; the error must name the flag."""
    def make(ws):
        return ws.train(*argv) if script == 'train' else ws.model(*argv)
    return Case(kind, '{} {}'.format(script, ' '.join(argv))[:80], script,
                make, nothing, names or re.escape(argv[0]))


def full_disk(ws):
    """Every file written through fileio fails with ENOSPC: the files of
    :func:`fileio.save_atomic` (it opens them with the ``open`` of fileio's
    namespace, replaced here) and the forward-pass cache, whose memory-
    mapped arrays get their space from ``fileio._fallocate``."""
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
    fileio.open = Full

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    fileio._fallocate = no_space


# ------------------------------------------------ hostile files (issue 20)

def fifo(path):
    """A named pipe where a file was: opening it to read would block."""
    if os.path.lexists(path):
        os.remove(path)
    os.mkfifo(path)


def device_link(path):
    """A link to /dev/zero where a file was: an endless read."""
    if os.path.lexists(path):
        os.remove(path)
    os.symlink('/dev/zero', path)


def twice(path, key):
    """The JSON object of ``path`` with ``key`` written a second time."""
    text = open(path).read().strip()
    obj = json.loads(text)
    write(path, '{' + json.dumps(key) + ': ' + json.dumps(obj[key]) + ', ' +
          text[1:])


def deep(path, depth=100000):
    write(path, '[' * depth + ']' * depth)


def rewrite_json(path, change):
    """Apply ``change(obj)`` to the JSON of ``path`` and write it back."""
    obj = json.load(open(path))
    change(obj)
    write(path, json.dumps(obj))


def drop_args(*keys):
    return lambda ws: rewrite_json(ws.args, lambda o: [o.pop(k) for k in
                                                       keys])


def model_arrays(ws, change):
    """Rewrite best_model.npz with ``change(arrays)`` applied."""
    path = ws.file('best_model.npz')
    with numpy.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    numpy.savez(path, **arrays)


def poison(value):
    def change(arrays):
        arrays['encoder/embed/W'][0, 0] = value
    return change


def npy_bomb(ws):
    """The embedding member's header promises 2**31 floats (8 GB) in a
    file of a few kB: refused before anything is inflated."""
    import io
    import zipfile
    path = ws.file('best_model.npz')
    with numpy.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = io.BytesIO()
    numpy.lib.format.write_array_header_1_0(header, {
        'descr': '<f4', 'fortran_order': False, 'shape': (2 ** 31,)})
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for name, a in arrays.items():
            buf = io.BytesIO()
            numpy.save(buf, a)
            z.writestr(name + '.npy', header.getvalue() + b'\0' * 1024
                       if name == 'encoder/embed/W' else buf.getvalue())


def add_member(path, name):
    """Append a member ``name`` to a zip archive, even a second one."""
    import warnings
    import zipfile
    with warnings.catch_warnings(), zipfile.ZipFile(path, 'a') as z:
        warnings.simplefilter('ignore')
        z.writestr(name, 'x')


def vocab_swap(ws):
    """vocab.json with two words' ids swapped: same shape, other model."""
    def change(v):
        a, b = [w for w in v if v[w] > 1][:2]
        v[a], v[b] = v[b], v[a]
    rewrite_json(ws.file('vocab.json'), change)


def long_line(ws, split='train', n=600):
    data_file(ws, split, '1 ' + ' '.join(['good'] * n) + '\n', 'a')


def held(lock):
    """A lock, taken (the case's command finds the folder held)."""
    lock.__enter__()
    return lock


def unfinished_run_with(entry_maker):
    """A run folder with these settings, unfinished (no train_results),
    holding something the tool did not write: training must not remove
    it."""
    def setup(ws):
        folder = os.path.join(ws.out, 'stsa.binary_cnn')
        os.rename(ws.run, folder)
        os.remove(os.path.join(folder, 'best_model.npz'))
        os.remove(os.path.join(folder, 'train_results.json'))
        entry_maker(folder)
    return setup


def trained_args(ws):
    """The tiny run's args.json as training --out OUT writes it (so the
    folder holds this run, unfinished)."""
    return ws.train()


def sized(*argv, **kw):
    return flag(*argv, kind='sizes', **kw)


def bounded(*argv, **kw):
    return flag(*argv, kind='bounded work', **kw)


def repeated(*argv, **kw):
    return flag(*argv, kind='repeats and mismatches', **kw)


def bench(name, argv, setup, names, kind='bench scripts'):
    return Case(kind, 'bench {}: {}'.format(name, setup.__name__ if
                                            hasattr(setup, '__name__') and
                                            setup.__name__ != '<lambda>'
                                            else ' '.join(argv)[:40]),
                'bench:' + name, lambda ws: [a.format(ws=ws) for a in argv],
                setup, names)


def truncated(path_of):
    return lambda ws: truncate(path_of(ws), 20)


def user_csv(ws, name, rows):
    path = os.path.join(ws.data, name)
    write(path, 'text,label\n' + ''.join('{},{}\n'.format(t, y)
                                         for t, y in rows))
    return path


def env(name, value):
    return lambda ws: ws.setenv(name, value)


ONE_READER = [
    Case('one reader', 'args.json is a FIFO', 'dknn', Workspace.model,
         lambda ws: fifo(ws.args), r'args\.json: is a named pipe'),
    Case('one reader', 'vocab.json is a FIFO', 'interp', Workspace.model,
         lambda ws: fifo(ws.file('vocab.json')), r'vocab\.json: is a named'),
    Case('one reader', 'calib.json is a FIFO', 'scaling', Workspace.model,
         lambda ws: fifo(ws.file('calib.json')), r'calib\.json: is a named'),
    Case('one reader', 'temperature.json is a FIFO', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: fifo(ws.file('temperature.json')),
         r'temperature\.json: is a named pipe'),
    Case('one reader', 'best_model.npz is a FIFO', 'dknn', Workspace.model,
         lambda ws: fifo(ws.file('best_model.npz')),
         r'best_model\.npz: is a named pipe'),
    Case('one reader', 'cache stamp is a FIFO', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: fifo(ws.cache('train.json')),
         r'activations/train\.json: is a named pipe'),
    Case('one reader', 'cached array is a FIFO', 'scaling',
         lambda ws: ws.model('--k', '5'),
         lambda ws: fifo(ws.cache('test.logits.npy')),
         r'activations/test\.logits\.npy: is a named pipe'),
    Case('one reader', 'data file is a FIFO', 'dknn',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: fifo(os.path.join(ws.data, 'stsa.binary.test')),
         r'stsa\.binary\.test: is a named pipe'),
    Case('one reader', 'data file links to /dev/zero', 'train',
         Workspace.train,
         lambda ws: device_link(os.path.join(ws.data, 'stsa.binary.train')),
         r'stsa\.binary\.train: is a character device'),
    Case('one reader', 'word vectors a FIFO', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root, 'v')),
         lambda ws: fifo(os.path.join(ws.root, 'v')),
         r'/v: is a named pipe'),
    Case('one reader', 'word vectors link to /dev/zero', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root, 'v')),
         lambda ws: device_link(os.path.join(ws.root, 'v')),
         r'/v: is a character device'),
    Case('one reader', 'args.json repeats a key', 'dknn', Workspace.model,
         lambda ws: twice(ws.args, 'unit'),
         r'args\.json: a key appears twice in one object'),
    Case('one reader', 'vocab.json repeats a word', 'interp',
         Workspace.model, lambda ws: twice(ws.file('vocab.json'), 'good'),
         r'vocab\.json: a key appears twice in one object'),
    Case('one reader', 'temperature.json repeats a key', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: write(ws.file('temperature.json'),
                          '{"temperature": 1.5, "temperature": 1e-9}'),
         r'temperature\.json: a key appears twice in one object'),
    Case('one reader', 'cache stamp repeats a key', 'scaling',
         lambda ws: ws.model('--k', '5'),
         lambda ws: twice(ws.cache('calib.json'), 'n'),
         r'calib\.json: a key appears twice in one object'),
    Case('one reader', 'args.json nested 100000 deep', 'dknn',
         Workspace.model, lambda ws: deep(ws.args),
         r'args\.json: JSON nested too deeply'),
    Case('one reader', 'vocab.json nested 100000 deep', 'interp',
         Workspace.model, lambda ws: deep(ws.file('vocab.json')),
         r'vocab\.json: JSON nested too deeply'),
    Case('one reader', 'calib.json nested 40 deep', 'scaling',
         Workspace.model, lambda ws: deep(ws.file('calib.json'), 40),
         r'calib\.json: expected sorted distinct indices'),
    Case('one reader', 'args.json over DKNN_MAX_JSON_BYTES', 'dknn',
         Workspace.model, env('DKNN_MAX_JSON_BYTES', '100'),
         r'args\.json: larger than the 100-byte cap on a JSON file; .*set '
         r'DKNN_MAX_JSON_BYTES'),
    Case('one reader', 'model over DKNN_MAX_MODEL_BYTES', 'scaling',
         Workspace.model, env('DKNN_MAX_MODEL_BYTES', '1000'),
         r'DKNN_MAX_MODEL_BYTES'),
    Case('one reader', 'vectors over DKNN_MAX_VECTORS_BYTES', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: (vectors(ws, 'good 1 2\n' * 50),
                     ws.setenv('DKNN_MAX_VECTORS_BYTES', '64')),
         r'vec\.txt: larger than the 64-byte cap on a word-vector file'),
    Case('one reader', 'gz vectors inflate past the cap', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'v.txt.gz')),
         lambda ws: (vectors(ws, 'good 1 2\n' * 5000, 'v.txt.gz', gz=True),
                     ws.setenv('DKNN_MAX_VECTORS_BYTES', '4000')),
         r'v\.txt\.gz \(inflated\): larger than the 4000-byte cap'),
    Case('one reader', 'data file over DKNN_MAX_DATA_BYTES', 'train',
         Workspace.train, env('DKNN_MAX_DATA_BYTES', '50'),
         r'stsa\.binary\.\w+: larger than the 50-byte cap on a data file'),
    Case('one reader', 'a cap that is not a number', 'dknn',
         Workspace.model, env('DKNN_MAX_JSON_BYTES', 'lots'),
         r'DKNN_MAX_JSON_BYTES is not a number of bytes'),
    Case('one reader', '--model-setup with an escape character', 'dknn',
         lambda ws: ['--model-setup', ws.args + '\x1b[2J'], nothing,
         r'a path may not hold control characters'),
    Case('one reader', '--word_vectors with a NUL', 'train',
         lambda ws: ws.train('--word_vectors', 'v\x00.txt'), nothing,
         r'a path may not hold control characters'),
    Case('one reader', 'args.json not UTF-8', 'scaling', Workspace.model,
         lambda ws: write(ws.args, b'{"a": "\xff"}', 'wb'),
         r'args\.json: not valid UTF-8'),
    Case('one reader', 'model archive repeats a member', 'dknn',
         Workspace.model,
         lambda ws: add_member(ws.file('best_model.npz'), 'output/b.npy'),
         r'best_model\.npz does not hold the model.*repeated'),
]

SIZES = [
    Case('sizes', 'args.json unit of 10**9', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(unit=10 ** 9),
         r'args\.json: "unit" must be an integer in \[1, 16384\]'),
    Case('sizes', 'args.json n_vocab of 10**12', 'interp', Workspace.model,
         lambda ws: ws.edit_args(n_vocab=10 ** 12), r'"n_vocab" must be'),
    Case('sizes', 'args.json n_embed of 10**6', 'scaling', Workspace.model,
         lambda ws: ws.edit_args(n_embed=10 ** 6), r'"n_embed" must be'),
    Case('sizes', 'args.json 100 layers', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(layer=100), r'"layer" must be an integer '
                                             r'in \[0, 16\]'),
    Case('sizes', 'args.json n_class of 10**6', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(n_class=10 ** 6), r'"n_class" must be'),
    Case('sizes', 'args.json 100 widths', 'interp', Workspace.model,
         lambda ws: ws.edit_args(widths=[3] * 100),
         r'"widths" must be a list of 1 to 16 integers'),
    Case('sizes', 'args.json n_calib of 10**12', 'scaling', Workspace.model,
         lambda ws: ws.edit_args(n_calib=10 ** 12), r'"n_calib" must be'),
    Case('sizes', 'args.json max_tokens of 10**9', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(max_tokens=10 ** 9),
         r'"max_tokens" must be'),
    Case('sizes', 'args.json batchsize of 10**12', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(batchsize=10 ** 12),
         r'"batchsize" must be'),
    Case('sizes', 'sizes that make a 10 TB model', 'dknn', Workspace.model,
         lambda ws: ws.edit_args(unit=16384, layer=16, n_embed=4096,
                                 n_vocab=2 ** 22),
         r'make a model of \d+ bytes, more than the \d+-byte cap on a '
         r'model; set DKNN_MAX_MODEL_BYTES'),
    Case('sizes', 'model member promising 8 GB', 'scaling', Workspace.model,
         npy_bomb, r'array encoder/embed/W is float32 \(2147483648,\), where \(12, 9\)'),
    Case('sizes', 'model member of another shape', 'interp',
         Workspace.model,
         lambda ws: model_arrays(ws, lambda a: a.update(
             {'output/W': numpy.zeros((2, 90), 'f')})),
         r'array output/W is float32 \(2, 90\), where \(2, 9\)'),
    Case('sizes', 'cached array header promising 10**12 rows', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: write(ws.cache('train.logits.npy'),
                          open(ws.cache('train.logits.npy'), 'rb').read()
                          .replace(b"'shape': (50, 2)",
                                   b"'shape': (10**12, 2)"), 'wb'),
         r'activations/train\.logits\.npy: (unexpected|unreadable)'),
    sized('dknn', '--ef-search', str(2 ** 31), names='--ef-search'),
    sized('dknn', '--nlist', str(2 ** 21), names='--nlist'),
    sized('dknn', '--batchsize', str(2 ** 17), names='--batchsize'),
    sized('scaling', '--batchsize', str(2 ** 40), names='--batchsize'),
    sized('train', '--unit', str(10 ** 6)),
    sized('train', '--layer', '17'),
    sized('train', '--embed', str(10 ** 5)),
    sized('train', '--max-vocab', str(10 ** 8)),
    sized('train', '--batchsize', str(10 ** 6)),
    sized('train', '--widths', *['3'] * 17, names='--widths must be a list of 1 to 16'),
]

BOUNDED = [
    Case('bounded work', 'a 600-token line', 'train', Workspace.train,
         lambda ws: long_line(ws),
         r'stsa\.binary\.train:61: 600 tokens, more than the limit of 512'),
    Case('bounded work', 'a 600-token test line', 'dknn',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: long_line(ws, 'test'),
         r'stsa\.binary\.test:17: 600 tokens, more than the limit'),
    bounded('train', '--max-tokens', '3', names='tokens, more than the limit '
                                              'of 3'),
    bounded('train', '--max-tokens', '0'),
    Case('bounded work', 'DKNN_MAX_TOKENS not a number', 'train',
         Workspace.train, env('DKNN_MAX_TOKENS', 'many'),
         r"DKNN_MAX_TOKENS='many' is not a number of tokens"),
    bounded('interp', '--reduce', '--beam', '1000', names='--beam'),
    bounded('interp', '--neighbours', '5000', names='--neighbours'),
]

DATA_LOCATION = [
    Case('data location', 'no data folder named by the user', 'dknn',
         Workspace.model, env('DKNN_DATA_DIR', None),
         r'stsa\.binary\.train not found locally'),
    Case('data location', 'args.json points at planted data', 'scaling',
         Workspace.model,
         lambda ws: (ws.setenv('DKNN_DATA_DIR', None),
                     ws.edit_args(data_dir=ws.data), relabel(ws, 'train')),
         r'stsa\.binary\.train not found locally'),
    Case('data location', 'args.json names a stranger\'s own data', 'dknn',
         Workspace.model,
         lambda ws: (ws.setenv('DKNN_DATA_DIR', None), ws.edit_args(
             dataset=user_csv(ws, 'victim.csv', [('x', 'negative'),
                                                 ('y', 'positive')]))),
         r'say where its data \(victim\.csv\) is with --data-dir'),
    Case('data location', 'own data looked up where the user says', 'interp',
         Workspace.model,
         lambda ws: ws.edit_args(dataset=user_csv(
             ws, 'victim.csv', [('x', 'negative'), ('y', 'positive')])),
         r'say where its data \(victim\.csv\) is with --data-dir'),
    Case('data location', 'data_dir with a line break', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(data_dir='/a\nb'),
         r'"data_dir" must be null or a name or path without control'),
    Case('data location', 'dataset path with an escape', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(dataset='/x\x1b.csv'),
         r'"dataset" must be'),
]

STAMPS = [
    Case('stamps', 'no data stamp', 'dknn', Workspace.model,
         drop_args('data_sha256'),
         r'args\.json: not the args\.json of a finished training run \(missing data_sha256\)'),
    Case('stamps', 'no vocabulary stamp', 'interp', Workspace.model,
         drop_args('vocab_sha256'), r'missing vocab_sha256'),
    Case('stamps', 'a data stamp for one split only', 'scaling',
         Workspace.model,
         lambda ws: ws.edit_args(data_sha256={'train': 'a' * 64}),
         r'"data_sha256" must be a map from train, val, calib and test'),
    Case('stamps', 'a data stamp that is not a sha256', 'dknn',
         Workspace.model,
         lambda ws: ws.edit_args(data_sha256=dict.fromkeys(
             ('train', 'val', 'calib', 'test'), 'x')),
         r'"data_sha256" must be a map from train, val, calib and test'),
    Case('stamps', 'a vocabulary stamp that is not a sha256', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(vocab_sha256=7),
         r'"vocab_sha256" must be a sha256'),
    Case('stamps', 'vocabulary changed since training', 'dknn',
         Workspace.model, vocab_swap,
         r'vocab\.json: the vocabulary changed since training'),
    Case('stamps', 'dev file changed since training', 'interp',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: relabel(ws, 'dev'),
         r'stsa\.binary\.dev changed since training: its val examples'),
]

OUTPUTS = [
    Case('outputs', 'a folder where training writes best_model.npz',
         'train', trained_args, unfinished_run_with(
             lambda f: os.mkdir(os.path.join(f, 'best_model.npz'))),
         r'best_model\.npz: a folder, which this tool does not write'),
    Case('outputs', '--force over a stranger\'s file', 'train',
         lambda ws: ws.train('--force'), unfinished_run_with(
             lambda f: write(os.path.join(f, 'notes.txt'), 'mine')),
         r'notes\.txt: a file, which this tool does not write'),
    Case('outputs', '--force over a link named log', 'train',
         lambda ws: ws.train('--force'), unfinished_run_with(
             lambda f: os.symlink('/etc/hostname', os.path.join(f, 'log'))),
         r'/log: a link, which this tool does not write'),
    Case('outputs', '--force over a stranger\'s file in the cache',
         'train', lambda ws: ws.train('--force'), unfinished_run_with(
             lambda f: write(os.path.join(f, 'activations', 'mine.txt'),
                             'mine')),
         r'activations: holds a file that is not of the forward-pass cache'),
    Case('outputs', 'a FIFO where training writes log', 'train',
         trained_args, unfinished_run_with(
             lambda f: fifo(os.path.join(f, 'log'))),
         r'/log: a named pipe \(FIFO\), which this tool does not write'),
    Case('outputs', 'a folder where the page goes', 'interp',
         lambda ws: ws.model('--k', '5'),
         lambda ws: os.mkdir(ws.file('interpretations_dknn.html')),
         r'interpretations_dknn\.html: a folder stands where'),
    Case('outputs', 'a FIFO where temperature.json goes', 'scaling',
         lambda ws: ws.model('--k', '5'),
         lambda ws: fifo(ws.file('temperature.json')),
         r'temperature\.json: a named pipe \(FIFO\) stands where'),
    Case('outputs', 'a link where reduction.json goes', 'interp',
         lambda ws: ws.model('--k', '5', '--reduce', '--first', '2'),
         lambda ws: os.symlink(outside_victim(ws),
                               ws.file('reduction.json')),
         r'reduction\.json: a link stands where'),
    Case('outputs', 'a folder where a cached array goes', 'dknn',
         lambda ws: ws.model('--k', '5', '--rebuild'),
         lambda ws: (os.remove(ws.cache('train.logits.npy')),
                     os.mkdir(ws.cache('train.logits.npy'))),
         r'train\.logits\.npy: a folder stands where'),
]

NUMBERS = [
    Case('numbers', 'a nan weight', 'dknn', Workspace.model,
         lambda ws: model_arrays(ws, poison(numpy.nan)),
         r'best_model\.npz: array encoder/embed/W holds nan or inf'),
    Case('numbers', 'an inf weight', 'scaling', Workspace.model,
         lambda ws: model_arrays(ws, poison(numpy.inf)),
         r'best_model\.npz: array encoder/embed/W holds nan or inf'),
    Case('numbers', 'a word vector of absurd norm', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good 1 2\nbad 1e30 3\n'),
         r'vec\.txt:2: the vector has norm 1e\+30'),
    Case('numbers', 'a short first line of vectors', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good 1\nbad 1 2 3\nfun 1 2 3\n'),
         r'vec\.txt:1: expected 3 values after the word \(as on line 2\)'),
    Case('numbers', 'a header of 99999 dimensions', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, '1 99999\ngood 1 2\n'),
         r'vec\.txt:1: 99999 values a word'),
    Case('numbers', 'a temperature of NaN', 'interp',
         lambda ws: ws.model('--interp_method', 'calibrated'),
         lambda ws: write(ws.file('temperature.json'),
                          '{"temperature": NaN}'),
         r'temperature\.json: "temperature" must be a number in'),
    Case('numbers', 'a dropout of NaN', 'dknn', Workspace.model,
         lambda ws: write(ws.args, open(ws.args).read().replace(
             '"dropout": 0.4', '"dropout": NaN')),
         r'args\.json: "dropout" must be a number in \[0, 1\)'),
]

REPEATS = [
    repeated('dknn', '--layers', 'mlp1,mlp1',
         names='layer mlp1 is named twice; name each layer once: --layers '
               'mlp1'),
    repeated('interp', '--layers', 'cnn,mlp1,cnn',
         names='layer cnn is named twice; .*--layers cnn,mlp1'),
    repeated('interp', '--interp_method', 'dknn,dknn', names='names a method '
                                                         'twice'),
    repeated('dknn', '--ood', 'TREC,TREC', names='a data set is named twice'),
    repeated('scaling', '--pool', 'total', '--layers', 'all', '--k', '1',
         names='pool "total" shares k=1 neighbours over 2 layers'),
]

BENCH = [
    bench('compare_runs', ['{ws.root}/nowhere', '{ws.run}'], nothing,
          r'nowhere: no such folder'),
    bench('compare_runs', ['{ws.run}', '{ws.root}/gone'], nothing,
          r'gone: no such folder'),
    bench('compare_runs', ['{ws.run}', '{ws.run}'],
          truncated(lambda ws: ws.file('dknn_results.json')),
          r'dknn_results\.json: not valid JSON'),
    bench('compare_runs', ['{ws.data}', '{ws.run}'], nothing,
          r'holds no JSON output to compare'),
    bench('bench_dknn', ['--model-setup', '{ws.args}', '--k', '0'],
          nothing, r'--k'),
    bench('bench_dknn', ['--model-setup', '{ws.root}/none/args.json'],
          nothing, r'none/args\.json: no such file'),
    bench('sst2_dknn', ['--model-setup', '{ws.args}'],
          lambda ws: write(ws.file('best_model.npz'),
                           pickle.dumps(Payload()), 'wb'),
          r'best_model\.npz: not a valid \.npz'),
    bench('sst2_dknn', ['--model-setup', '{ws.args}'],
          lambda ws: write(ws.file('train_results.json'), '{"val_acc'),
          r'train_results\.json: not valid JSON'),
    bench('dknn_sweep', ['--runs', '{ws.root}/gone'], nothing,
          r'gone/args\.json: no such file'),
    bench('float16', ['--model-setup', '{ws.args}'],
          lambda ws: fifo(ws.args), r'args\.json: is a named pipe'),
    bench('bench_interpretations', ['--model-setup', '{ws.args}',
                                    '--reference-sentences', '-1'],
          nothing, r'--reference-sentences'),
    bench('saturation', ['--model-setup', '{ws.args}'],
          lambda ws: model_arrays(ws, poison(numpy.nan)),
          r'best_model\.npz: array .* holds nan or inf'),
    bench('char_report', ['--model-setup', '{ws.root}/no/args.json'],
          nothing, r'no/args\.json: no such file'),
    bench('reduction_report', ['--runs', '{ws.run}', '--from-saved'],
          lambda ws: write(ws.file('reduction.json'), '{"examples": ['),
          r'reduction\.json: not valid JSON'),
    bench('uncertainty_report', ['--limit', '-1'], nothing, r'--limit'),
    bench('grid', ['--k', '0'], nothing, r'--k'),
    bench('imdb_scale', ['--reviews', '0'], nothing, r'--reviews'),
    bench('bench_scale', ['--queries', '0'], nothing, r'--queries'),
    bench('seeds', ['--seeds', '-1'], nothing, r'--seeds'),
    bench('bench_search', ['--repeats', '0'], nothing, r'--repeats'),
    bench('bench_search', ['--sizes', '10x', '--no-write'], nothing,
          r'--sizes 10x: expected POINTSxDIMS'),
    bench('check_docs', ['--docs', '{ws.root}/nosuch.md'], nothing,
          r'nosuch\.md: no such page'),
    bench('robustness_lines', ['--tree', '{ws.root}/gone'], nothing,
          r'gone is not a folder'),
    bench('snli_report', ['--epoch', '0'], nothing, r'--epoch'),
    # issue 27: every bench script under the wrapper, names checked,
    # repeated seeds refused, results read through the one reader
    bench('label_noise', ['--datasets', 'nosuch', '--out', '{ws.root}/ln'],
          nothing, r'--datasets: unknown nosuch'),
    bench('label_noise', ['--clean-seeds', '0', '0'], nothing,
          r'--clean-seeds names a value twice'),
    bench('overconfidence', ['--seeds', '0', '0', '--out', '{ws.root}/oc'],
          nothing, r'--seeds names a value twice'),
    bench('overconfidence', ['--data-dir', '{ws.root}/nowhere', '--out',
                             '{ws.root}/oc'], nothing,
          r'--data-dir: .*nowhere is not a folder'),
    bench('graded', ['--seeds', '1', '1', '--out', '{ws.root}/g'], nothing,
          r'--seeds names a seed twice'),
    bench('graded', ['--cells', 'nosuch:cnn:a', '--out', '{ws.root}/g'],
          nothing, r'--cells nosuch:cnn:a: unknown'),
    bench('neighbour_tests', ['--seeds', '0', '0', '--out', '{ws.root}/n'],
          nothing, r'--seeds names a seed twice'),
    bench('graded', ['--report', '--out', '{ws.root}/g'],
          lambda ws: (os.makedirs(os.path.join(ws.root, 'g', 'cells')),
                      fifo(os.path.join(ws.root, 'g', 'cells',
                                        'stsa.binary_cnn_a_s0.json'))),
          r'stsa\.binary_cnn_a_s0\.json: is a named pipe'),
]

SECRET = 'SeCrEt-2f9a'


def secret_free(case):
    """The case, also asserting that no message shows what a file holds."""
    return case._replace(names=r'^(?!.*{}).*'.format(SECRET) + case.names)


# issue 27: a stranger's folder names no path; no message shows what a file
# holds; data is printed escaped; training refuses what loading refuses;
# work is bounded by what a command does; a failed command changes nothing
STRANGER = [
    Case('stranger paths', 'dataset .. in args.json', 'dknn',
         lambda ws: ws.model('--data-dir', ws.data),
         lambda ws: ws.edit_args(dataset='..'),
         r'"dataset" must be a built-in data set or the absolute path'),
    Case('stranger paths', 'dataset a folder path without stamps', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(dataset='/etc'),
         r'say where its data \(etc\) is with --data-dir'),
    Case('stranger paths', 'recorded data a link to a system file', 'scaling',
         Workspace.model, lambda ws: (
             os.symlink('/etc/passwd', os.path.join(ws.root, 'r.csv')),
             ws.edit_args(dataset=os.path.join(ws.root, 'r.csv'),
                          data_files={'r.csv': '0' * 64})),
         r'r\.csv: is not the file the run was trained on'),
    Case('stranger paths', 'recorded data a FIFO', 'interp',
         Workspace.model, lambda ws: (
             fifo(os.path.join(ws.root, 'r.csv')),
             ws.edit_args(dataset=os.path.join(ws.root, 'r.csv'),
                          data_files={'r.csv': '0' * 64})),
         r'r\.csv: is a named pipe'),
]
SILENT = [secret_free(c) for c in [
    Case('no content shown', 'a malformed row (strict)', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data, 's.csv'),
                             '--strict', '--n-calib', '4'),
         lambda ws: user_csv(ws, 's.csv', [('good', 'a'), ('bad', 'b')] * 9 +
                             [('"' + SECRET, 'a')]),
         r's\.csv:\d+: '),
    Case('no content shown', 'a label that is not in train', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data, 'f'),
                             '--strict', '--n-calib', '4'),
         lambda ws: (os.mkdir(os.path.join(ws.data, 'f')),
                     user_csv(ws, 'f/train.csv', [('good', 'a'),
                                                  ('bad', 'b')] * 9),
                     user_csv(ws, 'f/test.csv', [('good', SECRET)])),
         r'test\.csv:2: a label the training file lacks'),
    Case('no content shown', 'a vectors line that is not numbers', 'train',
         lambda ws: ws.train('--word_vectors', os.path.join(ws.root,
                                                            'vec.txt')),
         lambda ws: vectors(ws, 'good 1 2\nbad {} 2\n'.format(SECRET)),
         r'vec\.txt:2: a value is not a number'),
    Case('no content shown', 'a built-in line that is not LABEL text',
         'train', Workspace.train,
         lambda ws: data_file(ws, 'train', SECRET + '\n', 'a'),
         r'stsa\.binary\.train:61: expected "LABEL text"'),
]]
PRINTABLE = [
    Case('printable output', 'labels holding escapes and line breaks',
         'train', lambda ws: ws.train('--dataset', os.path.join(
             ws.data, 'esc.jsonl'), '--n-calib', '2'),
         lambda ws: write(os.path.join(ws.data, 'esc.jsonl'), ''.join(
             json.dumps({'text': 'good film', 'label': y}) + '\n'
             for y in ['\x1b[2J', 'a\nerror: forged'] * 10)),
         r'^error: .*esc\.jsonl: 20 of its 20 rows cannot be used \(line 1: '
         r'a label holding a control character'),
    Case('printable output', 'a dataset path holding an escape', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data,
                                                       'x\x1b[2J.csv')),
         nothing, r'--dataset/-data: a path may not hold control'),
]
LIMITS = [
    Case('same limits', 'more classes than a run may hold', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data, 'many.csv'),
                             '--n-calib', '2'),
         lambda ws: user_csv(ws, 'many.csv', [('word', str(i))
                                              for i in range(16385)]),
         r'many\.csv: 16385 classes, more than the 16384 a run may hold'),
    Case('same limits', 'a 1,001-character label (strict)', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data, 'l.csv'),
                             '--strict', '--n-calib', '2'),
         lambda ws: user_csv(ws, 'l.csv', [('good', 'a'), ('bad', 'b')] * 9 +
                             [('fine', 'x' * 1001)]),
         r'l\.csv:20: a label longer than 1000 characters'),
    Case('same limits', 'a label with a lone surrogate (strict)', 'train',
         lambda ws: ws.train('--dataset', os.path.join(ws.data, 'u.jsonl'),
                             '--strict', '--n-calib', '2'),
         lambda ws: write(os.path.join(ws.data, 'u.jsonl'), ''.join(
             '{"text": "good", "label": "%s"}\n' % y
             for y in ['a', 'b'] * 9 + ['\\ud800'])),
         r'u\.jsonl:19: a label holding a control character or invalid'),
    Case('same limits', 'args.json label of 1,001 characters', 'dknn',
         Workspace.model, lambda ws: ws.edit_args(
             label_names=['x' * 1001, 'positive']),
         r'"label_names" must be a list of distinct names of 1 to 1000'),
]
BOUNDED_WORK = [
    Case('bounded work', 'leave-one-out over the stated limit', 'interp',
         lambda ws: ws.model('--k', '5', '--max-explain-tokens', '2'),
         nothing, r'tokens is longer than the 2 leave-one-out and input '
                  r'reduction take'),
    Case('bounded work', 'reduction over the stated limit', 'interp',
         lambda ws: ws.model('--k', '5', '--reduce', '--max-explain-tokens',
                             '2'), nothing, r'longer than the 2'),
]
UNCHANGED = [
    Case('failed command changes nothing', 'audit: a folder at its JSON',
         'dknn', lambda ws: ws.model('--k', '5', '--audit-train'),
         lambda ws: os.mkdir(ws.file('train_audit.json')),
         r'train_audit\.json: a folder stands where'),
    Case('failed command changes nothing', 'audit: a link at its page',
         'dknn', lambda ws: ws.model('--k', '5', '--audit-train'),
         lambda ws: os.symlink(outside_victim(ws),
                               ws.file('train_audit.html')),
         r'train_audit\.html: a link stands where'),
    Case('failed command changes nothing', 'an empty --out', 'train',
         lambda ws: ws.train()[:-1] + [''], nothing,
         r'--out/-o: expected a name or path'),
    Case('failed command changes nothing', 'an empty --model-setup', 'dknn',
         lambda ws: ['--model-setup', ''], nothing,
         r'--model-setup: expected a path, got an empty one'),
]

TRUST_CASES = ONE_READER + SIZES + BOUNDED + DATA_LOCATION + STAMPS + \
    OUTPUTS + NUMBERS + REPEATS + BENCH + STRANGER + SILENT + PRINTABLE + \
    LIMITS + BOUNDED_WORK + UNCHANGED


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
         nothing, r'--data-dir: a path may not hold control characters'),
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
    flag('train', '--dataset', 'sst9', names=r'unknown --dataset'),
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
    flag('interp', '--neighbours', '20', '--k', '5', '--neighbour-metric',
         'l2', names='--neighbours 20 is more than the --k 5'),
    flag('dknn', '--backend', 'faiss-ivfpq', '--nlist', '4', '--k', '5',
         names='--nprobe 16 must be between 1 and --nlist 4'),
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
         r'args\.json: not the args\.json of a finished training run'),
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
         r'best_model\.npz does not hold the model'),
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
         r'activations/train\.layer\.mlp1\.npy: not the array its stamp'),
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
         r'best_model\.npz does not hold the model.*an extra'),
    Case('result folders', 'cached layer of another width', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('train.layer.mlp1.npy'),
                               numpy.zeros((50, 11), 'f')),
         r'activations/train\.layer\.mlp1\.npy: not the array its stamp'),
    Case('result folders', 'cached labels not the data\'s', 'interp',
         lambda ws: ws.model('--k', '5'),
         lambda ws: numpy.save(ws.cache('train.labels.npy'), 1 - numpy.load(
             ws.cache('train.labels.npy'))),
         r'activations/train\.labels\.npy: not the (labels|array its '
         r'stamp records)'),
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
         r'temperature\.json is a link leading outside the run folder'),
    Case('untrusted files', 'activations folder a link outside', 'dknn',
         lambda ws: ws.model('--k', '5'),
         lambda ws: (shutil.move(ws.cache(''), os.path.join(ws.data, 'c')),
                     os.symlink(os.path.join(ws.data, 'c'),
                                ws.file('activations'))),
         r'activations is a link leading outside the run folder'),
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
         r'dknn_credibility\.npz: a named pipe \(FIFO\) stands where'),
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
         lambda ws: Workspace.hold.append(held(fileio.folder_lock(ws.run))),
         r'run is being written by another command'),
] + TRUST_CASES
Workspace.hold = []
Workspace.env = []


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
    code, crash, start = 0, None, time.time()
    try:
        script_main(case.script)(argv)
    except SystemExit as e:
        code = e.code
    except Exception as e:  # what a user would see as a traceback
        crash = e
    finally:
        seconds = time.time() - start
        for name, value in reversed(Workspace.env):
            os.environ.pop(name, None)
            if value is not None:
                os.environ[name] = value
        Workspace.env.clear()
    after = snapshot(ws.out), snapshot(ws.data)
    for lock in Workspace.hold:
        lock.__exit__(None, None, None)
    Workspace.hold.clear()
    for path in (ws.run, ws.out):
        if os.path.isdir(path):
            os.chmod(path, 0o755)
    lines = [line for line in capture().splitlines() if 'error:' in line]
    if isinstance(code, str):
        lines.append(code)
    return {'code': code, 'lines': lines, 'traceback': crash,
            'changed': after != before, 'seconds': seconds}


def record(case, r):
    """Append the outcome to $DKNN_BATTERY_REPORT, when set (for
    bench/bad_input_report.py, which tabulates it in RESULTS.md)."""
    path = os.environ.get('DKNN_BATTERY_REPORT')
    if path:
        with open(path, 'a') as f:
            f.write(json.dumps({
                'kind': case.kind, 'name': case.name, 'script': case.script,
                'lines': r['lines'], 'traceback': repr(r['traceback'])
                if r['traceback'] else None, 'changed': r['changed'],
                'seconds': r['seconds']}) + '\n')


@pytest.mark.parametrize('case', CASES, ids=[c.name for c in CASES])
def test_bad_input(case, indexed_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fileio, 'open', open, raising=False)
    monkeypatch.setattr(fileio, '_fallocate', fileio._fallocate)
    r = outcome(case, indexed_run, str(tmp_path / 'ws'),
                lambda: capsys.readouterr().err)
    record(case, r)
    if r['traceback'] is not None:
        raise r['traceback']
    assert len(r['lines']) == 1, r['lines']
    line = r['lines'][0]
    # exit status 1 with the line, or 2 from the argument parser
    assert r['code'] == 2 and ': error: ' in line or \
        isinstance(r['code'], str) and line.startswith('error:'), r['code']
    assert re.search(case.names, line), line
    assert not r['changed']
    assert r['seconds'] < MAX_SECONDS
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
        assert fileio.file_sha256(os.path.join(new, name)) == sha
    done = snapshot(ws.out)
    train_text_classifier.main(ws.train('--unit', '7'))
    assert '{}: already trained with these settings; pass --force to train ' \
           'again'.format(new) in capsys.readouterr().out
    assert snapshot(ws.out) == done


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

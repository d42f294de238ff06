"""A trained run's folder: its files, checked when read, and the Run object.

``train_text_classifier.py`` writes a run folder; every later script opens
it with :func:`load`, which returns a :class:`Run` holding the settings,
the model, the vocabulary, the splits (built on first use) and the path of
every artifact. Artifact file names live in one table, :data:`ARTIFACTS`.

Everything read from a run folder is checked, because the folder may come
from a stranger: ``args.json`` for its keys and types, ``vocab.json`` for
ids within the vocabulary, ``calib.json`` for indices within the data,
``best_model.npz`` through ``numpy.load(allow_pickle=False)``; file names
in ``args.json`` must stay inside the folder.
"""
import functools
import hashlib
import json
import os
import re
import stat

import numpy
import chainer

import nets
import nlp_utils
import text_datasets

import errors
from errors import UserError

from toolkit import cache
from toolkit import cli
from toolkit import fileio
from toolkit import temperature

# Every file a run folder may hold, by role.
ARTIFACTS = {
    'setup': 'args.json',
    'model': 'best_model.npz',
    'vocab': 'vocab.json',
    'calib': 'calib.json',
    'log': 'log',
    'train_results': 'train_results.json',
    'activations': 'activations',   # a folder: the forward-pass cache
    'dknn_results': 'dknn_results.json',
    'credibility': 'dknn_credibility.npz',
    'temperature': 'temperature.json',
    'reliability': 'reliability.png',
    'reduction': 'reduction.json',
    'reduction_figure': 'reduction.png',
    'reduction_page': 'reduction.html',
    'conformal_figure': 'conformal_sets.png',
    'ood_figure': 'ood_roc.png',
    'selective_figure': 'risk_coverage.png',
    'audit': 'train_audit.json',
    'audit_page': 'train_audit.html',
    'audit_figure': 'train_audit.png',
}


# The other files a command writes into a run folder, by name.
OUTPUT_NAMES = re.compile(r'(interpretations|artifacts)_[\w+.-]+\.(html|json|'
                          r'png|md)|interpretations_[\w+.-]+_faithfulness\.md')
# The files of the forward-pass cache (see toolkit/cache.py).
CACHE_NAMES = re.compile(r'(train|val|calib|test)\.(json|logits\.npy|'
                         r'labels\.npy|layer\.[\w.-]+\.npy)')
LOCK_FILE = '.lock'  # held by the command writing the folder
RESTAMP_LOCK = '.stamp.lock'   # held while --trust-unstamped writes args.json
SPLITS = ('train', 'val', 'calib', 'test')
T_RANGE = (1e-8, 1e8)   # a saved temperature outside is refused


class RunError(UserError):
    """A run folder whose files are missing, foreign or inconsistent."""


# ---------------------------------------------------------------- args.json

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int_in(low, high):
    return ('an integer in [{}, {}]'.format(low, high),
            lambda v: _is_int(v) and low <= v <= high)


def _name(v):
    """A path or file name: a string of 1 to 4096 characters, none of them
    a control character."""
    return isinstance(v, str) and 0 < len(v) <= 4096 and \
        re.search('[\x00-\x1f\x7f]', v) is None


MAX = nets.MAX_SIZES
MAX_EXAMPLES = 1 << 30     # examples in a data set (n_calib, batch sizes)
# key -> (description, check); the keys every training run writes. Every
# size has a bound, so a stranger's file cannot make the tool allocate
# without limit (see also :func:`check_model_size`).
SETUP_SCHEMA = {
    'dataset': ('one of ' + ', '.join(text_datasets.DATASETS) +
                ', or the path of your own data',
                lambda v: isinstance(v, str) and (
                    v in text_datasets.DATASETS or _name(v) and
                    text_datasets.is_path(v))),
    'model': ('one of ' + ', '.join(nets.ENCODERS),
              lambda v: v in nets.ENCODERS),
    'unit': _int_in(1, MAX['unit']),
    'layer': _int_in(0, MAX['layer']),
    'dropout': ('a number in [0, 1)',
                lambda v: _is_number(v) and 0 <= v < 1),
    'char_based': ('true or false', lambda v: isinstance(v, bool)),
    'seed': ('an integer in [0, 2**32)',
             lambda v: _is_int(v) and 0 <= v < 2 ** 32),
    'n_calib': _int_in(0, MAX_EXAMPLES),
    'val_ratio': ('a number in (0, 1)',
                  lambda v: _is_number(v) and 0 < v < 1),
    'max_vocab': _int_in(2, MAX['n_vocab']),
    'n_vocab': _int_in(2, MAX['n_vocab']),
    'n_embed': _int_in(1, MAX['n_embed']),
    'n_class': _int_in(2, MAX['n_class']),
    'label_names': ('a list of strings of at most 1000 characters',
                    lambda v: isinstance(v, list) and all(
                        isinstance(x, str) and len(x) <= 1000 for x in v)),
    'pair': ('true or false', lambda v: isinstance(v, bool)),
    'model_path': ('a file name', _name),
    'vocab_path': ('a file name', _name),
    'calib_path': ('a file name', _name),
    'data_dir': ('a folder or null', lambda v: v is None or _name(v)),
}
# keys some runs lack; checked when present
OPTIONAL_SCHEMA = {
    'batchsize': _int_in(1, MAX_EXAMPLES),
    'epoch': _int_in(1, MAX_EXAMPLES),
    'patience': _int_in(0, MAX_EXAMPLES),
    'embed': ('null or ' + _int_in(1, MAX['n_embed'])[0],
              lambda v: v is None or _int_in(1, MAX['n_embed'])[1](v)),
    'max_tokens': _int_in(1, nlp_utils.MAX_TOKENS_LIMIT),
    'vocab_sha256': ('a sha256 (64 hex digits)', lambda v: _is_sha(v)),
}
SHA = re.compile('[0-9a-f]{64}')


def _is_sha(v):
    return isinstance(v, str) and SHA.fullmatch(v) is not None


RETRAIN = 'pass the args.json that train_text_classifier.py wrote, or ' \
          'train the model again'


def _check_values(setup, path):
    missing = [k for k in SETUP_SCHEMA if k not in setup]
    if missing:
        raise RunError('{}: not the args.json of a training run (missing {}); '
                       '{}'.format(path, ', '.join(missing[:6]) +
                                   (', ...' if len(missing) > 6 else ''),
                                   RETRAIN))
    checks = list(SETUP_SCHEMA.items()) + [
        (k, c) for k, c in OPTIONAL_SCHEMA.items() if k in setup]
    for key, (expected, ok) in checks:
        if not ok(setup[key]):
            raise RunError('{}: "{}" must be {}, got {}; {}'.format(
                path, key, expected, errors.clip(repr(setup[key])), RETRAIN))


def check_setup(setup, path):
    """Refuse an ``args.json`` with missing keys, values of the wrong type
    or out of their bounds, or sizes that make a model larger than the cap
    on a model file; one message naming the file and the field."""
    if not isinstance(setup, dict):
        raise RunError('{}: expected a JSON object of settings; {}'.format(
            path, RETRAIN))
    _check_values(setup, path)
    spec = text_datasets.DATASETS.get(setup['dataset'])
    if len(setup['label_names']) != setup['n_class'] or spec is not None and (
            setup['pair'] != spec.pair or
            setup['n_class'] != len(spec.label_names)):
        raise RunError('{}: "pair", "n_class" and "label_names" do not match '
                       'dataset {}; {}'.format(path, setup['dataset'],
                                               RETRAIN))
    widths = setup.get('widths', [3, 4, 5])
    if not isinstance(widths, list) or not 1 <= len(widths) <= \
            MAX['widths'] or not all(_is_int(w) and 1 <= w <= MAX['width']
                                     for w in widths):
        raise RunError('{}: "widths" must be a list of 1 to {} integers in '
                       '1..{}; {}'.format(path, MAX['widths'], MAX['width'],
                                          RETRAIN))
    if setup['model'] == 'cnn' and setup['unit'] < len(widths):
        raise RunError('{}: "unit" must be at least {} for a cnn; {}'.format(
            path, len(widths), RETRAIN))
    if setup['model'] in ('rnn', 'bilstm') and setup['layer'] < 1:
        raise RunError('{}: "layer" must be at least 1 for an {}; {}'.format(
            path, setup['model'], RETRAIN))
    stamps = setup.get('data_sha256', {})
    if not isinstance(stamps, dict) or not all(
            k in SPLITS and _is_sha(v) for k, v in stamps.items()):
        raise RunError('{}: "data_sha256" must map splits to sha256 strings; '
                       '{}'.format(path, RETRAIN))
    check_model_size(setup, path)


def model_bytes(setup):
    """Bytes of float32 parameters :func:`nets.build_model` would make."""
    return 4 * nets.n_parameters(dict(setup, widths=setup.get(
        'widths', [3, 4, 5])))


def check_model_size(setup, path):
    """Refuse settings whose model would be larger than the cap on a model
    file (``$DKNN_MAX_MODEL_BYTES``), before anything is allocated."""
    need, cap = model_bytes(setup), errors.max_bytes('model')
    if need > cap:
        raise RunError('{}: "unit", "layer", "n_embed" and "n_vocab" make a '
                       'model of {} bytes, more than the {}-byte cap on a '
                       'model; set {} to a larger number of bytes to load it'
                       .format(path, need, cap, errors.LIMITS['model'][1]))


def read_setup(setup_path):
    """Read and check ``args.json``; adds ``run_dir``, its folder."""
    setup = fileio.read_json(setup_path, RETRAIN)
    check_setup(setup, setup_path)
    setup['run_dir'] = os.path.dirname(os.path.abspath(setup_path))
    return setup


def run_path(setup, key):
    """Path of a file that ``args.json`` names (``model_path`` ...), kept
    inside the run folder."""
    return fileio.inside(setup['run_dir'], setup[key],
                         '{} in args.json'.format(key))


# -------------------------------------------------------- vocab and calib

def read_vocab(setup):
    """``vocab.json``, checked: token -> distinct ids covering
    ``[0, n_vocab)``, with ``<eos>`` = 0 and ``<unk>`` = 1."""
    path = run_path(setup, 'vocab_path')
    vocab = fileio.read_json(path, RETRAIN)
    n = setup['n_vocab']
    ok = isinstance(vocab, dict) and len(vocab) == n and all(
        isinstance(k, str) and _is_int(v) and 0 <= v < n
        for k, v in vocab.items())
    if not ok or len(set(vocab.values())) != n:
        raise RunError('{}: expected {} tokens with distinct ids 0..{} (the '
                       'n_vocab of args.json); {}'.format(path, n, n - 1,
                                                          RETRAIN))
    if vocab.get('<eos>') != 0 or vocab.get('<unk>') != 1:
        raise RunError('{}: <eos> must be 0 and <unk> 1; {}'.format(
            path, RETRAIN))
    stamp = setup.get('vocab_sha256')
    if stamp is not None and stamp != vocab_sha256(vocab):
        raise RunError('{}: the vocabulary changed since training (it does '
                       'not match vocab_sha256 in {}); {}'.format(
                           path, os.path.join(setup['run_dir'],
                                              ARTIFACTS['setup']), RETRAIN))
    return vocab


def vocab_sha256(vocab):
    """sha256 of a vocabulary: its (token, id) pairs, sorted, as JSON (the
    file's layout and key order do not count)."""
    return hashlib.sha256(json.dumps(sorted(vocab.items())).encode(
        'utf-8', 'surrogatepass')).hexdigest()


def read_calib(setup, pool_size):
    """``calib.json``, checked: sorted distinct indices into a training pool
    of ``pool_size`` examples."""
    path = run_path(setup, 'calib_path')
    calib = fileio.read_json(path, RETRAIN)
    ok = isinstance(calib, list) and all(
        _is_int(i) and 0 <= i < pool_size for i in calib) and \
        all(a < b for a, b in zip(calib, calib[1:]))
    if not ok:
        raise RunError('{}: expected sorted distinct indices below {} (the '
                       'training pool); {}'.format(path, pool_size, RETRAIN))
    return calib


# -------------------------------------------------------------- the model

def model_arrays(model):
    """Array name in ``best_model.npz`` -> the model's parameter."""
    return {name.lstrip('/'): param for name, param in model.namedparams()}


def load_weights(model, path):
    """Copy the weights saved in ``path`` into ``model`` (see
    :func:`read_weights`); returns ``model``."""
    read_weights(model, path)
    return model


def read_weights(model, path):
    """Copy the weights saved in ``path`` into ``model``, never unpickling
    (Chainer's ``load_npz`` allows pickles) and never inflating more than
    the model's own arrays: each member's ``.npy`` header is checked
    against the shape of its parameter before its data is read, one
    member at a time, and its values must be finite.

    Returns:
        str: the sha256 of the file that was read.
    """
    params = model_arrays(model)
    expected = {n: (p.shape, 'f') for n, p in params.items()}
    honest = sum(p.size for p in params.values()) * 8 + \
        (64 << 10) * (len(params) + 1)
    with errors.open_regular(path, 'model', RETRAIN, RunError,
                             missing='missing') as f:
        size = os.fstat(f.fileno()).st_size
        if size > honest:
            raise RunError('{}: {} bytes, more than a model of the settings '
                           'in args.json can take ({}); {}'.format(
                               path, size, honest, RETRAIN))
        sha = fileio.stream_sha256(f)
        f.seek(0)
        _copy_arrays(f, path, params, expected)
    return sha


def _copy_arrays(f, path, params, expected):
    """Copy the archive's arrays into ``params``, one member at a time."""
    try:
        for name, array in fileio.iter_npz(
                f, path, RETRAIN, expected,
                what='the model its args.json describes'):
            if array.size and not numpy.isfinite(array).all():
                raise RunError('{}: array {} holds nan or inf: the model is '
                               'broken; train it again'.format(
                                   path, errors.clip(name)))
            params[name].array[...] = array
    except RunError:
        raise
    except UserError as e:   # a bad archive is a bad run folder
        raise RunError(str(e)) from None


def read_model(setup, device=None):
    """The classifier ``args.json`` describes, with the weights of
    ``best_model.npz``, on ``device``."""
    return model_and_sha256(setup, device)[0]


def model_and_sha256(setup, device=None):
    """:func:`read_model`, and the sha256 of the file its weights were read
    from (read once: the hash is of the bytes loaded)."""
    model = nets.build_model(setup)
    sha = read_weights(model, run_path(setup, 'model_path'))
    model.to_device(chainer.get_device(device if device is not None
                                       else '@numpy'))
    return model, sha


def read_temperature(folder):
    """The temperature scaling.py saved in a run folder: T > 0."""
    path = fileio.inside(folder, ARTIFACTS['temperature'], 'temperature')
    fix = 'fit it with: python scaling.py --model-setup {}'.format(
        os.path.join(folder, ARTIFACTS['setup']))
    saved = fileio.read_json(path, fix)
    T = saved.get('temperature') if isinstance(saved, dict) else None
    if not _is_number(T) or not (T_RANGE[0] <= T <= T_RANGE[1]):
        raise RunError('{}: "temperature" must be a number in [{:g}, {:g}]; '
                       '{}'.format(path, T_RANGE[0], T_RANGE[1], fix))
    return float(T)


# ------------------------------------------------------------------ the run

class Run:
    """A trained run: settings, model, vocabulary, splits and artifacts.

    Attributes:
        folder (str): the run folder.
        setup (dict): ``args.json``, checked, with ``run_dir``.
        model: the classifier on ``device``.
        vocab (dict): token -> id.
        device: the Chainer device.
    """

    def __init__(self, setup_path, device=None, data_dir=None, cached=True,
                 float16=False, trust_unstamped=False):
        self.cached = cached
        self.dtype = numpy.float16 if float16 else numpy.float32
        self.setup = read_setup(setup_path)
        self.folder = self.setup['run_dir']
        self.device = device
        self.data_dir = data_dir
        self.trust_unstamped = trust_unstamped
        self.restamped = False   # stamps added by --trust-unstamped
        self._check_stamped()
        self.vocab = read_vocab(self.setup)
        self.model, self.model_sha256 = model_and_sha256(self.setup, device)
        self._forward = {}
        self.data_sha256 = None   # split -> sha256 of its examples (splits)

    def _check_stamped(self):
        """A run folder without its data and vocabulary stamps is refused,
        unless the user says to trust it (``--trust-unstamped``)."""
        s = self.setup
        missing = [k for k, ok in (
            ('data_sha256', set(s.get('data_sha256', {})) == set(SPLITS)),
            ('vocab_sha256', 'vocab_sha256' in s)) if not ok]
        if missing and not self.trust_unstamped:
            raise RunError(
                '{}: has no {} stamp, so a change of the data or the '
                'vocabulary since training could not be found; train it '
                'again, or pass --trust-unstamped to trust the data and '
                'vocab.json as they are now (the stamps are then written)'
                .format(self.setup_path, ' or '.join(missing)))
        self.unstamped = missing

    @property
    def setup_path(self):
        return os.path.join(self.folder, ARTIFACTS['setup'])

    def path(self, role):
        """Path of an artifact, by its role in :data:`ARTIFACTS` (refused
        if it is a link leading out of the run folder)."""
        return fileio.inside(self.folder, ARTIFACTS[role], role)

    @property
    def model_path(self):
        return run_path(self.setup, 'model_path')

    @functools.cached_property
    def temperature(self):
        """T from ``temperature.json`` (see scaling.py)."""
        return read_temperature(self.folder)

    @property
    def label_names(self):
        return list(self.setup['label_names'])

    @property
    def pair(self):
        return self.setup['pair']

    @property
    def max_tokens(self):
        """The most tokens of one input: the run's own (``args.json``),
        else ``$DKNN_MAX_TOKENS`` or the default."""
        return self.setup.get('max_tokens') or nlp_utils.max_tokens()

    @property
    def data_folder(self):
        """Where the data files are: ``--data-dir``, else
        ``$DKNN_DATA_DIR``, else (built-in data sets) the default data
        folder; never a folder ``args.json`` names (a run folder may come
        from a stranger). Your own data: that file or folder, or the folder
        holding it (found there by its name), named by the user."""
        given = text_datasets.data_dir_from(self.data_dir)
        s = self.setup
        named = self.data_dir or os.environ.get(text_datasets.DATA_ENV)
        if (given is None and s['data_dir']) or (
                not is_builtin(s) and not named):
            raise RunError(
                '{}: was trained on data {} {}; say where that data is with '
                '--data-dir or ${} (a run folder never chooses the files '
                'read)'.format(self.setup_path, 'in' if is_builtin(s) else
                               'from', errors.clip(s['data_dir'] if
                                                   is_builtin(s) else
                                                   s['dataset'], 200),
                               text_datasets.DATA_ENV))
        if given is not None and not is_builtin(s):
            inner = os.path.join(given, os.path.basename(
                os.path.normpath(s['dataset'])))
            return inner if os.path.lexists(inner) else given
        return given

    @functools.cached_property
    def splits(self):
        """The run's splits, rebuilt from the data the user names and
        checked against the data's sha256 recorded at training, then
        ``calib.json`` (see :func:`text_datasets.get_dataset`)."""
        s = self.setup
        where = self.data_folder
        builtin = is_builtin(s)
        splits = text_datasets.get_dataset(
            s['dataset'] if builtin else where, where if builtin else None,
            s['char_based'], s['seed'], s['n_calib'], s['val_ratio'],
            vocab=self.vocab, max_tokens=self.max_tokens)
        self.data_sha256 = {k: examples_sha256(getattr(splits, k))
                            for k in SPLITS}
        self._check_data(splits, where)
        saved = read_calib(s, splits.pool_size)
        if saved != splits.calib_indices:
            raise RunError(
                '{}: the calibration set differs from the one set aside at '
                'training time: the data changed since training (or the data '
                'folder points elsewhere). Train the model again.'.format(
                    run_path(s, 'calib_path')))
        return splits

    def _check_data(self, splits, where):
        """Every split's examples against ``data_sha256``; a run without
        stamps (``--trust-unstamped``) is stamped with them instead."""
        if self.unstamped:
            self._restamp(where)
            return
        for split, stamp in self.setup['data_sha256'].items():
            if stamp != self.data_sha256[split]:
                raise RunError(
                    '{} changed since training: its {} examples differ from '
                    'those the model was trained with (data_sha256 in {}). '
                    'Pass --data-dir with the original data, or train '
                    'again.'.format(splits.sources.get(split, where),
                                    split, self.setup_path))

    def _restamp(self, where):
        """``--trust-unstamped``: say what is trusted, and write the
        stamps into ``args.json`` (atomically) so later commands check."""
        self.setup.update(data_sha256=dict(self.data_sha256),
                          vocab_sha256=vocab_sha256(self.vocab))
        print('note: --trust-unstamped: {} had no {} stamp; trusting the '
              'data in {} and {} as they are now, and stamping args.json '
              'with them'.format(self.setup_path, ' or '.join(
                  self.unstamped), where or 'the download cache',
                  run_path(self.setup, 'vocab_path')))
        saved = {k: v for k, v in self.setup.items() if k != 'run_dir'}
        if cli.is_rank0():   # its own lock: the command's may be held
            with fileio.FolderLock(os.path.join(self.folder, RESTAMP_LOCK),
                                   self.folder):
                fileio.save_json(self.setup_path, saved)
        self.unstamped = []
        self.restamped = True

    @functools.cached_property
    def layer_widths(self):
        """Layer name -> width, from a forward pass of one test example."""
        _, layers = self.model.predict(nlp_utils.send_xs(
            [self.splits.test[0][0]], self.device))
        return {name: int(h.shape[1]) for name, h in layers.items()}

    def examples(self, split):
        """Array examples of ``split``: train, val, calib or test."""
        if split not in SPLITS:
            raise RunError('unknown split {!r}; one of {}'.format(
                split, ', '.join(SPLITS)))
        return getattr(self.splits, split)

    def forward(self, split, batchsize=256, out=None):
        """The model's forward pass over a split: computed once per model.

        Read from the run's ``activations/`` folder when that was written
        for this model file and these examples (both sha256-stamped), else
        computed, in memory, or into the cache when the caller passes where
        to save it: ``out``, the :class:`fileio.Outputs` of a command
        writing the run folder (see :meth:`writing`).

        Returns:
            nets.Activations: logits, every layer, labels; arrays read from
            disk are memory-mapped.
        """
        if split not in self._forward:
            self._forward[split] = self._compute(split, batchsize, out)
        return self._forward[split]

    def _compute(self, split, batchsize, out):
        examples = self.examples(split)
        stamp = {'model_sha256': self.model_sha256,
                 'data_sha256': self.data_sha256[split],
                 'n': len(examples), 'layers': self.layer_widths,
                 'dtype': numpy.dtype(self.dtype).name}
        labels = numpy.array([int(y[0]) for _, y in examples], numpy.int32)
        acts = cache.read(self.path('activations'), split, stamp, labels,
                          self.setup['n_class']) if self.cached else None
        if acts is not None:
            return acts
        if out is not None and out.folder is not None:
            return cache.compute(out, ARTIFACTS['activations'], split,
                                 self.model, examples, self.device,
                                 batchsize, stamp, self.dtype)
        return nets.predict_dataset(self.model, examples, self.device,
                                    batchsize, '{}: forward pass'.format(
                                        split), dtype=self.dtype)

    def temperature_or_fit(self):
        """T and where it came from: ``temperature.json`` (scaling.py) when
        the run has one, else fitted now on the calibration set (said in
        the source string). The one place T is looked up."""
        if os.path.lexists(self.path('temperature')):
            return self.temperature, ARTIFACTS['temperature']
        calib = self.forward('calib')
        return temperature.fit_temperature(calib.logits, calib.labels), \
            'fitted now on the calibration set (no {})'.format(
                ARTIFACTS['temperature'])

    def writing(self, comm=None):
        """Context for a command that writes into the run folder: checks it
        is writable, takes its lock, removes a killed run's temporary files,
        and yields a :class:`fileio.Outputs` (a :class:`fileio.Discard` on
        an MPI rank other than 0)."""
        return fileio.writing(self.folder, LOCK_FILE, comm,
                              also=[self.path('activations')])


def examples_sha256(examples):
    """sha256 of array examples: every token id and label, in order."""
    h = hashlib.sha256()
    for x, y in examples:
        for part in nlp_utils.parts(x):
            h.update(numpy.ascontiguousarray(part, numpy.int32).tobytes())
            h.update(b'|')
        h.update(numpy.asarray(y, numpy.int32).tobytes())
        h.update(b';')
    return h.hexdigest()


def check_tool_entry(folder, name):
    """Refuse an entry of a run folder that this tool did not write: a
    name it never writes, a link, a FIFO, or a folder (other than the
    ``activations/`` cache, whose files are checked too). Called before
    a run folder is emptied, so nothing of someone else's is removed."""
    path = os.path.join(folder, name)
    mode = os.lstat(path).st_mode
    if name == ARTIFACTS['activations'] and stat.S_ISDIR(mode):
        for entry in os.listdir(path):
            if not CACHE_NAMES.fullmatch(entry) and \
                    not fileio.is_leftover(entry):
                raise RunError('{}: {} is not a file of the forward-pass '
                               'cache; move it away, or write elsewhere with '
                               '--out (nothing was changed)'.format(
                                   path, errors.clip(entry)))
            check_tool_entry(path, entry)
        return
    known = name in ARTIFACTS.values() or OUTPUT_NAMES.fullmatch(name) or \
        CACHE_NAMES.fullmatch(name) or fileio.is_leftover(name) or \
        name == RESTAMP_LOCK
    if not known or not stat.S_ISREG(mode):
        what = 'a link' if stat.S_ISLNK(mode) else 'a file' if \
            stat.S_ISREG(mode) else errors.file_kind(mode)
        raise RunError('{}: {}, which this tool does not write, stands in '
                       'the run folder; move it away, or write elsewhere '
                       'with --out (nothing was changed)'.format(path, what))


def is_builtin(setup):
    """True for a run on a built-in data set, False for your own data."""
    return setup['dataset'] in text_datasets.DATASETS


def from_args(args, cached=True):
    """The run a script's ``--model-setup``, ``--device``, ``--data-dir``,
    ``--trust-unstamped`` (and ``--float16``, where there is one) name."""
    return load(args.model_setup, cli.device_from_args(args), args.data_dir,
                cached, getattr(args, 'float16', False),
                getattr(args, 'trust_unstamped', False))


def load(setup_path, device=None, data_dir=None, cached=True,
         float16=False, trust_unstamped=False):
    """Open a trained run: ``runs.load('result/stsa.binary_cnn/args.json')``.

    Args:
        setup_path (str): the run's ``args.json``.
        device: a Chainer device; None means the CPU.
        data_dir (str): where the data is (else ``$DKNN_DATA_DIR``); never
            taken from ``args.json``. For a built-in data set only its own
            file names are looked up in it; for your own data it is that
            file or folder, or the folder holding it.
        cached (bool): False ignores the forward passes cached in the run's
            ``activations/`` folder (and replaces them).
        float16 (bool): keep hidden layers as float16 (half the memory
            and disk of the index); logits stay float32.
        trust_unstamped (bool): open a run whose ``args.json`` lacks the
            data and vocabulary stamps, trusting the data and vocabulary as
            they are now (and stamping it with them).
    """
    return Run(setup_path, device, data_dir, cached, float16,
               trust_unstamped)

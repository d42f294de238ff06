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
import os

import chainer
import numpy

from toolkit import cache
from toolkit import cli
import nets
import nlp_utils
from toolkit import safeio
from toolkit import temperature
import text_datasets
from errors import UserError

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


LOCK_FILE = '.lock'  # held by the command writing the folder
SPLITS = ('train', 'val', 'calib', 'test')
T_RANGE = (1e-8, 1e8)   # a saved temperature outside is refused


class RunError(UserError):
    """A run folder whose files are missing, foreign or inconsistent."""


# ---------------------------------------------------------------- args.json

def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key -> (description, check); the keys every training run writes.
SETUP_SCHEMA = {
    'dataset': ('one of ' + ', '.join(text_datasets.DATASETS) +
                ', or the path of your own data',
                lambda v: isinstance(v, str) and (
                    v in text_datasets.DATASETS or text_datasets.is_path(v))),
    'model': ('one of ' + ', '.join(nets.ENCODERS),
              lambda v: v in nets.ENCODERS),
    'unit': ('an integer >= 1', lambda v: _is_int(v) and v >= 1),
    'layer': ('an integer >= 0', lambda v: _is_int(v) and v >= 0),
    'dropout': ('a number in [0, 1)',
                lambda v: _is_number(v) and 0 <= v < 1),
    'char_based': ('true or false', lambda v: isinstance(v, bool)),
    'seed': ('an integer in [0, 2**32)',
             lambda v: _is_int(v) and 0 <= v < 2 ** 32),
    'n_calib': ('an integer >= 0', lambda v: _is_int(v) and v >= 0),
    'val_ratio': ('a number in (0, 1)',
                  lambda v: _is_number(v) and 0 < v < 1),
    'max_vocab': ('an integer >= 2', lambda v: _is_int(v) and v >= 2),
    'n_vocab': ('an integer >= 2', lambda v: _is_int(v) and v >= 2),
    'n_embed': ('an integer >= 1', lambda v: _is_int(v) and v >= 1),
    'n_class': ('an integer >= 2', lambda v: _is_int(v) and v >= 2),
    'label_names': ('a list of strings', lambda v: isinstance(v, list) and
                    all(isinstance(x, str) for x in v)),
    'pair': ('true or false', lambda v: isinstance(v, bool)),
    'model_path': ('a file name', lambda v: isinstance(v, str)),
    'vocab_path': ('a file name', lambda v: isinstance(v, str)),
    'calib_path': ('a file name', lambda v: isinstance(v, str)),
    'data_dir': ('a folder or null', lambda v: v is None or
                 isinstance(v, str)),
}

RETRAIN = 'pass the args.json that train_text_classifier.py wrote, or ' \
          'train the model again'


def check_setup(setup, path):
    """Refuse an ``args.json`` with missing keys or values of the wrong
    type; one message naming the file and the first problems."""
    if not isinstance(setup, dict):
        raise RunError('{}: expected a JSON object of settings; {}'.format(
            path, RETRAIN))
    missing = [k for k in SETUP_SCHEMA if k not in setup]
    if missing:
        raise RunError('{}: not the args.json of a training run (missing {}); '
                       '{}'.format(path, ', '.join(missing[:6]) +
                                   (', ...' if len(missing) > 6 else ''),
                                   RETRAIN))
    for key, (expected, ok) in SETUP_SCHEMA.items():
        if not ok(setup[key]):
            raise RunError('{}: "{}" must be {}, got {!r}; {}'.format(
                path, key, expected, setup[key], RETRAIN))
    spec = text_datasets.DATASETS.get(setup['dataset'])
    if len(setup['label_names']) != setup['n_class'] or spec is not None and (
            setup['pair'] != spec.pair or
            setup['n_class'] != len(spec.label_names)):
        raise RunError('{}: "pair", "n_class" and "label_names" do not match '
                       'dataset {}; {}'.format(path, setup['dataset'],
                                               RETRAIN))
    widths = setup.get('widths', [3, 4, 5])
    if not isinstance(widths, list) or not widths or not all(
            _is_int(w) and 1 <= w <= 64 for w in widths):
        raise RunError('{}: "widths" must be a list of integers in 1..64; {}'
                       .format(path, RETRAIN))
    if setup['model'] == 'cnn' and setup['unit'] < len(widths):
        raise RunError('{}: "unit" must be at least {} for a cnn; {}'.format(
            path, len(widths), RETRAIN))
    stamps = setup.get('data_sha256', {})
    if not isinstance(stamps, dict) or not all(
            k in SPLITS and isinstance(v, str) for k, v in stamps.items()):
        raise RunError('{}: "data_sha256" must map splits to sha256 strings; '
                       '{}'.format(path, RETRAIN))


def read_setup(setup_path):
    """Read and check ``args.json``; adds ``run_dir``, its folder."""
    setup = safeio.read_json(setup_path, RETRAIN)
    check_setup(setup, setup_path)
    setup['run_dir'] = os.path.dirname(os.path.abspath(setup_path))
    return setup


def run_path(setup, key):
    """Path of a file that ``args.json`` names (``model_path`` ...), kept
    inside the run folder."""
    return safeio.inside(setup['run_dir'], setup[key],
                         '{} in args.json'.format(key))


# -------------------------------------------------------- vocab and calib

def read_vocab(setup):
    """``vocab.json``, checked: token -> distinct ids covering
    ``[0, n_vocab)``, with ``<eos>`` = 0 and ``<unk>`` = 1."""
    path = run_path(setup, 'vocab_path')
    vocab = safeio.read_json(path, RETRAIN)
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
    return vocab


def read_calib(setup, pool_size):
    """``calib.json``, checked: sorted distinct indices into a training pool
    of ``pool_size`` examples."""
    path = run_path(setup, 'calib_path')
    calib = safeio.read_json(path, RETRAIN)
    ok = isinstance(calib, list) and all(
        _is_int(i) and 0 <= i < pool_size for i in calib) and \
        all(a < b for a, b in zip(calib, calib[1:]))
    if not ok:
        raise RunError('{}: expected sorted distinct indices below {} (the '
                       'training pool); {}'.format(path, pool_size, RETRAIN))
    return calib


# -------------------------------------------------------------- the model

def load_weights(model, path):
    """Copy the weights saved in ``path`` into ``model``, reading the archive
    with ``allow_pickle=False`` (Chainer's ``load_npz`` allows pickles)."""
    arrays = safeio.load_npz(path, RETRAIN)
    try:
        chainer.serializers.NpzDeserializer(arrays).load(model)
    except (KeyError, ValueError, TypeError) as e:
        raise RunError('{} does not hold the model its args.json describes '
                       '({}: {}); {}'.format(path, type(e).__name__,
                                             str(e)[:100], RETRAIN)) from None
    return model


def read_model(setup, device=None):
    """The classifier ``args.json`` describes, with the weights of
    ``best_model.npz``, on ``device``."""
    model = load_weights(nets.build_model(setup),
                         run_path(setup, 'model_path'))
    model.to_device(chainer.get_device(device if device is not None
                                       else '@numpy'))
    return model


def read_temperature(folder):
    """The temperature scaling.py saved in a run folder: T > 0."""
    path = safeio.inside(folder, ARTIFACTS['temperature'], 'temperature')
    fix = 'fit it with: python scaling.py --model-setup {}'.format(
        os.path.join(folder, ARTIFACTS['setup']))
    saved = safeio.read_json(path, fix)
    T = saved.get('temperature') if isinstance(saved, dict) else None
    if not _is_number(T) or not (T_RANGE[0] <= T <= T_RANGE[1]):
        raise RunError('{}: "temperature" must be a number in [{:g}, {:g}], '
                       'got {!r}; {}'.format(path, T_RANGE[0], T_RANGE[1], T,
                                             fix))
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
                 float16=False):
        self.cached = cached
        self.dtype = numpy.float16 if float16 else numpy.float32
        self.setup = read_setup(setup_path)
        self.folder = self.setup['run_dir']
        self.device = device
        self.data_dir = data_dir
        self.vocab = read_vocab(self.setup)
        self.model = read_model(self.setup, device)
        self._forward = {}
        self.data_sha256 = None   # split -> sha256 of its examples (splits)

    def path(self, role):
        """Path of an artifact, by its role in :data:`ARTIFACTS` (refused
        if it is a link leading out of the run folder)."""
        return safeio.inside(self.folder, ARTIFACTS[role], role)

    @property
    def model_path(self):
        return run_path(self.setup, 'model_path')

    @functools.cached_property
    def model_sha256(self):
        return safeio.file_sha256(self.model_path)

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
    def data_folder(self):
        """Where the data files are: ``--data-dir``, else the folder the run
        was trained from (if it still exists), else ``$DKNN_DATA_DIR``."""
        s = self.setup
        return self.data_dir or (
            s['data_dir'] if s['data_dir'] and os.path.isdir(s['data_dir'])
            else text_datasets.data_dir_from(None))

    @functools.cached_property
    def splits(self):
        """The run's splits, rebuilt from its data and checked against
        ``calib.json`` and the data's sha256 recorded at training (see
        :func:`text_datasets.get_dataset`)."""
        s = self.setup
        data_dir = self.data_folder
        splits = text_datasets.get_dataset(
            s['dataset'], data_dir, s['char_based'], s['seed'], s['n_calib'],
            s['val_ratio'], vocab=self.vocab)
        saved = read_calib(s, splits.pool_size)
        if saved != splits.calib_indices:
            raise RunError(
                '{}: the calibration set differs from the one set aside at '
                'training time: the data changed since training (or the data '
                'folder points elsewhere). Train the model again.'.format(
                    run_path(s, 'calib_path')))
        self.data_sha256 = {k: examples_sha256(getattr(splits, k))
                            for k in SPLITS}
        for split, stamp in s.get('data_sha256', {}).items():
            if stamp != self.data_sha256[split]:
                raise RunError(
                    'the {} examples differ from those the model was trained '
                    'with (data_sha256 in {}): the data changed since '
                    'training, or the data folder ({}) is another. Pass '
                    '--data-dir with the original data, or train again.'
                    .format(split, os.path.join(self.folder, 'args.json'),
                            data_dir or 'downloaded'))
        return splits

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
        to save it: ``out``, the :class:`safeio.Outputs` of a command
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
        and yields a :class:`safeio.Outputs` (a :class:`safeio.Discard` on
        an MPI rank other than 0)."""
        return safeio.writing(self.folder, LOCK_FILE, comm,
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


def from_args(args, cached=True):
    """The run a script's ``--model-setup``, ``--device``, ``--data-dir``
    (and ``--float16``, where there is one) name."""
    return load(args.model_setup, cli.device_from_args(args), args.data_dir,
                cached, getattr(args, 'float16', False))


def load(setup_path, device=None, data_dir=None, cached=True,
         float16=False):
    """Open a trained run: ``runs.load('result/stsa.binary_cnn/args.json')``.

    Args:
        setup_path (str): the run's ``args.json``.
        device: a Chainer device; None means the CPU.
        data_dir (str): overrides the data folder (else the one used in
            training if it exists here, else ``$DKNN_DATA_DIR``). Only the
            data set's own file names are looked up in it.
        cached (bool): False ignores the forward passes cached in the run's
            ``activations/`` folder (and replaces them).
        float16 (bool): keep hidden layers as float16 (half the memory
            and disk of the index); logits stay float32.
    """
    return Run(setup_path, device, data_dir, cached, float16)

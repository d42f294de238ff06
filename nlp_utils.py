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
import codecs
import collections
import contextlib
import gzip
import itertools
import os
import zlib
from dataclasses import dataclass

import numpy
import chainer

from errors import UserError
from toolkit import fileio

EOS = '<eos>'
UNK = '<unk>'
MAX_TOKENS = 512          # tokens of one input, by default (see max_tokens)
MAX_TOKENS_ENV = 'DKNN_MAX_TOKENS'
MAX_TOKENS_LIMIT = 1 << 16   # the most --max-tokens / $DKNN_MAX_TOKENS allow
MAX_VOCAB = 1 << 22       # words in a vocabulary
MAX_EMBED = 1 << 12       # the dimension of word vectors and embeddings
MAX_NORM = 1e3            # of a word vector; GloVe's largest is about 10


def max_tokens(value=None):
    """The most tokens one input may hold: ``value`` (a flag), else
    ``$DKNN_MAX_TOKENS``, else :data:`MAX_TOKENS`; at most
    :data:`MAX_TOKENS_LIMIT`."""
    if value is None:
        text = os.environ.get(MAX_TOKENS_ENV, '').strip()
        if not text:
            return MAX_TOKENS
        if not text.isdigit() or not 1 <= int(text) <= MAX_TOKENS_LIMIT:
            raise UserError('{}={!r} is not a number of tokens in 1..{}; set '
                            'it to such as {}'.format(
                                MAX_TOKENS_ENV, text[:20], MAX_TOKENS_LIMIT,
                                MAX_TOKENS))
        value = int(text)
    return value


def check_length(fields, limit, where):
    """Refuse an input whose field holds more than ``limit`` tokens: the
    work on an input (a forward pass, leave-one-out over every token,
    reduction) grows with it. ``where`` names the file and line."""
    for tokens in fields:
        if len(tokens) > limit:
            raise UserError(
                '{}: {} tokens, more than the limit of {} per input; raise '
                'it with --max-tokens when training, or set {}'.format(
                    where, len(tokens), limit, MAX_TOKENS_ENV))


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


BATCH_TOKENS = 1 << 18   # tokens in one forward pass, padding included
EXPLAIN_TOKENS = 4096    # the longest input leave-one-out or reduction takes
VARIANT_TOKENS = 1 << 24   # tokens of leave-one-out variants made at once


def size(x):
    """Tokens of a model input (every part, ``<eos>`` included)."""
    return sum(len(p) for p in parts(x))


def batches(xs, batchsize, max_tokens=BATCH_TOKENS, cost=None):
    """Index lists of ``xs``, shortest first, each at most ``batchsize``
    inputs and (but for a single larger input) ``max_tokens`` tokens: memory
    stays bounded by the batch whatever the inputs' lengths.

    Args:
        cost: ``cost(n)`` tokens an input of n tokens takes; None: n padded
            to the batch's longest input.
    """
    order = length_order(xs)
    out, rows, used = [], [], 0
    for r in order:
        n = size(xs[r])   # ascending: this one is the longest yet
        need = n * (len(rows) + 1) if cost is None else used + cost(n)
        if rows and (len(rows) == batchsize or need > max_tokens):
            out.append(rows)
            rows, used = [], 0
            need = n if cost is None else cost(n)
        rows.append(r)
        used = need
    if rows:
        out.append(rows)
    return out


def check_explainable(xs, limit=EXPLAIN_TOKENS):
    """Refuse an input longer than ``limit`` tokens for work that grows
    with the square of its length (leave-one-out makes one variant per
    token; reduction a step per token)."""
    for x in xs:
        n = size(x)
        if n > limit:
            raise UserError('an input of {} tokens is longer than the {} '
                            'leave-one-out and input reduction take (their '
                            'cost grows with the square of the length); '
                            'explain it with --interp-method grad, or raise '
                            '--max-explain-tokens'.format(n, limit))


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


MAX_LINE = 1 << 20   # bytes of one line of a vectors file


@contextlib.contextmanager
def _open_vectors(path):
    """A vectors file, plain or ``.gz``, opened through
    :func:`toolkit.fileio.open_regular` (special files refused, size
    capped)."""
    with fileio.open_regular(path, 'vectors', _VECTORS_FIX,
                             VectorsFormatError) as f:
        if str(path).endswith('.gz'):
            with gzip.GzipFile(fileobj=f) as g:
                yield g
        else:
            yield f


def _lines(f, path):
    """Yield ``(line number, fields)`` of a vectors file: lines of at most
    :data:`MAX_LINE` bytes, never more than the cap on a vectors file in
    all (a ``.gz`` file inflated), a byte-order mark dropped, undecodable
    bytes ignored."""
    cap = fileio.max_bytes('vectors', VectorsFormatError)
    total = 0
    for lineno in itertools.count(1):
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            return
        total += len(raw)
        if total > cap:
            raise fileio.size_error(path + ' (inflated)', 'vectors', cap,
                                    VectorsFormatError)
        if len(raw) > MAX_LINE:
            raise VectorsFormatError('{}:{}: a line longer than {} bytes; '
                                     'is it a word-vector file?'.format(
                                         path, lineno, MAX_LINE))
        if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        fields = raw.decode('utf-8', 'ignore').rstrip().split(' ')
        if fields != ['']:
            yield lineno, fields


def _is_header(fields):
    return len(fields) == 2 and all(f.isascii() and f.isdigit()
                                    for f in fields)


def _dimension(head, path):
    """(D, the line D was read from) for the first lines of a vectors
    file: a word2vec header ``N D``, else the value count most of the
    first three lines agree on, so a short first line is blamed itself."""
    if head and head[0][0] == 1 and _is_header(head[0][1]):
        dim, at = int(head[0][1][1]), 1
    else:
        counts = [len(fields) - 1 for _, fields in head]
        dim = max(counts, key=lambda c: (counts.count(c), -counts.index(c)))
        at = head[counts.index(dim)][0]
    if not 1 <= dim <= MAX_EMBED:
        raise VectorsFormatError(
            '{}:{}: {} values a word; expected "word v1 ... vD" with D from 1 '
            'to {}'.format(path, at, dim, MAX_EMBED))
    return dim, at


def _parse_row(fields, path, lineno):
    """The values of one line as float32, checked to be finite and of a
    sane size (norm at most :data:`MAX_NORM`)."""
    try:
        row = numpy.array(fields[1:], numpy.float32)
    except ValueError:
        raise VectorsFormatError('{}:{}: a value is not a number'.format(
            path, lineno)) from None
    if not numpy.isfinite(row).all():
        raise VectorsFormatError('{}:{}: the vector holds nan or inf; fix or '
                                 'drop that line'.format(path, lineno))
    norm = float(numpy.linalg.norm(row.astype(numpy.float64)))
    if norm > MAX_NORM:
        raise VectorsFormatError(
            '{}:{}: the vector has norm {:.3g}, more than {:g}: not word '
            'vectors? fix or drop that line'.format(path, lineno, norm,
                                                    MAX_NORM))
    return row


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_vectors(lines, path, vocab, rng, scale):
    head = list(itertools.islice(lines, 3))
    if not head or head[0][0] == 1 and _is_header(head[0][1]) and \
            len(head) == 1:
        raise VectorsFormatError('{}: no vectors in file'.format(path))
    dim, at = _dimension(head, path)
    matrix = rng.uniform(-scale, scale, (len(vocab), dim)).astype(
        numpy.float32)
    covered = numpy.zeros(len(vocab), bool)
    first_line, duplicates = {}, []
    for lineno, fields in itertools.chain(head, lines):
        if lineno == 1 and _is_header(fields):
            continue
        if len(fields) > dim + 1 and not _is_number(fields[1]):
            continue   # a word with spaces (glove.840B has a few): no token
        if len(fields) != dim + 1:
            raise VectorsFormatError(
                '{}:{}: expected {} values after the word (as {} line {}), '
                'found {}'.format(path, lineno, dim, 'the header on' if
                                  at == 1 and _is_header(head[0][1]) else
                                  'on', at, len(fields) - 1))
        index = vocab.get(fields[0])
        if index is None:
            continue
        if covered[index]:
            duplicates.append((fields[0], first_line[index], lineno))
            continue
        matrix[index] = _parse_row(fields, path, lineno)
        covered[index], first_line[index] = True, lineno
    return WordVectors(matrix, covered, duplicates)


_VECTORS_FIX = 'pass a GloVe, word2vec or fastText text file to ' \
    '--word_vectors'


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
    try:
        with _open_vectors(path) as f:
            return _read_vectors(_lines(f, path), path, vocab, rng, scale)
    except (OSError, EOFError, zlib.error) as e:
        raise VectorsFormatError('{}: unreadable ({}); is it a complete '
                                 'download?'.format(path, type(e).__name__)
                                 ) from None

"""Tokens, vocabularies, batches and word vectors.

Everything here is pure library code: no argparse, no I/O at import time.
Examples are tuples of int32 arrays, as in Chainer's text_classification
example:

* a sentence example is ``(x, y)``: ``x`` an (L,)-shaped token-id array
  ending with ``<eos>``, ``y`` a (1,)-shaped label array;
* a pair example (SNLI) is ``((premise, hypothesis), y)``.
"""
import collections
import gzip
import io
import json
import os
import tempfile

import numpy

import chainer

EOS = '<eos>'
UNK = '<unk>'


class UserError(Exception):
    """Bad input a user can fix; scripts print it as one line, no traceback.
    """


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def exit_on_sigterm():
    """Turn SIGTERM into SystemExit, so a killed script still cleans up its
    temporary files (scripts call this under ``__main__``)."""
    import signal

    def stop(signum, frame):
        raise SystemExit('error: stopped by signal {}'.format(signum))
    signal.signal(signal.SIGTERM, stop)


def make_temp_dir(final_path):
    """A hidden temporary folder beside ``final_path``, with the usual
    permissions (mkdtemp's are private)."""
    parent = os.path.dirname(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix='.' + os.path.basename(final_path) + '.',
                           dir=parent)
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


def save_atomic(path, write, mode='wb'):
    """Write a file through ``write(fileobj)`` into a temporary file beside
    it, then rename: an interrupted run leaves no half-written file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                               prefix='.' + os.path.basename(path) + '.')
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def save_json(path, obj):
    """Atomically write ``obj`` as indented JSON."""
    save_atomic(path, lambda f: json.dump(obj, f, indent=2), mode='w')


def add_device_args(parser):
    """``--device`` (Chainer specifier) and ``--gpu`` (the original's alias)."""
    parser.add_argument('--device', default='@numpy',
                        help='Chainer device: @numpy (CPU, also -1), '
                             '@cupy:0 or 0 (GPU 0), @intel64')
    parser.add_argument('--gpu', '-g', type=int, default=None,
                        help='deprecated alias: GPU id, negative for CPU')


def device_from_args(args):
    """The Chainer device named by ``--device`` / ``--gpu``."""
    spec = args.device
    if args.gpu is not None:
        spec = '@cupy:{}'.format(args.gpu) if args.gpu >= 0 else '@numpy'
    if isinstance(spec, str) and spec.lstrip('-').isdigit():
        spec = int(spec)
    if spec == -1 or (isinstance(spec, int) and spec < 0):
        spec = '@numpy'
    try:
        return chainer.get_device(spec)
    except Exception as e:
        raise UserError('cannot use device {!r}: {}'.format(spec, e))


def normalize_text(text):
    return text.strip().lower()


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


# ---------------------------------------------------------------- vectors

class VectorsFormatError(UserError):
    """A word-vector file line that cannot be parsed."""


def _open_text(path):
    if str(path).endswith('.gz'):
        return io.TextIOWrapper(gzip.open(path, 'rb'), encoding='utf-8',
                                errors='ignore')
    return io.open(path, encoding='utf-8', errors='ignore')


def _is_header(fields):
    return len(fields) == 2 and all(f.isdigit() for f in fields)


def load_word_vectors(path, vocab, rng=None, scale=0.25):
    """Read GloVe / word2vec / fastText text vectors for a vocabulary.

    The file is streamed line by line; only the rows of words in ``vocab``
    are kept, written straight into one (V, D) matrix, so a 400k-word file
    never sits in memory. A first line ``N D`` (word2vec, fastText) is
    recognised as a header; GloVe files have none. Every line's field count
    is checked; values are parsed for vocabulary words only.

    Args:
        path (str): text file, plain or ``.gz``.
        vocab (dict): token -> id.
        rng (numpy.random.RandomState): for the rows of uncovered words,
            drawn from U(-scale, scale) as the model's own initialiser.

    Returns:
        tuple: ``(matrix, covered)``: a (V, D) float32 array and a (V,)
        bool array that is True for rows read from the file.

    Raises:
        VectorsFormatError: naming the file and line number.
    """
    rng = rng if rng is not None else numpy.random.RandomState(0)
    matrix = covered = None
    dim = None
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.rstrip().split(' ')
            if lineno == 1 and _is_header(fields):
                continue
            if fields == ['']:
                continue
            if dim is None:
                dim = len(fields) - 1
                if dim < 1:
                    raise VectorsFormatError(
                        '{}:{}: expected "word v1 ... vD", got {!r}'.format(
                            path, lineno, line[:60]))
                matrix = rng.uniform(-scale, scale, (len(vocab), dim))
                matrix = matrix.astype(numpy.float32)
                covered = numpy.zeros(len(vocab), bool)
            if len(fields) != dim + 1:
                raise VectorsFormatError(
                    '{}:{}: expected {} values after the word, found {}'
                    .format(path, lineno, dim, len(fields) - 1))
            index = vocab.get(fields[0])
            if index is None or covered[index]:
                continue
            try:
                matrix[index] = numpy.array(fields[1:], numpy.float32)
            except ValueError:
                raise VectorsFormatError('{}:{}: a value is not a number'
                                         .format(path, lineno)) from None
            covered[index] = True
    if matrix is None:
        raise VectorsFormatError('{}: no vectors in file'.format(path))
    return matrix, covered


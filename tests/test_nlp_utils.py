import gzip
import os

import numpy
import pytest

import nlp_utils


def test_vocab_ranks_by_frequency_and_drops_rare_words():
    vocab = nlp_utils.make_vocab([['a', 'b', 'a'], ['c', 'b', 'a'], ['d']])
    assert vocab == {'<eos>': 0, '<unk>': 1, 'a': 2, 'b': 3}


def test_vocab_respects_size_cap():
    vocab = nlp_utils.make_vocab([['a', 'b', 'c'] * 3], max_vocab_size=4)
    assert len(vocab) == 4 and 'c' not in vocab


def test_make_array_maps_unknown_and_appends_eos():
    vocab = {'<eos>': 0, '<unk>': 1, 'good': 2}
    arr = nlp_utils.make_array(['good', 'zzz'], vocab)
    assert arr.dtype == numpy.int32 and arr.tolist() == [2, 1, 0]


def test_split_text_char_based():
    assert nlp_utils.split_text('a b', char_based=True) == ['a', ' ', 'b']


def test_convert_seq_sentences_and_pairs():
    vocab = {'<eos>': 0, '<unk>': 1, 'a': 2}
    data = nlp_utils.transform_to_array([((['a'],), 1), ((['a', 'a'],), 0)],
                                        vocab)
    batch = nlp_utils.convert_seq(data)
    assert [x.tolist() for x in batch['xs']] == [[2, 0], [2, 2, 0]]
    assert batch['ys'].tolist() == [1, 0]
    pairs = nlp_utils.transform_to_array([((['a'], ['a', 'a']), 2)], vocab)
    batch = nlp_utils.convert_seq(pairs)
    (p, h), = batch['xs']
    assert p.tolist() == [2, 0] and h.tolist() == [2, 2, 0]


VOCAB = {'<eos>': 0, '<unk>': 1, 'good': 2, 'bad': 3, 'plot': 4}


def write(path, text, gz=False):
    opener = gzip.open if gz else open
    with opener(path, 'wt') as f:
        f.write(text)
    return str(path)


@pytest.mark.parametrize('header,gz', [(False, False), (True, False),
                                       (False, True), (True, True)])
def test_vectors_glove_and_word2vec_formats(tmp_path, header, gz):
    body = 'good 1 2 3\nzebra 0 0 0\nbad -1 -2 -3\n'
    text = ('3 3\n' if header else '') + body
    path = write(tmp_path / ('v.txt.gz' if gz else 'v.txt'), text, gz)
    vectors = nlp_utils.load_word_vectors(path, VOCAB)
    matrix, covered = vectors.matrix, vectors.covered
    assert matrix.shape == (5, 3) and matrix.dtype == numpy.float32
    assert matrix[2].tolist() == [1, 2, 3] and matrix[3].tolist() == [-1, -2, -3]
    assert covered.tolist() == [False, False, True, True, False]
    assert numpy.abs(matrix[4]).max() <= 0.25  # random init, not the file


def test_vectors_corrupt_line_reports_line_number(tmp_path):
    path = write(tmp_path / 'v.txt', 'good 1 2 3\nbad 1 2\n')
    with pytest.raises(nlp_utils.VectorsFormatError, match=r'v.txt:2:'):
        nlp_utils.load_word_vectors(path, VOCAB)
    path = write(tmp_path / 'w.txt', '2 3\ngood 1 2 3\nbad 1 x 3\n')
    with pytest.raises(nlp_utils.VectorsFormatError, match=r'w.txt:3:.*number'):
        nlp_utils.load_word_vectors(path, VOCAB)


def test_vectors_real_glove(real_data):
    path = os.path.join(real_data, 'glove', 'glove.6B.50d.shared-vocab.txt.gz')
    vocab = {'<eos>': 0, '<unk>': 1, 'the': 2, 'qwxzvbn': 3}
    vectors = nlp_utils.load_word_vectors(path, vocab)
    matrix, covered = vectors.matrix, vectors.covered
    assert matrix.shape == (4, 50) and vectors.duplicates == []
    assert covered.tolist() == [False, False, True, False]
    numpy.testing.assert_allclose(matrix[2, :3], [0.418, 0.24968, -0.41242])


def test_vectors_nan_duplicates_and_broken_files(tmp_path):
    path = write(tmp_path / 'v.txt', 'good 1 2 3\nbad nan 0 1\n')
    with pytest.raises(nlp_utils.VectorsFormatError,
                       match=r"v.txt:2: the vector holds nan"):
        nlp_utils.load_word_vectors(path, VOCAB)
    path = write(tmp_path / 'd.txt', 'good 1 2 3\nplot 0 0 0\ngood 9 9 9\n')
    vectors = nlp_utils.load_word_vectors(path, VOCAB)
    assert vectors.matrix[2].tolist() == [1, 2, 3]   # the first is kept
    assert vectors.duplicates == [('good', 1, 3)]
    fake = tmp_path / 'fake.txt.gz'
    fake.write_text('good 1 2 3\n')                   # not gzip at all
    with pytest.raises(nlp_utils.VectorsFormatError, match='fake.txt.gz: '
                                                           'unreadable'):
        nlp_utils.load_word_vectors(str(fake), VOCAB)
    full = write(tmp_path / 'full.txt.gz', 'good 1 2 3\n' * 2000, gz=True)
    cut = tmp_path / 'cut.txt.gz'
    cut.write_bytes(open(full, 'rb').read()[:60])   # a truncated download
    with pytest.raises(nlp_utils.VectorsFormatError, match='cut.txt.gz: '
                                                           'unreadable'):
        nlp_utils.load_word_vectors(str(cut), VOCAB)
    for missing in (str(tmp_path / 'nope.txt'), str(tmp_path)):
        with pytest.raises(nlp_utils.VectorsFormatError,
                           match='no such file|is a folder'):
            nlp_utils.load_word_vectors(missing, VOCAB)


def test_vocab_keeps_special_ids_when_the_text_spells_them():
    vocab = nlp_utils.make_vocab([['<unk>', 'a', '<eos>']] * 3)
    assert vocab == {'<eos>': 0, '<unk>': 1, 'a': 2}
    assert sorted(vocab.values()) == list(range(len(vocab)))


def test_text_that_cannot_be_utf8_is_replaced():
    assert nlp_utils.normalize_text(' A\ud800b ') == 'a?b'
    'a?b'.encode('utf-8')

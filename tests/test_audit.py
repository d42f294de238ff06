"""The training-set audit (``run_dknn.py --audit-train``, toolkit/audit.py):
planted label flips come first, an example never votes for itself (nor do
copies of its text), the files it writes, and its errors."""
import json
import os
import re
import shutil

import numpy
import pytest

import dknn
import nets
import run_dknn
import text_datasets
import train_text_classifier
from conftest import USER_DATA, synthetic_lines
from toolkit import audit


class FakeModel:
    layer_names = ['h1', 'h2']
    n_class = 2


def acts(layers, labels):
    n = len(labels)
    return nets.Activations(numpy.zeros((n, 2), 'f'), layers,
                            numpy.asarray(labels, numpy.int32))


def clusters(n, rng, labels=None):
    """Two well-separated clusters in two layers: (layers, true labels)."""
    labels = numpy.arange(n) % 2 if labels is None else labels
    layers = {name: (rng.randn(n, 3) + 8 * labels[:, None]).astype('f')
              for name in FakeModel.layer_names}
    return layers, labels


def fitted(train, calib, k=5, layers='all'):
    head = dknn.DkNN(FakeModel(), dknn.Settings(k=k, layers=layers,
                                                backend='brute'))
    return head.fit(train).calibrate(calib)


# ------------------------------------------------------------ the algorithm

def test_planted_flips_come_first_with_the_true_label_suggested():
    rng = numpy.random.RandomState(0)
    layers, truth = clusters(60, rng)
    given = truth.copy()
    flipped = [4, 17, 38]
    given[flipped] = 1 - given[flipped]
    calib = acts(*clusters(30, rng))
    train = acts(layers, given)
    found = audit.audit_activations(fitted(train, calib), train,
                                    numpy.arange(60))
    assert sorted(found.order[:3]) == flipped
    assert (found.p[flipped] == 0).all()
    assert found.share[flipped].max() < found.share[found.order[3:]].min()
    assert (found.out.pred[flipped] == truth[flipped]).all()
    assert (found.out.pred == truth).all()
    # k x layers votes per example
    assert (found.out.counts.sum(axis=1) == 10).all()


def brute_others(points, group, k):
    """Reference: each row's k nearest points outside its group."""
    d = numpy.sqrt(((points[:, None].astype(numpy.float64) -
                     points[None]) ** 2).sum(-1))
    d[group[:, None] == group[None]] = numpy.inf
    return numpy.array([numpy.lexsort((numpy.arange(len(row)), row))[:k]
                        for row in d])


def test_an_example_never_votes_for_itself_nor_do_its_copies():
    rng = numpy.random.RandomState(1)
    points = rng.randn(40, 4).astype('f')
    group = numpy.arange(40)
    points[[5, 9, 30]] = points[2]        # three copies of text 2
    group[[5, 9, 30]] = 2
    points[11] = points[12]               # same point, different texts
    train = acts({'h1': points, 'h2': points}, numpy.arange(40) % 2)
    head = dknn.DkNN(FakeModel(), dknn.Settings(k=6, layers=['h1'],
                                                backend='brute')).fit(train)
    found = head.search_excluding(train.layers, numpy.arange(40),
                                  group).neighbours
    idx, dist = found['h1'].indices, found['h1'].distances
    numpy.testing.assert_array_equal(idx, brute_others(points, group, 6))
    for i in range(40):
        assert not set(idx[i]) & set(numpy.flatnonzero(group == group[i]))
    assert 12 in idx[11] and 11 in idx[12]   # another text still votes
    assert (numpy.diff(dist, axis=1) >= 0).all()


def test_self_votes_would_hide_an_isolated_mislabel():
    """k = 1: each point's nearest point is itself; left out, the
    mislabelled one is outvoted by its true neighbour."""
    points = numpy.array([[0.], [0.1], [0.2], [5.], [5.1], [5.2]], 'f')
    layers = {'h1': points, 'h2': points}
    train = acts(layers, [0, 0, 1, 1, 1, 1])     # example 2 is mislabelled
    calib = acts({'h1': points[[0, 3]], 'h2': points[[0, 3]]}, [0, 1])
    found = audit.audit_activations(fitted(train, calib, k=1, layers=['h1']),
                                    train, numpy.arange(6))
    assert found.order[0] == 2 and found.p[2] == 0
    assert found.out.neighbours['h1'].indices[:, 0].tolist() == \
        [1, 0, 1, 4, 3, 4]


def test_duplicate_groups_compare_token_ids_of_every_part():
    a, b = numpy.array([3, 4], numpy.int32), numpy.array([3, 5], numpy.int32)
    y = numpy.array([0], numpy.int32)
    single = [(a, y), (b, y), (a.copy(), numpy.array([1], numpy.int32))]
    assert audit.duplicate_groups(single).tolist() == [0, 1, 0]
    pairs = [((a, b), y), ((a, a), y), ((a.copy(), b.copy()), y)]
    assert audit.duplicate_groups(pairs).tolist() == [0, 1, 0]


def test_k_must_leave_enough_other_examples():
    group = numpy.array([0, 0, 0, 1, 2, 3])
    points = numpy.random.RandomState(0).randn(6, 2).astype('f')
    train = acts({'h1': points, 'h2': points}, [0, 1, 0, 1, 0, 1])

    def search(k):
        head = dknn.DkNN(FakeModel(), dknn.Settings(
            k=k, layers=['h1'], backend='brute')).fit(train)
        return head.search_excluding(train.layers, numpy.arange(6), group)
    assert search(3).counts.sum(axis=1).tolist() == [3] * 6
    with pytest.raises(dknn.DkNNError, match='k=4 is too large.*its 2 copies'
                                             '.*lower --k to 3'):
        search(4)


def test_copies_are_searched_once_per_group():
    """m copies of one text cost one search of k + m neighbours, not m of
    them (the audit of 40,000 copies was quadratic)."""
    n_copies, n_other, k = 3000, 200, 5
    rng = numpy.random.RandomState(0)
    points = numpy.concatenate([numpy.zeros((n_copies, 3), 'f'),
                                rng.randn(n_other, 3).astype('f') + 1])
    group = numpy.concatenate([numpy.zeros(n_copies, int),
                               1 + numpy.arange(n_other)])
    train = acts({'h1': points, 'h2': points},
                 numpy.arange(len(points)) % 2)
    head = dknn.DkNN(FakeModel(), dknn.Settings(k=k, layers=['h1'],
                                                backend='brute')).fit(train)
    asked = []
    query = head.indices['h1'].query_by_label
    head.indices['h1'].query_by_label = lambda x, kk: asked.append(
        (len(x), kk)) or query(x, kk)
    found = head.search_excluding(train.layers, numpy.arange(len(points)),
                                  group).neighbours
    fetched = sum(rows * kk for rows, kk in asked)
    assert fetched <= (n_copies + k) + n_other * (k + 1)
    idx = found['h1'].indices
    assert (idx[:n_copies] >= n_copies).all()   # no copy votes
    assert (idx[:n_copies] == idx[0]).all()


def test_ranking_breaks_ties_by_share_then_index():
    p = numpy.array([0.5, 0.0, 0.0, 0.5, 0.0])
    share = numpy.array([0.1, 0.4, 0.2, 0.1, 0.2])
    assert audit.suspicion_order(p, share).tolist() == [2, 4, 1, 0, 3]


# -------------------------------------------------------- the command line

def flipped_data(folder, n=80, n_calib=20, seed=0):
    """A tiny stsa.binary look-alike with four training labels flipped
    (never a calibration example's); the markup line tests escaping.
    Returns (data folder, flipped positions in the training split)."""
    lines = synthetic_lines(n, 0)
    lines.append('1 good <b>fun</b> "superb" &amp; <script>')
    data = str(folder)
    os.makedirs(data)
    for split, rows in (('train', lines), ('dev', synthetic_lines(12, 1)),
                        ('test', synthetic_lines(16, 2))):
        with open(os.path.join(data, 'stsa.binary.' + split), 'w') as f:
            f.write('\n'.join(rows) + '\n')
    calib = set(text_datasets.get_dataset(
        'stsa.binary', data, seed=seed, n_calib=n_calib).calib_indices)
    pool = [i for i in range(len(lines)) if i not in calib]
    flip = [pool[j] for j in (3, 20, 33, 50)]
    for i in flip:
        y, text = lines[i].split(' ', 1)
        lines[i] = '{} {}'.format(1 - int(y), text)
    with open(os.path.join(data, 'stsa.binary.train'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return data, [pool.index(i) for i in flip]


@pytest.fixture(scope='module')
def flipped_run(tmp_path_factory):
    base = tmp_path_factory.mktemp('audit')
    data, flipped = flipped_data(base / 'data')
    train_text_classifier.main([
        '--dataset', 'stsa.binary', '--model', 'cnn', '--unit', '16',
        '--layer', '1', '--epoch', '25', '--dropout', '0', '--batchsize', '8',
        '--n-calib', '20', '--data-dir', data, '--out', str(base / 'r')])
    return str(base / 'r' / 'stsa.binary_cnn' / 'args.json'), flipped, data


def test_audit_ranks_the_planted_flips_first(flipped_run, capsys):
    setup, flipped, data = flipped_run
    record = run_dknn.main(['--model-setup', setup, '--k', '5',
                            '--data-dir', data, '--audit-train'])
    top = record['entries'][:len(flipped)]
    assert sorted(e['index'] for e in top) == sorted(flipped)
    for e in top:
        assert e['suggested'] != e['label'] and e['score'] <= 0.05
        assert e['source'].endswith('stsa.binary.train')
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r'audit: 61 training examples; \d+ flagged .*; \d+ '
                    r'with p < 0.05 for '
                    r'their own label; suggested label differs for \d+; '
                    r'wrote train_audit.html, train_audit.png, '
                    r'train_audit.json in ', line)


def test_json_holds_every_example_in_rank_order(flipped_run):
    setup, _, data = flipped_run
    run_dknn.main(['--model-setup', setup, '--k', '5', '--layers', 'all',
                   '--data-dir', data, '--audit-train', '--audit-top', '3'])
    folder = os.path.dirname(setup)
    record = json.load(open(os.path.join(folder, 'train_audit.json')))
    entries = record['entries']
    assert sorted(e['index'] for e in entries) == list(range(61))
    keys = [(e['score'], e['share'], e['index']) for e in entries]
    assert keys == sorted(keys)
    names = record['label_names']
    lines = open(entries[0]['source']).read().splitlines()
    for e in entries:
        assert e['label'] in names and e['suggested'] in names
        assert sum(e['counts'].values()) == 5 * 2     # k x layers
        assert e['share'] == e['counts'][e['label']] / 10
        assert lines[e['line'] - 1].split(' ', 1)[1] == e['text']
    s = record['summary']
    assert s['below_alpha'] == sum(e['score'] < 0.05 for e in entries)
    assert s['suggested_differs'] == sum(e['suggested'] != e['label']
                                         for e in entries)
    assert record['settings']['dknn']['k'] == 5
    assert set(record['files']) >= {'train_audit.html', 'train_audit.png'}
    page = open(os.path.join(folder, 'train_audit.html')).read()
    assert page.count('<tr>') == 1 + 3


def test_html_escapes_every_token(flipped_run):
    setup, _, data = flipped_run
    record = run_dknn.main(['--model-setup', setup, '--k', '5',
                            '--data-dir', data, '--audit-train',
                            '--audit-top', '61'])
    page = open(os.path.join(os.path.dirname(setup),
                             'train_audit.html')).read()
    marked = [e for e in record['entries'] if '<script>' in e['text']]
    assert len(marked) == 1
    assert '<script>' not in page and '<b>fun' not in page
    assert '&lt;b&gt;fun&lt;/b&gt; &quot;superb&quot; &amp;amp; ' \
        '&lt;script&gt;' in page
    assert 'nearest training examples' in page and 'relevance' in page


def test_audit_builds_the_cache_then_reuses_it(run_copy, monkeypatch):
    folder = os.path.dirname(run_copy)
    assert not os.path.exists(os.path.join(folder, 'activations'))
    first = run_dknn.main(['--model-setup', run_copy, '--k', '5',
                           '--audit-train'])
    for split in ('train', 'calib'):
        assert os.path.isfile(os.path.join(folder, 'activations',
                                           split + '.json'))

    def no_forward(*args, **kwargs):
        raise AssertionError('the cache was not used')
    monkeypatch.setattr(nets, 'predict_dataset', no_forward)
    again = run_dknn.main(['--model-setup', run_copy, '--k', '5',
                           '--audit-train'])
    assert [e['index'] for e in again['entries']] == \
        [e['index'] for e in first['entries']]


def test_flags_out_of_range_end_in_one_error_line(run_copy, tmp_path,
                                                  capsys):
    base = ['--model-setup', run_copy, '--audit-train']
    with pytest.raises(SystemExit, match='error: k=51 is larger than the 50 '
                                         'training examples'):
        run_dknn.main(base + ['--k', '51'])
    with pytest.raises(SystemExit, match='error: k=49 is too large to audit '
                                         '50 training examples'):
        run_dknn.main(base + ['--k', '49'])
    with pytest.raises(SystemExit, match='error: unknown layer nope'):
        run_dknn.main(base + ['--layers', 'nope'])
    with pytest.raises(SystemExit, match='error: --audit-train runs on its '
                                         'own; drop --selective'):
        run_dknn.main(base + ['--selective'])
    with pytest.raises(SystemExit) as e:
        run_dknn.main(base + ['--audit-top', '0'])
    assert e.value.code == 2
    assert 'error: argument --audit-top: must be an integer in [1, 1000000], ' \
        'got 0' in \
        capsys.readouterr().err
    assert not os.path.exists(os.path.join(os.path.dirname(run_copy),
                                           'train_audit.json'))


def test_a_run_without_calibration_set_is_refused(tiny_data, tmp_path):
    train_text_classifier.main([
        '--dataset', 'stsa.binary', '--unit', '9', '--layer', '1',
        '--epoch', '1', '--n-calib', '0', '--data-dir', tiny_data,
        '--out', str(tmp_path)])
    with pytest.raises(SystemExit, match='error: the calibration set is '
                                         'empty'):
        run_dknn.main(['--model-setup', str(tmp_path / 'stsa.binary_cnn' /
                                            'args.json'), '--k', '3',
                       '--audit-train'])


# ------------------------------------------------- pair and char models

def test_pair_model(tmp_path):
    data = str(tmp_path / 'nli')
    shutil.copytree(os.path.join(USER_DATA, 'nli'), data)
    train_text_classifier.main([
        '--dataset', data, '--model', 'cnn', '--unit', '9', '--layer', '1',
        '--epoch', '2', '--batchsize', '8', '--n-calib', '10',
        '--out', str(tmp_path)])
    setup = str(tmp_path / 'nli_cnn' / 'args.json')
    record = run_dknn.main(['--model-setup', setup, '--k', '3',
                            '--data-dir', data, '--layers', 'all',
                            '--audit-train'])
    assert len(record['entries']) == 20
    raw = {}
    for i, line in enumerate(open(os.path.join(data, 'train.jsonl')), 1):
        raw[i] = json.loads(line)
    for e in record['entries']:
        assert 'text' not in e
        assert e['source'].endswith('train.jsonl')
        assert e['premise'] == raw[e['line']]['premise']
        assert e['hypothesis'] == raw[e['line']]['hypothesis']
        assert e['label'] == raw[e['line']]['label']
    page = open(str(tmp_path / 'nli_cnn' / 'train_audit.html')).read()
    assert page.count('premise: ') >= 20 * 2   # each example and neighbours


def test_char_model(tiny_data, tmp_path):
    train_text_classifier.main([
        '--dataset', 'stsa.binary', '--char-based', '--unit', '9',
        '--layer', '1', '--epoch', '1', '--batchsize', '8', '--n-calib', '10',
        '--data-dir', tiny_data, '--out', str(tmp_path)])
    setup = str(tmp_path / 'stsa.binary_cnn_char' / 'args.json')
    record = run_dknn.main(['--model-setup', setup, '--k', '3',
                            '--audit-train'])
    lines = open(os.path.join(tiny_data, 'stsa.binary.train')).read() \
        .splitlines()
    for e in record['entries']:
        assert e['text'] == lines[e['line'] - 1].split(' ', 1)[1]


def test_the_flagged_list_does_not_rest_on_the_calibration_set():
    """Planted flips are flagged, about as many as were planted, whether
    the calibration examples are clean or as noisy as the training set
    (their p-values move; the confident joint does not read them)."""
    rng = numpy.random.RandomState(3)
    layers, truth = clusters(200, rng)
    given = truth.copy()
    flipped = rng.choice(200, 30, replace=False)
    given[flipped] = 1 - given[flipped]
    train = acts(layers, given)
    clean_layers, clean_truth = clusters(60, rng)
    noisy = clean_truth.copy()
    noisy[:15] = 1 - noisy[:15]
    got = []
    for calib_labels in (clean_truth, noisy):
        head = fitted(train, acts(clean_layers, calib_labels), k=10)
        got.append(audit.audit_activations(head, train,
                                           numpy.arange(200)).flagged)
    numpy.testing.assert_array_equal(got[0], got[1])
    hits = got[0][flipped].sum()
    assert hits >= 27 and got[0].sum() <= 36

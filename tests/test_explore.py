"""The explorer (explore.py): its JSON API on tiny runs (word, char, pair),
bad input, what a hostile client can and cannot reach, time limits, a load
test, and the page in a real headless browser.

Skipped as a whole where uvicorn is missing: ``make install-explore`` adds
it (CI installs it). The browser test also needs Chromium and its driver
(Debian: ``apt-get install chromium chromium-driver``) and skips without
them; ``make test-browser`` runs it alone and saves the screenshot
docs/explorer.png (from the ``make train`` run when there is one).
"""
import concurrent.futures
import json
import math
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy
import pytest

from conftest import ROOT, USER_DATA, real_data_dir

pytest.importorskip('uvicorn', reason='the explorer extra is not '
                    'installed: make install-explore')

import dknn
from toolkit import attribution
from toolkit import conformal
import nlp_utils
import train_text_classifier
from toolkit import explore
from toolkit import explore_api
from toolkit import runs

K = 5
SENTENCE = 'good great movie , not dull'


def explorer_for(setup_path, k=K, data_dir=None, scoring='conformity',
                 **kw):
    return explore.Explorer(runs.load(setup_path, data_dir=data_dir),
                            dknn.Settings(k=k, scoring=scoring), **kw)


@pytest.fixture(scope='module')
def explorer(tiny_run):
    return explorer_for(tiny_run)


@pytest.fixture(scope='module')
def server(explorer):
    """The whole app (API and page) on 127.0.0.1, in this process."""
    with explore_api.Background(explore_api.build_app(explorer)) as url:
        yield url


def fetch(address):
    """(status, parsed JSON or raw bytes) of a GET of ``address``, sent as
    it is (its bytes not re-encoded)."""
    try:
        with urllib.request.urlopen(address, timeout=60) as r:
            body, status, kind = r.read(), r.status, r.headers.get(
                'content-type', '')
    except urllib.error.HTTPError as e:
        body, status, kind = e.read(), e.code, e.headers.get(
            'content-type', '')
    return status, json.loads(body) if 'json' in kind else body


def get(url, path, **params):
    """A GET with ``params`` percent-encoded."""
    return fetch('{}{}?{}'.format(url, path, urllib.parse.urlencode(params)))


def raw_get(url, path_and_query):
    return fetch(url + path_and_query)


def same(a, b, path=''):
    """Equal payloads (floats to 1e-9), ``seconds`` ignored."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            if key != 'seconds':
                same(a[key], b[key], path + '/' + key)
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, '{}/{}'.format(path, i))
    elif isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), path
    else:
        assert a == b, path


# ------------------------------------------------------------------ the API

def test_explain_answers_every_field(server, explorer):
    status, p = get(server, '/api/explain', text=SENTENCE)
    assert status == 200
    names = explorer.run.label_names
    assert p['labels'] == names == ['negative', 'positive']
    assert p['prediction'] in names and p['dknn_prediction'] in names
    assert p['tokens'] == SENTENCE.split()
    assert set(p['importance']) == {'dknn', 'softmax', 'calibrated', 'grad'}
    for values in p['importance'].values():
        assert len(values) == len(p['tokens'])
    assert set(p['confidence']) >= {'softmax', 'temperature_scaled',
                                    'dknn_credibility', 'dknn_confidence'}
    assert all(0 <= v <= 1 for v in p['confidence'].values())
    assert set(p['prediction_set']) <= set(names)
    assert list(p['neighbours']) == [explorer.run.model.layer_names[-1]]
    for rows in p['neighbours'].values():
        assert len(rows) == K
        assert all(r['label'] in names and r['text'] for r in rows)
        assert [r['distance'] for r in rows] == sorted(
            r['distance'] for r in rows)
    counts = p['neighbour_counts']['all layers']
    assert sum(counts.values()) == K


def test_importances_equal_interpretations(server, tiny_run):
    """The API's numbers are interpretations.py's for the same input."""
    status, p = get(server, '/api/explain', text=SENTENCE, k=3,
                    layers='all')
    assert status == 200 and p['settings']['k'] == 3
    run = runs.load(tiny_run)
    ex = attribution.Explainer(run.model, run, settings=dknn.Settings(
        k=3, layers='all'))
    x, _ = nlp_utils.to_example((SENTENCE.split(),), 0, run.vocab)
    for method in attribution.INTERPRETERS:
        att = attribution.explain(ex, [x], method)[0]
        numpy.testing.assert_allclose(p['importance'][method],
                                      att.importance, rtol=1e-6, atol=1e-9)
        assert p['methods'][method]['label'] == \
            run.label_names[att.prediction]
    logits = ex.logits([x])
    assert p['prediction'] == run.label_names[int(logits.argmax())]


def test_prediction_set_follows_epsilon_and_p_values(server):
    for eps in (0.01, 0.3, 0.9):
        status, p = get(server, '/api/explain', text=SENTENCE, epsilon=eps)
        assert status == 200
        assert p['prediction_set'] == [n for n in p['labels']
                                       if p['probabilities']['p_value'][n]
                                       > eps]


def test_each_rule_answers_with_its_own_numbers(server, explorer):
    """A graded request: the DkNN's numbers are the graded rule's, its set
    comes from graded-conformal p-values, and ``dknn_conformity`` stays the
    share of the neighbours' votes."""
    x, _ = explorer.encode((SENTENCE,))
    _, hidden = explorer.explainer(explorer.settings_for()).forward([x])
    head = explorer.head(explorer.settings_for())
    for rule in explore.RULES:
        status, p = get(server, '/api/explain', text=SENTENCE, rule=rule)
        assert status == 200 and p['settings']['rule'] == rule
        out = head.with_scoring(rule).predict_activations(hidden)
        names = p['labels']
        assert p['confidence']['dknn_credibility'] == pytest.approx(
            float(out.credibility[0]))
        votes = p['neighbour_counts']['all layers']
        assert p['confidence']['dknn_conformity'] == pytest.approx(
            max(votes.values()) / sum(votes.values()))
        assert [p['probabilities']['dknn'][n] for n in names] == \
            pytest.approx(out.scores[0].tolist())
        if rule in dknn.GRADED:   # split-conformal p-values, smoothed
            want = conformal.p_values(dknn.margins(out.distances),
                                      head.calib_alpha)[0]
        else:
            want = conformal.p_values(conformal.dknn_nonconformity(
                out.counts, head.n_votes), head.calib_nonconformity)[0]
        assert [p['probabilities']['p_value'][n] for n in names] == \
            pytest.approx(want.tolist())


def test_examples_orders(server, explorer):
    status, r = get(server, '/api/examples', order='errors', limit=100)
    assert status == 200 and r['total'] == len(explorer.run.splits.test)
    rows = r['examples']
    assert len(rows) == r['total']
    wrong = [not e['correct'] for e in rows]
    assert wrong == sorted(wrong, reverse=True)   # errors first
    for group in (True, False):
        cred = [e['dknn_credibility'] for e in rows
                if e['correct'] == group]
        assert cred == sorted(cred)
    _, r = get(server, '/api/examples', order='credibility', limit=5)
    cred = [e['dknn_credibility'] for e in r['examples']]
    assert len(cred) == 5 and cred == sorted(cred)
    _, r = get(server, '/api/examples', order='index', limit=3)
    assert [e['index'] for e in r['examples']] == [0, 1, 2]
    assert all(e['label'] in explorer.run.label_names for e in r['examples'])


def test_reduce_keeps_the_prediction(server):
    status, r = get(server, '/api/reduce', text=SENTENCE)
    assert status == 200
    assert len(r['reduced_tokens']) == len(r['tokens']) - len(r['removed'])
    assert 1 <= len(r['reduced_tokens']) <= len(r['tokens'])
    _, p = get(server, '/api/explain', text=r['reduced_text'])
    assert p['prediction'] == r['prediction']
    assert set(r['original']) == set(r['reduced']) >= {
        'softmax', 'calibrated', 'conformity', 'conformal_credibility'}


def test_export_html_and_png(server):
    status, page = get(server, '/api/export', text='good <b>x</b> movie',
                       format='html')
    assert status == 200 and page.startswith(b'<!DOCTYPE html>')
    assert b'&lt;b&gt;x&lt;/b&gt;' in page and b'<b>x</b>' not in page
    assert b'http' not in page   # self-contained
    assert b'<h2>Where the input sits</h2><svg' in page   # the map too
    assert page.count(b'<circle') >= K
    status, png = get(server, '/api/export', text=SENTENCE, format='png',
                      index=0)
    assert status == 200 and png.startswith(b'\x89PNG')
    import io
    from PIL import Image
    assert Image.open(io.BytesIO(png)).size[1] > 400   # heatmap and map


def test_audit_absent_present_and_malformed(run_copy):
    ex = explorer_for(run_copy, k=3)
    assert ex.audit([0])['available'] is False
    assert 'no train_audit.json' in ex.audit([0])['message']
    path = os.path.join(os.path.dirname(run_copy), 'train_audit.json')
    with open(path, 'w') as f:
        json.dump({'entries': [{'index': 2, 'issue': 'label noise?'}]}, f)
    a = ex.audit([2, 3])
    assert a['available'] and a['entries'] == {
        '2': {'index': 2, 'issue': 'label noise?'}, '3': None}
    with open(path, 'w') as f:
        f.write('[1, 2')
    assert ex.audit([2])['available'] is False


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize('query,status,words', [
    ('text=', 400, 'empty'),
    ('text=%20%20%09', 400, 'empty'),
    ('text=' + '%20'.join(['good'] * 513), 413, 'too long'),
    ('text=' + 'a' * 40000, 413, 'too long'),
    ('text=%ff%fe', 400, 'UTF-8'),
    ('text=good&colour=red', 400, 'unknown parameter'),
    ('text=good&text=bad', 400, 'twice'),
    ('premise=a&hypothesis=b', 400, 'reads text'),
    ('', 400, 'reads text'),
    ('text=good&k=many', 400, 'integer'),
    ('text=good&k=0', 400, 'k must be'),
    ('text=good&epsilon=1.5', 400, 'epsilon'),
    ('text=good&epsilon=nan', 400, 'epsilon'),
    ('text=good&layers=nowhere', 400, 'unknown layer'),
    ('text=good&model_setup=/etc/passwd', 400, 'unknown parameter'),
])
def test_bad_explain_requests_get_a_4xx_and_a_message(server, query, status,
                                                      words):
    got, body = raw_get(server, '/api/explain?' + query)
    assert got == status, body
    assert words in body['error'] and 'Traceback' not in body['error']


@pytest.mark.parametrize('path', [
    '/api/examples?order=random', '/api/examples?limit=0',
    '/api/examples?file=x', '/api/export?text=good&format=../../etc/passwd',
    '/api/export?text=good&index=99999', '/api/reduce?text=good&beam=0',
    '/api/reduce?text=good&method=magic'])
def test_other_bad_requests(server, path):
    status, body = raw_get(server, path)
    assert status == 400 and body['error']


# ---------------------------------------------------- a hostile client

def request(url, path, method='GET', headers=None, body=None):
    """(status, body bytes) of one raw HTTP request, sent as it is."""
    import http.client
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    return r.status, r.read()


FILEDATA = {'path': '/etc/passwd', 'meta': {'_type': 'gradio.FileData'}}


def test_no_route_hands_out_a_file(server, tiny_run, tmp_path):
    """The Gradio FileData read, its file and upload routes, OpenAPI, any
    other method: refused, and no byte of a file comes back."""
    secret = tmp_path / 'secret.txt'
    secret.write_text('SECRET-6f1c')
    targets = [str(secret), os.path.abspath(tiny_run), '/etc/passwd']
    join = json.dumps({'data': [dict(FILEDATA, path=str(secret))],
                       'fn_index': 0, 'session_hash': 'x'}).encode()
    attempts = [
        ('POST', '/gradio_api/queue/join', join),
        ('POST', '/gradio_api/run/predict', join),
        ('POST', '/gradio_api/upload', b'x' * 100000),
        ('POST', '/api/explain', b'text=good'),
        ('PUT', '/api/explain?text=good', None),
        ('GET', '/openapi.json', None), ('GET', '/docs', None),
        ('GET', '/config', None), ('GET', '/gradio_api/info', None),
        ('GET', '/static/../../etc/passwd', None),
        ('GET', '/api/explain?text=' + urllib.parse.quote(json.dumps(
            dict(FILEDATA, path=str(secret)))), None)]
    attempts += [('GET', '/gradio_api/file=' + t, None) for t in targets]
    attempts += [('GET', '/file=' + t, None) for t in targets]
    for method, path, body in attempts:
        status, answer = request(server, path, method, body=body)
        assert b'SECRET-6f1c' not in answer and b'root:' not in answer
        assert path.startswith('/api/explain?') and status == 200 or \
            status in (404, 405), (method, path, status)
    status, _ = request(server, '/api/explain?text=good',
                        headers={'Content-Length': '5'}, body=b'hello')
    assert status == 413


@pytest.mark.parametrize('host', [
    'evil.example', 'evil.example:{port}', '127.0.0.1.evil.example:{port}',
    'localhost:1', '', '[::1]:1', 'a b'])
def test_a_foreign_host_header_is_refused(server, host):
    """DNS rebinding: a page whose name now points at 127.0.0.1 sends its
    own name as Host; only this server's names are answered."""
    port = urllib.parse.urlsplit(server).port
    for path in ('/', '/api/info', '/api/explain?text=good'):
        status, body = request(server, path, headers={
            'Host': host.format(port=port)})
        assert status == 421, (host, path)
        assert b'negative' not in body
    for ok in ('127.0.0.1:{}', 'localhost:{}', 'LOCALHOST:{}'):
        status, _ = request(server, '/api/info',
                            headers={'Host': ok.format(port)})
        assert status == 200


def test_exposing_needs_the_flag_and_a_token(explorer):
    for host in ('0.0.0.0', '', '::', '192.168.1.5', 'example.com',
                 '127.0.0.1\nerror: forged'):
        with pytest.raises(explore.ExploreError):
            explore_api.check_host(host, expose=False)
    assert explore_api.check_host('0.0.0.0', expose=True) == '0.0.0.0'
    app = explore_api.build_app(explorer)
    with explore_api.Background(app) as url:
        port = urllib.parse.urlsplit(url).port
        app.guard = explore_api.Guard('0.0.0.0', port, token='t' * 24)
        assert request(url, '/api/info')[0] == 401
        assert request(url, '/api/info', headers={
            'X-Explorer-Token': 'wrong'})[0] == 401
        assert request(url, '/api/info', headers={
            'X-Explorer-Token': 't' * 24})[0] == 200
        status, _ = request(url, '/?token=' + 't' * 24)
        assert status == 200
        assert request(url, '/api/info', headers={
            'Cookie': 'explorer_token=' + 't' * 24})[0] == 200
        assert request(url, '/api/explain?text=good&token=' + 't' * 24
                       )[0] == 200
        assert request(url, '/api/info', headers={
            'Host': '10.1.2.3:{}'.format(port),
            'X-Explorer-Token': 't' * 24})[0] == 200
        assert request(url, '/api/info', headers={
            'Host': 'rebound.example:{}'.format(port),
            'X-Explorer-Token': 't' * 24})[0] == 421


def test_the_script_refuses_a_public_address_without_expose(tiny_run,
                                                             capsys):
    import explore as script
    for host in ('0.0.0.0', '', '1.2.3.4\nerror: forged'):
        with pytest.raises(SystemExit) as e:
            script.main(['--model-setup', tiny_run, '--host', host])
        assert str(e.value).startswith('error: ')
        assert '\n' not in str(e.value)


def test_heavy_requests_are_bounded_and_the_rest_answers(explorer):
    """A request past its time limit gets 503; while one computes, /api/info
    answers at once and extra waiters are turned away."""
    started, release = threading.Event(), threading.Event()
    app = explore_api.build_app(explorer, time_limit=30, max_waiting=0)
    slow = app.table['explain']

    def hold(q, deadline):
        started.set()
        release.wait(30)
        return slow(q, deadline)
    app.table['explain'] = hold
    with explore_api.Background(app) as url:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(get, url, '/api/explain', text='good')
            assert started.wait(30)
            t = time.time()
            assert get(url, '/api/info')[0] == 200
            assert time.time() - t < 5
            second = pool.submit(get, url, '/api/explain', text='bad')
            time.sleep(0.3)
            third = get(url, '/api/explain', text='fun')
            assert third[0] == 503 and 'busy' in third[1]['error']
            release.set()
            assert first.result()[0] == 200
            assert second.result()[0] == 200
    late = explore_api.build_app(explorer, time_limit=0.2)
    with explore_api.Background(late) as url:
        status, body = get(url, '/api/reduce',
                           text=' '.join(['good', 'bad', 'fun'] * 100),
                           beam=20)
        assert status == 503 and 'time-limit' in body['error']


def test_the_server_writes_no_file(explorer, tmp_path, monkeypatch):
    """Exports are made in memory: no temporary folder is left."""
    monkeypatch.setenv('TMPDIR', str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, 'tempdir', None)
    before = set(os.listdir(explorer.run.folder))
    with explore_api.Background(explore_api.build_app(explorer)) as url:
        for fmt in ('html', 'png'):
            assert get(url, '/api/export', text='good', format=fmt)[0] == 200
        assert request(url, '/')[0] == 200
    assert os.listdir(tmp_path) == []
    assert set(os.listdir(explorer.run.folder)) == before


def test_the_page_is_static_and_strict(server):
    status, page = request(server, '/')
    assert status == 200 and page.startswith(b'<!DOCTYPE html>')
    assert b'negative' not in page   # data arrives as JSON, as text
    assert b'innerHTML' not in page and b'http://' not in page.replace(
        b'http://www.w3.org/2000/svg', b'')
    import http.client
    parts = urllib.parse.urlsplit(server)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    conn.request('GET', '/')
    csp = conn.getresponse().getheader('content-security-policy')
    assert "default-src 'none'" in csp and 'unsafe' not in csp


def test_related_examples_by_each_metric(server, explorer):
    """The default metric is the one the tests chose; l2 gives the DkNN's
    own neighbours; an unknown metric is refused."""
    _, p = get(server, '/api/explain', text=SENTENCE)
    assert p['related']['metric'] == 'grad-cos' == p['settings']['metric']
    assert p['related']['why']
    scores = [e['relevance'] for e in p['related']['examples']]
    assert scores == sorted(scores, reverse=True)
    _, p = get(server, '/api/explain', text=SENTENCE, metric='l2', k=5)
    layer = p['settings']['layers'][-1]
    assert [e['index'] for e in p['related']['examples']][:5] == \
        [n['index'] for n in p['neighbours'][layer]]
    status, body = get(server, '/api/explain', text=SENTENCE, metric='x')
    assert status == 400 and 'metric must be one of' in body['error']


def test_map_places_the_input_among_its_neighbours(server, explorer):
    status, m = get(server, '/api/map', text=SENTENCE, k=4)
    assert status == 200 and m['method'] == 'PCA'
    assert len(m['neighbours']) == 4
    shown = {p['index'] for p in m['points']}
    assert set(m['neighbours']) <= shown
    assert len(m['points']) <= explore.MAP_POINTS
    assert 0 <= m['variance'][1] <= m['variance'][0] <= 1
    _, p = get(server, '/api/explain', text=SENTENCE, k=4)
    layer = p['settings']['layers'][-1]
    assert m['neighbours'] == [n['index'] for n in p['neighbours'][layer]]
    # the input's neighbours are near it on the map too (PCA of 9 units)
    train = explorer.run.forward('train').layers[layer]
    pca = explore.projection.fit(train)
    for q in m['points'][:5]:
        numpy.testing.assert_allclose(pca.transform(train[[q['index']]])[0],
                                      [q['x'], q['y']], atol=1e-9)


def test_max_tokens_is_a_setting(tiny_run):
    ex = explorer_for(tiny_run, max_tokens=3)
    with pytest.raises(explore.ExploreError) as e:
        ex.explain(('good great fun movie',))
    assert e.value.status == 413 and '3 tokens' in str(e.value)
    assert ex.explain(('good great fun',))['tokens'] == ['good', 'great',
                                                         'fun']


# ---------------------------------------------------------------- load test

def rss_mib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) / 1024.0
    return float('nan')


def test_200_requests_from_8_threads(server):
    """Every answer is the one a lone request gets; memory stays flat."""
    words = ['good', 'great', 'fun', 'bad', 'dull', 'awful', 'movie', 'plot']
    rng = numpy.random.RandomState(0)
    sentences = [' '.join(rng.choice(words, rng.randint(1, 12)))
                 for _ in range(20)]
    expected = {s: get(server, '/api/explain', text=s)[1]
                for s in sentences}
    for s in sentences * 2:   # warm every allocation up
        get(server, '/api/explain', text=s)
    before = rss_mib()
    asked = [sentences[i % len(sentences)] for i in range(200)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda s: get(server, '/api/explain', text=s), asked))
    grown = rss_mib() - before
    for s, (status, p) in zip(asked, answers):
        assert status == 200
        same(expected[s], p)
    assert grown < 40, 'RSS grew by {:.1f} MiB'.format(grown)


# ----------------------------------------------------- char and pair models

def test_a_char_model(tmp_path_factory):
    from conftest import TINY_TRAIN, write_tiny_sst
    base = tmp_path_factory.mktemp('char')
    data = write_tiny_sst(base / 'data')
    train_text_classifier.main(TINY_TRAIN + [
        '--model', 'cnn', '--char-based', '--data-dir', data, '--out',
        str(base / 'r'), '--epoch', '8'])   # enough to fit a temperature
    setup = str(base / 'r' / 'stsa.binary_cnn_char' / 'args.json')
    p = explorer_for(setup).explain(('good fun',))
    assert p['tokens'] == list('good fun')
    assert all(len(v) == 8 for v in p['importance'].values())
    assert p['neighbours'][next(iter(p['neighbours']))][0]['text'].count(
        ' ') < 20   # characters joined back into words


def test_a_pair_model(tmp_path):
    data = str(tmp_path / 'nli')
    shutil.copytree(os.path.join(USER_DATA, 'nli'), data)
    train_text_classifier.main(['--dataset', data, '--out', str(tmp_path),
                                '--model', 'cnn', '--unit', '9', '--layer',
                                '1', '--epoch', '1', '--batchsize', '8',
                                '--n-calib', '10'])
    ex = explorer_for(str(tmp_path / 'nli_cnn' / 'args.json'), k=3)
    with explore_api.Background(explore_api.build_app(ex)) as url:
        status, p = get(url, '/api/explain', premise='a man is outside',
                        hypothesis='a person sleeps')
        assert status == 200
        assert p['tokens'] == ['a', 'person', 'sleeps']   # the hypothesis
        assert p['parts'][0] == ['a', 'man', 'is', 'outside']
        assert p['labels'] == ['contradiction', 'entailment', 'neutral']
        assert ' / ' in p['neighbours'][next(iter(p['neighbours']))][0][
            'text']
        status, body = get(url, '/api/explain', text='a person sleeps')
        assert status == 400 and 'premise and hypothesis' in body['error']
        status, body = get(url, '/api/explain', premise='a man',
                           hypothesis=' ')
        assert status == 400 and 'hypothesis is empty' in body['error']
        status, r = get(url, '/api/examples', limit=2)
        assert status == 200 and len(r['examples'][0]['texts']) == 2


def test_own_csv_from_another_folder_without_data_dir(tmp_path,
                                                     monkeypatch):
    """explore.py on a run of your own CSV finds the data by the path the
    run recorded, from any working directory, with no --data-dir."""
    import explore as script
    data = str(tmp_path / 'reviews.csv')
    shutil.copy(os.path.join(USER_DATA, 'reviews.csv'), data)
    train_text_classifier.main(['--dataset', data, '--out', str(tmp_path),
                                '--model', 'cnn', '--unit', '9', '--layer',
                                '1', '--epoch', '1', '--batchsize', '8',
                                '--n-calib', '10'])
    monkeypatch.delenv('DKNN_DATA_DIR')
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(str(tmp_path / 'elsewhere'))
    args = script.build_parser().parse_args([
        '--model-setup', str(tmp_path / 'reviews_cnn' / 'args.json'),
        '--k', '3'])
    ex = explore.Explorer(runs.from_args(args), cli_settings(args))
    with explore_api.Background(explore_api.build_app(ex)) as url:
        status, p = get(url, '/api/explain', text='a good film')
    assert status == 200 and p['labels'] == ['neg', 'pos']
    assert p['settings']['rule'] == explore.DEFAULT_RULE


def cli_settings(args):
    from toolkit import cli
    return cli.dknn_settings(args)


# ------------------------------------------------------------- the browser

def browser_binaries():
    chrome = next((shutil.which(n) for n in ('chromium', 'chromium-browser',
                                             'google-chrome')
                   if shutil.which(n)), None)
    return chrome, shutil.which('chromedriver')


def headless(chrome, driver, folder):
    """Headless Chromium under selenium, with nothing running in the
    background and a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for flag in ('--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync',
                 '--window-size=1400,1150', '--user-data-dir=' + folder):
        opts.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=opts)


def save_small_png(png, path):
    """A screenshot in a 256-colour palette: a fraction of the bytes."""
    import io
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert('RGB')
    image.quantize(256).save(path, optimize=True)


MARKUP = '<img src=x onerror="window.pwned=1">'


def test_browser(tiny_run, tmp_path):
    """The page opens with an example explained; type, submit, see tokens
    coloured, neighbours listed and lit on the map; markup in the data is
    shown as text; load a test example from the browser; an empty input
    shows a message."""
    pytest.importorskip('selenium', reason='selenium is not installed: make '
                        'install-explore')
    chrome, driver = browser_binaries()
    if not (chrome and driver):
        pytest.skip('no Chromium or chromedriver: apt-get install chromium '
                    'chromium-driver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    setup = os.environ.get('EXPLORE_RUN') or tiny_run
    # the make train run reads the real data ($DKNN_DATA_DIR is the tiny
    # data in the tests), as the user's explore.py would
    rule = explore.DEFAULT_RULE   # as explore.py opens it
    ex = explorer_for(setup, k=10, data_dir=real_data_dir(), scoring=rule) \
        if setup != tiny_run else explorer_for(setup, scoring=rule)
    shot = os.environ.get('EXPLORE_SCREENSHOT') or str(
        tmp_path / 'explorer.png')
    with explore_api.Background(explore_api.build_app(ex)) as url:
        b = headless(chrome, driver, str(tmp_path / 'profile'))
        try:
            b.get(url + '/')
            from selenium.common.exceptions import \
                StaleElementReferenceException
            wait = WebDriverWait(b, 60, ignored_exceptions=(
                StaleElementReferenceException,))
            wait.until(lambda d: d.find_elements(
                By.CSS_SELECTOR, '#neighbours-list tr.neighbour'))
            assert not b.find_elements(By.CSS_SELECTOR, 'img')
            explain_in_browser(b, wait, ex, shot)
            outside = b.execute_script(
                "return performance.getEntriesByType('resource')"
                ".map(e => e.name).filter(n => !n.startsWith(arguments[0]))",
                url)
            assert outside == []   # nothing fetched from elsewhere
            markup_is_text(b, wait, ex)
            load_from_browser(b, wait, ex)
            box = b.find_element(By.ID, 'input-text')
            box.send_keys(Keys.CONTROL, 'a')
            box.send_keys(Keys.DELETE)   # an empty input: a message
            b.find_element(By.ID, 'explain-button').click()
            wait.until(lambda d: 'empty' in d.find_element(
                By.ID, 'error').text)
        finally:
            b.quit()


def explain_in_browser(b, wait, ex, shot):
    """Type a sentence, submit, find its tokens in every saliency row, k
    neighbours and k lit points on the map; save a screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    sentence = 'a gripping , funny and moving film that never quite works'
    box = b.find_element(By.ID, 'input-text')
    box.send_keys(Keys.CONTROL, 'a')
    box.send_keys(sentence)
    b.find_element(By.ID, 'explain-button').click()
    wait.until(lambda d: 'gripping' in d.find_element(
        By.ID, 'saliency-grad').text)
    rows = b.find_elements(By.CSS_SELECTOR, '#neighbours-list tr.neighbour')
    assert len(rows) == ex.settings.k
    for method in attribution.INTERPRETERS:
        line = b.find_element(By.ID, 'saliency-' + method)
        assert all(w in line.text for w in ('gripping', 'funny'))
        hover = line.find_elements(By.CSS_SELECTOR, '.tok')[1]
        assert hover.get_attribute('title').startswith('importance ')
    assert b.find_element(By.ID, 'predicted-label').text in \
        ex.run.label_names
    assert b.find_element(By.ID, 'rule').get_attribute('value') == 'graded'
    if ex.run.setup['dataset'] == 'stsa.binary' and len(
            ex.run.splits.train) > 1000:   # the make train run
        assert 'every importance is 0' not in b.find_element(
            By.ID, 'saliency').text   # the graded rule never goes blank
    lit = wait.until(lambda d: d.find_elements(
        By.CSS_SELECTOR, '#map-svg circle.neighbour-point'))
    shown = {int(c.get_attribute('data-index')) for c in lit}
    assert shown == {int(r.find_elements(By.TAG_NAME, 'td')[0].text)
                     for r in rows}
    assert '% and' in b.find_element(By.ID, 'map-note').text
    related = b.find_elements(By.CSS_SELECTOR, '#related-list tr.related')
    assert len(related) == min(explore.N_RELATED, len(ex.run.splits.train))
    note = b.find_element(By.ID, 'metric-note')
    assert 'cosine of last-layer loss gradients' in note.text
    assert note.find_element(By.TAG_NAME, 'a').get_attribute(
        'href').startswith('https://arxiv.org/')
    time.sleep(0.5)   # let the last colours paint
    save_small_png(b.get_screenshot_as_png(), shot)
    assert b.execute_script(   # the map is on the first screen
        "return document.getElementById('map-svg').getBoundingClientRect()"
        ".bottom <= window.innerHeight")
    assert os.path.getsize(shot) < 400 * 1024


def markup_is_text(b, wait, ex):
    """A training text holding markup is shown as that text: no element is
    made of it, no script of it runs."""
    from selenium.webdriver.common.by import By
    raw = ex.run.splits.raw['train']
    first = int(b.find_elements(By.CSS_SELECTOR, '#neighbours-list '
                                'tr.neighbour td')[0].text)
    old = raw[first]
    raw[first] = (((MARKUP,),) + tuple(old[0][1:]), old[1])
    try:
        b.find_element(By.ID, 'explain-button').click()
        wait.until(lambda d: MARKUP in d.find_element(
            By.ID, 'neighbours-list').text)
        assert not b.find_elements(By.CSS_SELECTOR, '#neighbours-list img')
        assert b.execute_script('return window.pwned') is None
    finally:
        raw[first] = old


def load_from_browser(b, wait, ex):
    """Open the test-set browser, list, click the first row: its text is
    loaded and explained."""
    from selenium.webdriver.common.by import By

    def click(how, where):
        element = wait.until(lambda d: d.find_element(how, where))
        b.execute_script('arguments[0].scrollIntoView({block: "center"})',
                         element)
        element.click()
        return element
    click(By.ID, 'browser-title')
    click(By.ID, 'list-button')
    first = ex.examples('errors', 1)['examples'][0]
    cell = click(By.CSS_SELECTOR, '#examples tr.pick td')
    assert cell.text == str(first['index'])
    wait.until(lambda d: d.find_element(
        By.ID, 'input-text').get_attribute('value') == first['text'])
    wait.until(lambda d: first['text'].split()[0] in d.find_element(
        By.ID, 'saliency-grad').text)

"""The explorer (explore.py): its JSON API on tiny runs (word, char, pair),
bad input, a load test, and the page in a real headless browser.

Skipped as a whole where Gradio is missing (CI's core install): ``make
install-explore`` adds it. The browser test also needs Chromium and its
driver (Debian: ``apt-get install chromium chromium-driver``) and skips
without them; ``make test-browser`` runs it alone and saves the screenshot
docs/explorer.png (from the SST-2 run when one is trained).
"""
import concurrent.futures
import json
import math
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy
import pytest

from conftest import ROOT

try:
    from toolkit import explore_page
    explore_page.gradio()
except ImportError as e:
    pytest.skip('the explorer extra is not installed ({}); make '
                'install-explore'.format(e), allow_module_level=True)

import dknn
import interpretations
import nlp_utils
import train_text_classifier
from toolkit import explore
from toolkit import explore_api
from toolkit import runs

K = 5
SENTENCE = 'good great movie , not dull'
USER = os.path.join(ROOT, 'tests', 'data', 'user')


def explorer_for(setup_path, k=K, **kw):
    return explore.Explorer(runs.load(setup_path), dknn.Settings(k=k), **kw)


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
    ex = interpretations.Explainer(run.model, run, settings=dknn.Settings(
        k=3, layers='all'))
    x, _ = nlp_utils.to_example((SENTENCE.split(),), 0, run.vocab)
    for method in interpretations.INTERPRETERS:
        att = interpretations.explain(ex, [x], method)[0]
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


def test_the_page_and_the_api_give_the_same_payload(server, explorer):
    _, api = get(server, '/api/explain', text=SENTENCE, k=4, epsilon=0.2)
    h = explore_page.Handlers(explorer, tempfile.mkdtemp())
    shown = h.show(SENTENCE, 4, [explorer.run.model.layer_names[-1]], 0.2)
    assert shown[0] == ''   # no error
    same(api, shown[-1])
    _, bad = get(server, '/api/explain', text='')
    assert bad['error'] in h.show('', 4, ['mlp1'], 0.2)[0]


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
    status, png = get(server, '/api/export', text=SENTENCE, format='png',
                      index=0)
    assert status == 200 and png.startswith(b'\x89PNG')


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


def test_no_request_reads_a_file(server, tiny_run):
    """Gradio's file route refuses the run's own files and any other."""
    for path in (os.path.abspath(tiny_run), '/etc/passwd', 'README.md'):
        status, _ = get(server, '/gradio_api/file=' + path)
        assert status in (403, 404), path


def test_the_page_shows_refusals_and_the_on_demand_panels(explorer,
                                                          tmp_path):
    h = explore_page.Handlers(explorer, str(tmp_path))
    layers = [explorer.run.model.layer_names[-1]]
    long = h.show(' '.join(['good'] * 600), K, layers, 0.1)
    assert 'too long' in long[0] and long[-1] is None
    assert 'empty' in h.show(None, K, layers, 0.1)[0]
    shown = h.show(SENTENCE, K, layers, 0.1)
    assert 'no train_audit.json' in h.audit(shown[-1])
    assert 'reduced-text' in h.reduce(SENTENCE, K, layers)
    for fmt in ('html', 'png'):
        path = h.export(shown[-1], 0, fmt)
        assert path.startswith(str(tmp_path)) and os.path.getsize(path)


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
    shutil.copytree(os.path.join(USER, 'nli'), data)
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


# --------------------------------------------------------- page formatting

def test_page_html_is_escaped(explorer):
    p = explorer.explain(('good movie',))
    layer = next(iter(p['neighbours']))
    p['neighbours'][layer][0]['text'] = '<script>alert(1)</script>'
    p['neighbours'][layer][0]['label'] = '<img src=x>'
    shown = explore_page.neighbours_html(p) + explore_page.prediction_html(
        dict(p, prediction='<i>', prediction_set=['<img src=x>']))
    assert '<script>' not in shown and '<img' not in shown
    assert '&lt;script&gt;' in shown and '&lt;i&gt;' in shown


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
    """A screenshot in a 64-colour palette: a fraction of the bytes."""
    import io
    from PIL import Image
    image = Image.open(io.BytesIO(png)).convert('RGB')
    image.quantize(64).save(path, optimize=True)


def test_browser(tiny_run, tmp_path):
    """Type, submit, see tokens highlighted and neighbours listed; load a
    test example from the browser; an empty input shows a message."""
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
    ex = explorer_for(setup, k=10 if setup != tiny_run else K)
    shot = os.environ.get('EXPLORE_SCREENSHOT') or str(
        tmp_path / 'explorer.png')
    with explore_api.Background(explore_api.build_app(ex)) as url:
        b = headless(chrome, driver, str(tmp_path / 'profile'))
        try:
            b.get(url + '/')
            wait = WebDriverWait(b, 60)
            explain_in_browser(b, wait, ex, shot)
            outside = b.execute_script(
                "return performance.getEntriesByType('resource')"
                ".map(e => e.name).filter(n => !n.startsWith(arguments[0]))",
                url)
            assert outside == []   # nothing fetched from elsewhere
            load_from_browser(b, wait, ex)
            box = b.find_element(By.CSS_SELECTOR, '#input-text textarea')
            box.send_keys(Keys.CONTROL, 'a')
            box.send_keys(Keys.DELETE)   # an empty input: a message
            b.find_element(By.ID, 'explain-button').click()
            wait.until(lambda d: 'empty' in d.find_element(
                By.ID, 'error').text)
        finally:
            b.quit()


def explain_in_browser(b, wait, ex, shot):
    """Type a sentence, submit, find its tokens in every saliency row and
    k neighbours; save a screenshot to ``shot``."""
    from selenium.webdriver.common.by import By
    sentence = 'a gripping , funny and moving film that never quite works'
    box = wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, '#input-text textarea'))
    box.send_keys(sentence)
    b.find_element(By.ID, 'explain-button').click()
    rows = wait.until(lambda d: d.find_elements(
        By.CSS_SELECTOR, '#neighbours-list tr.neighbour'))
    assert len(rows) == ex.settings.k
    for method in interpretations.INTERPRETERS:
        text = b.find_element(By.ID, 'saliency-' + method).text
        assert all(w in text for w in ('gripping', 'funny'))
    assert b.find_element(By.ID, 'predicted-label').text in \
        ex.run.label_names
    time.sleep(0.5)   # let the last colours paint
    save_small_png(b.get_screenshot_as_png(), shot)
    assert os.path.getsize(shot) < 400 * 1024


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
    click(By.XPATH, "//button[contains(., 'Test set (')]")
    click(By.XPATH, "//button[normalize-space()='List']")
    first = ex.examples('errors', 1)['examples'][0]
    cell = click(By.CSS_SELECTOR, '#examples [data-testid="cell-0-0"]')
    assert cell.text == str(first['index'])
    wait.until(lambda d: d.find_element(
        By.CSS_SELECTOR, '#input-text textarea').get_attribute('value') ==
        first['text'])
    wait.until(lambda d: first['text'].split()[0] in d.find_element(
        By.ID, 'saliency-grad').text)

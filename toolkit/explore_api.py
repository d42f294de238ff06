"""The explorer's web app: the JSON API (``/api/...``), with the page of
:mod:`toolkit.explore_page` mounted at ``/``, and a server to run it.

Every route parses its query strictly (UTF-8, known parameters, each at
most once), calls one method of :class:`toolkit.explore.Explorer` and
answers its dict as JSON. A refused request answers a 4xx status with
``{"error": message}`` (413 for an input over the token cap); anything
unexpected answers 500 with a one-line message, its traceback going to the
server's log only. No parameter names a file.
"""
import socket
import threading
import time
import urllib.parse

from toolkit.explore import ExploreError, answer

TEXTS = ('text', 'premise', 'hypothesis')
DKNN = ('k', 'layers')
ROUTES = {   # route -> the parameters it accepts
    'explain': TEXTS + DKNN + ('epsilon',),
    'examples': DKNN + ('order', 'limit'),
    'reduce': TEXTS + DKNN + ('method', 'beam'),
    'export': TEXTS + DKNN + ('epsilon', 'format', 'index'),
}
MAX_FIELDS = 16
EXPORTS = {'html': 'text/html; charset=utf-8', 'png': 'image/png'}


# ----------------------------------------------------------- parameters

def parse_query(raw, allowed):
    """A raw query string (bytes) -> {name: value}, refusing bytes that
    are not UTF-8, unknown names and repeated names."""
    try:
        pairs = urllib.parse.parse_qsl(
            raw.decode('ascii'), keep_blank_values=True, encoding='utf-8',
            errors='strict', max_num_fields=MAX_FIELDS)
    except UnicodeDecodeError:
        raise ExploreError('the query is not valid UTF-8 (percent-encode '
                           'UTF-8 text)') from None
    except ValueError:
        raise ExploreError('too many parameters (at most {})'.format(
            MAX_FIELDS)) from None
    out = {}
    for name, value in pairs:
        if name not in allowed:
            raise ExploreError('unknown parameter {!r}; this route takes {}'
                               .format(name[:40], ', '.join(allowed)))
        if name in out:
            raise ExploreError('parameter {!r} given twice'.format(name))
        out[name] = value
    return out


def number(q, name, cast, default=None):
    """Parameter ``name`` as an int or float (``cast``), or ``default``."""
    if name not in q:
        return default
    try:
        return cast(q[name])
    except ValueError:
        raise ExploreError('{} must be {}, got {!r}'.format(
            name, 'an integer' if cast is int else 'a number',
            q[name][:40])) from None


def texts_of(q, pair):
    """The input's texts: ``text``, or ``premise`` and ``hypothesis``."""
    names = ('premise', 'hypothesis') if pair else ('text',)
    wrong = [n for n in TEXTS if n in q and n not in names]
    missing = [n for n in names if n not in q]
    if wrong or missing:
        raise ExploreError('this model reads {}: pass {}'.format(
            ' and '.join(names), ' and '.join(n + '=...' for n in names)))
    return tuple(q[n] for n in names)


def dknn_args(q):
    """``k`` and ``layers`` of a query (None where not given)."""
    return {'k': number(q, 'k', int), 'layers': q.get('layers')}


# ---------------------------------------------------------------- routes

def routes(explorer):
    """Route name -> ``f(query dict) -> dict``."""
    pair = explorer.run.pair

    def explain(q):
        return explorer.explain(texts_of(q, pair), epsilon=number(
            q, 'epsilon', float), **dknn_args(q))

    def examples(q):
        return explorer.examples(q.get('order', 'errors'),
                                 number(q, 'limit', int, 20), **dknn_args(q))

    def reduce(q):
        return explorer.reduce(texts_of(q, pair), method=q.get(
            'method', 'grad'), beam=number(q, 'beam', int, 5), **dknn_args(q))

    def export(q):
        fmt = q.get('format', 'html')
        if fmt not in EXPORTS:
            raise ExploreError('format must be html or png')
        index = number(q, 'index', int)
        return fmt, explorer.export(explain(q), index, fmt)
    return {'explain': explain, 'examples': examples, 'reduce': reduce,
            'export': export}


def build_app(explorer, page=True):
    """The FastAPI app: ``/api/explain``, ``/api/examples``,
    ``/api/reduce``, ``/api/export``, ``/api/info``, and the page at ``/``
    (``page=False``: the API alone)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    # no /docs: FastAPI's docs page loads its script from a CDN
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    table = routes(explorer)

    def handler(name):
        def route(request: Request):
            status, body = answer(lambda: table[name](parse_query(
                request.scope.get('query_string', b''), ROUTES[name])))
            if name == 'export' and status == 200:
                fmt, data = body
                return Response(data, media_type=EXPORTS[fmt], headers={
                    'Content-Disposition': 'attachment; filename='
                    '"explorer.{}"'.format(fmt)})
            return JSONResponse(body, status_code=status)
        return route
    for name in ROUTES:
        app.add_api_route('/api/' + name, handler(name), methods=['GET'])
    app.add_api_route('/api/info', lambda: explorer.describe(),
                      methods=['GET'])
    if page:
        from toolkit import explore_page
        app = explore_page.mount(app, explorer)
    return app


# ---------------------------------------------------------------- serving

def serve(app, host='127.0.0.1', port=7860):
    """Serve ``app`` until interrupted."""
    import uvicorn
    uvicorn.run(app, host=host, port=port, log_level='warning')


class Background:
    """``app`` served on ``host`` in a thread (tests, benchmarks):
    ``with Background(app) as url: ...``; port 0 picks a free one."""

    def __init__(self, app, host='127.0.0.1', port=0):
        import uvicorn
        self.sock = socket.socket()
        self.sock.bind((host, port))
        self.url = 'http://{}:{}'.format(host, self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(
            app, log_level='warning'))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={'sockets': [self.sock]},
            daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

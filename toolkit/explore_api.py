"""The explorer's web server: the page and the JSON API, and nothing else.

A small ASGI app served by uvicorn, written by hand so that every route it
answers is listed here (:data:`ROUTES`): no framework adds routes of its
own (no upload, no file route, no OpenAPI, no websocket). The guarantees
(docs/robustness.md, "The explorer"):

* **It serves only what it computes**: the page (one HTML document with its
  script and styles inline, :mod:`toolkit.explore_page`) and the answers of
  :class:`toolkit.explore.Explorer` as JSON, or an export made for this
  request in memory. No route reads a file, and the server writes none.
* **Requests are checked as plain strings before anything else**: only
  ``GET`` and ``HEAD``, no body, a known path, a query of known names given
  once each in UTF-8 (:func:`parse_query`), and a ``Host`` header naming
  this server (:class:`Guard`): a web page that rebinds its own name to
  127.0.0.1 (DNS rebinding) is refused, since its requests carry its name.
* **Loopback by default**: listening beyond this machine needs
  ``--expose``, which prints a warning and requires a token on every
  request (a cookie set by opening the printed address, or the
  ``X-Explorer-Token`` header).
* **Bounded work**: one heavy request computes at a time, at most
  ``max_waiting`` wait (more answer 503 at once), each has ``time_limit``
  seconds from its arrival (503 when it runs out); the page and
  ``/api/info`` answer meanwhile.
"""
import asyncio
import concurrent.futures
import hmac
import http.cookies
import ipaddress
import json
import secrets
import socket
import threading
import time
import urllib.parse

from toolkit.explore import ExploreError, answer

TEXTS = ('text', 'premise', 'hypothesis')
DKNN = ('k', 'layers', 'rule', 'metric')
ROUTES = {   # heavy route -> the parameters it accepts
    'explain': TEXTS + DKNN + ('epsilon',),
    'examples': DKNN + ('order', 'limit'),
    'reduce': TEXTS + DKNN + ('method', 'beam'),
    'export': TEXTS + DKNN + ('epsilon', 'format', 'index'),
    'map': TEXTS + DKNN,
    'audit': ('index',),
}
LIGHT = {'info'}      # answered at once, outside the queue
MAX_FIELDS = 16
MAX_QUERY = 1 << 16   # bytes of a query string
EXPORTS = {'html': 'text/html; charset=utf-8', 'png': 'image/png'}
TOKEN_HEADER = 'x-explorer-token'
COOKIE = 'explorer_token'
LOOPBACK_NAMES = ('localhost', '127.0.0.1', '::1')
CSP_API = b"default-src 'none'; frame-ancestors 'none'"
SECURITY_HEADERS = [
    (b'x-content-type-options', b'nosniff'),
    (b'x-frame-options', b'DENY'),
    (b'referrer-policy', b'no-referrer'),
    (b'cache-control', b'no-store'),
]


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
    """``k``, ``layers``, ``rule`` and ``metric`` of a query (None where
    not given)."""
    return {'k': number(q, 'k', int), 'layers': q.get('layers'),
            'rule': q.get('rule'), 'metric': q.get('metric')}


# ---------------------------------------------------------------- routes

def routes(explorer):
    """Route name -> ``f(query dict, deadline) -> dict`` (or, for
    ``export``, (format, bytes))."""
    pair = explorer.run.pair

    def explain(q, deadline):
        return explorer.explain(texts_of(q, pair), epsilon=number(
            q, 'epsilon', float), deadline=deadline, **dknn_args(q))

    def examples(q, deadline):
        return explorer.examples(q.get('order', 'errors'),
                                 number(q, 'limit', int, 20), **dknn_args(q))

    def reduce(q, deadline):
        return explorer.reduce(texts_of(q, pair), method=q.get(
            'method', 'grad'), beam=number(q, 'beam', int, 5),
            deadline=deadline, **dknn_args(q))

    def export(q, deadline):
        fmt = q.get('format', 'html')
        if fmt not in EXPORTS:
            raise ExploreError('format must be html or png')
        index = number(q, 'index', int)
        return fmt, explorer.export(explain(q, deadline), index, fmt,
                                    where=project(q, deadline))

    def project(q, deadline):
        return explorer.map(texts_of(q, pair), deadline=deadline,
                            **dknn_args(q))

    def audit(q, deadline):
        raw = q.get('index', '')
        try:
            indices = [int(i) for i in raw.split(',') if i]
        except ValueError:
            raise ExploreError('index must be integers joined by ",", got '
                               '{!r}'.format(raw[:40])) from None
        return explorer.audit(indices)
    return {'explain': explain, 'examples': examples, 'reduce': reduce,
            'export': export, 'map': project, 'audit': audit}


# ----------------------------------------------------------------- guard

def is_loopback(host):
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host, expose):
    """The ``--host`` to listen on, refused when empty, not an address, or
    beyond loopback without ``expose``."""
    if not host or any(not c.isprintable() or c.isspace() for c in host):
        raise ExploreError('--host {!r} is not an address; pass an IP '
                           'address such as 127.0.0.1'.format(host[:60]))
    if host != 'localhost':
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ExploreError('--host {!r} is not an IP address (or '
                               'localhost); pass one such as 127.0.0.1'
                               .format(host[:60])) from None
    if not is_loopback(host) and not expose:
        raise ExploreError(
            '--host {} listens beyond this machine, where anyone who reaches '
            'the port can query the model and read its training texts; pass '
            '--expose as well to do so (a token is then required)'.format(
                host))
    return host


def split_host(value):
    """A Host header -> (name, port or None); None if malformed."""
    try:
        parts = urllib.parse.urlsplit('//' + value)
        return (parts.hostname or '').lower(), parts.port
    except ValueError:
        return None


class Guard:
    """Which requests reach a route: the ``Host`` header, the method, the
    body and the token.

    Args:
        host (str): the address the server listens on.
        port (int): its port.
        token (str): required on every request when set (``--expose``).
        allowed (tuple): extra host names a Host header may carry.
    """

    def __init__(self, host, port, token=None, allowed=()):
        self.port, self.token = port, token
        names = set(LOOPBACK_NAMES) | {host.lower()} | {
            a.lower() for a in allowed}
        self.names = names
        self.any_address = token is not None   # exposed: IP literals too

    def host_ok(self, header):
        parsed = split_host(header)
        if parsed is None or not parsed[0]:
            return False
        name, port = parsed
        if port is not None and port != self.port:
            return False
        if name in self.names:
            return True
        if self.any_address:   # a rebinding page carries a name, not an IP
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False

    def token_of(self, headers, query):
        """The token a request carries: the header, the cookie or the
        ``token`` query parameter."""
        if TOKEN_HEADER in headers:
            return headers[TOKEN_HEADER]
        cookie = http.cookies.SimpleCookie()
        try:
            cookie.load(headers.get('cookie', ''))
        except http.cookies.CookieError:
            return None
        if COOKIE in cookie:
            return cookie[COOKIE].value
        found = urllib.parse.parse_qs(query).get('token')
        return found[0] if found else None

    def refuse(self, scope, headers):
        """None if the request may go on, else (status, message)."""
        if scope['method'] not in ('GET', 'HEAD'):
            return 405, 'only GET requests are answered'
        if not self.host_ok(headers.get('host', '')):
            return 421, ('the Host header does not name this server; open '
                         'it at http://127.0.0.1:{}/'.format(self.port))
        if headers.get('content-length', '0') not in ('', '0') or \
                'transfer-encoding' in headers:
            return 413, 'requests carry no body'
        if len(scope.get('query_string', b'')) > MAX_QUERY:
            return 414, 'the query is longer than {} bytes'.format(MAX_QUERY)
        if self.token is not None:
            query = scope.get('query_string', b'').decode('latin-1')
            given = self.token_of(headers, query) or ''
            if not hmac.compare_digest(given.encode('utf-8', 'replace'),
                                       self.token.encode()):
                return 401, ('this explorer needs its token: open the address '
                             'it printed at start')
        return None


# ---------------------------------------------------------------- the app

class App:
    """The explorer as an ASGI app (see the module docstring).

    Args:
        explorer (toolkit.explore.Explorer): the loaded run.
        guard (Guard): None: loopback on the port the request came to, no
            token (tests).
        time_limit (float): seconds a heavy request may take, waiting
            included.
        max_waiting (int): heavy requests that may wait for the one
            computing; more are answered 503 at once.
        page (bool): serve the page at ``/``.
    """

    def __init__(self, explorer, guard=None, time_limit=60.0,
                 max_waiting=8, page=True):
        self.explorer, self.guard = explorer, guard
        self.time_limit, self.max_waiting = time_limit, max_waiting
        self.table = routes(explorer)
        self.pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix='explorer-heavy')
        self.light = concurrent.futures.ThreadPoolExecutor(
            2, thread_name_prefix='explorer-light')
        self.waiting = 0
        self.count = threading.Lock()
        self.html = self.csp = None
        if page:
            from toolkit import explore_page
            self.html, csp = explore_page.page()
            self.csp = csp.encode()

    async def __call__(self, scope, receive, send):
        if scope['type'] == 'lifespan':
            return await self._lifespan(receive, send)
        if scope['type'] != 'http':   # websockets: none
            return
        headers = {k.decode('latin-1').lower(): v.decode('latin-1')
                   for k, v in scope.get('headers', [])}
        guard = self.guard or Guard('127.0.0.1', scope['server'][1])
        refused = guard.refuse(scope, headers)
        if refused is not None:
            return await respond(send, refused[0], {'error': refused[1]},
                                 head=scope['method'] == 'HEAD')
        status, body, extra = await self._route(scope, guard)
        await respond(send, status, body, extra,
                      head=scope['method'] == 'HEAD')

    async def _route(self, scope, guard):
        path = scope.get('path', '')
        query = scope.get('query_string', b'')
        if path in ('/', '/index.html') and self.html is not None:
            extra = [(b'content-type', b'text/html; charset=utf-8'),
                     (b'content-security-policy', self.csp)]
            if guard.token is not None:   # the page's requests carry it
                extra.append((b'set-cookie', '{}={}; HttpOnly; '
                              'SameSite=Strict; Path=/'.format(
                                  COOKIE, guard.token).encode()))
            return 200, self.html, extra
        name = path[len('/api/'):] if path.startswith('/api/') else None
        if name in LIGHT:
            return (await self._light(lambda: self.explorer.describe())) + \
                ([],)
        if name not in ROUTES:
            return 404, {'error': 'no such page: {}'.format(
                _shown(path))}, []
        allowed = ROUTES[name] + (('token',) if guard.token else ())
        status, body = await self._heavy(name, lambda deadline: self.table[
            name](_without_token(parse_query(query, allowed)), deadline))
        if name == 'export' and status == 200:
            fmt, data = body
            return 200, data, [
                (b'content-type', EXPORTS[fmt].encode()),
                (b'content-disposition',
                 'attachment; filename="explorer.{}"'.format(fmt).encode())]
        return status, body, []

    async def _light(self, call):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.light, answer, call)

    async def _heavy(self, name, call):
        """Run ``call(deadline)`` on the heavy thread, refusing at once when
        too many wait, and answering 503 when its time is up."""
        with self.count:
            if self.waiting > self.max_waiting:
                return 503, {'error': 'the explorer is busy ({} requests '
                             'waiting); try again in a moment'.format(
                                 self.waiting)}
            self.waiting += 1
        deadline = time.monotonic() + self.time_limit

        def run():
            with self.count:
                self.waiting -= 1
            if time.monotonic() > deadline:
                raise ExploreError(self.late(), 503)
            return call(deadline)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, answer, run)

    def late(self):
        return 'the request took longer than the server\'s --time-limit of ' \
            '{:g} s; shorten the input or ask for less'.format(
                self.time_limit)

    async def _lifespan(self, receive, send):
        while True:
            message = await receive()
            if message['type'] == 'lifespan.startup':
                await send({'type': 'lifespan.startup.complete'})
            elif message['type'] == 'lifespan.shutdown':
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.light.shutdown(wait=False, cancel_futures=True)
                await send({'type': 'lifespan.shutdown.complete'})
                return


def _without_token(q):
    q.pop('token', None)
    return q


def _shown(text, n=60):
    text = text[:n]
    return ''.join(c if c.isprintable() else repr(c)[1:-1] for c in text)


async def respond(send, status, body, extra=(), head=False):
    """Send one response: ``body`` bytes as they are, anything else as
    JSON; the security headers always."""
    extra = list(extra)
    if not isinstance(body, bytes):
        body = json.dumps(body, allow_nan=False).encode()
        extra.append((b'content-type', b'application/json'))
    if not any(k == b'content-security-policy' for k, _ in extra):
        extra.append((b'content-security-policy', CSP_API))
    headers = list(extra) + SECURITY_HEADERS + [
        (b'content-length', str(len(body)).encode())]
    await send({'type': 'http.response.start', 'status': status,
                'headers': headers})
    await send({'type': 'http.response.body', 'body': b'' if head else body})


def build_app(explorer, page=True, guard=None, time_limit=60.0,
              max_waiting=8):
    """The explorer's ASGI app (see :class:`App`)."""
    return App(explorer, guard, time_limit, max_waiting, page)


def new_token():
    return secrets.token_urlsafe(24)


# ---------------------------------------------------------------- serving

def config(app):
    import uvicorn
    return uvicorn.Config(app, log_level='warning', server_header=False,
                          lifespan='on', limit_concurrency=256,
                          timeout_keep_alive=5)


def serve(app, sock):
    """Serve ``app`` on the listening ``sock`` until interrupted (SIGINT,
    SIGTERM); it writes no file, so nothing is left behind."""
    import uvicorn
    uvicorn.Server(config(app)).run(sockets=[sock])


def bind(host, port):
    """A listening socket on ``host``:``port`` (0: a free port)."""
    family = socket.AF_INET6 if ':' in host else socket.AF_INET
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class Background:
    """``app`` served on ``host`` in a thread (tests, benchmarks):
    ``with Background(app) as url: ...``; port 0 picks a free one."""

    def __init__(self, app, host='127.0.0.1', port=0):
        import uvicorn
        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        self.url = 'http://{}:{}'.format(host, self.port)
        self.server = uvicorn.Server(config(app))
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

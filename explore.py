#!/usr/bin/env python
"""Explore a trained run in the browser: prediction, saliency, neighbours and
a map of the training examples side by side, with a JSON API beside the page.

    python explore.py --model-setup result/stsa.binary_cnn/args.json

Open http://127.0.0.1:7860/ for the page; ``GET /api/explain?text=...``
answers the same payload as JSON (docs/explore.md). Needs the explorer
extra (uvicorn): ``make install-explore``. The model, index, calibration
and temperature load once, at start. The server answers only this machine
unless ``--expose`` is given, reads and writes no file while it runs, and
serves only its page and its answers (docs/robustness.md).
"""
import os

from errors import UserError
from toolkit import cli
from toolkit import explore
from toolkit import runs

TOKEN_ENV = 'DKNN_EXPLORER_TOKEN'


def build_parser():
    p = cli.parser(__doc__)
    cli.add_run_flags(p)
    p.add_argument('--host', default='127.0.0.1',
                   help='address to listen on (the default is reachable '
                        'from this machine only; others need --expose)')
    p.add_argument('--port', type=cli.int_in(0, 65535), default=7860,
                   help='port to listen on (0: any free port)')
    p.add_argument('--expose', action='store_true',
                   help='allow a --host beyond loopback; every request must '
                        'then carry a token (printed at start, or $%s)'
                        % TOKEN_ENV)
    p.add_argument('--max-tokens', type=cli.int_in(1, 100000),
                   default=explore.MAX_TOKENS,
                   help='longer inputs are refused (HTTP 413)')
    p.add_argument('--max-k', type=cli.int_in(1, 10 ** 6),
                   default=explore.MAX_K, help='the largest k a request may '
                                               'ask for')
    p.add_argument('--time-limit', type=cli.float_in(0.1, 3600),
                   default=60.0, help='seconds one request may take, waiting '
                                      'included (then HTTP 503)')
    p.add_argument('--max-waiting', type=cli.int_in(0, 1000), default=8,
                   help='requests that may wait while one computes; more '
                        'are answered HTTP 503 at once')
    p.add_argument('--epsilon', type=cli.float_in(0, 1, True, True),
                   default=0.1, help='default significance of the conformal '
                                     'prediction set')
    p.add_argument('--field', default='hypothesis',
                   choices=['premise', 'hypothesis', 'both'],
                   help='pair models: which side to explain')
    cli.add_dknn_flags(p)
    p.set_defaults(scoring=explore.DEFAULT_RULE)   # the best measured
    cli.add_metric_flag(p)
    cli.add_device_args(p)
    return p


def token_for(expose):
    """The token every request must carry when exposed: ``$%s`` or a new
    random one; None on loopback."""
    if not expose:
        return None
    from toolkit import explore_api
    given = os.environ.get(TOKEN_ENV, '')
    if given and (len(given) < 16 or not given.isprintable()):
        raise UserError('${} must be at least 16 printable characters'
                        .format(TOKEN_ENV))
    return given or explore_api.new_token()


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    try:
        from toolkit import explore_api
        import uvicorn  # NOQA: fail here, with the fix, if missing
    except ImportError as e:
        raise UserError('the explorer needs its extra ({}): make '
                        'install-explore'.format(e)) from None
    host = explore_api.check_host(args.host, args.expose)
    token = token_for(args.expose)
    sock = explore_api.bind(host, args.port)   # before the slow start
    port = sock.getsockname()[1]
    run = runs.from_args(args)
    explorer = explore.Explorer(
        run, cli.dknn_settings(args), field=args.field,
        max_tokens=args.max_tokens, epsilon=args.epsilon, max_k=args.max_k,
        metric=args.neighbour_metric)
    guard = explore_api.Guard(host, port, token)
    app = explore_api.build_app(explorer, guard=guard,
                                time_limit=args.time_limit,
                                max_waiting=args.max_waiting)
    shown = '[{}]'.format(host) if ':' in host else host
    url = 'http://{}:{}/'.format(shown, port)
    if token:
        print('warning: --expose: listening on {}, reachable from other '
              'machines; anyone with the token below can query the model '
              'and read its training texts'.format(cli.printable(host)))
        url += '?token=' + token
    print('explorer for {} on {} (API: /api/explain?text=...); Ctrl-C stops '
          'it'.format(cli.printable(run.folder), url))
    explore_api.serve(app, sock)


if __name__ == '__main__':
    main()

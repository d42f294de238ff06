#!/usr/bin/env python
"""Explore a trained run in the browser: prediction, saliency and nearest
training examples side by side, with a JSON API beside the page.

    python explore.py --model-setup result/stsa.binary_cnn/args.json

Open http://127.0.0.1:7860/ for the page; ``GET /api/explain?text=...``
answers the same payload as JSON (docs/explore.md). Needs the explorer
extra: ``make install-explore``. The model, index, calibration and
temperature load once, at start.
"""
from errors import UserError
from toolkit import cli
from toolkit import explore
from toolkit import runs


def build_parser():
    p = cli.parser(__doc__)
    cli.add_run_flags(p)
    p.add_argument('--host', default='127.0.0.1',
                   help='address to listen on (the default is reachable '
                        'from this machine only)')
    p.add_argument('--port', type=cli.int_in(0, 65535), default=7860,
                   help='port to listen on')
    p.add_argument('--max-tokens', type=cli.int_in(1, 100000),
                   default=explore.MAX_TOKENS,
                   help='longer inputs are refused (HTTP 413)')
    p.add_argument('--epsilon', type=cli.float_in(0, 1, True, True),
                   default=0.1, help='default significance of the conformal '
                                     'prediction set')
    p.add_argument('--field', default='hypothesis',
                   choices=['premise', 'hypothesis', 'both'],
                   help='pair models: which side to explain')
    cli.add_dknn_flags(p)
    cli.add_device_args(p)
    return p


@cli.script
def main(argv=None):
    args = cli.parse(build_parser(), argv)
    try:
        from toolkit import explore_api
        from toolkit import explore_page
        explore_page.gradio()   # fail here, with the fix, if missing
    except ImportError as e:
        raise UserError('the explorer needs its extra ({}): make '
                        'install-explore'.format(e)) from None
    run = runs.from_args(args)
    explorer = explore.Explorer(
        run, cli.dknn_settings(args), field=args.field,
        max_tokens=args.max_tokens, epsilon=args.epsilon)
    app = explore_api.build_app(explorer)
    print('explorer for {} on http://{}:{}/ (API: /api/explain?text=...); '
          'Ctrl-C stops it'.format(run.folder, args.host, args.port))
    explore_api.serve(app, args.host, args.port)


if __name__ == '__main__':
    main()

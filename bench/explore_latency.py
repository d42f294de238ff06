#!/usr/bin/env python
"""How fast the explorer answers: GET /api/explain on SST-2 test sentences.

    python bench/explore_latency.py \
        --model-setup result/stsa.binary_cnn/args.json

Starts the explorer's whole app (page and API) on 127.0.0.1 in this
process, asks ``/api/explain`` for N test sentences one after another (all
four methods, the DkNN's neighbours and the most relevant training
examples, k = 75, last layer) and reports the median and 95th percentile of
the time to a full answer, as the client sees it and as the server measured
it, for two settings in one run, each sentence asked under both in turn:
before (the conformity rule, L2 neighbours) and after (the explorer's
defaults: the graded rule, gradient cosine). Writes the ``explore`` section
of BENCHMARKS.md. Needs the explorer extra (make install-explore).
"""
import json
import time
import urllib.parse
import urllib.request

import numpy

from report import write_section  # NOQA (first: sets sys.path)
import dknn  # NOQA
from toolkit import cli  # NOQA
from toolkit import explore  # NOQA
from toolkit import explore_api  # NOQA
from toolkit import runs  # NOQA


SETTINGS = {'before': {'rule': 'conformity', 'metric': 'l2'},
            'after': {'rule': explore.DEFAULT_RULE,
                      'metric': explore.relevance.DEFAULT}}


@cli.script
def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json',
                   type=cli.path_arg)
    p.add_argument('--n', type=cli.int_in(1, 10 ** 5), default=100,
                   help='test sentences asked for (seeded sample)')
    args = p.parse_args(argv)
    t = time.perf_counter()
    run = runs.load(args.model_setup)
    explorer = explore.Explorer(run, dknn.Settings(
        scoring=explore.DEFAULT_RULE))
    started = time.perf_counter() - t
    sentences = sample(run, args.n)
    results = {name: ([], [], []) for name in SETTINGS}
    with explore_api.Background(explore_api.build_app(explorer)) as url:
        for name, extra in SETTINGS.items():   # warm each setting up
            measure(url, sentences[:3], extra)
        for s in sentences:                    # interleaved
            for name, extra in SETTINGS.items():
                for acc, v in zip(results[name], measure(url, [s], extra)):
                    acc.extend(v)
    write_section('explore', section(args, started, {
        n: tuple(numpy.array(v) for v in r) for n, r in results.items()}))


def sample(run, n, seed=0):
    """``n`` test sentences (seeded), as the text a user would type."""
    raw = run.splits.raw['test']
    pick = numpy.random.RandomState(seed).permutation(len(raw))[:n]
    return [' '.join(raw[i][0][0]) for i in sorted(pick)]


def measure(url, sentences, extra):
    """Seconds per request, client and server side, and token counts."""
    client, server, tokens = [], [], []
    for s in sentences:
        t = time.perf_counter()
        with urllib.request.urlopen('{}/api/explain?{}'.format(
                url, urllib.parse.urlencode(dict(extra, text=s)))) as r:
            payload = json.loads(r.read())
        client.append(time.perf_counter() - t)
        server.append(payload['seconds'])
        tokens.append(len(payload['tokens']))
    return client, server, tokens


def section(args, started, results):
    ms = lambda v, q: '{:.0f}'.format(1000 * numpy.percentile(v, q))  # NOQA
    tokens = results['after'][2]
    lines = [
        '## The explorer\'s latency (`bench/explore_latency.py`)', '',
        'Command: `python bench/explore_latency.py --model-setup {}`'.format(
            args.model_setup), '',
        '`GET /api/explain` for {} SST-2 test sentences ({} to {} tokens, '
        'median {:.0f}), one at a time over HTTP to 127.0.0.1, each asked '
        'under both settings in turn: prediction, every confidence, the '
        'conformal set, all four methods (the rule\'s leave-one-out, '
        'confidence and calibrated leave-one-out, gradient), the 75 '
        'neighbours in the last layer and the 10 most relevant training '
        'examples, exact search, on the 2-core CPU.'.format(
            len(tokens), tokens.min(), tokens.max(), numpy.median(tokens)),
        '', '| setting | client median (ms) | client 95th (ms) | server '
        'median (ms) | server 95th (ms) |', '|---|---|---|---|---|']
    for name, (client, server, _) in results.items():
        lines.append('| {}: rule {}, related by {} | **{}** | {} | {} | {} |'
                     .format(name, SETTINGS[name]['rule'],
                             SETTINGS[name]['metric'], ms(client, 50),
                             ms(client, 95), ms(server, 50), ms(server, 95)))
    after = numpy.median(results['after'][0])
    before = numpy.median(results['before'][0])
    lines += ['', '- After / before, median: {:.2f}x.'.format(after / before),
              '- Start-up (model, training index, calibration, temperature, '
              'test table, map, one warm-up answer): {:.1f} s, once.'.format(
                  started),
              '- Goal: the median under 100 ms with the new defaults: {:.0f} '
              'ms.'.format(1000 * after)]
    return '\n'.join(lines)


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""How fast the explorer answers: GET /api/explain on SST-2 test sentences.

    python bench/explore_latency.py \
        --model-setup result/stsa.binary_cnn/args.json

Starts the explorer's whole app (page and API) on 127.0.0.1 in this
process, asks ``/api/explain`` for N test sentences one after another (all
four methods and the neighbours, k = 75, last layer) and reports the
median and 95th percentile of the time to a full answer, as the client
sees it and as the server measured it. Writes the ``explore`` section of
BENCHMARKS.md. Needs the explorer extra (make install-explore).
"""
import argparse
import json
import time
import urllib.parse
import urllib.request

import numpy

from report import write_section  # NOQA (first: sets sys.path)
import dknn  # NOQA
from toolkit import explore  # NOQA
from toolkit import explore_api  # NOQA
from toolkit import runs  # NOQA


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    p.add_argument('--model-setup', default='result/stsa.binary_cnn/args.json')
    p.add_argument('--n', type=int, default=100,
                   help='test sentences asked for (seeded sample)')
    args = p.parse_args(argv)
    t = time.perf_counter()
    run = runs.load(args.model_setup)
    explorer = explore.Explorer(run, dknn.Settings())
    started = time.perf_counter() - t
    sentences = sample(run, args.n)
    with explore_api.Background(explore_api.build_app(explorer)) as url:
        client, server, tokens = measure(url, sentences)
    write_section('explore', section(args, started, client, server, tokens))


def sample(run, n, seed=0):
    """``n`` test sentences (seeded), as the text a user would type."""
    raw = run.splits.raw['test']
    pick = numpy.random.RandomState(seed).permutation(len(raw))[:n]
    return [' '.join(raw[i][0][0]) for i in sorted(pick)]


def measure(url, sentences):
    """Seconds per request, client and server side, and token counts."""
    client, server, tokens = [], [], []
    for s in sentences:
        t = time.perf_counter()
        with urllib.request.urlopen('{}/api/explain?{}'.format(
                url, urllib.parse.urlencode({'text': s}))) as r:
            payload = json.loads(r.read())
        client.append(time.perf_counter() - t)
        server.append(payload['seconds'])
        tokens.append(len(payload['tokens']))
    return numpy.array(client), numpy.array(server), numpy.array(tokens)


def section(args, started, client, server, tokens):
    ms = lambda v, q: '{:.0f}'.format(1000 * numpy.percentile(v, q))  # NOQA
    return '\n'.join([
        '## The explorer\'s latency (`bench/explore_latency.py`)', '',
        'Command: `python bench/explore_latency.py --model-setup {}`'.format(
            args.model_setup), '',
        '`GET /api/explain` for {} SST-2 test sentences ({} to {} tokens, '
        'median {:.0f}), one at a time over HTTP to 127.0.0.1: prediction, '
        'every confidence, the conformal set, all four methods (conformity, '
        'confidence and calibrated leave-one-out, gradient) and 75 '
        'neighbours in the last layer, exact search, on the 2-core CPU.'
        .format(len(client), tokens.min(), tokens.max(),
                numpy.median(tokens)), '',
        '| | median (ms) | 95th percentile (ms) | max (ms) |',
        '|---|---|---|---|',
        '| client: request to parsed answer | **{}** | **{}** | {} |'.format(
            ms(client, 50), ms(client, 95), ms(client, 100)),
        '| server: inside `Explorer.explain` | {} | {} | {} |'.format(
            ms(server, 50), ms(server, 95), ms(server, 100)), '',
        '- Start-up (model, training index, calibration, temperature, test '
        'table, one warm-up answer): {:.1f} s, once.'.format(started),
        '- Goal: well under a second per sentence; the 95th percentile is '
        '{:.2f} s.'.format(numpy.percentile(client, 95))])


if __name__ == '__main__':
    main()

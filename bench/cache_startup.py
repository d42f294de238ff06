#!/usr/bin/env python
"""How long a command takes to open a run and its forward-pass cache: the
cheap check of today against a full hash of the cache, which every command
did before (``--verify-cache`` still does).

    python bench/cache_startup.py --model-setup result/stsa.binary_cnn/args.json
    python bench/cache_startup.py --model-setup A/args.json B/args.json \\
        --old-tree OLD --old-setup OLD_A/args.json OLD_B/args.json

Each measurement is a fresh process that opens the run
(``runs.load``) and reads the train, calibration and test forward passes
from ``activations/`` (a first, untimed probe of each way builds a missing
cache and warms the disk), the two ways interleaved ``--repeats`` times: what
``run_dknn.py`` and the explorer do before their first search. With
``--old-tree``, the same is timed with that checkout's code on its own run
folder (``--old-setup``): the code before the cheap check. Medians and the
ratio go to the ``cache-startup`` section of BENCHMARKS.md.
"""
import argparse
import json
import statistics
import subprocess
import sys

from report import ROOT, write_section  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA

PROBE = '''
import json, sys, time
sys.path.insert(0, {tree!r})
from toolkit import runs
start = time.perf_counter()
run = runs.load({setup!r}, data_dir={data!r}{verify})
if {build}:
    with run.writing() as out:
        for split in ('train', 'calib', 'test'):
            run.forward(split, out=out)
    start = time.perf_counter()
    run = runs.load({setup!r}, data_dir={data!r})
run.splits
data = time.perf_counter()
n = 0
for split in ('train', 'calib', 'test'):
    acts = run.forward(split)
    n += len(acts.labels)
end = time.perf_counter()
print(json.dumps({{'seconds': end - start, 'data': data - start,
                  'cache': end - data, 'n': n,
                  'train': len(run.forward('train').labels)}}))
'''


def probe(tree, setup, verify, data=None, build=False):
    """Seconds one fresh process takes to open the run and its cache
    (``build``: write the cache first, where it is missing)."""
    code = PROBE.format(tree=tree, setup=setup, data=data, build=build,
                        verify=', verify_cache=True' if verify else '')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=tree)
    if out.returncode:
        raise SystemExit('error: the probe failed: ' +
                         out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(ways, repeats, data=None):
    """{name: (median seconds in all, in the data read, in the cache;
    training points)}, interleaved."""
    times = {name: [] for name in ways}
    sizes = {}
    for tree, setup, verify in ways.values():
        probe(tree, setup, verify, data, build=True)   # and warms the disk
    for _ in range(repeats):
        for name, (tree, setup, verify) in ways.items():
            r = probe(tree, setup, verify, data)
            times[name].append((r['seconds'], r['data'], r['cache']))
            sizes[name] = r['train']
    return {name: tuple(statistics.median(c) for c in zip(*t)) +
            (sizes[name],) for name, t in times.items()}


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--model-setup', required=True, nargs='+',
                   type=cli.path_arg, help="runs' args.json, one row each")
    p.add_argument('--old-tree', type=cli.folder_arg,
                   help='a checkout of the code before the cheap check')
    p.add_argument('--old-setup', nargs='+', type=cli.path_arg,
                   help='for each run, one that code wrote (its args.json)')
    p.add_argument('--data-dir', nargs='+', type=cli.path_arg,
                   help="for each run, where its data is (both codes are "
                        "told; '-': where the run finds it by itself)")
    p.add_argument('--repeats', type=cli.int_in(1, 50), default=3,
                   help='interleaved runs of each way')
    p.add_argument('--no-write', action='store_true',
                   help='print the rows without writing BENCHMARKS.md')
    args = p.parse_args(argv)
    if bool(args.old_tree) != bool(args.old_setup) or (
            args.old_setup and len(args.old_setup) != len(args.model_setup)):
        raise SystemExit('error: --old-tree goes with --old-setup, one run '
                         'of the old code for each --model-setup')
    data = args.data_dir or ['-'] * len(args.model_setup)
    if len(data) != len(args.model_setup):
        raise SystemExit('error: --data-dir: one folder (or -) for each '
                         '--model-setup')
    rows = []
    for i, setup in enumerate(args.model_setup):
        ways = {'cheap check (today)': (ROOT, setup, False),
                'full hash (--verify-cache, as before)': (ROOT, setup, True)}
        if args.old_tree:
            ways['the code before'] = (args.old_tree, args.old_setup[i],
                                       False)
        got = measure(ways, args.repeats,
                      None if data[i] == '-' else data[i])
        today = got['cheap check (today)']
        rows += ['| {} | {} | {:.2f} | {:.1f}x | {:.2f} | {:.3f} | {:.0f}x |'
                 .format(name, n, s, s / today[0], d, c, c / today[2])
                 for name, (s, d, c, n) in got.items()]
        print('\n'.join(rows), flush=True)
    if not args.no_write:
        write_section('cache-startup', '\n'.join([
            '## Opening a run and its cache (`bench/cache_startup.py`)', '',
            'Command: `python bench/cache_startup.py --model-setup ...` '
            '(with `--old-tree` and `--old-setup` for the code before). '
            'Median seconds of {} interleaved fresh processes that open the '
            'run and read its train, calibration and test forward passes, '
            'as `run_dknn.py` and the explorer do before their first '
            'search. Of those seconds, *data* rebuilds the splits from the '
            'data files and checks their stamps (no cache involved), '
            '*cache* is the rest: the cache\'s checks and reads. Each ratio '
            'divides by the cheap check\'s time on the same run.'.format(
                args.repeats), '',
            '| way | training points | seconds | against today | data | '
            'cache | cache against today |',
            '|---|---|---|---|---|---|---|'] + rows))


if __name__ == '__main__':
    main()

"""Write one section of BENCHMARKS.md or RESULTS.md, keeping the others.

Importing it also puts the project folder on ``sys.path``, so the bench
scripts (run as ``python bench/NAME.py``) import the project's modules.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from toolkit import fileio  # NOQA

BENCHMARKS = os.path.join(ROOT, 'BENCHMARKS.md')
RESULTS = os.path.join(ROOT, 'RESULTS.md')
HEADERS = {
    BENCHMARKS: '# Benchmarks\n\nWritten by the scripts in `bench/`; each '
                'section says the command that produced it. This machine is '
                'noisy, so each section compares things measured in the same '
                'run.\n',
    RESULTS: '# Results\n\nAccuracies and calibration measured on the real '
             'data in `../shared/data`, on a 2-core CPU machine. Each section '
             'says the command that produced it. The paper\'s table and its '
             'claims come first, then the other measurements, and the '
             'engineering tables last.\n'}


# Sections in reading order; others follow. RESULTS.md opens with the
# paper's table and the claims, then the other measurements; the
# engineering tables (bad input, then BENCHMARKS.md's) come last.
ORDER = ['grid', 'grid-analysis', 'claims', 'graded', 'graded-reading',
         'neighbour-tests', 'neighbour-tests-reading', 'overconfidence',
         'reduction', 'saturation', 'saturation-sweep', 'human-alignment',
         'char', 'conformal-sets', 'ood', 'selective', 'uncertainty-analysis',
         'label-noise', 'label-noise-real', 'label-noise-flagged',
         'label-noise-reading',
         'dknn-sweep', 'seeds', 'training', 'sst2-dknn', 'faithfulness',
         'snli',
         'bad-input',
         'dknn', 'search-by-label', 'cache-startup', 'interpretations',
         'explore', 'scale',
         'float16',
         'ood-cost', 'imdb']
BLOCK = re.compile(r'<!-- ([\w-]+) -->\n.*?\n<!-- /\1 -->', re.S)


def read_json(path):
    """A JSON file a bench script reads, through the one reader
    (:func:`toolkit.fileio.read_json`): one ``error:`` line for a missing,
    truncated, special or repetitive file."""
    return fileio.read_json(path, 'run the command that writes it again')


def provenance():
    """One line: the commit and machine a section was measured on."""
    import platform
    import subprocess
    try:
        commit = subprocess.run(
            ['git', 'describe', '--always', '--dirty'], cwd=ROOT,
            capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ''
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((ln.split(':', 1)[1].strip() for ln in f
                        if ln.startswith('model name')), cpu)
    except OSError:
        pass
    return '_Measured at commit {} on {} ({} cores)._'.format(
        commit or 'unknown', cpu, os.cpu_count())


def write_section(name, body, path=BENCHMARKS):
    """Replace or add the section between ``<!-- name -->`` markers,
    keeping the sections in :data:`ORDER`, with a last line saying the
    commit and machine (:func:`provenance`). The file is written
    atomically (a temporary file renamed into place), so a full disk never
    leaves it half-written."""
    text = fileio.read_bytes(path, 'data').decode('utf-8') \
        if os.path.exists(path) else HEADERS[path]
    blocks = {m.group(1): m.group(0) for m in BLOCK.finditer(text)}
    blocks[name] = '<!-- {0} -->\n{1}\n\n{2}\n<!-- /{0} -->'.format(
        name, body.strip(), provenance())
    head = BLOCK.split(text)[0].rstrip('\n') if blocks else text.rstrip()
    rank = lambda n: ORDER.index(n) if n in ORDER else len(ORDER)  # NOQA
    text = head.rstrip('\n') + '\n\n' + '\n\n'.join(
        blocks[n] for n in sorted(blocks, key=rank)) + '\n'
    fileio.save_atomic(path, lambda f: f.write(text), 'w')
    print(body.strip())
    print('wrote section {!r} of {}'.format(name, path))


def write_table(folder, name, text, results=True):
    """A bench script's table: ``folder/table.md`` (atomically), and its
    section ``name`` of RESULTS.md unless ``results`` is False."""
    path = os.path.join(folder, 'table.md')
    fileio.save_atomic(path, lambda f: f.write(text), 'w')
    if results:
        write_section(name, text, RESULTS)
    return path


MAKE_TRAIN_RUN = 'result/stsa.binary_cnn/args.json'


def run_from_flags(description, argv):
    """``--model-setup`` (default: the ``make train`` run) parsed, and
    that run opened: (args, run)."""
    import argparse
    from toolkit import runs
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--model-setup', default=MAKE_TRAIN_RUN,
                   help="the trained run's args.json")
    args = p.parse_args(argv)
    return args, runs.load(args.model_setup)

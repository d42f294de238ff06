#!/usr/bin/env python
"""Run every documented command on the real data and compare the numbers
the docs say it prints with what it prints (``make check-docs``).

    python bench/check_docs.py                      # README.md, docs/*.md
    python bench/check_docs.py --docs docs/uncertainty.md

A page's ``sh`` blocks are run in order, in a fresh work folder per page:
the commands of the four scripts, ``explore.py`` is left out (it serves
until stopped), ``mpiexec`` lines run when the MPI extra is installed, and
``make train`` runs the Makefile's training command. A page that uses the
``make train`` run without training it gets a copy of one trained once.
Each ``python`` block runs in the same folder after the commands.

An *expected output* is a ``text`` block: it belongs to the last command
(or snippet) before it. Each of its lines must be printed, in order, with
the same words; every number in it must be printed as written, except
seconds (a number followed by ``s`` or ``ms``, or on a ``seconds:`` line).
A line that is ``...`` stands for lines left out. A stale number fails,
naming the page and the line; the exit status is 1 if any did.
"""
import argparse
import glob
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from report import ROOT  # NOQA (first: sets sys.path)
from toolkit import cli  # NOQA
from errors import UserError  # NOQA

SCRIPTS = ('train_text_classifier.py', 'run_dknn.py', 'scaling.py',
           'interpretations.py')
RUN = os.path.join('result', 'stsa.binary_cnn')
TRAINED = ('args.json', 'best_model.npz', 'vocab.json', 'calib.json', 'log',
           'train_results.json')
NUMBER = re.compile(r'[-+]?(?:\d+\.\d+|\d+)(?:e[-+]?\d+)?')
SECONDS = re.compile(r'\s*(?:s|ms|seconds)\b')
PATHS = re.compile(r'\S*/(result/)')
ESCAPES = re.compile(r'\x1b\[[0-9;?]*[A-Za-z]')   # progress bars' cursor moves


# ------------------------------------------------------------- the pages

def steps(page):
    """A page's steps in order: ``('sh', [argv, ...], lineno)``,
    ``('python', code, lineno)`` and ``('text', [(lineno, line)],
    lineno)``."""
    lines = open(page, encoding='utf-8').read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = re.match(r'```(\w*)\s*$', lines[i])
        if not m:
            i += 1
            continue
        start, lang, body = i + 1, m.group(1), []
        i += 1
        while i < len(lines) and lines[i].rstrip() != '```':
            body.append((i + 1, lines[i]))
            i += 1
        i += 1
        if lang == 'sh':
            out.append(('sh', sh_commands([t for _, t in body]), start))
        elif lang == 'python':
            out.append(('python', '\n'.join(t for _, t in body), start))
        elif lang == 'text':
            out.append(('text', body, start))
    return out


def sh_commands(lines):
    """Each command of a ``sh`` block as argv, continuation lines joined
    and comments dropped."""
    out = []
    for line in '\n'.join(lines).replace('\\\n', ' ').splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


# ------------------------------------------------------------- comparing

def skeleton(line):
    """A line with its numbers as ``#``, paths up to ``result/`` and runs
    of spaces made one: what must match word for word."""
    return ' '.join(NUMBER.sub('#', PATHS.sub(r'\1', line)).split())


def checked_numbers(line):
    """The numbers of a line that must match, as written (not seconds)."""
    line = PATHS.sub(r'\1', line)
    if line.strip().startswith('seconds:'):
        return [None for _ in NUMBER.finditer(line)]
    return [None if SECONDS.match(line, m.end()) else m.group()
            for m in NUMBER.finditer(line)]


def printed_lines(text):
    """What a terminal would show: escapes dropped, each line as its last
    carriage return left it."""
    return [line.rsplit('\r', 1)[-1] for line in
            ESCAPES.sub('', text).splitlines()]


def stale(want, got):
    """The numbers of an expected line that a printed line of the same
    words does not print as written."""
    return [(a, b) for a, b in zip(checked_numbers(want),
                                   checked_numbers(got))
            if a is not None and a != b]


def compare(expected, printed, where):
    """Problems (``'PAGE:LINE: ...'``) of an expected block against what
    was printed: each expected line in order, its numbers as written (of
    several printed lines with its words, the first whose numbers match)."""
    problems, lines, at = [], [skeleton(x) for x in printed], 0
    for lineno, want in expected:
        if not want.strip() or want.strip() == '...':
            continue
        shape = skeleton(want)
        same = [j for j in range(at, len(lines)) if lines[j] == shape]
        if not same:
            problems.append('{}:{}: no printed line reads like {!r}'.format(
                where, lineno, want.strip()))
            continue
        found = next((j for j in same if not stale(want, printed[j])),
                     same[0])
        at = found + 1
        wrong = stale(want, printed[found])
        if wrong:
            problems.append('{}:{}: says {}, the command printed {} in: {}'
                            .format(where, lineno, ', '.join(a for a, _ in wrong),
                                    ', '.join(str(b) for _, b in wrong),
                                    printed[found].strip()))
    return problems


# ------------------------------------------------------------- running

def make_train(data_dir):
    """The Makefile's ``train`` recipe as argv (``python`` first)."""
    text = open(os.path.join(ROOT, 'Makefile')).read().replace('\\\n', ' ')
    recipe = re.search(r'^train: .*\n\t(.*)$', text, re.M).group(1)
    recipe = recipe.replace('$(PY)', 'python').replace(
        '$(DKNN_DATA_DIR)', data_dir)
    return shlex.split(recipe)


def runnable(argv, data_dir):
    """The argv to run for a documented command, or None to leave it
    out: the four scripts, ``make train``, ``mpiexec`` (with the MPI
    extra)."""
    if argv[:2] == ['make', 'train']:
        return runnable(make_train(data_dir), data_dir)
    if argv[0] == 'mpiexec':
        mpiexec = shutil.which('mpiexec', path=os.path.dirname(
            sys.executable))
        if not mpiexec or len(argv) < 5 or argv[3] != 'python':
            return None
        root = ['--allow-run-as-root'] if os.geteuid() == 0 else []
        return [mpiexec] + root + ['--oversubscribe'] + argv[1:3] + \
            [sys.executable, os.path.join(ROOT, argv[4])] + argv[5:]
    if argv[0].endswith('python') and len(argv) > 1 and argv[1] in SCRIPTS:
        return [sys.executable, os.path.join(ROOT, argv[1])] + argv[2:]
    return None


def run(argv, work, env, where, label=None):
    print('{}: {}'.format(where, label or ' '.join(argv[1:])), flush=True)
    start = time.time()
    proc = subprocess.run(argv, cwd=work, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    print('  {:.0f} s, exit status {}'.format(time.time() - start,
                                              proc.returncode), flush=True)
    problems = [] if proc.returncode == 0 else [
        '{}: exit status {}: {}'.format(where, proc.returncode,
                                        proc.stdout.strip()[-500:])]
    return proc.stdout, problems


def snippet(code, work, env, where):
    head = 'import sys; sys.path.insert(0, {!r})\n'.format(ROOT)
    return run([sys.executable, '-c', head + code], work, env, where,
               'the python block')


def check_page(page, data_dir, trained, keep):
    """Run one page in a fresh folder; its problems."""
    rel = os.path.relpath(page, ROOT)
    work = tempfile.mkdtemp(prefix='check-docs-')
    env = dict(os.environ, DKNN_DATA_DIR=data_dir, PYTHONPATH=ROOT)
    os.symlink(os.path.join(ROOT, 'tests'), os.path.join(work, 'tests'))
    problems, printed = [], ''
    try:
        for kind, body, lineno in steps(page):
            where = '{}:{}'.format(rel, lineno)
            if kind == 'text':
                problems += compare(body, printed_lines(printed), rel)
                continue
            if RUN in (body if kind == 'python' else ' '.join(
                    ' '.join(a) for a in body)) and trained and \
                    not os.path.isdir(os.path.join(work, RUN)) and \
                    not any('--dataset' in a or a[:2] == ['make', 'train']
                            for a in (body if kind == 'sh' else [])):
                shutil.copytree(trained, os.path.join(work, RUN))
            if kind == 'python':
                printed, p = snippet(body, work, env, where)
                problems += p
                continue
            for argv in body:
                argv = runnable(argv, data_dir)
                if argv is None:
                    continue
                printed, p = run(argv, work, env, where)
                problems += p
    finally:
        if not keep:
            shutil.rmtree(work)
    return problems


def train_once(data_dir, folder):
    """The ``make train`` run, trained once for every page: the path of
    its folder."""
    argv = runnable(['make', 'train'], data_dir)
    env = dict(os.environ, DKNN_DATA_DIR=data_dir, PYTHONPATH=ROOT)
    _, problems = run(argv, folder, env, 'make train')
    if problems:
        raise UserError(problems[0])
    return os.path.join(folder, RUN)


@cli.script
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--docs', nargs='+', type=cli.path_arg,
                   help='pages to check (default: README.md and docs/*.md)')
    p.add_argument('--data-dir', type=cli.folder_arg,
                   default=os.environ.get('DKNN_DATA_DIR') or os.path.join(
                       ROOT, '..', 'shared', 'data'),
                   help='the real data folder')
    p.add_argument('--keep', action='store_true',
                   help='keep the work folders (printed) for a look')
    args = p.parse_args(argv)
    pages = [os.path.abspath(d) for d in args.docs] if args.docs else \
        [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(
            ROOT, 'docs', '*.md')))
    for page in pages:
        if not os.path.isfile(page):
            raise UserError('--docs {}: no such page'.format(page))
    data_dir = os.path.abspath(args.data_dir)
    base = tempfile.mkdtemp(prefix='check-docs-run-')
    problems = []
    try:
        trained = train_once(data_dir, base)
        for page in pages:
            problems += check_page(page, data_dir, trained, args.keep)
    finally:
        shutil.rmtree(base)
    for line in problems:
        print(line)
    print('check-docs: {} page{}, {}'.format(
        len(pages), 's' if len(pages) != 1 else '',
        '{} stale or failing'.format(len(problems)) if problems else
        'every number as printed'))
    if problems:
        raise SystemExit(1)


if __name__ == '__main__':
    main()

"""The docs run as written: every ``python`` snippet in README.md and
docs/*.md, and every command of their ``sh`` blocks that runs one of the
four scripts, run in order in a sandbox on synthetic data shaped like the
real files (so the numbers differ; the commands, flags and paths are the
documented ones). ``make`` and ``pip`` lines are what CI runs (.ci/run);
``mpiexec`` lines are run by tests/test_mpi.py with 2 ranks, and the bench
scripts by their own tests (test_grid.py) and on the real data."""
import glob
import os
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT, synthetic_lines

DOCS = [os.path.join(ROOT, 'README.md')] + sorted(
    glob.glob(os.path.join(ROOT, 'docs', '*.md')))
SCRIPTS = ('train_text_classifier.py', 'run_dknn.py', 'scaling.py',
           'interpretations.py')


def blocks(path, lang):
    """The code blocks of one language in a markdown file."""
    text = open(path, encoding='utf-8').read()
    return re.findall(r'```{}\n(.*?)```'.format(lang), text, re.S)


def commands(path):
    """The script commands of a file's ``sh`` blocks, continuation lines
    joined, ``.venv/bin/python`` and ``python`` alike."""
    out = []
    for block in blocks(path, 'sh'):
        for line in block.replace('\\\n', ' ').splitlines():
            words = shlex.split(line.split(' #')[0])
            if len(words) > 1 and words[0].endswith('python') and \
                    words[1] in SCRIPTS:
                out.append(words[1:])
    return out


def write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n')


def other_data(data):
    """Tiny look-alikes of the data the docs' OOD and SNLI commands read:
    TREC, Subj, e-SNLI dev/test (the SNLI stand-in) and IMDB reviews."""
    words = synthetic_lines(1500, 3)
    write_lines(data / 'TREC.train.all', ['{} {}?'.format(i % 6, w[2:])
                                          for i, w in enumerate(words[:60])])
    write_lines(data / 'TREC.test.all', ['{} {}?'.format(i % 6, w[2:])
                                         for i, w in enumerate(words[:20])])
    write_lines(data / 'subj.all', words[:40])
    labels = ('entailment', 'neutral', 'contradiction')
    for split, n in (('dev', 1230), ('test', 60)):
        write_lines(data / 'snli' / 'e-snli' / ('s1.' + split),
                    [w[2:] + ' movie' for w in words[:n]])
        write_lines(data / 'snli' / 'e-snli' / ('s2.' + split),
                    [w[2:] for w in words[:n]])
        write_lines(data / 'snli' / 'e-snli' / ('labels.' + split),
                    [labels[i % 3] for i in range(n)])
    for label in ('pos', 'neg'):
        for i in range(3):
            write_lines(data / 'aclImdb' / 'test' / label /
                        '{}_{}.txt'.format(i, 8 if label == 'pos' else 2),
                        ['A fine movie, a good plot. It was fun to watch!'])


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    """A working folder like a clone's: synthetic stsa.binary data large
    enough for the default --n-calib 1000 and k = 75, tiny GloVe vectors,
    and the example files of tests/data/user."""
    base = tmp_path_factory.mktemp('docs')
    data = base / 'data'
    (data / 'glove').mkdir(parents=True)
    for split, n, seed in (('train', 1100, 0), ('dev', 40, 1),
                           ('test', 40, 2)):
        (data / ('stsa.binary.' + split)).write_text(
            '\n'.join(synthetic_lines(n, seed)) + '\n')
    import gzip
    import numpy
    rng = numpy.random.RandomState(0)
    with gzip.open(str(data / 'glove' / 'glove.6B.50d.txt.gz'), 'wt') as f:
        for w in ('good', 'great', 'fun', 'superb', 'bad', 'dull', 'awful',
                  'boring', 'movie', 'plot'):
            f.write(w + ' ' + ' '.join('%.3f' % v for v in rng.randn(50)) +
                    '\n')
    other_data(data)
    work = base / 'work'
    work.mkdir()
    os.symlink(os.path.join(ROOT, 'tests'), str(work / 'tests'))
    return work, dict(os.environ, DKNN_DATA_DIR=str(data),
                      CHAINER_DATASET_ROOT=str(base / 'cache'))


README_COMMANDS = commands(DOCS[0])
ALL_COMMANDS = [c for p in DOCS for c in commands(p)]


def test_the_readme_shows_the_paper_commands():
    assert ['train_text_classifier.py', '--dataset', 'stsa.binary',
            '--model', 'cnn'] in README_COMMANDS
    assert len(README_COMMANDS) >= 6


@pytest.mark.parametrize('argv', ALL_COMMANDS,
                         ids=[' '.join(c)[:60] for c in ALL_COMMANDS])
def test_documented_command_runs_as_written(argv, sandbox):
    work, env = sandbox
    proc = subprocess.run([sys.executable, os.path.join(ROOT, argv[0])] +
                          argv[1:], cwd=str(work), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert b'error:' not in proc.stderr


SNIPPETS = [(os.path.relpath(p, ROOT), s) for p in DOCS
            for s in blocks(p, 'python')]


@pytest.mark.parametrize('where,code', SNIPPETS,
                         ids=[w for w, _ in SNIPPETS])
def test_python_snippet_runs(where, code, sandbox, monkeypatch, capsys):
    work, env = sandbox
    if not os.path.exists(str(work / 'result' / 'stsa.binary_cnn' /
                              'args.json')):
        pytest.skip('needs the README run (run the whole file)')
    monkeypatch.chdir(str(work))
    monkeypatch.setenv('DKNN_DATA_DIR', env['DKNN_DATA_DIR'])
    exec(compile(code, where, 'exec'), {'__name__': '__doc__'})
    assert capsys.readouterr().out.strip()


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_flag_has_help(script):
    import importlib
    parser = importlib.import_module(script[:-3]).build_parser()
    bare = [a.option_strings[0] for a in parser._actions
            if a.option_strings and not a.help]
    assert bare == []
    assert not parser.description.rstrip().endswith(('(', ',', ':'))

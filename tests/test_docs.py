"""The docs run as written: every ``python`` snippet in README.md and
docs/*.md, and every command of the README's ``sh`` blocks that runs one of
the scripts, run in order in a sandbox on synthetic data (so the numbers
differ; the commands, flags and paths are the documented ones). ``make``,
``pip`` and ``mpiexec`` lines are run by CI itself (.ci/run)."""
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


@pytest.fixture(scope='module')
def sandbox(tmp_path_factory):
    """A working folder like a clone's: synthetic stsa.binary data large
    enough for the default --n-calib 1000 and k = 75, tiny GloVe vectors,
    and the example files of tests/data/user."""
    base = tmp_path_factory.mktemp('docs')
    data = base / 'data'
    (data / 'glove').mkdir(parents=True)
    for split, n, seed in (('train', 1400, 0), ('dev', 40, 1),
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
    work = base / 'work'
    work.mkdir()
    os.symlink(os.path.join(ROOT, 'tests'), str(work / 'tests'))
    return work, dict(os.environ, DKNN_DATA_DIR=str(data))


README_COMMANDS = commands(DOCS[0])


def test_the_readme_shows_the_paper_commands():
    assert ['train_text_classifier.py', '--dataset', 'stsa.binary',
            '--model', 'cnn'] in README_COMMANDS
    assert len(README_COMMANDS) >= 6


@pytest.mark.parametrize('argv', README_COMMANDS,
                         ids=[' '.join(c)[:60] for c in README_COMMANDS])
def test_readme_command_runs_as_written(argv, sandbox):
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

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


def snippets(path):
    """(the python block, the ``text`` block after it or None) of a page."""
    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    import check_docs
    found = check_docs.steps(path)
    return [(body, next((b for k, b, _ in found[i + 1:i + 2]
                         if k == 'text'), None))
            for i, (kind, body, _) in enumerate(found) if kind == 'python']


SNIPPETS = [(os.path.relpath(p, ROOT), code, expected) for p in DOCS
            for code, expected in snippets(p)]


def shape(line, words=4):
    """The kind of each of a line's first words: a number or a word."""
    return ['#' if re.fullmatch(r'[-+]?[\d.]+(e[-+]?\d+)?', w) else 'w'
            for w in line.split()[:words]]


@pytest.mark.parametrize('where,code,expected', SNIPPETS,
                         ids=[w for w, _, _ in SNIPPETS])
def test_python_snippet_prints_what_its_page_says(where, code, expected,
                                                  sandbox, monkeypatch,
                                                  capsys):
    """On the sandbox's synthetic data the numbers and words differ from
    the real data's (``make check-docs`` compares those); the lines and
    their shape must not."""
    assert expected, '{}: a snippet needs its expected output (a text ' \
        'block after it)'.format(where)
    work, env = sandbox
    if not os.path.exists(str(work / 'result' / 'stsa.binary_cnn' /
                              'args.json')):
        pytest.skip('needs the README run (run the whole file)')
    monkeypatch.chdir(str(work))
    monkeypatch.setenv('DKNN_DATA_DIR', env['DKNN_DATA_DIR'])
    exec(compile(code, where, 'exec'), {'__name__': '__doc__'})
    printed = capsys.readouterr().out.strip().splitlines()
    want = [t for _, t in expected if t.strip()]
    assert len(printed) == len(want), printed
    for got, line in zip(printed, want):
        assert shape(got) == shape(line), (got, line)


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_flag_has_help(script):
    import importlib
    parser = importlib.import_module(script[:-3]).build_parser()
    bare = [a.option_strings[0] for a in parser._actions
            if a.option_strings and not a.help]
    assert bare == []
    assert not parser.description.rstrip().endswith(('(', ',', ':'))


# ------------------------------------------------- make check-docs itself

def check_docs():
    import importlib
    sys.path.insert(0, os.path.join(ROOT, 'bench'))
    return importlib.import_module('check_docs')


def test_check_docs_fails_on_a_stale_number_naming_page_and_line():
    c = check_docs()
    printed = c.printed_lines(
        'epoch 1\r\x1b[Jresult/x: accuracy 0.8287 (10.6 s per epoch)\n'
        'sets at eps = 0.01   0.99\nsets at eps = 0.1   0.92\n')
    assert c.compare([(7, 'result/x: accuracy 0.8287 (9.8 s per epoch)'),
                      (8, '...'), (9, 'sets at eps = 0.1   0.92')],
                     printed, 'README.md') == []   # seconds are not checked
    problems = c.compare([(12, '/home/you/result/x: accuracy 0.8215 (9 s '
                               'per epoch)')], printed, 'docs/a.md')
    assert problems == ['docs/a.md:12: says 0.8215, the command printed '
                        '0.8287 in: result/x: accuracy 0.8287 (10.6 s per '
                        'epoch)']
    assert c.compare([(3, 'a line nobody printed')], printed, 'b.md') == [
        "b.md:3: no printed line reads like 'a line nobody printed'"]


def test_check_docs_reads_text_blocks_after_their_command(tmp_path):
    c = check_docs()
    page = tmp_path / 'p.md'
    page.write_text('x\n\n```sh\npython run_dknn.py --k 5  # note\n```\n\n'
                    'prints\n\n```text\nsoftmax 0.8\n```\n\n```python\n'
                    'print(1)\n```\n')
    assert c.steps(str(page)) == [
        ('sh', [['python', 'run_dknn.py', '--k', '5']], 3),
        ('text', [(10, 'softmax 0.8')], 9),
        ('python', 'print(1)', 13)]
    assert c.make_train('/d')[:2] == ['python', 'train_text_classifier.py']
    assert '/d/glove/glove.6B.50d.txt.gz' in c.make_train('/d')

"""What a new user hit on a fresh clone (issue 31), one test each: every
one of them failed before its fix.

- a long OOD input and a token limit raised for a run by $DKNN_MAX_TOKENS;
- the same vectors file named by a relative and an absolute path is the
  same run;
- an unfinished run is refused, and retraining it never mentions --force;
- --tag keeps two settings side by side, and a replaced set removes the
  figures it no longer describes;
- "wrote" names every file a command wrote;
- calibrated leave-one-out says where its T came from;
- no nan on screen;
- rows that cannot be used are skipped and counted at training.
"""
import json
import os
import re

import pytest

from conftest import TINY_TRAIN, write_tiny_sst
from test_uncertainty import write_tiny_trec

import interpretations
import nlp_utils
import run_dknn
import scaling
import train_text_classifier
from toolkit import runs


def snapshot(folder):
    """name -> (size, mtime_ns) of every file under ``folder``."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            out[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns)
    return out


def changed(before, after):
    return {n for n, v in after.items() if before.get(n) != v}


def wrote_names(printed):
    """The names listed by every ``wrote ... in FOLDER`` line, and by
    scaling's ``(wrote ...)``."""
    names = set()
    for m in re.finditer(r'wrote (.+?)(?: in \S+|\))$', printed, re.M):
        names.update(re.split(r', | and ', m.group(1)))
    return names


def test_a_long_ood_input_is_left_out_until_the_limit_is_raised(
        run_copy, tmp_path, monkeypatch, capsys):
    """The run's own limit used to win over $DKNN_MAX_TOKENS, so the
    documented fix for a long OOD sentence changed nothing."""
    data = write_tiny_sst(tmp_path / 'data')
    write_tiny_trec(data)
    limit = runs.load(run_copy).max_tokens
    with open(os.path.join(data, 'TREC.test.all'), 'a') as f:
        f.write('0 ' + ' '.join(['what'] * (limit + 50)) + ' ?\n')
    argv = ['--model-setup', run_copy, '--k', '5', '--data-dir', data,
            '--ood', 'TREC']
    r = run_dknn.main(argv)
    assert r['ood']['TREC']['n'] == 40
    assert 'TREC: left out 1 of 41 inputs longer than the {}-token ' \
           'limit'.format(limit) in capsys.readouterr().out
    monkeypatch.setenv(nlp_utils.MAX_TOKENS_ENV, str(limit + 100))
    assert runs.load(run_copy).max_tokens == limit + 100
    r = run_dknn.main(argv)
    assert r['ood']['TREC']['n'] == 41
    assert 'left out' not in capsys.readouterr().out


def test_vectors_by_relative_and_absolute_path_are_one_run(
        tiny_data, tmp_path, monkeypatch, capsys):
    """The README's spelled-out flags and the Makefile's absolute path used
    to train a duplicate run into -2."""
    (tmp_path / 'glove').mkdir()
    (tmp_path / 'glove' / 'v.txt').write_text(
        'good 1 2 3\nbad -1 -2 -3\nmovie 0 1 0\n')
    monkeypatch.chdir(str(tmp_path))
    base = TINY_TRAIN + ['--data-dir', tiny_data, '--out', str(tmp_path / 'r')]
    train_text_classifier.main(base + ['--word_vectors', 'glove/v.txt'])
    capsys.readouterr()
    train_text_classifier.main(base + ['--word_vectors',
                                       str(tmp_path / 'glove' / 'v.txt')])
    assert 'stsa.binary_cnn: already trained with these settings' in \
        capsys.readouterr().out
    assert sorted(os.listdir(str(tmp_path / 'r'))) == ['stsa.binary_cnn']
    # a different file under the same name is another run
    (tmp_path / 'glove' / 'v.txt').write_text('good 3 2 1\nbad 1 1 1\n')
    train_text_classifier.main(base + ['--word_vectors', 'glove/v.txt'])
    assert 'holds another run (differs in word_vectors' in \
        capsys.readouterr().out


def test_an_unfinished_run_is_refused_and_retraining_says_why(
        tiny_data, tmp_path, capsys):
    argv = TINY_TRAIN + ['--data-dir', tiny_data, '--out', str(tmp_path)]
    train_text_classifier.main(argv)
    folder = tmp_path / 'stsa.binary_cnn'
    os.unlink(str(folder / 'train_results.json'))   # as a kill -9 leaves it
    capsys.readouterr()
    for script, extra in ((run_dknn, []), (scaling, []),
                          (interpretations, ['--first', '2'])):
        with pytest.raises(SystemExit, match=r'^error: .*stsa\.binary_cnn: '
                           r'its training did not finish \(no train_results'
                           r'\.json\); train it again'):
            script.main(['--model-setup', str(folder / 'args.json'),
                         '--k', '5'] + extra)
    train_text_classifier.main(argv)
    out = capsys.readouterr().out
    assert 'an unfinished run' in out and '--force' not in out
    assert (folder / 'train_results.json').is_file()


def test_tag_keeps_two_settings_and_a_replacement_removes_stale_figures(
        run_copy, tmp_path, capsys):
    data = write_tiny_sst(tmp_path / 'data')
    write_tiny_trec(data)
    folder = os.path.dirname(run_copy)
    base = ['--model-setup', run_copy, '--data-dir', data]
    run_dknn.main(base + ['--k', '5', '--ood', 'TREC', '--conformal-sets',
                          '--selective'])
    figures = ['conformal_sets.png', 'ood_roc.png', 'risk_coverage.png']
    assert all(os.path.isfile(os.path.join(folder, n)) for n in figures)
    capsys.readouterr()
    run_dknn.main(base + ['--k', '5'])
    printed = capsys.readouterr().out
    assert 'note: replacing dknn_results.json in {}; removed {}, which it ' \
           'no longer describes'.format(folder, ', '.join(figures)) in printed
    assert not any(os.path.exists(os.path.join(folder, n)) for n in figures)
    plain = open(os.path.join(folder, 'dknn_results.json')).read()
    tagged = run_dknn.main(base + ['--k', '3', '--tag', 'k3',
                                   '--conformal-sets'])
    assert tagged['k'] == 3
    assert os.path.isfile(os.path.join(folder, 'dknn_results_k3.json'))
    assert os.path.isfile(os.path.join(folder, 'conformal_sets_k3.png'))
    assert open(os.path.join(folder, 'dknn_results.json')).read() == plain
    scaling.main(base + ['--k', '5', '--tag', 'k5'])
    assert os.path.isfile(os.path.join(folder, 'temperature_k5.json'))
    interpretations.main(base + ['--k', '5', '--first', '2', '--tag', 'x'])
    assert os.path.isfile(os.path.join(folder, 'interpretations_dknn_x.json'))


@pytest.mark.parametrize('script,extra', [
    (run_dknn, ['--conformal-sets', '--selective']),
    (scaling, []),
    (interpretations, ['--first', '3', '--interp_method', 'all',
                       '--faithfulness', '--artifacts']),
    (interpretations, ['--first', '2', '--reduce']),
])
def test_wrote_names_every_file_written(script, extra, run_copy, capsys):
    folder = os.path.dirname(run_copy)
    runs.load(run_copy)   # nothing written by opening a run
    before = snapshot(folder)
    capsys.readouterr()
    script.main(['--model-setup', run_copy, '--k', '5'] + extra)
    written = changed(before, snapshot(folder))
    said = wrote_names(capsys.readouterr().out)
    cache = {n for n in written if n.startswith('activations' + os.sep)}
    assert written - cache <= said, written - cache - said
    assert said <= set(os.listdir(folder))


def test_calibrated_says_where_its_temperature_came_from(run_copy, capsys):
    argv = ['--model-setup', run_copy, '--k', '5', '--first', '2',
            '--interp_method', 'calibrated']
    p = interpretations.main(argv)
    assert p['temperature']['source'] == \
        'fitted now on the calibration set (no temperature.json)'
    assert 'calibrated: T = {:.4f} (fitted now'.format(
        p['temperature']['T']) in capsys.readouterr().out
    saved = json.load(open(os.path.join(os.path.dirname(run_copy),
                                        'interpretations_calibrated.json')))
    assert saved['temperature'] == p['temperature']
    T = scaling.main(['--model-setup', run_copy, '--no-dknn'])
    p = interpretations.main(argv)
    assert p['temperature'] == {'T': pytest.approx(T['temperature']),
                                'source': 'temperature.json'}


def test_no_nan_on_screen_when_an_average_has_no_example(capsys):
    row = {'accuracy': 1.0, 'agreement_with_softmax': 1.0,
           'credibility_correct': 0.9, 'credibility_wrong': None,
           'ece': 0.05}
    run_dknn.report({'softmax': {'accuracy': 1.0, 'ece': 0.04},
                     'conformity': row, 'seconds': {'search': 0.1}},
                    ['conformity'])
    printed = capsys.readouterr().out
    assert 'nan' not in printed.lower()
    assert re.search(r'dknn conformity +1\.0000 +1\.0000 +0\.9000 +- +'
                     r'0\.0500', printed), printed


def test_a_csv_with_empty_rows_trains_and_says_what_it_skipped(
        tmp_path, capsys):
    rows = ['text,label'] + ['{},{}'.format(t, y) for t, y in
                             [('good fun', 'pos'), ('dull bad', 'neg')] * 30]
    rows[7] = ',pos'          # line 8: empty text
    rows[20] = 'great,'       # line 21: no label
    path = tmp_path / 'reviews.csv'
    path.write_text('\n'.join(rows) + '\n')
    argv = ['--dataset', str(path), '--out', str(tmp_path / 'r'), '--model',
            'cnn', '--unit', '9', '--layer', '1', '--epoch', '1',
            '--batchsize', '8', '--n-calib', '10']
    r = train_text_classifier.main(argv)
    out = capsys.readouterr().out
    assert 'skipped 1 row (empty text): reviews.csv line 8' in out
    assert 'skipped 1 row (no label): reviews.csv line 21' in out
    assert r['skipped_rows']['count'] == 2
    saved = json.load(open(str(tmp_path / 'r' / 'reviews_cnn' /
                               'train_results.json')))
    assert saved['skipped_rows'] == r['skipped_rows']
    with pytest.raises(SystemExit, match=r'^error: .*reviews\.csv:8: '
                                         r'empty text'):
        train_text_classifier.main(argv + ['--strict', '--out',
                                           str(tmp_path / 's')])
    assert not (tmp_path / 's').exists()

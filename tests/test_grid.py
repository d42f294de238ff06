import json
import os
import sys

import numpy
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import grid  # NOQA


def test_quick_grid_runs_resumes_and_writes_the_table(tiny_data, tmp_path):
    vec = tmp_path / 'vec.txt'
    vec.write_text('good 1 1 1 1\nbad -1 -1 -1 -1\nmovie 0 0 1 0\n')
    argv = ['--quick', '--datasets', 'stsa.binary', '--data-dir', tiny_data,
            '--word-vectors', str(vec), '--out', str(tmp_path / 'g'),
            '--k', '5', '--n-calib', '10', '--page-examples', '3']
    rows = grid.main(argv)
    assert [r['cell'] for r in rows] == [
        'stsa.binary_cnn', 'stsa.binary_bilstm', 'stsa.binary_cnn_char']
    for r in rows:
        cell = tmp_path / 'g' / 's0' / r['cell']
        cred = numpy.load(str(cell / 'dknn_credibility.npz'))
        assert r['dknn_accuracy'] == pytest.approx(
            (cred['conformity_pred'] == cred['labels']).mean())
        saved = json.load(open(str(cell / 'dknn_results.json')))
        assert r['softmax_accuracy'] == saved['softmax']['accuracy']
        if r['scaling_error'] is None:
            assert r['temperature'] == json.load(open(str(
                cell / 'temperature.json')))['temperature']
        log = open(str(tmp_path / 'g' / 'logs' /
                       (r['cell'] + '_s0.log'))).read()
        assert 'validation accuracy' in log and 'dknn conformity' in log
        assert ('T = ' in log) == (r['scaling_error'] is None)
    md = open(str(tmp_path / 'g' / 'grid.md')).read()
    assert md.count('\n| stsa.binary |') == 3 and '84.5' in md
    assert grid.goal_met([0.010, 0.012]) is False   # 1.1 points, std 0.14
    assert grid.goal_met([0.004, -0.002]) is True   # within 0.5 point
    assert grid.goal_met([0.02, -0.01, 0.0]) is True   # within one std
    setup = json.load(open(str(tmp_path / 'g' / 's0' / 'stsa.binary_cnn' /
                               'args.json')))
    assert setup['n_embed'] == 4 and setup['epoch'] == 1
    page = tmp_path / 'g' / 's0' / 'stsa.binary_cnn' / \
        'interpretations_dknn+softmax+calibrated+grad.html'
    assert page.exists()
    # a second run finds every cell finished and recomputes nothing
    stamp = os.path.getmtime(str(tmp_path / 'g' / 's0' / 'stsa.binary_cnn' /
                                 'best_model.npz'))
    again = grid.main(argv)
    assert again == rows
    assert os.path.getmtime(str(tmp_path / 'g' / 's0' / 'stsa.binary_cnn' /
                                'best_model.npz')) == stamp

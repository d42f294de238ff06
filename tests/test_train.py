import json
import os

import numpy
import pytest

import nets
from toolkit import runs
import text_datasets
import train_text_classifier
from conftest import TINY_TRAIN


def train(data, out, *extra):
    return train_text_classifier.main(
        TINY_TRAIN + ['--data-dir', data, '--out', str(out)] + list(extra))


@pytest.mark.parametrize('model', ['cnn', 'rnn', 'bilstm', 'bow'])
def test_main_writes_a_complete_result_folder(tiny_data, tmp_path, model):
    results = train(tiny_data, tmp_path / 'r', '--model', model)
    run = tmp_path / 'r' / ('stsa.binary_' + model)
    assert sorted(os.listdir(str(run))) == [
        'args.json', 'best_model.npz', 'calib.json', 'log',
        'train_results.json', 'vocab.json']
    setup = json.loads((run / 'args.json').read_text())
    assert setup['model_path'] == 'best_model.npz'  # relative: movable
    assert setup['n_class'] == 2 and setup['model'] == model
    calib = json.loads((run / 'calib.json').read_text())
    assert len(calib) == 10
    # the reloaded model reproduces the reported test accuracy
    loaded = runs.load(str(run / 'args.json'))
    assert loaded.splits.calib_indices == calib
    logits, _, labels = nets.predict_dataset(loaded.model,
                                             loaded.splits.test, None)
    assert (logits.argmax(1) == labels).mean() == \
        pytest.approx(results['test_accuracy'])
    val = nets.predict_dataset(loaded.model, loaded.splits.val, None)
    assert results['val_accuracy'] == pytest.approx(
        (val.logits.argmax(1) == val.labels).mean())
    assert not [p for p in os.listdir(str(tmp_path / 'r'))
                if p.startswith('.')]


def test_tiny_model_learns(tiny_data, tmp_path):
    results = train(tiny_data, tmp_path, '--model', 'bow', '--epoch', '15',
                    '--unit', '16', '--dropout', '0')
    assert results['test_accuracy'] >= 0.8


def test_word_vectors_set_the_embedding(tiny_data, tmp_path):
    vec = tmp_path / 'vec.txt'
    vec.write_text('good 1 1 1 1\nbad -1 -1 -1 -1\n')
    train(tiny_data, tmp_path / 'r', '--word_vectors', str(vec))
    run = runs.load(str(tmp_path / 'r' / 'stsa.binary_cnn' / 'args.json'))
    model, vocab = run.model, run.vocab
    assert run.setup['n_embed'] == 4
    # one epoch of 7 Adam steps moves each value by well under 0.05
    numpy.testing.assert_allclose(
        model.encoder.embed.W.array[vocab['good']], [1, 1, 1, 1], atol=0.05)


def folder_bytes(folder):
    """Every file under ``folder`` -> its bytes."""
    out = {}
    for root, _, files in os.walk(str(folder)):
        for name in files:
            with open(os.path.join(root, name), 'rb') as f:
                out[os.path.relpath(os.path.join(root, name), str(folder))] \
                    = f.read()
    return out


def test_a_rerun_destroys_nothing(tiny_data, tmp_path, capsys):
    train(tiny_data, tmp_path)
    run_dir = tmp_path / 'stsa.binary_cnn'
    (run_dir / 'dknn_results.json').write_text('{"kept": 1}')
    (run_dir / 'activations').mkdir()
    (run_dir / 'activations' / 'train.json').write_text('{}')
    before = folder_bytes(run_dir)
    train(tiny_data, tmp_path)   # the same settings: nothing to do
    assert 'already trained' in capsys.readouterr().out
    assert folder_bytes(run_dir) == before
    # other settings go beside it, and leave it as it was
    train(tiny_data, tmp_path, '--unit', '12')
    assert 'holds another run (differs in unit)' in capsys.readouterr().out
    assert folder_bytes(run_dir) == before
    assert json.loads((tmp_path / 'stsa.binary_cnn-2' / 'args.json')
                      .read_text())['unit'] == 12
    train(tiny_data, tmp_path, '--unit', '12')
    assert 'stsa.binary_cnn-2: already trained' in capsys.readouterr().out
    # --force says what it removes, then replaces the run
    train(tiny_data, tmp_path, '--unit', '12', '--force')
    said = capsys.readouterr().out
    assert '--force: removing' in said and 'dknn_results.json' in said
    setup = json.loads((run_dir / 'args.json').read_text())
    assert setup['unit'] == 12
    assert not (run_dir / 'dknn_results.json').exists()
    results = json.loads((run_dir / 'train_results.json').read_text())
    assert set(results['files']) == {'args.json', 'vocab.json', 'calib.json',
                                     'best_model.npz', 'log'}


def fails_cleanly(out, argv, match):
    with pytest.raises(SystemExit, match=match) as e:
        train_text_classifier.main(argv + ['--out', str(out)])
    assert str(e.value.code).startswith('error: ')
    assert not os.path.exists(str(out))


def test_bad_input_is_one_line_and_leaves_nothing(tiny_data, tmp_path,
                                                  capsys):
    out = tmp_path / 'r'
    with pytest.raises(SystemExit):
        train(tiny_data, out, '--model', 'transformer')
    assert "argument --model/-model: invalid choice: 'transformer'" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        train(tiny_data, out, '--epoch', '0')
    assert 'argument --epoch/-e: must be an integer in [1, 1000000], got 0' in \
        capsys.readouterr().err
    assert not os.path.exists(str(out))
    vec = tmp_path / 'vec.txt'
    vec.write_text('good 1 1 1\nbad 1 1\n')
    fails_cleanly(out, TINY_TRAIN + ['--data-dir', tiny_data,
                                     '--word_vectors', str(vec)],
                  r'vec.txt:2:')
    # a corrupt data file
    with open(os.path.join(tiny_data, 'stsa.binary.dev'), 'a') as f:
        f.write('garbage line here\n')
    fails_cleanly(out, TINY_TRAIN + ['--data-dir', tiny_data],
                  r'stsa.binary.dev:13:')


def test_empty_training_file(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    for split in ('train', 'dev', 'test'):
        (data / ('stsa.binary.' + split)).write_text(
            '' if split == 'train' else '1 good film\n')
    fails_cleanly(tmp_path / 'r', TINY_TRAIN[:-2] + ['--n-calib', '0',
                                                     '--data-dir', str(data)],
                  'stsa.binary.train: no examples')


def test_missing_data_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(text_datasets, 'URL_SENT', 'http://127.0.0.1:9/')
    fails_cleanly(tmp_path / 'r', ['--dataset', 'mpqa', '--data-dir',
                                   str(tmp_path)], 'mpqa.all not found')


def test_real_sst2_trains_end_to_end(real_data, tmp_path):
    results = train_text_classifier.main(
        ['--dataset', 'stsa.binary', '--model', 'bow', '--unit', '32',
         '--layer', '1', '--epoch', '2', '--data-dir', real_data,
         '--out', str(tmp_path), '--word_vectors', os.path.join(
             real_data, 'glove', 'glove.6B.50d.shared-vocab.txt.gz')])
    assert (results['n_train'], results['n_test']) == (5920, 1821)
    assert results['test_accuracy'] > 0.6


def wait_for_line(stream, text, timeout):
    """Read ``stream`` until a line holds ``text``; False on timeout."""
    import selectors
    import time
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    deadline, buf = time.time() + timeout, b''
    while time.time() < deadline:
        if sel.select(timeout=deadline - time.time()):
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                return False
            buf += chunk
            if text in buf:
                return True
    return False


def test_killed_run_leaves_nothing(tiny_data, tmp_path):
    import signal
    import subprocess
    import sys
    out = tmp_path / 'r'
    proc = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), '..',
                                      'train_text_classifier.py')] +
        TINY_TRAIN[:-4] + ['--epoch', '100000', '--batchsize', '8',
                           '--n-calib', '10', '--data-dir', tiny_data,
                           '--out', str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the first epoch's log line: the run is inside the training loop
    assert wait_for_line(proc.stdout, b'main/loss', timeout=60)
    assert os.listdir(str(out / 'stsa.binary_cnn'))   # training writes
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and b'stopped by signal' in err
    assert not out.exists()   # the --out folder it created is gone too


def test_two_trainings_into_one_folder(tiny_data, tmp_path):
    """The second run is refused while the first holds the folder."""
    import subprocess
    import sys
    import time
    out = tmp_path / 'r'
    first = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), '..',
                                      'train_text_classifier.py')] +
        TINY_TRAIN[:-4] + ['--epoch', '100000', '--batchsize', '8',
                           '--n-calib', '10', '--data-dir', tiny_data,
                           '--out', str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / 'stsa.binary_cnn' / 'log'   # the first epoch is written
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not log.exists():
            time.sleep(0.05)
        with pytest.raises(SystemExit, match='is being written by another '
                                             'command'):
            train(tiny_data, out, '--epoch', '100000')   # the same run
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert not out.exists()   # the first removes what it created


def test_early_stopping_keeps_the_best_validation_epoch(tiny_data, tmp_path):
    results = train(tiny_data, tmp_path, '--model', 'bow', '--epoch', '40',
                    '--patience', '2', '--unit', '16', '--dropout', '0',
                    '--batchsize', '6')   # 12 validation examples: 2 batches
    log = json.load(open(str(tmp_path / 'stsa.binary_bow' / 'log')))
    val = [e['validation/main/accuracy'] for e in log]
    assert results['epochs'] == len(log) < 40      # it stopped early
    best = int(numpy.argmax(val))
    assert results['best_epoch'] == best + 1
    # stopped exactly `patience` epochs after the last improvement
    assert len(log) - 1 - best == 2
    assert results['val_accuracy'] == pytest.approx(val[best])

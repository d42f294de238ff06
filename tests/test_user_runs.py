"""Your own data end to end: train, DkNN, scaling, every interpretation,
reduction and prediction sets on a tiny CSV file, a TSV folder and a JSONL
pair folder, with string labels shown by name."""
import json
import os
import shutil

import pytest

from conftest import USER_DATA
import interpretations
import run_dknn
import scaling
from toolkit import runs
import train_text_classifier

TRAIN = ['--model', 'cnn', '--unit', '9', '--layer', '1', '--epoch', '2',
         '--batchsize', '8', '--n-calib', '10']


@pytest.mark.parametrize('source,run_name,labels', [
    ('reviews.csv', 'reviews_cnn', ['neg', 'pos']),
    ('ratings', 'ratings_cnn', None),
    ('nli', 'nli_cnn', ['contradiction', 'entailment', 'neutral'])])
def test_own_data_end_to_end(source, run_name, labels, tmp_path, capsys,
                             monkeypatch):
    data = str(tmp_path / source)
    original = os.path.join(USER_DATA, source)
    copy = shutil.copytree if os.path.isdir(original) else shutil.copy
    copy(original, data)
    train_text_classifier.main(['--dataset', data, '--out', str(tmp_path)] +
                               TRAIN)
    setup_path = str(tmp_path / run_name / 'args.json')
    setup = json.load(open(setup_path))
    assert setup['dataset'] == os.path.abspath(data)
    if labels:
        assert setup['label_names'] == labels
    names = setup['label_names']
    # from another folder, with neither --data-dir nor $DKNN_DATA_DIR: the
    # run finds its data by the recorded path, checked by its sha256
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    monkeypatch.chdir(str(elsewhere))
    monkeypatch.delenv('DKNN_DATA_DIR')
    results = run_dknn.main(['--model-setup', setup_path, '--k', '3',
                             '--conformal-sets'])
    assert results['label_names'] == names
    scaling.main(['--model-setup', setup_path, '--k', '3', '--no-dknn'])
    payload = interpretations.main(['--model-setup', setup_path, '--k', '3',
                                    '--interp_method', 'all', '--all'])
    printed = capsys.readouterr().out
    assert 'label: {}'.format(names[payload['examples'][0]['label']]) \
        in printed
    for ex in payload['examples']:
        assert ex['label_name'] in names
        assert ex['dknn']['prediction_name'] in names
        assert len(ex['grad']['importance']) == len(ex['tokens'])
    page = open(str(tmp_path / run_name / (
        'interpretations_dknn+softmax+calibrated+grad.html'))).read()
    assert any(n in page for n in names)
    audit = run_dknn.main(['--model-setup', setup_path, '--k', '3',
                           '--audit-train'])
    assert len(audit['entries']) == len(runs.load(setup_path).splits.train)
    assert os.listdir(str(elsewhere)) == []   # nothing written here
    reduced = interpretations.main(['--model-setup', setup_path, '--k', '3',
                                    '--reduce', '--first', '4'])
    assert len(reduced['examples']) == 4


def test_a_converted_builtin_gives_the_builtin_accuracy(tmp_path):
    """The same sentences as a CSV folder train to the same model."""
    from conftest import write_tiny_sst
    tiny = write_tiny_sst(tmp_path / 'data')
    folder = tmp_path / 'csv'
    folder.mkdir()
    names = ['negative', 'positive']
    for split, out in (('train', 'train'), ('dev', 'dev'), ('test', 'test')):
        lines = open(os.path.join(tiny, 'stsa.binary.' + split)).read()
        rows = ['text,label'] + ['{},{}'.format(t, names[int(y)]) for y, t in
                                 (ln.split(' ', 1) for ln in
                                  lines.splitlines())]
        (folder / (out + '.csv')).write_text('\n'.join(rows) + '\n')
    base = TRAIN + ['--out', str(tmp_path / 'r')]
    a = train_text_classifier.main(base + ['--dataset', 'stsa.binary',
                                           '--data-dir', tiny])
    b = train_text_classifier.main(base + ['--dataset', str(folder)])
    assert a['test_accuracy'] == b['test_accuracy']
    assert a['val_accuracy'] == b['val_accuracy']


SECRET = 'a-line-nobody-may-see'


def test_a_changed_data_file_is_refused_without_its_content(tmp_path,
                                                            monkeypatch):
    data = str(tmp_path / 'reviews.csv')
    shutil.copy(os.path.join(USER_DATA, 'reviews.csv'), data)
    train_text_classifier.main(['--dataset', data, '--out', str(tmp_path)] +
                               TRAIN)
    setup_path = str(tmp_path / 'reviews_cnn' / 'args.json')
    monkeypatch.delenv('DKNN_DATA_DIR')
    before = run_dknn.main(['--model-setup', setup_path, '--k', '3'])
    with open(data, 'a') as f:
        f.write('{},pos\n'.format(SECRET))
    for script in (run_dknn, scaling, interpretations):
        with pytest.raises(SystemExit) as e:
            script.main(['--model-setup', setup_path, '--k', '3'])
        line = str(e.value)
        assert line.startswith('error: ') and '\n' not in line
        assert 'reviews.csv' in line and 'data_files' in line
        assert '--data-dir' in line and SECRET not in line
    # a copy of the original elsewhere, named by --data-dir, is used
    copy = tmp_path / 'copy'
    copy.mkdir()
    shutil.copy(os.path.join(USER_DATA, 'reviews.csv'), str(copy))
    r = run_dknn.main(['--model-setup', setup_path, '--k', '3',
                       '--data-dir', str(copy)])
    assert r['softmax'] == before['softmax']
    assert r['conformity'] == before['conformity']

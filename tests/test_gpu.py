"""The CuPy path: training runs on a GPU, and the DkNN and every
interpretation method give on the GPU what they give on the CPU for the
same model. Skipped where CuPy or a GPU is missing (the machines this was
written on have none; see docs/install.md)."""

import numpy
import pytest

import chainer

gpu = pytest.mark.skipif(
    not chainer.backends.cuda.available or
    chainer.backends.cuda.cupy.cuda.runtime.getDeviceCount() < 1,
    reason='no CuPy or no GPU: the CuPy path is not tested here')


@gpu
def test_gpu_training_runs(tiny_data, tmp_path):
    import train_text_classifier
    from conftest import TINY_TRAIN
    r = train_text_classifier.main(TINY_TRAIN + [
        '--model', 'bilstm', '--data-dir', tiny_data, '--out', str(tmp_path),
        '--device', '0'])
    assert 0 <= r['test_accuracy'] <= 1


@gpu
def test_gpu_inference_matches_the_cpu(tiny_run, tmp_path):
    import interpretations
    import run_dknn
    from conftest import copy_run
    out = {}
    for device in ('@numpy', '@cupy:0'):
        setup = copy_run(tiny_run, tmp_path / device.strip('@')[:4])
        dk = run_dknn.main(['--model-setup', setup, '--k', '5',
                            '--device', device])
        loo = interpretations.main(['--model-setup', setup, '--k', '5',
                                    '--interp_method', 'all', '--all',
                                    '--quiet', '--device', device])
        out[device] = dk, loo
    (dk_cpu, loo_cpu), (dk_gpu, loo_gpu) = out.values()
    for rule in ('softmax', 'conformity', 'conformal'):
        assert dk_cpu[rule]['accuracy'] == dk_gpu[rule]['accuracy']
    for a, b in zip(loo_cpu['examples'], loo_gpu['examples']):
        for m in ('dknn', 'softmax', 'calibrated', 'grad'):
            numpy.testing.assert_allclose(a[m]['importance'],
                                          b[m]['importance'], atol=1e-4)

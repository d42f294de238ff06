"""Conformal prediction sets, and the ranking metrics of OOD detection and
selective prediction: properties and hand computations."""
import itertools

import numpy
import pytest
from sklearn.metrics import roc_auc_score

from toolkit import conformal
from toolkit import metrics
from errors import UserError


def test_p_values_and_sets_match_a_hand_computation():
    calib = numpy.array([0, 1, 1, 3])            # true-label scores, n = 4
    test = numpy.array([[1, 2], [0, 4], [3, 3]])
    p = conformal.p_values(test, calib)
    # p_j = (1 + #{calib >= a_j}) / 5
    numpy.testing.assert_allclose(p, [[4 / 5, 2 / 5], [5 / 5, 1 / 5],
                                      [2 / 5, 2 / 5]])
    sets = conformal.prediction_sets(p, 0.3)
    numpy.testing.assert_array_equal(sets, [[1, 1], [1, 0], [1, 1]])
    s = conformal.set_summary(sets, numpy.array([1, 1, 0]))
    assert s['coverage'] == pytest.approx(2 / 3)
    assert s['mean_size'] == pytest.approx(5 / 3)
    assert s['singleton'] == pytest.approx(1 / 3)
    assert s['empty'] == 0
    assert s['class_coverage'] == [1.0, 0.5]


def test_mondrian_p_values_use_the_class_s_own_calibration_examples():
    calib = numpy.array([0, 2, 5, 1])
    labels = numpy.array([0, 0, 1, 1])
    test = numpy.array([[1, 1]])
    p = conformal.p_values(test, calib, labels)
    # label 0 against {0, 2}: one >= 1 -> 2/3; label 1 against {5, 1}: 2 -> 1
    numpy.testing.assert_allclose(p, [[2 / 3, 1.0]])
    # a class with no calibration example cannot be rejected
    p = conformal.p_values(numpy.array([[9, 9, 9]]), calib, labels)
    assert p[0, 2] == 1.0


def test_softmax_baselines_match_a_hand_computation():
    probs = numpy.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2]])
    numpy.testing.assert_allclose(conformal.lac_nonconformity(probs),
                                  [[0.5, 0.7, 0.8], [0.6, 0.6, 0.8]])
    numpy.testing.assert_allclose(conformal.aps_nonconformity(probs),
                                  [[0.5, 0.8, 1.0], [0.8, 0.8, 1.0]])


def _synthetic(rng, n, n_class=3):
    """Exchangeable (probabilities, labels): labels drawn from the probs."""
    probs = rng.dirichlet(numpy.ones(n_class) * 0.7, size=n)
    labels = numpy.array([rng.choice(n_class, p=p) for p in probs])
    return probs, labels


@pytest.mark.parametrize('score', ['lac', 'aps', 'votes'])
@pytest.mark.parametrize('mondrian', [False, True])
def test_coverage_holds_over_random_splits(score, mondrian):
    """Marginal coverage >= 1 - eps (Mondrian: in every class), averaged
    over 200 random calibration/test splits of exchangeable data."""
    rng = numpy.random.RandomState(0)
    probs, labels = _synthetic(rng, 1200)
    if score == 'lac':
        a = conformal.lac_nonconformity(probs)
    elif score == 'aps':
        a = conformal.aps_nonconformity(probs)
    else:   # integer votes against each label, many ties (the DkNN's)
        a = conformal.dknn_nonconformity(numpy.round(probs * 20), 20)
    for eps in (0.05, 0.1, 0.2):
        cover = []
        for _ in range(200):
            perm = rng.permutation(len(labels))
            cal, test = perm[:400], perm[400:]
            p = conformal.p_values(
                a[test], conformal.true_label_scores(a[cal], labels[cal]),
                labels[cal] if mondrian else None)
            s = conformal.set_summary(conformal.prediction_sets(p, eps),
                                      labels[test])
            cover.append(s['class_coverage'] if mondrian
                         else [s['coverage']])
        mean = numpy.mean(cover, axis=0)
        # the mean of 200 splits: its standard error is well under 0.01
        assert (mean >= 1 - eps - 0.01).all(), (eps, mean)


def test_sets_shrink_as_epsilon_grows():
    rng = numpy.random.RandomState(1)
    probs, labels = _synthetic(rng, 600)
    a = conformal.lac_nonconformity(probs)
    table = conformal.coverage_table({'lac': (a[300:], a[:300])},
                                     labels[300:], labels[:300])['lac']
    sizes = [table[k]['mean_size'] for k in ('0.01', '0.05', '0.1', '0.2')]
    assert sizes == sorted(sizes, reverse=True)
    assert table['0.01']['coverage'] >= table['0.2']['coverage']


@pytest.mark.parametrize('eps', [[0], [1], [-0.1], [1.5], []])
def test_epsilon_outside_0_1_is_refused(eps):
    with pytest.raises(UserError, match='between 0 and 1'):
        conformal.check_epsilons(eps)


def test_auroc_matches_scikit_learn_with_ties():
    rng = numpy.random.RandomState(2)
    s_in = numpy.round(rng.randn(300) + 1, 1)
    s_out = numpy.round(rng.randn(200), 1)
    expected = roc_auc_score(numpy.r_[numpy.ones(300), numpy.zeros(200)],
                             numpy.r_[s_in, s_out])
    assert metrics.auroc(s_in, s_out) == pytest.approx(expected, abs=1e-12)
    assert metrics.auroc([1, 2], [1, 2]) == 0.5


def test_fpr_at_tpr_matches_a_hand_computation():
    s_in = numpy.arange(1, 21)        # 95% of 20 accepted: threshold 2
    s_out = numpy.array([0, 1, 2, 3, 10])
    assert metrics.fpr_at_tpr(s_in, s_out) == pytest.approx(3 / 5)


def _direct_aurc(conf, correct):
    order = numpy.argsort(-conf, kind='stable')
    wrong = ~correct[order]
    return numpy.mean([wrong[:c].mean() for c in range(1, len(conf) + 1)])


def test_aurc_matches_a_direct_computation():
    rng = numpy.random.RandomState(3)
    conf = rng.rand(50)
    correct = rng.rand(50) < conf
    assert metrics.aurc(conf, correct) == pytest.approx(
        _direct_aurc(conf, correct))


def test_aurc_with_ties_is_the_mean_over_tie_orders():
    conf = numpy.array([0.9, 0.5, 0.5, 0.5, 0.1])
    correct = numpy.array([True, True, False, False, True])
    orders = [numpy.r_[0, list(p), 4] for p in itertools.permutations(
        [1, 2, 3])]
    expected = numpy.mean([_direct_aurc(numpy.arange(5, 0, -1.0),
                                        correct[o]) for o in orders])
    assert metrics.aurc(conf, correct) == pytest.approx(expected)
    # order within the input does not matter
    perm = numpy.array([3, 0, 4, 2, 1])
    assert metrics.aurc(conf[perm], correct[perm]) == pytest.approx(expected)

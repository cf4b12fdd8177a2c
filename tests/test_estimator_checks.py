"""scikit-learn's own API checks, with no expected failures declared."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sksoftmax import SoftmaxClassifier, SoftmaxClassifierCV


@parametrize_with_checks([SoftmaxClassifier(), SoftmaxClassifierCV()])
def test_sklearn_compatible(estimator, check):
    check(estimator)

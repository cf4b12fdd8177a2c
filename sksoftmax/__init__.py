"""Softmax (multinomial logistic) regression as a scikit-learn estimator."""

from ._classifier import SoftmaxClassifier
from ._inference import SoftmaxInferenceResults

__version__ = "0.1.0.dev0"

__all__ = ["SoftmaxClassifier", "SoftmaxInferenceResults", "__version__"]

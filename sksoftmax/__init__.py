"""Softmax (multinomial logistic) regression as a scikit-learn estimator."""

from ._classifier import SoftmaxClassifier, inference
from ._cv import SoftmaxClassifierCV
from ._inference import ChiSquaredTest, MarginalEffects, SoftmaxInferenceResults
from ._onnx import register_onnx_converter
from ._path import softmax_path
from ._separation import PerfectSeparationWarning

__version__ = "0.1.0.dev0"

__all__ = [
    "ChiSquaredTest",
    "MarginalEffects",
    "PerfectSeparationWarning",
    "SoftmaxClassifier",
    "SoftmaxClassifierCV",
    "SoftmaxInferenceResults",
    "inference",
    "register_onnx_converter",
    "softmax_path",
    "__version__",
]

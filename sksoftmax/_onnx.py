"""Conversion of SoftmaxClassifier to ONNX through skl2onnx.

skl2onnx is optional: it is imported only when :func:`register_onnx_converter`
is called, never by ``import sksoftmax``.
"""

import numpy as np

from ._classifier import SoftmaxClassifier

_ALIAS = "SksoftmaxSoftmaxClassifier"


def _onnx_labels(scope, model):
    """The labels as int64 or str, the two label types ONNX outputs carry.

    skl2onnx's ``get_label_classes`` applies its option ``nocl`` (class
    indices instead of labels) the same way as in the ZipMap it appends.
    """
    from skl2onnx.common.utils_classifier import get_label_classes

    classes = get_label_classes(scope, model)
    if all(isinstance(c, str) for c in classes):
        return np.asarray(classes, dtype=str)
    labels = np.asarray(classes)
    int64 = np.iinfo(np.int64)
    exact = (
        labels.dtype.kind in "biuf"
        and np.all(np.isfinite(labels))
        and np.all(labels >= int64.min)
        # Compared as Python integers: uint64 labels above 2**63 - 1 and
        # float labels would otherwise be rounded or wrapped.
        and all(int(label) == label and int(label) <= int64.max for label in labels)
    )
    if not exact:
        bad = next(
            label
            for label in labels.tolist()
            if not (isinstance(label, int | float) and float(label).is_integer())
            or not int64.min <= int(label) <= int64.max
        )
        raise ValueError(
            "ONNX classifiers output labels as int64 or as strings, and the "
            f"label {bad!r} of classes_ has no exact int64 value. Fit on labels "
            "that do (e.g. encoded with sklearn.preprocessing.LabelEncoder), or "
            "convert with options={'nocl': True} to output class indices."
        )
    return labels.astype(np.int64)


def _shape_calculator(operator):
    """Declare the outputs: labels (n,) and probabilities (n, n_classes)."""
    from skl2onnx.common.data_types import (
        BooleanTensorType,
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
    from skl2onnx.common.utils import (
        check_input_and_output_numbers,
        check_input_and_output_types,
    )

    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=2)
    check_input_and_output_types(
        operator,
        good_input_types=[
            FloatTensorType,
            DoubleTensorType,
            Int64TensorType,
            BooleanTensorType,
        ],
    )
    n_samples = operator.inputs[0].get_first_dimension()
    labels = _onnx_labels(operator.scope_inst, operator.raw_operator)
    label_type = StringTensorType if labels.dtype.kind == "U" else Int64TensorType
    # The parser guesses the probability type before the input type is
    # known (after a ColumnTransformer, say); the converter computes in
    # double exactly when the input is double.
    proba_type = (
        DoubleTensorType
        if isinstance(operator.inputs[0].type, DoubleTensorType)
        else FloatTensorType
    )
    operator.outputs[0].set_type(label_type(shape=[n_samples]))
    operator.outputs[1].set_type(proba_type(shape=[n_samples, labels.shape[0]]))


def _converter(scope, operator, container):
    """Graph: logits = X @ coef_.T + intercept_, Softmax, ArgMax -> label.

    Every class keeps its own row of ``coef_``, binary problems included, so
    the probabilities are the softmax over all of them, as in predict_proba.
    Double input is computed in double, anything else in float.
    """
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    def add_node(op_type, inputs, output, **attributes):
        name = scope.get_unique_operator_name(op_type)
        container.add_node(op_type, inputs, output, name=name, **attributes)

    model = operator.raw_operator
    X = operator.inputs[0]
    if isinstance(X.type, DoubleTensorType):
        proto_dtype, dtype = TensorProto.DOUBLE, np.float64
    else:
        proto_dtype, dtype = TensorProto.FLOAT, np.float32
    input_name = X.full_name
    if not isinstance(X.type, (DoubleTensorType, FloatTensorType)):
        input_name = scope.get_unique_variable_name("cast_input")
        add_node("Cast", X.full_name, input_name, to=TensorProto.FLOAT)

    coef = scope.get_unique_variable_name("coef")
    weights = np.asarray(model.coef_.T, dtype=dtype)
    container.add_initializer(coef, proto_dtype, weights.shape, weights.ravel())
    intercept = scope.get_unique_variable_name("intercept")
    bias = np.asarray(model.intercept_, dtype=dtype)
    container.add_initializer(intercept, proto_dtype, bias.shape, bias)
    labels = _onnx_labels(scope, model)
    classes = scope.get_unique_variable_name("classes")
    if labels.dtype.kind == "U":
        encoded = [label.encode("utf-8") for label in labels]
        container.add_initializer(classes, TensorProto.STRING, labels.shape, encoded)
    else:
        container.add_initializer(classes, TensorProto.INT64, labels.shape, labels)

    product = scope.get_unique_variable_name("product")
    add_node("MatMul", [input_name, coef], product)
    logits = scope.get_unique_variable_name("logits")
    add_node("Add", [product, intercept], logits)
    add_node("Softmax", logits, operator.outputs[1].full_name, axis=1)
    # ArgMax picks the first of tied maxima, as numpy's argmax in predict.
    index = scope.get_unique_variable_name("index")
    add_node("ArgMax", logits, index, axis=1, keepdims=0)
    add_node("Gather", [classes, index], operator.outputs[0].full_name, axis=0)


def register_onnx_converter():
    """Teach skl2onnx to convert :class:`SoftmaxClassifier`.

    Call it once before :func:`skl2onnx.to_onnx`; the converter then works
    for the estimator alone and inside Pipelines. As with scikit-learn's
    classifiers, the graph has two outputs: ``label`` and ``probabilities``,
    the latter a list of ``{label: probability}`` dicts unless the option
    ``{"zipmap": False}`` asks for a plain ``(n_samples, n_classes)`` tensor.
    Float input gives float probabilities, double input double ones.

    Requires skl2onnx (``pip install "sksoftmax[onnx]"``).

    Examples
    --------
    >>> import numpy as np
    >>> from skl2onnx import to_onnx
    >>> from sksoftmax import SoftmaxClassifier, register_onnx_converter
    >>> register_onnx_converter()
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]], dtype=np.float32)
    >>> clf = SoftmaxClassifier().fit(X, [0, 0, 1, 1])
    >>> onx = to_onnx(clf, X, options={"zipmap": False})
    >>> [output.name for output in onx.graph.output]
    ['label', 'probabilities']
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError as exc:
        raise ImportError(
            "register_onnx_converter needs skl2onnx; install it with "
            'pip install "sksoftmax[onnx]".'
        ) from exc
    update_registered_converter(
        SoftmaxClassifier,
        _ALIAS,
        _shape_calculator,
        _converter,
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )

"""Command line: ``python -m sksoftmax demo | fit | predict``.

Also installed as the ``sksoftmax`` script. ``fit`` and ``predict`` need the
``cli`` extra (pandas, pyarrow for Parquet, skops for the model file); they
are imported only when those commands run, so ``demo`` works without them.
"""

import argparse
import io
import os
import re
import sys
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._classifier import SoftmaxClassifier

# The one type in a model file written by ``fit`` that skops does not trust by
# default; ``predict`` refuses files that need anything more.
TRUSTED_TYPES = [f"{SoftmaxClassifier.__module__}.{SoftmaxClassifier.__qualname__}"]

_CLI_EXTRA = 'pip install "sksoftmax[cli]"'


class CommandError(Exception):
    """A problem with the user's input, reported as one line, no traceback."""


def _fit_and_score(model, X_train, y_train, X_test, y_test, repeats=5):
    seconds = []
    for _ in range(repeats):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            seconds.append(time.perf_counter() - start)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    proba = model.predict_proba(X_test)
    return {
        "test accuracy": f"{accuracy_score(y_test, model.predict(X_test)):.4f}",
        "test log loss": f"{log_loss(y_test, proba, labels=model.classes_):.4f}",
        "fit time (s)": f"{np.median(seconds):.3f}",
        "iterations": f"{int(np.max(model.n_iter_))}"
        + ("" if converged else " (no conv.)"),
    }


def demo():
    """Fit on scikit-learn's bundled digits; compare with LogisticRegression."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    print(
        f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
        f"{X.shape[1]} raw pixel features, {len(np.unique(y))} classes; "
        "default settings, C=1.0; fit time is the median of 5 fits\n"
    )
    rows = {
        "SoftmaxClassifier": _fit_and_score(
            SoftmaxClassifier(), X_train, y_train, X_test, y_test
        ),
        "LogisticRegression": _fit_and_score(
            LogisticRegression(), X_train, y_train, X_test, y_test
        ),
    }
    metrics = list(next(iter(rows.values())))
    width = max(map(len, metrics))
    print(f"{'':{width}}  " + "  ".join(f"{name:>18}" for name in rows))
    for metric in metrics:
        print(
            f"{metric:{width}}  " + "  ".join(f"{r[metric]:>18}" for r in rows.values())
        )


def _import_cli_extra():
    try:
        import pandas
        import skops.io
    except ImportError as exc:
        raise CommandError(
            f"fit and predict need pandas and skops: {_CLI_EXTRA}"
        ) from exc
    return pandas, skops.io


def _read_table(path, sep=","):
    """A CSV file, or Parquet when the name ends in .parquet or .pq."""
    pd, _ = _import_cli_extra()
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"no such file: {path}")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                import pyarrow  # noqa: F401
            except ImportError as exc:
                raise CommandError(
                    f"reading Parquet needs pyarrow: {_CLI_EXTRA}"
                ) from exc
            return pd.read_parquet(path)
        return pd.read_csv(path, sep=sep)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read {path}: {exc}") from exc


def _pipeline(X, C, class_weight, coerced=None):
    """One-hot encode the non-numeric columns, scale the numeric ones.

    Columns coerced to numbers get their missing values (the coerced ones)
    replaced by the column's median first.
    """
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    coerced = [c for c in coerced or [] if c in X.columns]
    numeric = [
        c
        for c in X.columns
        if is_numeric_dtype(X[c]) and not is_bool_dtype(X[c]) and c not in coerced
    ]
    categorical = [c for c in X.columns if c not in numeric and c not in coerced]
    features = ColumnTransformer(
        [
            ("onehot", OneHotEncoder(handle_unknown="ignore"), categorical),
            ("scale", StandardScaler(), numeric),
            (
                "coerced",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                coerced,
            ),
        ]
    )
    classifier = SoftmaxClassifier(C=C, class_weight=class_weight)
    return Pipeline([("features", features), ("classifier", classifier)]), categorical


def _categories_as_text(X, categorical):
    """Categorical columns as text, so that mixed or numeric-looking values encode.

    A column read as numbers in one file and as text in another (or holding
    both) would otherwise trip the encoder; missing values are refused.
    """
    X = X.copy()
    for column in categorical:
        n_missing = int(X[column].isna().sum())
        if n_missing:
            raise CommandError(
                f"categorical column {column!r} has {n_missing} missing value(s); "
                "fill them (e.g. with a category of their own) first"
            )
        X[column] = X[column].astype(str).astype(object)
    return X


def _print_table(header, rows):
    widths = [
        max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))
    ]
    for row in [header, *rows]:
        cells = [f"{str(row[0]):<{widths[0]}}"]
        cells += [
            f"{str(cell):>{width}}"
            for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))


def _print_metrics(model, X_test, y_test):
    proba = model.predict_proba(X_test)
    classes = model.classes_
    predicted = model.predict(X_test)
    precision, recall, _, support = precision_recall_fscore_support(
        y_test, predicted, labels=classes, zero_division=0
    )
    print(f"\nheld-out part: {len(y_test)} rows")
    metrics = [
        ["accuracy", f"{accuracy_score(y_test, predicted):.4f}"],
        ["log loss", f"{log_loss(y_test, proba, labels=classes):.4f}"],
    ]
    _print_table(["metric", "value"], metrics)
    print()
    _print_table(
        ["class", "precision", "recall", "support"],
        [
            [label, f"{p:.4f}", f"{r:.4f}", n]
            for label, p, r, n in zip(classes, precision, recall, support, strict=True)
        ],
    )
    return metrics


def _check_columns(data, wanted, source):
    for column in wanted:
        if column not in data.columns:
            columns = ", ".join(repr(str(c)) for c in data.columns)
            raise CommandError(
                f"column {column!r} is not in {source}; its columns are {columns} "
                "(for a file separated by something else than commas, pass --sep)"
            )


def _features_and_target(data, target, source, id_column=None):
    """Split off the target (and id) column, refusing what cannot be fitted."""
    _check_columns(data, [target] + ([id_column] if id_column else []), source)
    if len(data) == 0:
        raise CommandError(f"{source} has a header but no data rows")
    y = data[target]
    X = data.drop(columns=[target] + ([id_column] if id_column else []))
    if X.shape[1] == 0:
        raise CommandError(f"{source} has no columns besides the target {target!r}")
    n_missing = int(y.isna().sum())
    if n_missing:
        raise CommandError(
            f"the target column {target!r} has {n_missing} missing values"
        )
    classes = y.unique()
    if len(classes) < 2:
        raise CommandError(
            f"the target column {target!r} has a single class ({classes[0]!r}); "
            "a classifier needs at least two"
        )
    return X, y


# A text column whose values are numbers but for at most this fraction is
# taken for a numeric column with typos, not for a categorical one.
_STRAY_FRACTION = 0.05


def _numeric_with_strays(X, coerce):
    """Refuse numeric columns with a few non-numeric values; coerce those asked.

    One-hot encoding such a column would turn every distinct number into a
    feature of its own and fit nonsense without a word.
    """
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    X = X.copy()
    for column in coerce:
        _check_columns(X, [column], "the features")
        X[column] = pd.to_numeric(X[column], errors="coerce")
    for column in X.columns:
        values = X[column]
        if is_numeric_dtype(values) or values.dtype == bool:
            continue
        present = values.dropna()
        numbers = pd.to_numeric(present, errors="coerce")
        strays = present[numbers.isna()]
        if 0 < len(strays) <= _STRAY_FRACTION * len(present):
            rows = ", ".join(str(int(i) + 1) for i in strays.index[:5])
            shown = ", ".join(repr(v) for v in strays.unique()[:5])
            raise CommandError(
                f"column {column!r} is numeric except for {len(strays)} value(s) "
                f"({shown}) in data row(s) {rows}; correct them, or pass "
                f"--coerce-numeric {column} to treat them as missing values"
            )
    return X


def _refuse_infinite(X, numeric, source):
    """Name a numeric column holding an infinity (scikit-learn would not)."""
    for column in numeric:
        values = X[column].to_numpy(dtype=float, na_value=np.nan)
        rows = np.flatnonzero(np.isinf(values))
        if rows.size:
            raise CommandError(
                f"column {column!r} of {source} holds an infinite value in data "
                f"row(s) {', '.join(str(r + 1) for r in rows[:5])}"
            )


def _as_numbers(X, numeric, source):
    """Numeric columns of a table to predict on, naming any that are not numbers."""
    import pandas as pd

    X = X.copy()
    for column in numeric:
        converted = pd.to_numeric(X[column], errors="coerce")
        bad = X[column][converted.isna() & X[column].notna()]
        if len(bad):
            raise CommandError(
                f"column {column!r} of {source} should hold numbers, but data "
                f"row {int(bad.index[0]) + 1} holds {bad.iloc[0]!r}"
            )
        X[column] = converted
    _refuse_infinite(X, numeric, source)
    return X


def _refuse_overwrite(out, inputs, force):
    """Never write over an input file, nor over any file without --force."""
    out = Path(out)
    for path in inputs:
        if out.exists() and Path(path).exists() and out.samefile(path):
            raise CommandError(f"refusing to write over the input file {path}")
    if out.exists() and not force:
        raise CommandError(f"{out} exists; pass --force to replace it")
    if not out.resolve().parent.is_dir():
        raise CommandError(f"cannot write {out}: its folder does not exist")


def fit(args):
    """Fit a Pipeline on a table, report held-out metrics, save it with skops."""
    _, sio = _import_cli_extra()
    _refuse_overwrite(args.out, [args.data], args.force)
    if args.report:
        if args.test_size == 0:
            raise CommandError(
                "--report shows held-out metrics: --test-size must be > 0"
            )
        page = Path(args.report) / "index.html"
        if page.exists() and not args.force:
            raise CommandError(f"{page} exists; pass --force to replace it")
    X, y = _features_and_target(
        _read_table(args.data, args.sep), args.target, args.data, args.id_column
    )
    X = _numeric_with_strays(X, args.coerce_numeric or [])
    model, categorical = _pipeline(X, args.C, args.class_weight, args.coerce_numeric)
    X = _categories_as_text(X, categorical)
    coerced = set(args.coerce_numeric or [])
    _refuse_infinite(X, [c for c in X.columns if c not in categorical], args.data)
    incomplete = [
        str(c)
        for c in X.columns
        if c not in categorical and c not in coerced and X[c].isna().any()
    ]
    if incomplete:
        raise CommandError(
            "numeric column(s) with missing values, fill or drop them first: "
            + ", ".join(map(repr, incomplete))
        )

    if args.test_size > 0:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=args.test_size, stratify=y, random_state=0
        )
    else:
        X_train, X_test, y_train, y_test = X, None, y, None
    n_categorical = len(categorical)
    print(
        f"{args.data}: {len(y)} rows, {X.shape[1]} feature columns "
        f"({n_categorical} one-hot encoded, {X.shape[1] - n_categorical} scaled), "
        f"target {args.target!r} with {y.nunique()} classes; "
        f"fitting on {len(y_train)} rows"
        + (f", holding out {len(y_test)}" if y_test is not None else "")
    )
    scaled = [str(c) for c in X.columns if c not in categorical]
    print(
        "one-hot encoded: "
        + (", ".join(map(str, categorical)) or "none")
        + "; scaled: "
        + (", ".join(scaled) or "none")
    )
    if args.cv:
        accuracy, loss = _cross_validate(model, X_train, y_train, args.cv)
        print(
            f"{args.cv}-fold cross-validation on the fitting part: "
            f"accuracy {accuracy.mean():.4f} +/- {accuracy.std():.4f}, "
            f"log loss {loss.mean():.4f} +/- {loss.std():.4f}"
        )
    trace = _fit_with_progress(model, X_train, y_train, echo=args.verbose)
    # The saved model should predict quietly wherever it is loaded and refit.
    model.set_params(classifier__verbose=0)
    if y_test is not None:
        metrics = _print_metrics(model, X_test, y_test)
        if args.report:
            _write_report(args.report, model, X_test, y_test, metrics, trace)
    try:
        sio.dump(model, args.out)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from exc
    print(f"\nmodel saved to {args.out}")


def _progress(**kwargs):
    """A progress bar on standard error (the tqdm of the cli extra)."""
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise CommandError(f"progress bars need tqdm: {_CLI_EXTRA}") from exc
    return tqdm(file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


def _cross_validate(model, X, y, n_folds):
    """Accuracy and log loss of each fold, with a bar over the folds."""
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=0).split(X, y)
    accuracy, loss = [], []
    with _progress(total=n_folds, desc="cross-validation", unit="fold") as bar:
        for train, test in folds:
            fold = clone(model).fit(X.iloc[train], y.iloc[train])
            proba = fold.predict_proba(X.iloc[test])
            accuracy.append(accuracy_score(y.iloc[test], fold.predict(X.iloc[test])))
            loss.append(log_loss(y.iloc[test], proba, labels=fold.classes_))
            bar.update(1)
    return np.array(accuracy), np.array(loss)


class _LiveFit(io.TextIOBase):
    """The solver's verbose lines as a live bar, a trace and, asked, an echo."""

    _LINE = re.compile(r"iter\s+(\d+)\s+objective (\S+)\s+max\|grad\| (\S+)")

    def __init__(self, bar, echo):
        self.bar = bar
        self.echo = echo
        self.trace = []

    def write(self, text):
        if self.echo is not None:
            self.echo.write(text)
        for line in text.splitlines():
            found = self._LINE.search(line)
            if found:
                self.trace.append((int(found[1]), float(found[2]), float(found[3])))
                self.bar.update(1)
                self.bar.set_postfix_str(
                    f"objective {float(found[2]):.6g}, max|grad| {found[3]}"
                )
        return len(text)


def _fit_with_progress(model, X, y, echo=False):
    """Fit with a live bar; returns the trace (iteration, objective, max|grad|).

    With ``echo`` the solver's lines are also printed, as with ``--verbose``.
    """
    with _progress(desc="fitting", unit="iter", disable=echo) as bar:
        live = _LiveFit(bar, sys.stdout if echo else None)
        model.set_params(classifier__verbose=1)
        with redirect_stdout(live):
            model.fit(X, y)
    return live.trace


def _write_report(folder, model, X_test, y_test, metrics, trace):
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise CommandError(f"--report needs matplotlib: {_CLI_EXTRA}") from exc
    from ._report import write_report

    page = write_report(folder, model, X_test, y_test, metrics, trace)
    print(f"report written to {page}")


def _load_model(path):
    """A model file written by ``fit``; nothing else is trusted."""
    _, sio = _import_cli_extra()
    if not Path(path).is_file():
        raise CommandError(f"no such file: {path}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip, JSON or schema error: anything but a model
        raise CommandError(
            f"cannot read model {path}: not a skops file ({exc})"
        ) from exc
    unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unexpected:
        raise CommandError(
            f"model {path} contains types that sksoftmax fit does not write, "
            f"refusing to load it: {', '.join(unexpected)}"
        )
    try:
        model = sio.load(path, trusted=untrusted)
    except Exception as exc:
        raise CommandError(f"cannot read model {path}: {exc}") from exc
    if not hasattr(model, "predict_proba") or not hasattr(model, "feature_names_in_"):
        raise CommandError(f"{path} does not hold a model fitted by sksoftmax fit")
    return model


def predict(args):
    """Write the predicted labels (and probabilities) of a table as CSV."""
    pd, _ = _import_cli_extra()
    if args.out:
        _refuse_overwrite(args.out, [args.model, args.data], args.force)
    model = _load_model(args.model)
    data = _read_table(args.data, args.sep)
    if args.id_column:
        _check_columns(data, [args.id_column], args.data)
    columns = list(model.feature_names_in_)
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise CommandError(
            f"{args.data} lacks the column(s) the model was fitted on: "
            + ", ".join(repr(str(c)) for c in missing)
        )
    features = model.named_steps["features"]
    categorical = [
        c for name, _, cols in features.transformers_ if name == "onehot" for c in cols
    ]
    by_step = {name: list(cols) for name, _, cols in features.transformers_}
    X = _categories_as_text(data[columns], categorical)
    X = _as_numbers(X, by_step.get("scale", []), args.data)
    for column in by_step.get("coerced", []):
        # As in fit: what is not a number is missing, then the median.
        X[column] = pd.to_numeric(X[column], errors="coerce")
    out = pd.DataFrame({"label": model.predict(X)})
    if args.id_column:
        out.insert(0, args.id_column, data[args.id_column].to_numpy())
    if args.proba:
        for label, column in zip(model.classes_, model.predict_proba(X).T, strict=True):
            out[f"proba_{label}"] = column
    if not args.out:
        out.to_csv(sys.stdout, index=False)
        return
    try:
        out.to_csv(args.out, index=False)
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc}") from exc
    print(f"wrote {len(out)} predictions to {args.out}")


def _test_size(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _n_folds(text):
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 folds, got {text}")
    return value


def _parser():
    parser = argparse.ArgumentParser(
        prog="sksoftmax", description="Softmax regression, scikit-learn style."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="fit on the bundled digits data and compare")

    fit_parser = commands.add_parser(
        "fit",
        help="fit a model on a CSV or Parquet table and save it",
        description="One-hot encode the non-numeric columns, scale the numeric "
        "ones, fit a SoftmaxClassifier, report metrics on a held-out part and "
        "save the fitted Pipeline as a skops file.",
    )
    fit_parser.add_argument(
        "data", metavar="DATA", help="CSV, or Parquet (.parquet, .pq)"
    )
    fit_parser.add_argument(
        "--target",
        required=True,
        metavar="COL",
        help="the column holding the class labels",
    )
    fit_parser.add_argument(
        "--out",
        required=True,
        metavar="MODEL",
        help="where to save the fitted model (skops format)",
    )
    fit_parser.add_argument(
        "--C",
        type=float,
        default=1.0,
        help="inverse regularization strength (default 1.0)",
    )
    fit_parser.add_argument(
        "--class-weight",
        choices=["balanced"],
        default=None,
        help="reweight classes inversely to their frequency",
    )
    fit_parser.add_argument(
        "--test-size",
        type=_test_size,
        default=0.25,
        metavar="F",
        help="fraction held out for the metrics, stratified; "
        "0 fits on all rows (default 0.25)",
    )
    fit_parser.add_argument(
        "--cv",
        type=_n_folds,
        default=None,
        metavar="K",
        help="also report K-fold cross-validation on the fitting part",
    )
    fit_parser.add_argument(
        "--verbose", action="store_true", help="print one line per solver iteration"
    )
    fit_parser.add_argument(
        "--coerce-numeric",
        action="append",
        metavar="COL",
        help="read COL as numbers, its non-numeric values as missing (replaced "
        "by the median); repeat for more columns",
    )
    fit_parser.add_argument(
        "--report",
        metavar="DIR",
        help="write an HTML page (DIR/index.html) with the held-out metrics, a "
        "confusion matrix, reliability curves, the coefficients and the "
        "convergence trace",
    )
    fit_parser.add_argument(
        "--id-column",
        metavar="COL",
        help="a column that identifies rows: not a feature",
    )

    predict_parser = commands.add_parser(
        "predict",
        help="predict with a saved model, writing CSV",
        description="Write the predicted label of each row of DATA, then with "
        "--proba one probability column per class, as CSV.",
    )
    predict_parser.add_argument("model", metavar="MODEL", help="a file saved by fit")
    predict_parser.add_argument(
        "data", metavar="DATA", help="CSV, or Parquet (.parquet, .pq)"
    )
    predict_parser.add_argument(
        "--proba", action="store_true", help="add one probability column per class"
    )
    predict_parser.add_argument(
        "--out", metavar="FILE", help="write to FILE instead of standard output"
    )
    predict_parser.add_argument(
        "--id-column",
        metavar="COL",
        help="copy this column of DATA into the output, first",
    )
    for sub in (fit_parser, predict_parser):
        sub.add_argument(
            "--sep", default=",", metavar="S", help="CSV field separator (default ,)"
        )
        sub.add_argument(
            "--force", action="store_true", help="replace an existing output file"
        )
    return parser


def main(argv=None):
    """Entry point of ``python -m sksoftmax`` and the ``sksoftmax`` script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "demo":
            demo()
        elif args.command == "fit":
            fit(args)
        else:
            predict(args)
    except (CommandError, ValueError, TypeError) as exc:
        # ValueError, TypeError: scikit-learn's account of bad data (NaN, too
        # few rows, a column of unusable type...).
        message = " ".join(str(exc).split())
        print(f"sksoftmax {args.command}: error: {message}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader (say, `head`) left early; say nothing more on stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 0

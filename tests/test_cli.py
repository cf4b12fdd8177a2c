"""The command line, driven as a user would: a subprocess."""

import io
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sksoftmax._cli import main


@pytest.mark.slow
def test_demo_prints_the_comparison_table():
    out = subprocess.run(
        [sys.executable, "-m", "sksoftmax", "demo"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    assert "SoftmaxClassifier" in out and "LogisticRegression" in out
    for metric in ["test accuracy", "test log loss", "fit time (s)", "iterations"]:
        assert metric in out
    accuracy_line = next(line for line in out.splitlines() if "test accuracy" in line)
    ours = float(accuracy_line.split()[2])
    assert ours > 0.9


def test_unknown_command_fails_cleanly():
    run = subprocess.run(
        [sys.executable, "-m", "sksoftmax", "dance"], capture_output=True, text=True
    )
    assert run.returncode != 0
    assert "invalid choice" in run.stderr
    assert "Traceback" not in run.stderr


# fit and predict, on files the tests write


def sksoftmax(*args, check=True):
    """Run the command line in this process, as ``main`` does for the script.

    Starting Python and importing scikit-learn and pandas costs seconds per
    call; the entry point itself is run as a subprocess by the tests above and
    by ``test_fit_and_predict_as_a_subprocess``.
    """
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    run = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if check:
        assert run.returncode == 0, run.stderr
    return run


@pytest.mark.slow
def test_fit_and_predict_as_a_subprocess(iris_table, tmp_path):
    iris_table.to_csv(tmp_path / "iris.csv", index=False)
    command = [sys.executable, "-m", "sksoftmax"]
    subprocess.run(
        [*command, "fit", tmp_path / "iris.csv", "--target", "species",
         "--out", tmp_path / "m.skops"],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    predicted = subprocess.run(
        [*command, "predict", tmp_path / "m.skops", tmp_path / "iris.csv"],
        check=True, capture_output=True, text=True, timeout=300,
    ).stdout  # fmt: skip
    assert predicted.splitlines()[0] == "label"
    failed = subprocess.run(
        [*command, "predict", tmp_path / "m.skops", tmp_path / "absent.csv"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert failed.returncode == 1 and "Traceback" not in failed.stderr


@pytest.fixture(scope="module")
def iris_table():
    pytest.importorskip("pandas")
    data = load_iris(as_frame=True)
    table = data.data.copy()
    # A string column, to be one-hot encoded; it carries no signal.
    table["colour"] = np.array(["red", "green", "blue"])[np.arange(len(table)) % 3]
    table["species"] = data.target_names[data.target]
    return table


@pytest.fixture(scope="module")
def fitted(iris_table, tmp_path_factory):
    """A model fitted on every row by the command line, and its table."""
    folder = tmp_path_factory.mktemp("cli")
    iris_table.to_csv(folder / "iris.csv", index=False)
    run = sksoftmax(
        "fit",
        folder / "iris.csv",
        "--target",
        "species",
        "--test-size",
        "0",
        "--C",
        "0.5",
        "--out",
        folder / "model.skops",
    )
    return folder, run.stdout


def reference_pipeline(table, C):
    """The documented model, with LogisticRegression at tight tolerance."""
    X, y = table.drop(columns="species"), table["species"]
    features = ColumnTransformer(
        [
            ("onehot", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
            ("scale", StandardScaler(), list(X.columns[:4])),
        ]
    )
    logistic = LogisticRegression(C=C, tol=1e-10, max_iter=10000)
    return make_pipeline(features, logistic).fit(X, y)


def test_predict_writes_labels_and_probabilities_of_the_documented_model(
    iris_table, fitted
):
    import pandas as pd

    folder, _ = fitted
    new = iris_table.drop(columns="species").sample(frac=1, random_state=0)
    new[new.columns[::-1]].to_csv(folder / "new.csv", index=False)  # any order

    out = sksoftmax("predict", folder / "model.skops", folder / "new.csv", "--proba")
    predicted = pd.read_csv(io.StringIO(out.stdout))

    reference = reference_pipeline(iris_table, C=0.5)
    classes = list(reference.classes_)
    assert list(predicted.columns) == ["label"] + [f"proba_{c}" for c in classes]
    np.testing.assert_allclose(
        predicted.iloc[:, 1:].to_numpy(), reference.predict_proba(new), atol=1e-3
    )
    np.testing.assert_array_equal(predicted["label"], reference.predict(new))


def test_predict_out_writes_a_file(iris_table, fitted):
    import pandas as pd

    folder, _ = fitted
    iris_table.head(7).to_csv(folder / "seven.csv", index=False)
    run = sksoftmax(
        "predict",
        folder / "model.skops",
        folder / "seven.csv",
        "--out",
        folder / "labels.csv",
    )
    assert "labels.csv" in run.stdout
    labels = pd.read_csv(folder / "labels.csv")
    assert list(labels.columns) == ["label"]
    assert list(labels["label"]) == list(iris_table["species"].head(7))


def test_fit_on_parquet_reports_metrics_and_progress(iris_table, tmp_path):
    sio = pytest.importorskip("skops.io")
    pytest.importorskip("pyarrow")
    iris_table.to_parquet(tmp_path / "iris.parquet")
    out = sksoftmax(
        "fit",
        tmp_path / "iris.parquet",
        "--target",
        "species",
        "--test-size",
        "0.3",
        "--cv",
        "3",
        "--class-weight",
        "balanced",
        "--verbose",
        "--out",
        tmp_path / "model.skops",
    ).stdout
    lines = out.splitlines()

    model = sio.load(
        tmp_path / "model.skops", trusted=["sksoftmax._classifier.SoftmaxClassifier"]
    )
    assert model[-1].class_weight == "balanced"
    assert model[-1].verbose == 0
    # --verbose: one progress line per solver iteration of the saved fit.
    assert sum(line.startswith("iter") for line in lines) == model[-1].n_iter_
    assert "3-fold cross-validation" in out

    rows = {line.split()[0]: line.split()[1:] for line in lines if line.strip()}
    assert 0.8 <= float(rows["accuracy"][0]) <= 1
    assert 0 < float(rows["log"][1]) < 1  # "log loss  0.1234"
    # Stratified hold-out of 30%: 15 rows of each species.
    for species in ["setosa", "versicolor", "virginica"]:
        precision, recall, support = rows[species]
        assert 0 <= float(precision) <= 1 and 0 <= float(recall) <= 1
        assert support == "15"


def test_fit_prints_what_it_fitted(fitted):
    _, out = fitted
    assert "150 rows" in out
    assert "1 one-hot encoded, 4 scaled" in out
    assert "model saved to" in out


def failing(*args):
    run = sksoftmax(*args, check=False)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    return run.stderr


def test_missing_data_file(tmp_path):
    err = failing("fit", tmp_path / "nope.csv", "--target", "y", "--out", "m.skops")
    assert "no such file" in err and "nope.csv" in err


def test_unknown_target_column(fitted):
    folder, _ = fitted
    err = failing(
        "fit", folder / "iris.csv", "--target", "kind", "--out", folder / "m.skops"
    )
    assert "'kind'" in err and "'species'" in err


def test_target_with_one_class(iris_table, tmp_path):
    iris_table.assign(species="setosa").to_csv(tmp_path / "one.csv", index=False)
    err = failing(
        "fit", tmp_path / "one.csv", "--target", "species", "--out", tmp_path / "m"
    )
    assert "single class" in err and "'setosa'" in err


def test_unreadable_model(fitted):
    folder, _ = fitted
    (folder / "garbage.skops").write_text("not a model")
    err = failing("predict", folder / "garbage.skops", folder / "iris.csv")
    assert "cannot read model" in err


def test_data_without_a_fitted_column(iris_table, fitted):
    folder, _ = fitted
    iris_table.drop(columns="colour").to_csv(folder / "no_colour.csv", index=False)
    err = failing("predict", folder / "model.skops", folder / "no_colour.csv")
    assert "'colour'" in err


# a command line that cannot hurt your data


def test_a_numeric_column_with_a_typo_is_refused_then_coerced(iris_table, tmp_path):
    table = iris_table.copy()
    table["sepal length (cm)"] = table["sepal length (cm)"].astype(object)
    table.loc[16, "sepal length (cm)"] = "abc"
    table.to_csv(tmp_path / "typo.csv", index=False)
    run = sksoftmax(
        "fit", tmp_path / "typo.csv", "--target", "species",
        "--out", tmp_path / "m.skops", check=False,
    )  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "'sepal length (cm)' is numeric except for 1 value(s) ('abc')" in run.stderr
    assert "row(s) 17" in run.stderr and "--coerce-numeric" in run.stderr
    assert not (tmp_path / "m.skops").exists()
    coerced = sksoftmax(
        "fit", tmp_path / "typo.csv", "--target", "species",
        "--out", tmp_path / "m.skops", "--coerce-numeric", "sepal length (cm)",
    )  # fmt: skip
    assert "scaled: " in coerced.stdout


def test_outputs_never_overwrite_inputs_or_existing_files(fitted, tmp_path):
    folder, _ = fitted
    data, model = folder / "iris.csv", folder / "model.skops"
    before = data.read_bytes()
    run = sksoftmax("fit", data, "--target", "species", "--out", data, check=False)
    assert run.returncode == 1 and "refusing to write over the input" in run.stderr
    run = sksoftmax("predict", model, data, "--out", model, check=False)
    assert run.returncode == 1 and "refusing to write over the input" in run.stderr
    existing = tmp_path / "existing.csv"
    existing.write_text("keep me\n")
    run = sksoftmax("predict", model, data, "--out", existing, check=False)
    assert run.returncode == 1 and "--force" in run.stderr
    assert existing.read_text() == "keep me\n" and data.read_bytes() == before
    sksoftmax("predict", model, data, "--out", existing, "--force")
    assert existing.read_text().startswith("label")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b,label\n", "no data rows"),
        ("a;b;label\n1;2;x\n3;4;y\n", "--sep"),
    ],
)
def test_bad_tables_get_one_line(tmp_path, content, message):
    pytest.importorskip("pandas")
    (tmp_path / "t.csv").write_text(content)
    run = sksoftmax(
        "fit", tmp_path / "t.csv", "--target", "label", "--out", tmp_path / "m",
        check=False,
    )  # fmt: skip
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert message in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_sep_and_id_column_round_trip(iris_table, tmp_path):
    table = iris_table.copy()
    table.insert(0, "id", [f"r{i}" for i in range(len(table))])
    table.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    sksoftmax(
        "fit", tmp_path / "semi.csv", "--sep", ";", "--target", "species",
        "--id-column", "id", "--out", tmp_path / "m.skops",
    )  # fmt: skip
    out = sksoftmax(
        "predict", tmp_path / "m.skops", tmp_path / "semi.csv", "--sep", ";",
        "--id-column", "id", "--proba",
    ).stdout  # fmt: skip
    header, first = out.splitlines()[:2]
    assert header.startswith("id,label,proba_setosa")
    assert first.startswith("r0,setosa,")


def test_mixed_type_categories_encode_at_fit_and_predict(iris_table, tmp_path):
    table = iris_table.copy()
    table["colour"] = ["red" if i % 2 else 7 for i in range(len(table))]
    table.to_csv(tmp_path / "mixed.csv", index=False)
    sksoftmax(
        "fit", tmp_path / "mixed.csv", "--target", "species", "--test-size", "0",
        "--out", tmp_path / "m.skops",
    )  # fmt: skip
    numeric_only = table.copy()
    numeric_only["colour"] = 7
    numeric_only.to_csv(tmp_path / "numeric.csv", index=False)
    out = sksoftmax("predict", tmp_path / "m.skops", tmp_path / "numeric.csv").stdout
    assert out.splitlines()[0] == "label" and len(out.splitlines()) == len(table) + 1


def test_fit_shows_progress_over_folds_and_iterations(iris_table, tmp_path):
    pytest.importorskip("tqdm")
    iris_table.to_csv(tmp_path / "iris.csv", index=False)
    run = sksoftmax(
        "fit", tmp_path / "iris.csv", "--target", "species", "--cv", "3",
        "--out", tmp_path / "m.skops",
    )  # fmt: skip
    assert "cross-validation" in run.stderr and "/3 " in run.stderr
    assert "fitting" in run.stderr and "objective" in run.stderr
    assert "max|grad|" in run.stderr and "iter " not in run.stdout
    assert "3-fold cross-validation on the fitting part: accuracy" in run.stdout


def test_report_writes_a_page_whose_numbers_are_the_printed_ones(iris_table, tmp_path):
    pytest.importorskip("matplotlib")
    iris_table.to_csv(tmp_path / "iris.csv", index=False)
    report = tmp_path / "report"
    run = sksoftmax(
        "fit", tmp_path / "iris.csv", "--target", "species",
        "--out", tmp_path / "m.skops", "--report", report,
    )  # fmt: skip
    page = (report / "index.html").read_text()
    for name in ["confusion.png", "calibration.png", "coefficients.png"]:
        assert (report / name).stat().st_size > 1000 and name in page
    assert (report / "convergence.png").stat().st_size > 1000
    lines = run.stdout.splitlines()
    accuracy = next(line.split()[-1] for line in lines if line.startswith("accuracy"))
    loss = next(line.split()[-1] for line in lines if line.startswith("log loss"))
    assert f"<td>accuracy</td><td>{accuracy}</td>" in page
    assert f"<td>log loss</td><td>{loss}</td>" in page
    again = sksoftmax(
        "fit", tmp_path / "iris.csv", "--target", "species", "--force",
        "--out", tmp_path / "m.skops", "--report", report,
    )  # fmt: skip
    assert again.returncode == 0
    refused = sksoftmax(
        "fit", tmp_path / "iris.csv", "--target", "species",
        "--out", tmp_path / "m2.skops", "--report", report, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "--force" in refused.stderr


def test_bad_values_are_named_with_their_column(iris_table, fitted, tmp_path):
    folder, _ = fitted
    table = iris_table.copy()
    table.loc[3, "petal width (cm)"] = np.inf
    table.to_csv(tmp_path / "inf.csv", index=False)
    run = sksoftmax(
        "fit", tmp_path / "inf.csv", "--target", "species",
        "--out", tmp_path / "m.skops", check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert "column 'petal width (cm)'" in run.stderr and "row(s) 4" in run.stderr
    text = iris_table.astype({"sepal width (cm)": object})
    text.loc[7, "sepal width (cm)"] = "abc"
    text.to_csv(tmp_path / "text.csv", index=False)
    run = sksoftmax(
        "predict", folder / "model.skops", tmp_path / "text.csv", check=False
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "column 'sepal width (cm)'" in run.stderr and "'abc'" in run.stderr

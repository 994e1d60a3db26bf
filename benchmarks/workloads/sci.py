"""Workload for the `sci` environment: a model fit and a plot.

Fits scikit-learn models on load_iris (packaged data), round-trips a pandas frame through
pyarrow/parquet, runs a scipy optimisation and saves a matplotlib (Agg) figure. Exit 0 on success.
"""

# ruff: noqa: E402 - the sys.path guard below must run before the imports it protects.
import os
import sys

# This file is named after the distribution it exercises (django.py, torch.py, ...): drop its
# own directory from sys.path so `import django` finds the installed package, not this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from scipy import optimize  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def main() -> int:
    iris = load_iris(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        iris.data, iris.target, test_size=0.3, random_state=0)
    score = LogisticRegression(max_iter=500).fit(X_train, y_train).score(X_test, y_test)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)
    assert score > 0.8 and forest.score(X_test, y_test) > 0.8, score
    res = optimize.minimize(lambda v: float(np.sum((v - 3.0) ** 2)), np.zeros(3))
    assert np.allclose(res.x, 3.0, atol=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        frame = iris.frame.assign(species=pd.Categorical.from_codes(iris.target, iris.target_names))
        pq.write_table(pa.Table.from_pandas(frame), Path(tmp, "iris.parquet"))
        back = pq.read_table(Path(tmp, "iris.parquet")).to_pandas()
        assert back.shape == frame.shape
        fig, ax = plt.subplots()
        ax.scatter(frame.iloc[:, 0], frame.iloc[:, 1], c=iris.target)
        ax.set_title("iris")
        out = Path(tmp, "iris.png")
        fig.savefig(out)
        assert out.stat().st_size > 1000
    print(f"sci ok accuracy={score:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Test session setup shared by tests/, the doctests and docs/*.rst."""

import os

# scipy reads this once, on import, and scikit-learn refuses Array API
# dispatch without it; set before anything imports scipy, so that the Array
# API tests and scikit-learn's Array API estimator checks run.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

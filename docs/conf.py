"""Sphinx configuration.

The build must succeed without network access: no intersphinx inventories,
no version switcher, no analytics, and MathJax served from the build's own
``_static`` folder (``sphinx-mathjax-offline``) instead of a CDN.
"""

import sksoftmax

project = "sksoftmax"
author = "sksoftmax developers"
copyright = "sksoftmax developers"
release = sksoftmax.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

exclude_patterns = [
    "_build",
    # Included by benchmarks.rst, not a page of its own.
    "benchmarks_table.rst",
]

# autodoc documents exactly the names in ``sksoftmax.__all__``, in that order:
# a new public name appears in the API reference once it is exported there.
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"

numpydoc_show_class_members = False
# Every public docstring is validated; a failed check fails the build (-W).
# Not required: an extended summary (ES01), a See Also section (SA01), an
# Examples section on every method (EX01, the classes and functions have one),
# a summary that starts with an infinitive verb (SS05), and returns without a
# name (RT02: scikit-learn names them, as in ``self : object``).
numpydoc_validation_checks = {"all", "ES01", "SA01", "EX01", "SS05", "RT02"}
# Results built by the package only: their constructors' parameters are the
# documented attributes, not an API (and a named tuple's fields carry
# Python's own docstrings).
numpydoc_validation_exclude = {
    r"\.SoftmaxInferenceResults$",
    r"\.MarginalEffects$",
    r"\.ChiSquaredTest(\.\w+)?$",
}

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every example at build time, so each figure shows current results.
    "filename_pattern": r"plot_",
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "download_all_examples": False,
    "matplotlib_animations": False,
    # Its timing page loads jQuery and DataTables from CDNs.
    "write_computation_times": False,
}

html_theme = "pydata_sphinx_theme"
html_title = "sksoftmax"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
# Every page is reached from the top bar; a left column would stay empty.
html_sidebars = {"**": []}
html_show_sourcelink = False


def _skip_metadata_request_setters(app, what, name, obj, skip, options):
    # scikit-learn generates set_{method}_request on every estimator whose
    # methods take sample_weight; they are documented in its own user guide.
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_metadata_request_setters)

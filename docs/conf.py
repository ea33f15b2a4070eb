"""Sphinx configuration of the neuropoyo documentation site.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (warnings are errors). The
tutorials in ``docs/tutorials/`` run during the build (sphinx-gallery); ``-D plot_gallery=0`` skips
running them for a quick look at the text.
"""

import sys
from pathlib import Path

import neuropoyo

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "neuropoyo"
author = "the neuropoyo developers"
copyright = "2026, the neuropoyo developers"
release = neuropoyo.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx_gallery.gen_gallery",
    "sphinxarg.ext",
    "sphinx_copybutton",
    "sphinx_design",
    "neuropoyo_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "tutorials/README.rst", "**/*.ipynb", "**/*.py.md5", "auto_tutorials/*.codeobj.json"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["config.cache"]  # sphinx-gallery's conf holds functions; a full build each time

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "image_scrapers": ("matplotlib",),
    "show_signature": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"neuropoyo {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": {"**": ["page-toc"], "reference/config": [], "results": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}
html_show_sourcelink = False
html_static_path = ["_static"]
html_css_files = ["neuropoyo.css"]

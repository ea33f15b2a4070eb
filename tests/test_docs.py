"""The documentation names only what exists, and quotes its figures from one place.

The site's own build (``sphinx-build -W``, run by CI) fails on the same problems; these tests check
the README too (it is not part of the site) and check the check itself.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
import neuropoyo_docs  # noqa: E402  (docs/_ext is not a package)

PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
TUTORIALS = sorted((DOCS / "tutorials").glob("plot_*.py"))
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def current_figures() -> str:
    text = RESULTS.read_text()
    return text.split("<!-- current-figures:start -->")[1].split("<!-- current-figures:end -->")[0]


@pytest.mark.parametrize("page", PAGES + TUTORIALS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_name_only_commands_flags_keys_and_functions_that_exist(page):
    assert neuropoyo_docs.problems(page.read_text(), python=page.suffix == ".py") == []


@pytest.mark.parametrize("text, expected", [
    ("```bash\nneuropoyo train --data d --out r --max-stepz 10\n```", "`neuropoyo train --max-stepz`: no such flag"),
    ("Run `neuropoyo baselines --data d --stream hand_vel`.", "`neuropoyo baselines --stream`: an old spelling"),
    ("```\ntorchrun --nproc-per-node 2 -m neuropoyo train \\\n  --data d --epoch 3\n```", "`neuropoyo train --epoch`: no such flag"),
    ("`neuropoyo experiment transfr --out x`", "`neuropoyo experiment transfr`: no such command"),
    ("`neuropoyo prepare nwb f.nwb --out d --domian behavior`", "`neuropoyo prepare nwb --domian`: no such flag"),
    ("Set `training.learning_rate` lower.", "`training.learning_rate`: no such config key"),
    ("```python\nneuropoyo.Decoderr().fit(x)\n```", "`neuropoyo.Decoderr`: no such name in the package"),
])
def test_the_check_finds_what_does_not_exist(text, expected):
    found = neuropoyo_docs.problems(text)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_the_check_reads_commands_in_the_strings_and_comments_of_a_tutorial_script():
    script = 'run("neuropoyo simulate --out data --sesions 2")\n# Then ``neuropoyo train --out r --bogus``.\n'
    assert [m.split(":")[0] for m in neuropoyo_docs.problems(script, python=True)] == [
        "`neuropoyo simulate --sesions`", "`neuropoyo train --bogus`"]


def test_the_check_leaves_prose_log_lines_and_valid_commands_alone():
    text = ("neuropoyo decodes behavior.\n```\nneuropoyo train: error: no recordings\n"
            "neuropoyo 0.1.0\nneuropoyo evaluate --model run --out eval --split test\n```\n"
            "`training.lr`, `model.safetensors`, `neuropoyo.api`, `neuropoyo.simulate(animals=2)`, "
            "`neuropoyo inspect ... \\| head`, `neuropoyo simulate --out 'my data`")
    assert neuropoyo_docs.problems(text) == []


def test_every_config_key_has_a_generated_entry_with_a_description():
    text, undescribed = neuropoyo_docs.config_keys_markdown()
    assert undescribed == []
    for section, cls in neuropoyo_docs.SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert f"| `{section}.{field.name}` |" in text


def test_docstring_entries_become_a_field_list_with_parameters():
    def f(data, *, seed=0):
        """Do it.

        data: the recordings,
        read once.
        seed: the seed.
        note: prose.
        """
    lines = [line.strip() for line in f.__doc__.splitlines()]
    neuropoyo_docs.docstring_fields(None, "function", "f", f, {}, lines)
    assert lines[:6] == ["Do it.", "", ":param data: the recordings,", "    read once.", ":param seed: the seed.",
                         ":note: prose."]


def test_readme_is_a_landing_page_whose_figures_are_quoted_verbatim():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    quote = readme.split("<!-- quoted from benchmarks/RESULTS.md -->")[1].split("<!-- end of quote -->")[0]
    rows = [line for line in quote.splitlines() if line.startswith("| ") and not line.startswith("| figure")]
    assert len(rows) >= 3
    table = current_figures()
    for row in rows:
        assert row in table, f"README row not in RESULTS.md's current figures: {row[:80]}"


def test_r2_like_figures_in_readme_and_docs_come_from_results():
    """A figure with 3 or 4 decimals (an R2, a ratio) quoted anywhere is written in RESULTS.md (or
    is a constant of the code, such as torch_brain's default rotary period)."""
    results = RESULTS.read_text() + "".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    for page in PAGES:
        for number in set(re.findall(r"(?<![\d.])\d\.\d{3,4}(?![\d])", page.read_text())):
            assert number in results, f"{page.relative_to(ROOT)} quotes {number}, which RESULTS.md does not hold"


def test_readme_links_point_at_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)\)", readme)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), f"README links to {target}, which does not exist"

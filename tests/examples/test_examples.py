"""The example study files shipped in the package, and their copies in the repository's studies/."""

from __future__ import annotations

from pathlib import Path

import pytest

from droptune.examples import example_names, example_summary, example_text, write_example
from droptune.exceptions import ConfigError

REPO_STUDIES = Path(__file__).resolve().parents[2] / "studies"
PACKAGE = Path(__file__).resolve().parents[2] / "droptune" / "examples"


def test_studies_folder_holds_exactly_the_shipped_examples_byte_for_byte():
    repo = {p.stem: p.read_bytes() for p in REPO_STUDIES.glob("*.yaml")}
    shipped = {name: example_text(name).encode() for name in example_names()}
    assert set(repo) == set(shipped), "studies/*.yaml and droptune/examples/*.yaml list different examples"
    for name in shipped:
        assert repo[name] == shipped[name], (
            f"studies/{name}.yaml differs from droptune/examples/{name}.yaml: an installed droptune ships the "
            f"second. Edit one, then copy it over the other (cp studies/{name}.yaml droptune/examples/)."
        )


def test_every_example_says_what_it_is():
    for name in example_names():
        assert example_summary(name), name


def test_write_example_accepts_the_study_name_and_a_folder(tmp_path):
    path = write_example("digits-mlp", f"{tmp_path / 'new'}/")
    assert path == tmp_path / "new" / "digits_mlp.yaml"
    (tmp_path / "old").mkdir()
    assert write_example("digits_mlp", tmp_path / "old") == tmp_path / "old" / "digits_mlp.yaml"
    assert path.read_text() == (PACKAGE / "digits_mlp.yaml").read_text()


def test_an_existing_file_is_kept_unless_forced(tmp_path):
    target = tmp_path / "mine.yaml"
    target.write_text("edited by hand\n")
    with pytest.raises(ConfigError, match="exists already"):
        write_example("digits_cnn", target)
    assert target.read_text() == "edited by hand\n"
    write_example("digits_cnn", target, force=True)
    assert target.read_text().startswith("# A CNN")


def test_an_unknown_example_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"no example study named 'mlp'; the examples are: digits_cnn, digits_mlp"):
        example_text("mlp")

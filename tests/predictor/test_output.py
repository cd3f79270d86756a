from __future__ import annotations

import pytest

from flopcast.predictor.output import OutputPathError, writable, writable_folder, write_text


def test_a_writable_path_is_written(tmp_path):
    assert write_text(tmp_path / "a.md", "x", "card").read_text() == "x"
    assert writable_folder(tmp_path / "new" / "deeper", "figures").is_dir()


@pytest.mark.parametrize(("name", "message"), [
    ("missing/a.md", "folder {tmp}/missing does not exist"),
    ("", "it is a folder"),
])
def test_unwritable_paths_are_named(tmp_path, name, message):
    with pytest.raises(OutputPathError, match="cannot write the card") as e:
        writable(tmp_path / name if name else tmp_path, "card")
    assert message.format(tmp=tmp_path) in str(e.value)


def test_a_file_in_the_way_of_a_folder(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputPathError, match="a file is in the way"):
        writable_folder(tmp_path / "f" / "sub", "figures")

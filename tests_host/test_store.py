"""lib/store.py's file helpers: atomic replacement in pieces, line files, existence."""

import json

import pytest

import store


def test_write_file_replaces_atomically_from_pieces(tmp_path):
    path = str(tmp_path / "f.pem")
    store.write_file(path, (b"a", b"bc"))
    assert (tmp_path / "f.pem").read_bytes() == b"abc"
    store.write_file(path, ("x\n", "y\n"))  # str pieces: a text file
    assert (tmp_path / "f.pem").read_text() == "x\ny\n"

    def failing():
        yield b"new"
        raise OSError(28, "no space")

    with pytest.raises(OSError):
        store.write_file(path, failing())
    assert (tmp_path / "f.pem").read_text() == "x\ny\n"  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pem"]  # no .tmp left
    store.write_file(path, ())
    assert (tmp_path / "f.pem").read_bytes() == b""


def test_line_files_and_exists(tmp_path, logged):
    path = str(tmp_path / "l.mv")
    assert store.append_line(path, {"a": 1}) and store.append_line(path, [2])
    assert [json.loads(x) for x in open(path)] == [{"a": 1}, [2]]
    assert store.write_lines(path, [3, {"b": 4}])
    assert (tmp_path / "l.mv").read_text() == '3\n{"b":4}\n'
    assert not store.write_lines(str(tmp_path / "no" / "dir"), [1])  # refused: logged
    assert "not rewritten" in logged.getvalue()
    st = store.Store(str(tmp_path / "s"))
    assert not st.exists("doc")
    st.save("doc", {"v": 1})
    assert st.exists("doc")
    store.remove_file(path)
    store.remove_file(path)  # already gone: no error
    assert not (tmp_path / "l.mv").exists()


def test_read_size_and_remove_files(tmp_path, monkeypatch, logged):
    p = str(tmp_path / "f.bin")
    assert store.file_size(p) == -1
    store.write_file(p, (b"abc", b"de"))
    assert store.read_file(p) == b"abcde" and store.file_size(p) == 5
    assert store.remove_file(p) is True and store.file_size(p) == -1
    assert store.remove_file(p) is True  # none: gone as well
    with pytest.raises(OSError):
        store.read_file(p)
    # A file that stays says so, and is logged.
    store.write_file(p, (b"x",))

    def stuck(path):
        raise OSError(5, "EIO")

    monkeypatch.setattr(store.os, "remove", stuck)
    assert store.remove_file(p) is False
    assert "removing %s" % p in logged.getvalue()

"""The shared data-file helper on small made-up files (no network)."""
import gzip
import hashlib
import os

import pytest

from d2l_densenet import files
from d2l_densenet.files import CorruptFileError, DataFiles, MissingDataError

CONTENT = {"a": b"first file\n", "b": b"second file, a bit longer\n"}
HOW = "HOW-TO-GET-IT"


class Missing(MissingDataError):
    pass


class Corrupt(CorruptFileError):
    pass


def make(places=(), fetch=None, names=None):
    return DataFiles(
        title="Toy", names=names or {"a": ["a.bin", "a.bin.gz"],
                                     "b": ["sub/b.bin", "b.bin"]},
        hashes={k: hashlib.sha256(v).hexdigest()
                for k, v in CONTENT.items()},
        algorithm="sha256", env_var="TOY_DATA", places=lambda: places,
        how_to_get=HOW, fetch=fetch, missing=Missing, corrupt=Corrupt)


def fill(folder, a="a.bin", b="b.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / a).write_bytes(CONTENT["a"])
    (folder / b).parent.mkdir(parents=True, exist_ok=True)
    (folder / b).write_bytes(CONTENT["b"])
    return folder


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("TOY_DATA", raising=False)


def test_first_place_holding_all_files_wins(tmp_path):
    partial = tmp_path / "partial"
    fill(partial)
    (partial / "b.bin").unlink()          # only "a": skipped
    second, third = fill(tmp_path / "second"), fill(tmp_path / "third")
    found = make([partial, second, third]).find(download=False)
    assert found == {"a": second / "a.bin", "b": second / "b.bin"}


def test_accepted_names_in_order(tmp_path):
    place = fill(tmp_path, b="sub/b.bin")
    (place / "b.bin").write_bytes(CONTENT["b"])
    found = make([place]).find(download=False)
    assert found["b"] == place / "sub" / "b.bin"


@pytest.mark.parametrize("how", ["root", "env"])
def test_missing_explicit_root_is_an_error(tmp_path, monkeypatch, how):
    fallback = fill(tmp_path / "fallback")
    fetched = []
    toy = make([fallback], fetch=fetched.append)
    gone = tmp_path / "no-such-folder"
    if how == "env":
        monkeypatch.setenv("TOY_DATA", str(gone))
    with pytest.raises(Missing) as e:
        toy.find(gone if how == "root" else None, download=True)
    msg = str(e.value)
    assert str(gone) in msg and "does not exist" in msg
    assert ("root=" if how == "root" else "$TOY_DATA") in msg
    assert msg.endswith(HOW)
    assert fetched == [] and not gone.exists()


def test_explicit_root_that_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(Missing, match="is not a folder"):
        make().find(path)


def test_explicit_root_is_the_only_place(tmp_path):
    fallback = fill(tmp_path / "fallback")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Missing) as e:
        make([fallback]).find(empty, download=False)
    assert str(fallback) not in str(e.value)
    assert f"not found in {empty} and download=False" in str(e.value)


def test_download_goes_into_the_first_place(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    found = make([first, second], fetch=fill).find()
    assert found == {"a": first / "a.bin", "b": first / "b.bin"}


def test_download_failure_message(tmp_path):
    def offline(folder):
        raise OSError("Name or service not known")
    with pytest.raises(Missing) as e:
        make([tmp_path / "x", tmp_path / "y"], fetch=offline).find()
    msg = str(e.value)
    assert f"not found in {tmp_path / 'x'}, {tmp_path / 'y'}" in msg
    assert f"downloading it into {tmp_path / 'x'} failed" in msg
    assert "OSError: Name or service not known" in msg
    assert msg.endswith(HOW)
    assert isinstance(e.value.__cause__, OSError)


def test_download_that_leaves_nothing(tmp_path):
    with pytest.raises(Missing, match="left no usable Toy files"):
        make([tmp_path], fetch=lambda folder: None).find()


def test_corrupt_download_is_not_reported_as_missing(tmp_path):
    def bad(folder):
        raise Corrupt("bad hash")
    with pytest.raises(Corrupt, match="bad hash"):
        make([tmp_path], fetch=bad).find()


def test_no_download_allowed(tmp_path):
    fetched = []
    with pytest.raises(Missing, match="download=False"):
        make([tmp_path], fetch=fetched.append).find(download=False)
    assert fetched == []


def test_nothing_to_download_with(tmp_path):
    with pytest.raises(Missing, match=r"not found in .* and no download"):
        make([tmp_path]).find(download=True)


def test_hash_mismatch_names_both_hashes(tmp_path):
    toy = make()
    path = tmp_path / "a.bin"
    path.write_bytes(b"not the first file\n")
    with pytest.raises(Corrupt) as e:
        toy.verify("a", path)
    msg = str(e.value)
    assert str(path) in msg and "sha256" in msg
    assert toy.hashes["a"] in msg
    assert hashlib.sha256(b"not the first file\n").hexdigest() in msg
    path.write_bytes(CONTENT["a"])
    assert toy.verify("a", path) == path


def test_a_file_changed_after_verification_is_checked_again(tmp_path):
    toy = make()
    path = fill(tmp_path) / "a.bin"
    toy.verify("a", path)
    path.write_bytes(b"X" + CONTENT["a"][1:] + b"more")
    os.utime(path, ns=(1, 1))
    with pytest.raises(Corrupt):
        toy.verify("a", path)


def test_copy_decompresses_and_verifies(tmp_path):
    src = tmp_path / "a.bin.gz"
    src.write_bytes(gzip.compress(CONTENT["a"]))
    dst = tmp_path / "out" / "a.bin"
    dst.parent.mkdir()
    assert make().copy("a", src, dst) == dst
    assert dst.read_bytes() == CONTENT["a"]
    # a corrupt old copy is replaced
    dst.write_bytes(b"junk")
    make().copy("a", src, dst)
    assert dst.read_bytes() == CONTENT["a"]


@pytest.mark.parametrize("payload, match", [
    (gzip.compress(CONTENT["b"]), "is corrupt or not the original Toy a"),
    (gzip.compress(CONTENT["a"])[:15], "cannot read"),
], ids=["other-file", "truncated"])  # gzip bytes hold the time
def test_copy_refuses_bad_sources(tmp_path, payload, match):
    src = tmp_path / "a.bin.gz"
    src.write_bytes(payload)
    dst = tmp_path / "a.bin"
    with pytest.raises(Corrupt, match=match) as e:
        make().copy("a", src, dst)
    assert str(src) in str(e.value)
    assert list(tmp_path.iterdir()) == [src]   # nothing half-written


def test_download_verifies_before_the_file_appears(tmp_path):
    served = tmp_path / "served"
    fill(served)
    dst = tmp_path / "got" / "a.bin"
    toy = make()
    url = (served / "a.bin").as_uri()         # file://, no network
    assert toy.download("a", url, dst) == dst
    assert dst.read_bytes() == CONTENT["a"]
    with pytest.raises(Corrupt, match=r"file://.*b\.bin is corrupt"):
        toy.download("a", (served / "b.bin").as_uri(),
                     tmp_path / "got" / "wrong.bin")
    assert sorted(p.name for p in dst.parent.iterdir()) == ["a.bin"]


def test_file_hash_matches_hashlib(tmp_path):
    path = tmp_path / "big"
    payload = os.urandom(3 * files.CHUNK + 17)
    path.write_bytes(payload)
    assert files.file_hash(path, "md5") == hashlib.md5(payload).hexdigest()

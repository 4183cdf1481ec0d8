"""Store: URL parsing, file operations on local/memory/S3, and one clear error per failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from smci_dask.errors import StoreError
from smci_dask.io import Store


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ URL parsing
def test_local_path_is_absolute_and_its_own_url(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path / "data")
    assert store.protocol == "file"
    assert store.is_local
    assert store.path == str(tmp_path / "data")
    assert store.url == str(tmp_path / "data")
    assert str(store) == store.url


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Store.from_url("out/run1").path == str(tmp_path / "out" / "run1")


def test_file_url_equals_plain_path(tmp_path: Path) -> None:
    assert Store.from_url(f"file://{tmp_path}/data") == Store.from_url(tmp_path / "data")


@pytest.mark.parametrize("url", ["~/smci", "file://~/smci"])
def test_home_is_expanded(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert Store.from_url(url).path == str(tmp_path / "smci")


def test_memory_url() -> None:
    store = Store.from_url("memory://bucket/prefix/")
    assert (store.protocol, store.path, store.is_local) == ("memory", "/bucket/prefix", False)
    assert Store.from_url(store.url) == store


def test_s3_url_keeps_bucket_and_prefix() -> None:
    store = Store.from_url("s3://my-bucket/some/prefix/", {"endpoint_url": "http://127.0.0.1:1"})
    assert (store.protocol, store.path) == ("s3", "my-bucket/some/prefix")
    assert store.url == "s3://my-bucket/some/prefix"
    assert store.storage_options == {"endpoint_url": "http://127.0.0.1:1"}


def test_remote_listing_cache_is_off_unless_asked_for() -> None:
    assert Store.from_url("s3://my-bucket/x").fs_options["use_listings_cache"] is False
    assert Store.from_url("s3://my-bucket/x", {"use_listings_cache": True}).fs_options["use_listings_cache"] is True


def test_child_join_and_url_of() -> None:
    store = Store.from_url("memory://smci/root")
    assert store.join() == "/smci/root"
    assert store.join("a", "/b/", "", "c.txt") == "/smci/root/a/b/c.txt"
    child = store.child("product", "smci_1km/")
    assert child.path == "/smci/root/product/smci_1km"
    assert child.url == "memory:///smci/root/product/smci_1km"
    assert store.url_of("product", "smci_1km") == child.url
    assert child.storage_options == store.storage_options


def test_child_keeps_storage_options() -> None:
    store = Store.from_url("s3://bkt/root", {"endpoint_url": "http://127.0.0.1:1"})
    assert store.url_of("models", "run1") == "s3://bkt/root/models/run1"
    assert store.child("models").storage_options == {"endpoint_url": "http://127.0.0.1:1"}


# ------------------------------------------------------------------ URL errors
def test_unknown_protocol() -> None:
    with pytest.raises(StoreError, match=r"'foo://x': unknown protocol 'foo'"):
        Store.from_url("foo://x")


@pytest.mark.parametrize("url", ["", "   "])
def test_empty_url(url: str) -> None:
    with pytest.raises(StoreError, match="store URL is empty"):
        Store.from_url(url)


@pytest.mark.parametrize("url", ["s3://", "s3:///"])
def test_s3_url_without_bucket(url: str) -> None:
    with pytest.raises(StoreError, match=r"has no bucket or path after s3://"):
        Store.from_url(url)


def test_unreachable_endpoint_fails_fast() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    store = Store.from_url(
        "s3://some-bucket/root",
        {
            "endpoint_url": endpoint,
            "key": "testing",  # credentials are checked before connecting; give fake ones
            "secret": "testing",
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        },
    )
    start = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach the store's endpoint") as info:
        store.check_reachable()
    assert time.monotonic() - start < 10
    assert "s3://some-bucket/root" in str(info.value)


def test_missing_bucket(s3_server) -> None:
    store = Store.from_url("s3://no-such-bucket-smci/root", s3_server.storage_options)
    with pytest.raises(StoreError, match=r"the bucket 'no-such-bucket-smci' does not exist"):
        store.check_reachable()


def test_write_into_missing_bucket(s3_server) -> None:
    store = Store.from_url("s3://no-such-bucket-smci/root", s3_server.storage_options)
    with pytest.raises(StoreError, match="bucket does not exist"):
        store.write_bytes("a.bin", b"x")


def test_existing_bucket_is_reachable(s3_store) -> None:
    url, opts = s3_store
    Store.from_url(url, opts).check_reachable()


def test_credentials_stay_out_of_repr(s3_store) -> None:
    url, opts = s3_store
    store = Store.from_url(url, {**opts, "key": "testing", "secret": "testing"})
    assert "testing" not in repr(store)
    assert "testing" not in str(store)


# ------------------------------------------------------------------ files, on every store
def test_check_reachable(any_store: Store) -> None:
    any_store.check_reachable()


def test_write_read_bytes_and_text(any_store: Store) -> None:
    any_store.write_bytes("a/b/data.bin", b"\x00\x01\xff")
    any_store.write_text("notes.txt", "Bodenfeuchte 土壤水分 m3/m3\n")
    assert any_store.read_bytes("a/b/data.bin") == b"\x00\x01\xff"
    assert any_store.read_text("notes.txt") == "Bodenfeuchte 土壤水分 m3/m3\n"


def test_overwrite_replaces_content(any_store: Store) -> None:
    any_store.write_bytes("card.json", b"x" * 1000)
    any_store.write_bytes("card.json", b"short")
    assert any_store.read_bytes("card.json") == b"short"


def test_open_for_text(any_store: Store) -> None:
    with any_store.open("log/run.txt", "w") as f:
        f.write("line 1\n")
    with any_store.open("log/run.txt", "r") as f:
        assert f.read() == "line 1\n"


def test_reading_a_missing_file(any_store: Store) -> None:
    with pytest.raises(StoreError, match=r"file 'nope/missing.bin' does not exist"):
        any_store.read_bytes("nope/missing.bin")


def test_exists(any_store: Store) -> None:
    assert not any_store.exists("a/x.txt")
    any_store.write_text("a/x.txt", "x")
    assert any_store.exists("a/x.txt")
    assert any_store.exists("a")
    assert any_store.exists("a", "x.txt")
    assert not any_store.exists("a/y.txt")


def test_ls(any_store: Store) -> None:
    assert any_store.ls("missing") == []
    any_store.write_text("a/x.txt", "x")
    any_store.write_text("a/y.txt", "y")
    any_store.write_text("a/sub/z.txt", "z")
    any_store.write_text("top.txt", "t")
    assert any_store.ls() == ["a", "top.txt"]
    assert any_store.ls("a") == ["sub", "x.txt", "y.txt"]
    assert any_store.ls("a", "sub") == ["z.txt"]


def test_glob(any_store: Store) -> None:
    for name in ["a/x.txt", "a/y.bin", "a/sub/z.txt", "b.txt"]:
        any_store.write_text(name, name)
    assert any_store.glob("a/*.txt") == ["a/x.txt"]
    assert any_store.glob("**/*.txt") == ["a/sub/z.txt", "a/x.txt", "b.txt"]
    assert any_store.glob("none/*") == []


def test_writes_seen_at_once_by_listings(any_store: Store) -> None:
    """A file written through another filesystem instance (zarr, another worker) shows up at once."""
    any_store.write_text("chunks/0.done", "")
    assert any_store.ls("chunks") == ["0.done"]
    assert any_store.glob("chunks/*") == ["chunks/0.done"]
    other = fsspec.filesystem(any_store.protocol, skip_instance_cache=True, **any_store.fs_options)
    other.pipe_file(any_store.join("chunks/1.done"), b"")
    assert any_store.exists("chunks/1.done")
    assert any_store.ls("chunks") == ["0.done", "1.done"]
    assert any_store.glob("chunks/*") == ["chunks/0.done", "chunks/1.done"]


def test_write_then_read_through_child(any_store: Store) -> None:
    child = any_store.child("models", "run1")
    child.write_text("card.json", "{}")
    assert any_store.read_text("models/run1/card.json") == "{}"
    assert any_store.ls("models") == ["run1"]


def test_rm(any_store: Store) -> None:
    any_store.write_text("a/x.txt", "x")
    any_store.write_text("a/sub/y.txt", "y")
    any_store.write_text("keep.txt", "k")
    any_store.rm("a/x.txt")
    assert not any_store.exists("a/x.txt")
    assert any_store.exists("a/sub/y.txt")
    any_store.rm("a")
    assert not any_store.exists("a/sub/y.txt")
    assert any_store.ls() == ["keep.txt"]
    any_store.rm("never/written")  # a no-op


def test_put_and_get_file(any_store: Store, tmp_path: Path) -> None:
    src = tmp_path / "in" / "model.txt"
    src.parent.mkdir()
    src.write_bytes(b"tree 0\n" * 100)
    any_store.put_file(src, "models/m.txt")
    assert any_store.read_bytes("models/m.txt") == src.read_bytes()
    out = any_store.get_file("models/m.txt", tmp_path / "back" / "m.txt")
    assert out == tmp_path / "back" / "m.txt"
    assert out.read_bytes() == src.read_bytes()


# ------------------------------------------------------------------ atomic writes on local disk
def test_local_write_leaves_no_temp_file(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path)
    store.write_bytes("dir/f.bin", b"old")
    store.write_bytes("dir/f.bin", b"new content")
    assert sorted(os.listdir(tmp_path / "dir")) == ["f.bin"]
    assert (tmp_path / "dir" / "f.bin").read_bytes() == b"new content"


def test_local_failed_write_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.from_url(tmp_path)
    store.write_bytes("f.bin", b"old")

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StoreError, match=r"cannot write 'f.bin'.*No space left on device"):
        store.write_bytes("f.bin", b"new")
    monkeypatch.undo()
    assert (tmp_path / "f.bin").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_local_write_below_a_file(tmp_path: Path) -> None:
    store = Store.from_url(tmp_path)
    store.write_bytes("f.bin", b"x")
    with pytest.raises(StoreError, match=r"cannot write 'f.bin/inner.bin'"):
        store.write_bytes("f.bin/inner.bin", b"y")


def test_get_file_of_a_missing_file(any_store: Store, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot copy 'models/none.txt' .*no such file"):
        any_store.get_file("models/none.txt", tmp_path / "none.txt")
    assert not (tmp_path / "none.txt").exists()


def test_subprocess_reaches_the_server_through_env(s3_server, s3_store) -> None:
    """``s3_server.env`` is what a CLI run in a subprocess needs: no storage options at all."""
    url, opts = s3_store
    Store.from_url(url, opts).write_text("hello.txt", "from the test")
    code = "import sys; from smci_dask.io import Store; print(Store.from_url(sys.argv[1]).read_text('hello.txt'))"
    env = {**os.environ, **s3_server.env}
    done = subprocess.run([sys.executable, "-c", code, url], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "from the test"

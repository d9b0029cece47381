"""Data verbs and demo-model never write over their inputs or a place they do not own (issue 9, items 2, 13, 17).

Every case asserts the exact message and that nothing in the tree changed."""
from __future__ import annotations

import json
import os

import pytest

ROW = json.dumps({"query": "what is a river", "pos": ["A river is water."], "neg": ["A hill."]}) + "\n"


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text(ROW * 3)
    (folder / "notes.txt").write_text("my own notes\n")
    return folder


def _err(run_cli, *argv):
    code, out, err = run_cli(*argv)
    return code, err


def test_demo_model_force_on_a_foreign_directory(run_cli, tree, tmp_path, data):
    tree.snapshot()
    code, err = _err(run_cli, "demo-model", data, "--force")
    assert code == 2
    assert err == (f"bgeft: error: demo-model DEST: {data} was not made by bgeft (no bgeft_demo_model.json in it; it "
                   "holds notes.txt, train.jsonl); bgeft deletes only its own run directories: choose a new directory "
                   "or empty it yourself\n")
    tree.assert_untouched()


def test_demo_model_force_on_the_working_directory(run_cli, tree, tmp_path, monkeypatch, data):
    monkeypatch.chdir(data)
    tree.snapshot()
    code, err = _err(run_cli, "demo-model", ".", "--force")
    assert code == 2
    assert err == ("bgeft: error: demo-model DEST .: is the working directory; bgeft never writes over it: choose a "
                   "new directory (e.g. outputs/NAME)\n")
    tree.assert_untouched()


def test_demo_model_dest_is_a_file(run_cli, tree, data):
    tree.snapshot()
    code, err = _err(run_cli, "demo-model", data / "notes.txt")
    assert (code, err) == (2, f"bgeft: error: demo-model DEST {data / 'notes.txt'}: is a file; give a directory path\n")
    tree.assert_untouched()


def test_demo_model_force_rebuilds_its_own_directory_whole(run_cli, tree, tmp_path):
    dest = tmp_path / "m"
    assert run_cli("demo-model", dest)[0] == 0
    (dest / "stray.txt").write_text("mine")
    tree.snapshot()
    code, err = _err(run_cli, "demo-model", dest, "--force")
    assert code == 2 and "holds 1 entry bgeft did not write (stray.txt); nothing was deleted" in err
    tree.assert_untouched()
    (dest / "stray.txt").unlink()
    code, _ = _err(run_cli, "demo-model", dest, "--force")
    assert code == 0 and (dest / "bgeft_demo_model.json").is_file() and (dest / "model.safetensors").is_file()
    tree.assert_no_temp()


def test_buckets_overwrite_of_the_inputs_folder(run_cli, tree, data):
    tree.snapshot()
    code, err = _err(run_cli, "data", "buckets", data / "train.jsonl", "-o", data, "--overwrite",
                     "--tokenizer", data / "no-model")
    assert code == 2
    assert err == (f"bgeft: error: -o {data}: contains the input {data / 'train.jsonl'}; writing there could destroy "
                   "it: choose an output outside the inputs\n")
    tree.assert_untouched()


def test_buckets_overwrite_of_a_foreign_folder(run_cli, tree, tmp_path, data):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text("x")
    tree.snapshot()
    code, err = _err(run_cli, "data", "buckets", data / "train.jsonl", "-o", other, "--overwrite",
                     "--tokenizer", data / "no-model")
    assert code == 2
    assert err == (f"bgeft: error: -o: {other} was not made by bgeft (no buckets.yaml in it; it holds keep.md); bgeft "
                   "deletes only its own run directories: choose a new directory or empty it yourself\n")
    tree.assert_untouched()


def test_split_book_onto_the_book(run_cli, tree, tmp_path):
    book = tmp_path / "B.txt"
    book.write_text("Chapter 1\n\nA long time ago.\n")
    tree.snapshot()
    code, err = _err(run_cli, "data", "split-book", book, "-o", book)
    assert (code, err) == (2, f"bgeft: error: -o {book}: is also an input ({book}); write to a new path\n")
    tree.assert_untouched()


@pytest.mark.parametrize("verb, extra", [
    ("mine", ["--model", "no-model"]), ("score", ["--reranker", "no-model"]), ("convert", []),
])
def test_output_onto_the_input(run_cli, tree, data, verb, extra):
    src = data / "train.jsonl"
    tree.snapshot()
    code, err = _err(run_cli, "data", verb, src, "-o", src, *extra)
    assert (code, err) == (2, f"bgeft: error: -o {src}: is also an input ({src}); write to a new path\n")
    tree.assert_untouched()


def test_convert_to_beir_onto_the_inputs_folder(run_cli, tree, data):
    tree.snapshot()
    src = data / "train.jsonl"
    code, err = _err(run_cli, "data", "convert", src, "--to", "beir", "-o", data)
    assert (code, err) == (2, f"bgeft: error: -o {data}: contains the input {src}; writing there could destroy it: "
                              "choose an output outside the inputs\n")
    code, err = _err(run_cli, "data", "convert", src, "--to", "beir", "-o", src)
    assert (code, err) == (2, f"bgeft: error: -o {src}: is a file; give a directory path\n")
    tree.assert_untouched()


def test_validate_fix_onto_the_input(run_cli, tree, data):
    src = data / "train.jsonl"
    tree.snapshot()
    code, err = _err(run_cli, "data", "validate", src, "--fix", src)
    assert (code, err) == (2, f"bgeft: error: --fix {src}: is also an input ({src}); write to a new path\n")
    tree.assert_untouched()


def test_gen_queries_onto_the_corpus(run_cli, tree, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"_id": "1", "text": "t"}) + "\n")
    tree.snapshot()
    code, err = _err(run_cli, "data", "gen-queries", corpus, "-o", corpus, "--base-url", "http://127.0.0.1:9",
                     "--model", "m")
    assert (code, err) == (2, f"bgeft: error: -o {corpus}: is also an input ({corpus}); write to a new path\n")
    tree.assert_untouched()


def test_mine_batch_size_zero(run_cli, tree, data, tmp_path):
    tree.snapshot()
    code, err = _err(run_cli, "data", "mine", data / "train.jsonl", "-o", tmp_path / "o.jsonl", "--model", "m",
                     "--batch-size", "0")
    assert (code, err) == (2, "bgeft: error: --batch-size 0: must be at least 1\n")
    tree.assert_untouched()


@pytest.mark.parametrize("codec, name", [("rot13", "rot-13"), ("zlib_codec", "zlib"), ("base64", "base64")])
def test_non_text_encoding(run_cli, tree, data, tmp_path, codec, name):
    tree.snapshot()
    code, err = _err(run_cli, "data", "convert", data / "train.jsonl", "-o", tmp_path / "o.jsonl", "--encoding", codec)
    assert (code, err) == (2, f"bgeft: error: --encoding {codec}: {name} is not a text encoding (it transforms bytes "
                              "or text); use utf-8, utf-8-sig, gb18030, gbk or gb2312\n")
    tree.assert_untouched()


@pytest.mark.parametrize("verb", ["convert", "validate", "split-book"])
def test_fifo_input_is_refused_not_read(run_cli, tree, tmp_path, verb):
    fifo = tmp_path / ("in.txt" if verb == "split-book" else "in.jsonl")
    os.mkfifo(fifo)
    tree.snapshot()
    argv = ["data", verb, fifo] + ([] if verb == "validate" else ["-o", tmp_path / "o.jsonl"])
    code, err = _err(run_cli, *argv)
    assert (code, err) == (2, f"bgeft: error: input {fifo}: is a FIFO (named pipe), not a regular file; bgeft reads "
                              "only regular files (copy the data into a file first)\n")
    tree.assert_untouched()


def test_output_onto_a_fifo_or_symlink_is_refused(run_cli, tree, data, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link.jsonl"
    link.symlink_to(data / "notes.txt")
    tree.snapshot()
    code, err = _err(run_cli, "data", "convert", data / "train.jsonl", "-o", fifo)
    assert (code, err) == (2, f"bgeft: error: -o {fifo}: is a FIFO (named pipe); bgeft writes only regular files and "
                              "directories: choose another path\n")
    code, err = _err(run_cli, "data", "convert", data / "train.jsonl", "-o", link)
    assert (code, err) == (2, f"bgeft: error: -o {link}: is a symbolic link (to {data / 'notes.txt'}); bgeft does not "
                              "replace links: give the real path of the output instead\n")
    tree.assert_untouched()


def test_output_onto_a_device_node_is_refused(run_cli, tree, data, tmp_path):
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | 0o020000, os.makedev(1, 3))  # a character device like /dev/null
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot create a device node here ({exc})")
    tree.snapshot()
    code, err = _err(run_cli, "data", "convert", data / "train.jsonl", "-o", node)
    assert (code, err) == (2, f"bgeft: error: -o {node}: is a character device; bgeft writes only regular files and "
                              "directories: choose another path\n")
    tree.assert_untouched()

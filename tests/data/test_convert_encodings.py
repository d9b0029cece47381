"""Encodings: UTF-8, UTF-8 with BOM, GB18030/GBK/GB2312 (detected or forced) and CRLF line ends."""
from __future__ import annotations

import json

import pytest

from bgeft.data.io import atomic_writer, detect_encoding, open_text
from bgeft.errors import UserError

ROW = {
    "query": "渡口的第一班船几点开？",
    "pos": ["摆渡人每天清晨五点半开第一趟船。"],
    "neg": ["镇上的人靠打鱼和种橘子过日子。"],
}
CSV = "query,pos,neg\n渡口的第一班船几点开？,摆渡人每天清晨五点半开第一趟船。,镇上的人靠打鱼和种橘子过日子。\n"


@pytest.mark.parametrize("encoding,bom,reported", [
    ("utf-8", b"", "utf-8"),
    ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
    ("gb18030", b"", "gb18030"),
    ("gbk", b"", "gb18030"),
    ("gb2312", b"", "gb18030"),
])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_each_encoding_converts_to_utf8(tmp_path, run_cli, encoding, bom, reported, newline, kind):
    text = json.dumps(ROW, ensure_ascii=False) + "\n" if kind == "jsonl" else CSV
    src = tmp_path / f"in.{kind}"
    src.write_bytes(bom + text.replace("\n", newline).encode(encoding))
    code, out, err = run_cli("data", "convert", str(src), "-o", str(tmp_path / "out.jsonl"))
    assert code == 0, err
    assert f"encoding {reported}" in out
    written = (tmp_path / "out.jsonl").read_bytes()
    assert written == (json.dumps(ROW, ensure_ascii=False) + "\n").encode("utf-8")


def test_forced_encoding_overrides_detection(tmp_path, run_cli):
    src = tmp_path / "in.jsonl"
    src.write_bytes((json.dumps(ROW, ensure_ascii=False) + "\n").encode("gbk"))
    code, out, _ = run_cli("data", "convert", str(src), "-o", str(tmp_path / "out.jsonl"), "--encoding", "GBK")
    assert code == 0 and "encoding gb18030" in out
    code, _, err = run_cli("data", "convert", str(src), "-o", str(tmp_path / "out2.jsonl"), "--encoding", "utf-8")
    assert code == 2
    assert f"{src}:1: invalid UTF-8 bytes at column 12" in err
    assert not (tmp_path / "out2.jsonl").exists()
    code, _, err = run_cli("data", "convert", str(src), "-o", str(tmp_path / "out3.jsonl"), "--encoding", "latin-9x")
    assert code == 2 and "--encoding latin-9x: unknown encoding" in err


def test_gb18030_after_a_long_ascii_start_is_still_detected(tmp_path):
    """The detection sample is the first 64 KiB; a GB18030 line after plain-ASCII lines switches codec."""
    ascii_rows = [json.dumps({"query": f"q{i}", "pos": ["p"], "neg": ["n"]}) + "\n" for i in range(3000)]
    src = tmp_path / "late.jsonl"
    src.write_bytes("".join(ascii_rows).encode() + (json.dumps(ROW, ensure_ascii=False) + "\n").encode("gb18030"))
    with open_text(src) as fh:
        lines = list(fh)
        assert fh.encoding == "gb18030"
    assert json.loads(lines[-1]) == ROW


def test_detect_encoding_rules():
    chinese = "渡口在镇子东头，摆渡人每天清晨开船。" * 20
    assert detect_encoding(chinese.encode("utf-8")) == "utf-8"
    assert detect_encoding(chinese.encode("gb18030")) == "gb18030"
    assert detect_encoding(b"\xef\xbb\xbf" + chinese.encode()) == "utf-8-sig"
    # mostly-valid UTF-8 with one broken byte stays UTF-8 (so the bad line gets reported)
    assert detect_encoding(chinese.encode() + b"\xff") == "utf-8"
    # a multi-byte character cut by the sample's end is not an error
    assert detect_encoding(chinese.encode()[:-1]) == "utf-8"
    with pytest.raises(UserError, match=r"x.txt: UTF-16 text is not supported; re-save it as UTF-8"):
        detect_encoding("\ufeffabc".encode("utf-16"), "x.txt")


def test_atomic_writer_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.jsonl"
    with atomic_writer(target) as fh:
        fh.write("one\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as fh:
            fh.write("two\n")
            raise RuntimeError("boom")
    assert target.read_text() == "one\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]
    assert target.stat().st_mode & 0o777 != 0o600  # not mkstemp's private mode

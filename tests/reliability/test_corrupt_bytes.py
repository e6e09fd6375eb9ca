"""Regression tests for damaged graph index bytes found by the sanitizer driver and the fuzzers.

The helpers walk the documented layout (ext/core/knn_graph_io.c) so each test damages exactly one
field and re-seals the checksum, which makes the structural checks (not the checksum) answer.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

import knnsql
from knnsql import KnnError

HEADER = 80  # magic 8, eight u32, four u64, u32 entry, i32 max_level


def fnv1a64_words(data: bytes) -> int:
    h = 0xCBF29CE484222325
    n8 = len(data) // 8 * 8
    for (w,) in struct.iter_unpack("<Q", data[:n8]):
        h = ((h ^ w) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    for b in data[n8:]:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def reseal(body: bytearray) -> bytes:
    return bytes(body[:-8]) + struct.pack("<Q", fnv1a64_words(bytes(body[:-8])))


def nodes(raw: bytes):
    """(offset of the level byte, level, [(level, offset of link j, target)]) per node."""
    dim = struct.unpack_from("<I", raw, 16)[0]
    count = struct.unpack_from("<Q", raw, 48)[0]
    pos, out = HEADER, []
    for _ in range(count):
        level = raw[pos + 17]
        level_at = pos + 17
        pos += 20 + 4 * dim
        links = []
        for lev in range(level + 1):
            n = struct.unpack_from("<I", raw, pos)[0]
            for j in range(n):
                links.append((lev, pos + 4 + 4 * j, struct.unpack_from("<I", raw, pos + 4 + 4 * j)[0]))
            pos += 4 * (1 + n)
        out.append((level_at, level, links))
    attrs = struct.unpack_from("<Q", raw, pos)[0]  # format 2: the attribute columns' section
    assert pos + 8 + attrs == len(raw) - 8
    return out


@pytest.fixture(scope="module")
def graph_bytes():
    rng = np.random.default_rng(3)
    g = knnsql.Index(4, "l2", kind="graph", m=4, ef_construction=32, seed=5)
    g.add(rng.normal(size=(400, 4)).astype(np.float32))
    return g.to_bytes()


def test_upper_level_link_to_a_node_without_that_level_is_corrupt(graph_bytes):
    # Found by fuzz/fuzz_graph_load.c: such a link made the search read the target's missing upper
    # links (a null or out-of-bounds read). The loader now refuses it.
    ns = nodes(graph_bytes)
    low = next(i for i, (_, level, _) in enumerate(ns) if level == 0)
    src, (lev, at, _) = next((i, link) for i, (_, _, links) in enumerate(ns) for link in links if link[0] >= 1)
    body = bytearray(graph_bytes)
    struct.pack_into("<I", body, at, low)
    with pytest.raises(KnnError, match=rf"corrupt graph index bytes: node {src} links on level {lev} to node {low} "
                                       r"of level 0"):
        knnsql.Index.from_bytes(reseal(body))
    # untouched bytes still load and search
    assert len(knnsql.Index.from_bytes(graph_bytes)) == 400


@pytest.mark.parametrize("offset,value,field", [(16, 1 << 27, "dim"), (24, 520, "'m'"), (28, 0, "'ef_construction'"),
                                                (32, 1 << 27, "'ef'")])
def test_out_of_range_settings_in_the_header_are_corrupt_bytes(graph_bytes, offset, value, field):
    # Found by tests/core/core_driver.c: the message read as if the caller had passed the setting.
    body = bytearray(graph_bytes)
    struct.pack_into("<I", body, offset, value)
    with pytest.raises(KnnError, match=rf"corrupt graph index bytes: header settings invalid \(.*{field}"):
        knnsql.Index.from_bytes(reseal(body))


def test_restore_in_sql_refuses_the_bad_link_too(graph_bytes, db):
    ns = nodes(graph_bytes)
    low = next(i for i, (_, level, _) in enumerate(ns) if level == 0)
    _, at, _ = next(link for _, _, links in ns for link in links if link[0] >= 1)
    body = bytearray(graph_bytes)
    struct.pack_into("<I", body, at, low)
    import duckdb

    with pytest.raises(duckdb.Error, match="knn_index_restore: corrupt graph index bytes: node .* links on level"):
        db.execute("SELECT knn_index_restore('x', 0, $b::BLOB)", {"b": reseal(body)})


def _attributed_bytes(db):
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 4)).astype(np.float32)
    db.con.register("src", knnsql.vectors_table(X))
    db.execute("SELECT * FROM knn_index_create('ga', dim := 4, m := 4)").fetchall()
    db.execute("SELECT knn_index_insert('ga', id, emb, {'s': 'v' || (id % 7), 'n': id}) FROM src").fetchall()
    return b"".join(r[0] for r in db.execute("SELECT bytes FROM knn_index_dump('ga') ORDER BY part").fetchall())


def test_format_1_bytes_still_load(graph_bytes):
    # version 1 had no attribute section: the same nodes, then the checksum
    ns = nodes(graph_bytes)
    body = bytearray(graph_bytes)
    size = next(n for n in range(4, 64) if struct.unpack_from("<Q", body, len(body) - 16 - n)[0] == n)
    v1 = bytearray(body[:len(body) - 16 - size]) + bytearray(8)  # nodes, then the checksum's place
    struct.pack_into("<I", v1, 8, 1)
    g = knnsql.Index.from_bytes(reseal(v1))
    assert len(g) == 400 and len(ns) == 400
    assert g.to_bytes()[8] == 2  # saved again in the current format


def test_damaged_attribute_section_is_refused(db):
    raw = _attributed_bytes(db)
    alen_at = len(raw) - 8
    # find the section: it is the last one, its length word right before it
    for cut in range(8, 4000, 4):
        start = alen_at - cut
        if struct.unpack_from("<Q", raw, start - 8)[0] == cut:
            break
    else:
        raise AssertionError("attribute section not found")
    for pos in range(start, alen_at, max(1, cut // 40)):
        body = bytearray(raw)
        body[pos] ^= 0xFF
        try:
            g = knnsql.Index.from_bytes(reseal(body))
        except KnnError as exc:
            assert "corrupt" in str(exc) or "attribute" in str(exc)
        else:
            assert len(g) == 300  # a flipped value byte is still a valid value
    with pytest.raises(KnnError):
        knnsql.Index.from_bytes(reseal(bytearray(raw[:start + cut // 2]) + bytearray(raw[alen_at:])))


# ---- a quantized graph's code section (format 3) ----------------------------------------------------

CODED_SETTINGS = 16  # u32 bits | u32 trained | f32 error cut | u32 0, after the header


def _coded(bits="sq8", metric="l2", dim=20):
    rng = np.random.default_rng(8)
    g = knnsql.Index(dim, metric, kind="graph", m=4, ef_construction=32, quantization=bits)
    g.add(rng.normal(size=(300, dim)).astype(np.float32))
    return g.to_bytes()


def _first_code_row(raw: bytes, dim: int) -> int:
    return HEADER + CODED_SETTINGS + 8 * dim + 20  # ranges, then node 0's id, label, flags


@pytest.mark.parametrize("offset,value,message", [
    (HEADER, 5, r"code settings invalid \(5 bits"),
    (HEADER + 4, 2, r"code settings invalid \(8 bits, trained 2"),
    (HEADER + 12, 1, "code settings invalid"),
])
def test_bad_code_settings_are_corrupt(offset, value, message):
    body = bytearray(_coded())
    struct.pack_into("<I", body, offset, value)
    with pytest.raises(KnnError, match=rf"corrupt graph index bytes: {message}"):
        knnsql.Index.from_bytes(reseal(body))


def test_bad_code_ranges_and_rows_are_corrupt():
    raw = _coded("sq8", "l2", 20)
    body = bytearray(raw)
    struct.pack_into("<f", body, HEADER + CODED_SETTINGS + 4 * 20 + 4 * 3, -1.0)  # a negative step
    with pytest.raises(KnnError, match="corrupt graph index bytes: code range of dimension 3 is invalid"):
        knnsql.Index.from_bytes(reseal(body))
    row = _first_code_row(raw, 20)  # 20 codes padded to 32, then the error and the decoded norm
    body = bytearray(raw)
    body[row + 25] = 7  # a code in a padding dimension
    with pytest.raises(KnnError, match="corrupt graph index bytes: node 0 has codes in its padding dimensions"):
        knnsql.Index.from_bytes(reseal(body))
    body = bytearray(raw)
    body[row + 2] ^= 0x40  # a changed code no longer decodes to the stored norm
    with pytest.raises(KnnError, match="corrupt graph index bytes: node 0: its codes decode to a squared norm of"):
        knnsql.Index.from_bytes(reseal(body))
    body = bytearray(raw)
    struct.pack_into("<f", body, row + 32, float("nan"))
    with pytest.raises(KnnError, match="corrupt graph index bytes: node 0 has a decoding error of nan"):
        knnsql.Index.from_bytes(reseal(body))
    with pytest.raises(KnnError, match="corrupt graph index bytes"):  # cut inside the code rows
        knnsql.Index.from_bytes(reseal(bytearray(raw[:row + 10]) + bytearray(8)))
    struct.pack_into("<I", body, HEADER + 4, 0)  # code rows without ranges
    with pytest.raises(KnnError, match="corrupt graph index bytes"):
        knnsql.Index.from_bytes(reseal(body))


def test_bit_flips_anywhere_in_coded_bytes_never_crash():
    raw = _coded("sq4", "cosine", 70)
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(raw) - 8, 300, replace=False):
        body = bytearray(raw)
        body[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            g = knnsql.Index.from_bytes(reseal(body))
        except KnnError as exc:
            assert "corrupt" in str(exc) or "format version" in str(exc) or "not a knnsql" in str(exc)
        else:
            assert g.missing_vectors == len(g)  # loaded: it still waits for its float rows

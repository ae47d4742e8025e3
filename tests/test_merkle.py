"""RFC 9162 Merkle log against the published RFC 6962 test vectors and adversarial proofs.

Vectors: the 8-leaf data set, prefix roots, inclusion and consistency proofs published with
transparency-dev/merkle (proof/verify_test.go), the reference set of google/certificate-transparency.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from support_chains import MemoryTree

from chains.merkle import (
    EMPTY_ROOT,
    Frontier,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

h = bytes.fromhex

LEAVES = [h(x) for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                          "606162636465666768696a6b6c6d6e6f")]
ROOTS = [h(x) for x in (  # MTH of the first 1..8 leaves
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]
# (0-based leaf index, tree size, audit path)
INCLUSION = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (0, 1, []),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]
SOME_HASH = h("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    return MemoryTree(LEAVES)


def test_hash_primitives_and_empty_tree():
    assert EMPTY_ROOT == h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    assert MemoryTree().root() == EMPTY_ROOT
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest() == ROOTS[0]
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()


def test_roots_of_every_prefix_match_the_reference(tree):
    for size, want in enumerate(ROOTS, start=1):
        assert tree.root(size) == want
        f = Frontier()
        for data in LEAVES[:size]:
            f.append(leaf_hash(data))
        assert f.root() == want


def test_odd_node_is_never_duplicated(tree):
    # MTH of 3 leaves is H(H(l0, l1), l2), not H(H(l0, l1), H(l2, l2)).
    l0, l1, l2 = (leaf_hash(x) for x in LEAVES[:3])
    assert tree.root(3) == node_hash(node_hash(l0, l1), l2)
    assert tree.root(3) != node_hash(node_hash(l0, l1), node_hash(l2, l2))


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION)
def test_published_inclusion_proofs(tree, index, size, path):
    path = [h(p) for p in path]
    assert tree.inclusion_proof(index, size) == path
    assert verify_inclusion(index, size, leaf_hash(LEAVES[index]), path, ROOTS[size - 1])


@pytest.mark.parametrize(("size1", "size2", "path"), CONSISTENCY)
def test_published_consistency_proofs(tree, size1, size2, path):
    path = [h(p) for p in path]
    assert tree.consistency_proof(size1, size2) == path
    assert verify_consistency(size1, size2, ROOTS[size1 - 1], ROOTS[size2 - 1], path)


def _flip(path, i, bit):
    out = list(path)
    out[i] = bytes([out[i][0] ^ bit]) + out[i][1:]
    return out


def _bad_inclusions(index, size, leaf, path, root):
    yield "index - 1", (index - 1, size, leaf, path, root)
    yield "index + 1", (index + 1, size, leaf, path, root)
    yield "index ^ 2", (index ^ 2, size, leaf, path, root)
    yield "size * 2", (index, size * 2, leaf, path, root)
    yield "size // 2", (index, size // 2, leaf, path, root)
    yield "wrong leaf", (index, size, leaf_hash(b"WrongLeaf"), path, root)
    yield "short leaf", (index, size, b"WrongLeaf", path, root)
    yield "empty root", (index, size, leaf, path, EMPTY_ROOT)
    yield "random root", (index, size, leaf, path, SOME_HASH)
    yield "trailing garbage", (index, size, leaf, [*path, b""], root)
    yield "trailing root", (index, size, leaf, [*path, root], root)
    yield "preceding garbage", (index, size, leaf, [b"", *path], root)
    yield "preceding root", (index, size, leaf, [root, *path], root)
    for i in range(len(path)):
        yield f"flipped bit in path[{i}]", (index, size, leaf, _flip(path, i, 8), root)
    if path:
        yield "truncated", (index, size, leaf, path[:-1], root)
    if len(path) > 1:
        yield "inserted component", (index, size, leaf, [path[0], SOME_HASH, *path[1:]], root)


@pytest.mark.parametrize(("index", "size", "path"), INCLUSION[:4])
def test_every_corrupted_inclusion_proof_is_rejected(index, size, path):
    path, leaf, root = [h(p) for p in path], leaf_hash(LEAVES[index]), ROOTS[size - 1]
    accepted = [desc for desc, args in _bad_inclusions(index, size, leaf, path, root)
                if verify_inclusion(*args)]
    assert accepted == []


def test_inclusion_edge_cases():
    data = leaf_hash(b"data")
    assert verify_inclusion(0, 1, data, [], data)
    assert not verify_inclusion(0, 1, data, [], b"")
    assert not verify_inclusion(0, 1, b"", [], data)
    for index, size in ((0, 0), (1, 0), (2, 1)):
        assert not verify_inclusion(index, size, SOME_HASH, [], EMPTY_ROOT)
    assert root_from_inclusion(-1, 4, data, []) is None


def _bad_consistencies(size1, size2, root1, root2, path):
    yield "size1 - 1", (size1 - 1, size2, root1, root2, path)
    yield "size1 + 1", (size1 + 1, size2, root1, root2, path)
    yield "size1 ^ 2", (size1 ^ 2, size2, root1, root2, path)
    yield "size2 * 2", (size1, size2 * 2, root1, root2, path)
    yield "size2 // 2", (size1, size2 // 2, root1, root2, path)
    yield "wrong root1", (size1, size2, SOME_HASH, root2, path)
    yield "wrong root2", (size1, size2, root1, SOME_HASH, path)
    yield "swapped roots", (size1, size2, root2, root1, path)
    yield "empty proof", (size1, size2, root1, root2, [])
    yield "trailing garbage", (size1, size2, root1, root2, [*path, b""])
    yield "trailing root1", (size1, size2, root1, root2, [*path, root1])
    yield "trailing root2", (size1, size2, root1, root2, [*path, root2])
    yield "preceding garbage", (size1, size2, root1, root2, [b"", *path])
    yield "preceding root1", (size1, size2, root1, root2, [root1, *path])
    yield "preceding root2", (size1, size2, root1, root2, [root2, *path])
    yield "preceding path[0]", (size1, size2, root1, root2, [path[0], *path])
    yield "truncated", (size1, size2, root1, root2, path[:-1])
    for i in range(len(path)):
        yield f"flipped bit in path[{i}]", (size1, size2, root1, root2, _flip(path, i, 16))


@pytest.mark.parametrize(("size1", "size2", "path"), CONSISTENCY[1:])
def test_every_corrupted_consistency_proof_is_rejected(size1, size2, path):
    path = [h(p) for p in path]
    root1, root2 = ROOTS[size1 - 1], ROOTS[size2 - 1]
    accepted = [desc for desc, args in _bad_consistencies(size1, size2, root1, root2, path)
                if verify_consistency(*args)]
    assert accepted == []


def test_consistency_edge_cases():
    r1, r2 = ROOTS[0], ROOTS[1]
    assert verify_consistency(0, 0, r1, r1, [])
    assert verify_consistency(0, 1, r1, r2, [])
    assert verify_consistency(1, 1, r2, r2, [])
    assert not verify_consistency(0, 0, r1, r2, [])       # same size, different roots
    assert not verify_consistency(1, 1, r1, r2, [])
    assert not verify_consistency(1, 0, r1, r2, [])       # time travel
    assert not verify_consistency(2, 1, r1, r2, [])
    assert not verify_consistency(1, 2, r1, r2, [])       # missing proof
    assert not verify_consistency(0, 1, r1, r1, [EMPTY_ROOT])  # proof where none is due
    assert not verify_consistency(1, 1, r1, r1, [EMPTY_ROOT])


def test_proofs_for_all_sizes_of_a_random_log_verify_and_wrong_leaves_fail():
    rng = random.Random(7)
    leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(70)]
    tree = MemoryTree(leaves)
    roots = [tree.root(n) for n in range(71)]
    for n in range(1, 71):
        for i in range(n):
            path = tree.inclusion_proof(i, n)
            assert verify_inclusion(i, n, leaf_hash(leaves[i]), path, roots[n])
            assert not verify_inclusion(i, n, leaf_hash(leaves[(i + 1) % 70] + b"x"), path, roots[n])
        for m in range(n + 1):
            assert verify_consistency(m, n, roots[m], roots[n], tree.consistency_proof(m, n))


def test_bad_proof_requests_are_named(tree):
    with pytest.raises(ValueError, match="outside a tree of size 8"):
        tree.inclusion_proof(8, 8)
    with pytest.raises(ValueError, match="exceeds second tree size"):
        tree.consistency_proof(5, 4)
    with pytest.raises(ValueError, match="beyond the log's size"):
        tree.consistency_proof(1, 9)
    with pytest.raises(ValueError, match="peaks"):
        Frontier(3, [EMPTY_ROOT])

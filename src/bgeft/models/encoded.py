"""Encodings of n texts as plain arrays: dense vectors, a sparse (lexical) matrix, ColBERT vectors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse as sp


@dataclass
class Encoded:
    """Encodings of n texts. ``colbert`` rows of text i are ``colbert[colbert_offsets[i]:colbert_offsets[i+1]]``."""

    n: int
    dense: np.ndarray | None = None
    sparse: sp.csr_matrix | None = None
    colbert: np.ndarray | None = None
    colbert_offsets: np.ndarray | None = None

    @property
    def outputs(self) -> set[str]:
        return {name for name in ("dense", "sparse", "colbert") if getattr(self, name) is not None}

    def colbert_of(self, i: int) -> np.ndarray:
        return self.colbert[self.colbert_offsets[i]:self.colbert_offsets[i + 1]]


def concat_rows(vecs: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in vecs])]).astype(np.int64)
    mat = np.concatenate(vecs, axis=0).astype(np.float32) if vecs and offsets[-1] else np.zeros((0, dim), np.float32)
    return mat, offsets


def lexical_to_csr(weights: list[dict], vocab_size: int) -> sp.csr_matrix:
    """FlagEmbedding lexical weights ([{token_id_str: weight}]) -> an n x vocab CSR matrix."""
    indptr, indices, data = [0], [], []
    for row in weights:
        for tok, w in row.items():
            indices.append(int(tok))
            data.append(float(w))
        indptr.append(len(indices))
    return sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr, np.int64)),
                         shape=(len(weights), vocab_size))

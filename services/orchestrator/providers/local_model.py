"""A static embedding model run in-process on the CPU, from weights shipped in a PyPI wheel.

WordLlama's ``l2_supercat`` model (the `wordllama` package, MIT) is a token embedding table
(32,000 tokens x 256 dimensions, float16, 16 MB) distilled from large language models, with
its tokenizer. A text's vector is the mean of its tokens' rows, normalized to unit length:
one table lookup and one sum per text, no network and no accelerator. The rows were trained
Matryoshka-style, so a prefix of 64 or 128 dimensions (renormalized) is a smaller embedding
of the same text.

The files are read from the installed package's folder, found without importing the
package (its ``__init__`` configures the root logger and loads compiled helpers llmesh does
not use); only `numpy` and `tokenizers` run. Nothing is read before `StaticEmbeddingModel.load`.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["LOCAL_MODELS", "LocalModelSpec", "StaticEmbeddingModel", "package_folder"]


@dataclass(frozen=True, slots=True)
class LocalModelSpec:
    """Where a local model's files are and what it produces."""

    package: str
    """The installed package whose folder holds the files."""
    weights: str
    """The safetensors file of the token table, relative to the package folder."""
    tensor: str
    """The token table's name in the safetensors file."""
    tokenizer: str
    """The `tokenizers` JSON file, relative to the package folder."""
    dimensions: int
    """The vectors' full length."""


LOCAL_MODELS: Mapping[str, LocalModelSpec] = {
    "wordllama-l2-supercat": LocalModelSpec(
        package="wordllama",
        weights="weights/l2_supercat_256.safetensors",
        tensor="embedding.weight",
        tokenizer="tokenizers/l2_supercat_tokenizer_config.json",
        dimensions=256,
    ),
}
"""The models the ``local`` provider kind serves, by the name routed as ``local/<name>``."""

_DTYPES = {"F16": "<f2", "F32": "<f4", "BF16": None}


def package_folder(package: str) -> Path | None:
    """The folder of an installed package, found without importing it; None if absent."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _read_tensor(path: Path, name: str) -> npt.NDArray[np.float32]:
    """One tensor of a safetensors file, as float32 (the format: a u64 header length, a
    JSON header of name -> dtype, shape, byte offsets, then the raw little-endian data)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    entry = json.loads(raw[8 : 8 + length])[name]
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"{path.name}: tensor {name!r} has unsupported dtype {entry['dtype']}")
    start, end = (8 + length + offset for offset in entry["data_offsets"])
    table = np.frombuffer(raw[start:end], dtype=dtype).reshape(entry["shape"])
    return np.ascontiguousarray(table, dtype=np.float32)


class StaticEmbeddingModel:
    """A token table and its tokenizer: texts in, unit vectors and token counts out.

    Not thread-safe for concurrent `embed` calls (the tokenizer's padding state is shared);
    the ``local`` client runs every call on one worker thread.
    """

    def __init__(self, table: npt.NDArray[np.float32], tokenizer: Any) -> None:
        self._table = table
        self._tokenizer = tokenizer

    @classmethod
    def load(cls, spec: LocalModelSpec) -> StaticEmbeddingModel:
        """Read the model's files; FileNotFoundError when its package is not installed."""
        from tokenizers import Tokenizer  # the `local` extra; imported only to load a model

        folder = package_folder(spec.package)
        if folder is None:
            raise FileNotFoundError(f"package {spec.package!r} is not installed")
        table = _read_tensor(folder / spec.weights, spec.tensor)
        if table.shape[1] != spec.dimensions:
            raise ValueError(f"{spec.weights}: {table.shape[1]} dimensions, not {spec.dimensions}")
        tokenizer = Tokenizer.from_file(str(folder / spec.tokenizer))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        return cls(table, tokenizer)

    @property
    def dimensions(self) -> int:
        """The vectors' full length."""
        return int(self._table.shape[1])

    def embed(
        self, texts: Sequence[str], dimensions: int | None = None
    ) -> tuple[npt.NDArray[np.float32], list[int]]:
        """Unit vectors of `texts` (one row each, `dimensions` long or full) and the number of
        tokens of each text. An empty text (no tokens) gets the zero vector."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        counts = [len(enc.ids) for enc in encodings]
        width = dimensions or self.dimensions
        out = np.zeros((len(counts), width), dtype=np.float32)
        if not texts:
            return out, counts
        ids = np.fromiter((i for enc in encodings for i in enc.ids), dtype=np.int64)
        if ids.size:
            np.clip(ids, 0, self._table.shape[0] - 1, out=ids)
            sizes = np.asarray(counts)
            starts = np.cumsum(sizes) - sizes
            filled = sizes > 0  # reduceat sums each start's run up to the next start
            out[filled] = np.add.reduceat(self._table[ids, :width], starts[filled], axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)  # mean then normalize == normalize sum
        return out, counts

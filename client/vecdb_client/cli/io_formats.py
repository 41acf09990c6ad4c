"""Point files: streaming readers (.npy, .fvecs, .jsonl, .parquet, .txt) for import and
writers (.jsonl, .parquet) for export. Readers yield bounded chunks: .npy is
memory-mapped, .fvecs read through np.memmap, .jsonl and .txt line by line, .parquet
batch by batch. Every problem with a file is a CliError naming it (exit 1).

A chunk either has a vector per point or none at all (``vectors is None``: text-only
points, which the collection's encoder embeds on the server)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .context import CliError, UsageError, require

READ_FORMATS = {".npy": "npy", ".fvecs": "fvecs", ".jsonl": "jsonl", ".ndjson": "jsonl",
                ".parquet": "parquet", ".pq": "parquet", ".txt": "txt"}
WRITE_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass
class Chunk:
    ids: list[str]
    vectors: np.ndarray | None  # (n, dim) float32; None = text-only points
    payloads: list[dict | None] | None = None
    texts: list[str | None] | None = None

    def select(self, keep: list[int]) -> "Chunk":
        pick = (lambda xs: None if xs is None else [xs[i] for i in keep])
        return Chunk([self.ids[i] for i in keep],
                     None if self.vectors is None else self.vectors[keep],
                     pick(self.payloads), pick(self.texts))


def detect_format(path: str, fmt: str | None, known: dict[str, str]) -> str:
    if fmt:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in known:
        names = ", ".join(sorted(known))
        raise UsageError(f"cannot tell the format of {path!r} from its extension "
                         f"({names}); pass --format")
    return known[suffix]


def count_lines(path: str) -> int:
    """Lines with something on them, split and stripped exactly as the readers do (text
    mode: \n, \r\n or \r; Unicode whitespace), so counts and reads always agree."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return sum(1 for line in f if line.strip())


class IdSource:
    """Ids of row-only formats: one per line from a file, or prefix + row number
    (``default_prefix`` when neither is given, else a usage error)."""

    def __init__(self, ids_file: str | None, prefix: str | None, rows: int, data_path: str,
                 default_prefix: str | None = None):
        if ids_file is None and prefix is None:
            prefix = default_prefix
        if ids_file is None and prefix is None:
            raise UsageError(f"{data_path} holds only vectors: pass --ids FILE "
                             "(one id per line) or --id-prefix PREFIX (ids PREFIX0, PREFIX1, ...)")
        self.prefix, self.next = prefix, 0
        self._lines = None
        if ids_file is not None:
            n = _checked(count_lines, ids_file)
            if n != rows:
                raise CliError(f"{ids_file} has {n} ids but {data_path} has {rows} rows")
            self._lines = _checked(open, ids_file, encoding="utf-8-sig", errors="strict")

    def take(self, n: int) -> list[str]:
        start, self.next = self.next, self.next + n
        if self._lines is None:
            return [f"{self.prefix}{i}" for i in range(start, start + n)]
        out = []
        while len(out) < n:
            line = self._lines.readline()
            if not line:
                raise CliError(f"{self._lines.name} ran out of ids after {start + len(out)}")
            if line.strip():
                out.append(line.strip())
        return out


def _checked(fn: Any, path: str, *args: Any, **kw: Any) -> Any:
    try:
        return fn(path, *args, **kw)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"{path}: not a valid file ({exc})") from None


class Reader:
    """``total`` rows (None if unknown), ``dim`` (None if unknown), iterate for Chunks."""

    total: int | None = None
    dim: int | None = None

    def __iter__(self) -> Iterator[Chunk]:
        raise NotImplementedError


class MatrixReader(Reader):
    """.npy (memory-mapped) or .fvecs (np.memmap): rows of a matrix plus an IdSource."""

    def __init__(self, path: str, fmt: str, batch: int, ids_file: str | None,
                 prefix: str | None):
        self.path, self.batch = path, batch
        self.rows = _checked(load_npy if fmt == "npy" else load_fvecs, path)
        self.fvecs = fmt == "fvecs"
        self.total, self.dim = self.rows.shape[0], self.rows.shape[1] - self.fvecs
        self.ids = IdSource(ids_file, prefix, self.total, path)

    def __iter__(self) -> Iterator[Chunk]:
        for start in range(0, self.total, self.batch):
            block = self.rows[start:start + self.batch]
            if self.fvecs:
                block = fvecs_block(block, self.dim, self.path, start)
            yield Chunk(self.ids.take(len(block)), np.ascontiguousarray(block, np.float32))


def load_npy(path: str) -> np.ndarray:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.ndim != 2 or arr.dtype.kind not in "fiu":
        raise CliError(f"{path}: expected a 2-D numeric array, got shape {arr.shape} "
                       f"dtype {arr.dtype}")
    return arr


def load_fvecs(path: str) -> np.ndarray:
    """The raw int32 rows [dim, v0..v(dim-1)]; fvecs_block() checks and converts them."""
    raw = np.memmap(path, dtype="<i4", mode="r")
    if raw.size == 0 or raw[0] <= 0 or raw.size % (int(raw[0]) + 1):
        raise CliError(f"{path}: not an .fvecs file (size {raw.size * 4} bytes does not "
                       "match its dimension header)")
    return raw.reshape(-1, int(raw[0]) + 1)


def fvecs_block(block: np.ndarray, dim: int, path: str, start: int) -> np.ndarray:
    bad = np.flatnonzero(block[:, 0] != dim)
    if bad.size:
        raise CliError(f"{path}: row {start + int(bad[0])} has dimension header "
                       f"{int(block[bad[0], 0])}, expected {dim}")
    return np.ascontiguousarray(block[:, 1:]).view("<f4")


class TextReader(Reader):
    """.txt: one text per non-blank line (surrounding whitespace stripped), text-only
    points. Ids from --ids FILE, --id-prefix PREFIX, or by default ``<file stem>-<row>``
    (so importing the same file again replaces the same points)."""

    def __init__(self, path: str, batch: int, ids_file: str | None, prefix: str | None):
        self.path, self.batch = path, batch
        self.total = _checked(count_lines, path)
        self.ids = IdSource(ids_file, prefix, self.total, path,
                            default_prefix=f"{Path(path).stem}-")

    def __iter__(self) -> Iterator[Chunk]:
        texts: list[str] = []
        with _checked(open, self.path, encoding="utf-8-sig") as f:
            try:
                for line in f:
                    if line.strip():
                        texts.append(line.strip())
                    if len(texts) == self.batch:
                        yield Chunk(self.ids.take(len(texts)), None, None, texts)
                        texts = []
            except UnicodeDecodeError as exc:
                raise CliError(f"{self.path}: not UTF-8 text ({exc.reason}) after "
                               f"{self.ids.next + len(texts)} lines") from None
        if texts:
            yield Chunk(self.ids.take(len(texts)), None, None, texts)


class JsonlReader(Reader):
    """One JSON object per line: {"id", "vector"?, "payload"?, "text"?} (no vector:
    a text-only point)."""

    def __init__(self, path: str, batch: int):
        self.path, self.batch = path, batch
        self.total = _checked(count_lines, path)

    def _row(self, lineno: int, line: str) -> tuple[str, Any, Any, Any]:
        where = f"{self.path} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise CliError(f"{where}: expected a JSON object")
        return row_values(where, obj.get("id"), obj.get("vector"), obj.get("payload"),
                          obj.get("text"))

    def __iter__(self) -> Iterator[Chunk]:
        rows: list[tuple] = []
        with _checked(open, self.path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    rows.append(self._row(lineno, line))
                if len(rows) == self.batch:
                    yield rows_chunk(rows, self.path)
                    rows = []
        if rows:
            yield rows_chunk(rows, self.path)


def row_values(where: str, pid: Any, vector: Any, payload: Any,
               text: Any) -> tuple[str, Any, Any, Any]:
    if isinstance(pid, bool) or not isinstance(pid, (str, int)) or pid == "":
        raise CliError(f"{where}: 'id' must be a non-empty string or an integer")
    if text is not None and not isinstance(text, str):
        raise CliError(f"{where}: 'text' must be a string")
    if vector is None and not (text or "").strip():
        raise CliError(f"{where}: no 'vector' and no 'text' (a point needs a vector, or a "
                       "text for the collection's encoder to embed)")
    payload = parse_payload(where, payload)
    return str(pid), vector, payload, text


def parse_payload(where: str, payload: Any) -> dict | None:
    """A JSON object, given as such or as JSON text ("" and null: no payload)."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload) if payload else None
        except json.JSONDecodeError as exc:
            raise CliError(f"{where}: 'payload' is not valid JSON ({exc.msg})") from None
    if payload is not None and not isinstance(payload, dict):
        raise CliError(f"{where}: 'payload' must be a JSON object")
    return payload


def rows_chunk(rows: list[tuple], path: str) -> Chunk:
    ids, vectors, payloads, texts = (list(col) for col in zip(*rows))
    payloads = payloads if any(p is not None for p in payloads) else None
    missing = [i for i, v in enumerate(vectors) if v is None]
    if len(missing) == len(ids):
        return Chunk(ids, None, payloads, texts)
    if missing:
        raise CliError(f"{path}: id {ids[missing[0]]!r} has no 'vector' but other points "
                       "near it have one; a file holds either vectors or text-only points")
    lengths = {len(v) if isinstance(v, (list, tuple)) else -1 for v in vectors}
    if len(lengths) != 1 or -1 in lengths:
        raise CliError(f"{path}: vectors must be lists of one length; found lengths "
                       f"{sorted(lengths)} near id {ids[0]!r}")
    try:
        mat = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise CliError(f"{path}: non-numeric vector values near id {ids[0]!r}") from None
    return Chunk(ids, mat, payloads, texts if any(t is not None for t in texts) else None)


class ParquetReader(Reader):
    """Columns id, vector (list of float), payload (JSON string or struct)?, text?;
    without a vector column (or with null vectors) the points are text-only."""

    def __init__(self, path: str, batch: int):
        pq = require("pyarrow.parquet", "reading .parquet")
        self.path, self.batch = path, batch
        self.file = _checked(pq.ParquetFile, path)
        self.total = self.file.metadata.num_rows
        names = set(self.file.schema_arrow.names)
        if "id" not in names or not names & {"vector", "text"}:
            need = "'id'" if "id" not in names else "'vector' or 'text'"
            raise CliError(f"{path}: no {need} column (columns: {sorted(names)})")
        self.columns = [c for c in ("id", "vector", "payload", "text") if c in names]

    def __iter__(self) -> Iterator[Chunk]:
        pc = require("pyarrow.compute", "reading .parquet")
        for rb in self.file.iter_batches(batch_size=self.batch, columns=self.columns):
            yield self._chunk(pc, rb)

    def _chunk(self, pc: Any, rb: Any) -> Chunk:
        ids = [str(x) for x in rb.column("id").to_pylist()]
        payloads = texts = None
        if "payload" in self.columns:
            payloads = [parse_payload(f"{self.path} id {i!r}", p)
                        for i, p in zip(ids, rb.column("payload").to_pylist())]
        if "text" in self.columns:
            texts = rb.column("text").to_pylist()
        vectors = self._vectors(pc, rb, ids, texts)
        return Chunk(ids, vectors, payloads, texts)

    def _vectors(self, pc: Any, rb: Any, ids: list[str],
                 texts: list[str | None] | None) -> np.ndarray | None:
        col = rb.column("vector") if "vector" in self.columns else None
        if col is None or col.null_count == len(ids):  # text-only points
            bad = [i for i, t in zip(ids, texts or [None] * len(ids))
                   if not isinstance(t, str) or not t.strip()]
            if bad:
                raise CliError(f"{self.path}: id {bad[0]!r} has neither a vector nor a text")
            return None
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        if col.null_count or len(set(lengths.tolist())) > 1:
            raise CliError(f"{self.path}: 'vector' must hold lists of one length, no nulls "
                           f"(near id {ids[0]!r}); a file holds either vectors or "
                           "text-only points")
        dim = int(lengths[0]) if len(lengths) else 0
        flat = col.flatten().to_numpy(zero_copy_only=False)
        return np.asarray(flat, dtype=np.float32).reshape(len(ids), dim)


def open_reader(path: str, fmt: str, batch: int, ids_file: str | None = None,
                id_prefix: str | None = None) -> Reader:
    if not os.path.isfile(path):
        raise CliError(f"{path}: no such file")
    if fmt in ("npy", "fvecs"):
        return MatrixReader(path, fmt, batch, ids_file, id_prefix)
    if fmt == "txt":
        return TextReader(path, batch, ids_file, id_prefix)
    if ids_file is not None or id_prefix is not None:
        raise UsageError(f"--ids/--id-prefix apply to .npy/.fvecs/.txt only; {fmt} rows "
                         "carry ids")
    return JsonlReader(path, batch) if fmt == "jsonl" else ParquetReader(path, batch)


def load_query_vectors(path: str) -> np.ndarray:
    """Search queries from .npy (1-D or 2-D), .fvecs or .json (a list or list of lists)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        text = _checked(Path.read_text, Path(path))
        return parse_vectors(text, path)
    if suffix == ".fvecs":
        rows = _checked(load_fvecs, path)
        return fvecs_block(rows, rows.shape[1] - 1, path, 0)
    arr = _checked(np.load, path, allow_pickle=False)
    if not isinstance(arr, np.ndarray) or arr.ndim not in (1, 2):
        raise CliError(f"{path}: expected a 1-D or 2-D array")
    return np.asarray(arr, dtype=np.float32)


def parse_vectors(text: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray(json.loads(text), dtype=np.float32)
    except (json.JSONDecodeError, TypeError, ValueError):
        raise UsageError(f"{source}: expected a JSON list of numbers or a list of such "
                         "lists") from None
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise UsageError(f"{source}: expected a non-empty 1-D or 2-D list of numbers")
    return arr


# ------------------------------------------------------------------- writers
class JsonlWriter:
    def __init__(self, path: str):
        self.f = _checked(open, path, "w", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    def close(self) -> None:
        self.f.close()


class ParquetWriter:
    """Columns id, vector (list<float32>), payload (JSON text), text."""

    def __init__(self, path: str, with_vectors: bool):
        self.pa = require("pyarrow", "writing .parquet")
        pq = require("pyarrow.parquet", "writing .parquet")
        pa = self.pa
        fields = [("id", pa.string())]
        if with_vectors:
            fields.append(("vector", pa.list_(pa.float32())))
        fields += [("payload", pa.string()), ("text", pa.string())]
        self.schema = pa.schema(fields)
        self.w = _checked(pq.ParquetWriter, path, self.schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        cols: dict[str, Any] = {"id": [r["id"] for r in rows]}
        if "vector" in self.schema.names:
            cols["vector"] = [r.get("vector") for r in rows]
        cols["payload"] = [None if r.get("payload") is None else
                           json.dumps(r["payload"], ensure_ascii=False) for r in rows]
        cols["text"] = [r.get("text") for r in rows]
        self.w.write_table(self.pa.table(cols, schema=self.schema))

    def close(self) -> None:
        self.w.close()


def open_writer(path: str, fmt: str, with_vectors: bool) -> JsonlWriter | ParquetWriter:
    return JsonlWriter(path) if fmt == "jsonl" else ParquetWriter(path, with_vectors)

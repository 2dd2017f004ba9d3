"""Row-wise top-k of a score block: each row's k best columns and scores, best first.

Hand-written (numba) because, on the wide rows of batch scoring, ``torch.topk`` (a partial sort of every row) takes
longer than the scoring matmul itself, ``numpy.argpartition`` longer still, and faiss' fused exact search is no
faster than matmul + this kernel; ``benchmarks/recsys_scoring.py`` measures it against ``torch.topk`` in every run
(README, Recommendations). Here a row costs one mostly branch-free pass: a threshold is guessed from every 16th
score (a small heap), the columns above it are collected 16 at a time, and only those are sorted (a radix sort of
their 32-bit keys, cheaper than numba's np.sort of 64-bit keys). The guess is checked, not trusted: a row with
fewer than k columns above it is collected again with a lower guess from the same sample, then ranked over all its
columns, so the result is exact. A tight first guess with a lower one to fall back on beats one cautious guess
from a denser sample.

Ties go to the lower column (0.0 and -0.0 tie); NaN scores rank as -inf."""

from __future__ import annotations

import math

import numba
import numpy as np

SAMPLE_STRIDE = 16
TILE = 16
# Room over the expected rank of the k-th best score in the sample, in standard deviations: the first guess
# leaves about 5% of random rows short of k columns (collected again), the second almost none (fully sorted).
FIRST_GUESS_SIGMAS, SECOND_GUESS_SIGMAS = 1.5, 4.0


@numba.njit(inline="always", boundscheck=False)
def _score(row, column):
    value = row[column]
    return -np.inf if math.isnan(value) else value


@numba.njit(boundscheck=False)
def _sample_top(row, stride, rank, heap) -> None:
    """Fill heap (a min-heap) with the rank largest of every stride-th score: the guesses at a value the row's k-th
    best exceeds are taken from it."""
    size = 0
    for column in range(0, row.shape[0], stride):
        value = _score(row, column)
        if size < rank:
            heap[size] = value
            size += 1
            if size == rank:
                heap[:rank].sort()  # ascending: a valid min-heap
        elif value > heap[0]:
            heap[0] = value
            position = 0
            while True:  # sift down a min-heap of plain values
                child = 2 * position + 1
                if child >= rank:
                    break
                if child + 1 < rank and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= value:
                    break
                heap[position] = heap[child]
                position = child
            heap[position] = value


NEGATIVE_INFINITY_BITS = 0xFF800000


@numba.njit(inline="always", boundscheck=False)
def _rank_key(row, row_bits, column) -> np.uint64:
    """The score as an unsigned 32-bit integer that sorts best first (NaN as -inf, -0.0 as 0.0)."""
    value = row[column]
    bits = np.uint64(NEGATIVE_INFINITY_BITS if math.isnan(value) else (0 if value == 0 else row_bits[column]))
    ascending = (~bits & np.uint64(0xFFFFFFFF)) if bits >> np.uint64(31) else (bits | np.uint64(0x80000000))
    return np.uint64(0xFFFFFFFF) - ascending


@numba.njit(inline="always", boundscheck=False)
def _collect(row, row_bits, start, stop, threshold, keys, columns, count) -> int:
    """Append the rank keys and columns of columns start..stop scoring above the threshold; the new count."""
    for column in range(start, stop):
        if row[column] > threshold:
            keys[count] = _rank_key(row, row_bits, column)
            columns[count] = column
            count += 1
    return count


@numba.njit(inline="always", boundscheck=False)
def _radix_sort(keys, columns, count, spare_keys, spare_columns, histogram):
    """The first count (key, column) pairs sorted by key, stably (so columns collected in ascending order keep
    ties to the lower column): least significant byte first, a byte shared by every pair skipped. Returns the
    pair of arrays that holds the result."""
    for shift in range(0, 32, 8):
        histogram[:] = 0
        for i in range(count):
            histogram[(keys[i] >> shift) & 0xFF] += 1
        if histogram[(keys[0] >> shift) & 0xFF] == count:
            continue
        total = 0
        for digit in range(256):
            total, histogram[digit] = total + histogram[digit], total
        for i in range(count):
            digit = (keys[i] >> shift) & 0xFF
            spare_keys[histogram[digit]], spare_columns[histogram[digit]] = keys[i], columns[i]
            histogram[digit] += 1
        keys, spare_keys = spare_keys, keys
        columns, spare_columns = spare_columns, columns
    return keys, columns


@numba.njit(inline="always", boundscheck=False)
def _candidates(row, row_bits, threshold, keys, columns) -> int:
    """Collect the columns scoring above the threshold, tiles whose maximum is not above it skipped; their count."""
    n = row.shape[0]
    count = 0
    for start in range(0, n - TILE + 1, TILE):
        tile_max = row[start]
        for column in range(start + 1, start + TILE):
            tile_max = max(tile_max, row[column])
        if not tile_max <= threshold:  # a NaN first in the tile hides its maximum: scan it
            count = _collect(row, row_bits, start, start + TILE, threshold, keys, columns, count)
    return _collect(row, row_bits, n - n % TILE, n, threshold, keys, columns, count)


@numba.njit(parallel=True, boundscheck=False, cache=True)
def _top_k(block, k, stride, first_rank, rank, n_workers, out_columns, out_scores) -> None:
    n_rows, n = block.shape
    per_worker = (n_rows + n_workers - 1) // n_workers
    for worker in numba.prange(n_workers):
        keys, spare_keys = np.empty(n, np.uint32), np.empty(n, np.uint32)
        columns, spare_columns = np.empty(n, np.int64), np.empty(n, np.int64)
        histogram = np.empty(256, np.int64)
        sample = np.empty(max(rank, 1), np.float32)
        for r in range(worker * per_worker, min(n_rows, (worker + 1) * per_worker)):
            row = block[r]
            row_bits = row.view(np.uint32)
            count = 0
            if rank > 0:
                _sample_top(row, stride, rank, sample)
                sample.sort()  # ascending: sample[rank - first_rank] is the first_rank-th largest
                count = _candidates(row, row_bits, sample[rank - first_rank], keys, columns)
                if count < k:  # the first guess was too high: the lower one
                    count = _candidates(row, row_bits, sample[0], keys, columns)
            if count < k:  # both too high (or the row too short to sample): rank every column
                for column in range(n):
                    keys[column], columns[column] = _rank_key(row, row_bits, column), column
                count = n
            _, ranked = _radix_sort(keys, columns, count, spare_keys, spare_columns, histogram)
            for i in range(k):
                out_columns[r, i], out_scores[r, i] = ranked[i], _score(row, ranked[i])


def top_k_rows(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns (int64) and scores (float32) of each row's k highest scores, best first; k <= block's width."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    n_rows, n = block.shape
    if not 0 < k <= n:
        raise ValueError(f"top-k needs 0 < k <= {n} columns, got k={k}")
    expected = k / SAMPLE_STRIDE  # sampled scores at or above the row's k-th best, on average
    first_rank, rank = (math.ceil(expected + sigmas * math.sqrt(expected)) + 1 for sigmas in (FIRST_GUESS_SIGMAS, SECOND_GUESS_SIGMAS))
    if n // SAMPLE_STRIDE < 4 * rank:
        rank = 0
    columns = np.empty((n_rows, k), dtype=np.int64)
    scores = np.empty((n_rows, k), dtype=np.float32)
    if n_rows:
        _top_k(block, k, SAMPLE_STRIDE, first_rank, rank, min(numba.get_num_threads(), n_rows), columns, scores)
    return columns, scores

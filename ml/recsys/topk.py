"""Row-wise top-k of a score block: each row's k best columns and scores, best first.

Hand-written (numba) because, on the wide rows of batch scoring, ``torch.topk`` (a partial sort of every row) takes
longer than the scoring matmul itself, ``numpy.argpartition`` longer still, and faiss' fused exact search is no
faster than matmul + this kernel; ``benchmarks/recsys_scoring.py`` measures it against ``torch.topk`` in every run
(README, Recommendations).

A row is split into GROUPS-column groups strided across it (group j holds the columns j, j + width, ...), so that
every group's maximum comes from one elementwise maximum over contiguous slices, the row's only full pass, which
vectorizes. If at least k group maxima reach a threshold, k scores do, so the row's k-th best reaches it too: the
threshold is bisected over the maxima (from the previous row's) until between k and SLACK * k of them reach it, and
only the groups whose maximum does are scanned. Their columns at or above it are collected in ascending order and
radix-sorted by their 32-bit keys (stably, so ties keep the lower column); the result is exact, not sampled. A row
too narrow for the groups, or with fewer than k scores that are not NaN, is ranked over all its columns.

Ties go to the lower column (0.0 and -0.0 tie); NaN scores rank as -inf."""

from __future__ import annotations

import math

import numba
import numpy as np

# evaluate.top_k calls the kernel from several threads at once; numba's workqueue layer aborts the process on that,
# so ask for a layer that allows it (OpenMP, or TBB), or a clear error at the first call if there is none
numba.config.THREADING_LAYER = "threadsafe"  # type: ignore[attr-defined]  # set at import, not declared

GROUPS = 16
MIN_GROUPS_PER_K = 4
"""Rows with fewer than this many groups per wanted column are ranked whole: the groups would not narrow them."""
SLACK = 1.5
"""The threshold search stops once at most this many times k group maxima reach it: a looser stop scans more groups
for nothing, a tighter one bisects longer (1.5 was the faster of 1.5 and 3 on 100,000 x 20,000 scores)."""
BISECTIONS = 24


@numba.njit(inline="always", boundscheck=False)
def _score(row, column):
    value = row[column]
    return -np.inf if math.isnan(value) else value


NEGATIVE_INFINITY_BITS = 0xFF800000


@numba.njit(inline="always", boundscheck=False)
def _rank_key(row, row_bits, column) -> np.uint64:
    """The score as an unsigned 32-bit integer that sorts best first (NaN as -inf, -0.0 as 0.0)."""
    value = row[column]
    bits = np.uint64(NEGATIVE_INFINITY_BITS if math.isnan(value) else (0 if value == 0 else row_bits[column]))
    ascending = (~bits & np.uint64(0xFFFFFFFF)) if bits >> np.uint64(31) else (bits | np.uint64(0x80000000))
    return np.uint64(0xFFFFFFFF) - ascending


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
def _group_maxima(row, width, maxima) -> None:
    """maxima[j]: the largest non-NaN score of group j, the columns j, j + width, ... j + (GROUPS - 1) * width
    (-inf when it has none). Groups strided across the row make this an elementwise maximum of contiguous slices,
    which vectorizes."""
    for j in range(width):
        maxima[j] = -np.inf
    for segment in range(GROUPS):
        base = segment * width
        for j in range(width):
            value = row[base + j]
            maxima[j] = value if value > maxima[j] else maxima[j]


@numba.njit(inline="always", boundscheck=False)
def _count_at_least(values, n, threshold) -> int:
    count = 0
    for i in range(n):
        count += values[i] >= threshold
    return count


@numba.njit(inline="always", boundscheck=False)
def _threshold(maxima, width, k, guess) -> float:
    """A score the row's k-th best reaches: one that at least k group maxima reach (k groups each hold a score at
    least that high), bisected between the lowest and the highest finite maximum from the guess (the previous
    row's) until at most SLACK * k maxima reach it, so that few groups are scanned for nothing. -inf when fewer
    than k finite maxima exist (every group is then scanned)."""
    low, high = np.inf, -np.inf
    for j in range(width):
        if -np.inf < maxima[j] < np.inf:
            low, high = min(low, maxima[j]), max(high, maxima[j])
    if not low <= high or _count_at_least(maxima, width, low) < k:
        return -np.inf
    if _count_at_least(maxima, width, high) >= k:
        return high
    threshold = guess if low < guess < high else low + (high - low) * 0.5
    for _ in range(BISECTIONS):
        if not low < threshold < high:  # no float left between the bounds, or their midpoint overflows
            return low
        count = _count_at_least(maxima, width, threshold)
        if count < k:
            high = threshold
        elif count <= SLACK * k:
            return threshold
        else:
            low = threshold
        threshold = low + (high - low) * 0.5
    return low


@numba.njit(inline="always", boundscheck=False)
def _candidates(row, row_bits, width, maxima, threshold, groups, keys, columns) -> int:
    """Collect, in ascending column order, the columns scoring at least the threshold: only groups whose maximum
    reaches it hold any, plus the columns past the last whole group; their count."""
    n_groups = 0
    for j in range(width):
        if maxima[j] >= threshold:
            groups[n_groups] = j
            n_groups += 1
    count = 0
    for segment in range(GROUPS):
        base = segment * width
        for g in range(n_groups):
            count = _collect(row, row_bits, base + groups[g], threshold, keys, columns, count)
    for column in range(GROUPS * width, row.shape[0]):
        count = _collect(row, row_bits, column, threshold, keys, columns, count)
    return count


@numba.njit(inline="always", boundscheck=False)
def _collect(row, row_bits, column, threshold, keys, columns, count) -> int:
    """Append the column's rank key and index if it scores at least the threshold; the new count."""
    if row[column] >= threshold:
        keys[count] = _rank_key(row, row_bits, column)
        columns[count] = column
        count += 1
    return count


@numba.njit(parallel=True, nogil=True, boundscheck=False, cache=True)
def _top_k(block, k, n_workers, out_columns, out_scores) -> None:
    n_rows, n = block.shape
    width = n // GROUPS
    per_worker = (n_rows + n_workers - 1) // n_workers
    for worker in numba.prange(n_workers):
        keys, spare_keys = np.empty(n, np.uint32), np.empty(n, np.uint32)
        columns, spare_columns = np.empty(n, np.int64), np.empty(n, np.int64)
        histogram = np.empty(256, np.int64)
        maxima, groups = np.empty(width, np.float32), np.empty(width, np.int64)
        guess = np.nan  # no previous row yet
        for r in range(worker * per_worker, min(n_rows, (worker + 1) * per_worker)):
            row = block[r]
            row_bits = row.view(np.uint32)
            count = 0
            if width >= MIN_GROUPS_PER_K * k:
                _group_maxima(row, width, maxima)
                guess = _threshold(maxima, width, k, guess)
                count = _candidates(row, row_bits, width, maxima, guess, groups, keys, columns)
            if count < k:  # too few groups, or fewer than k scores that are not NaN: rank every column
                for column in range(n):
                    keys[column], columns[column] = _rank_key(row, row_bits, column), column
                count = n
            _, ranked = _radix_sort(keys, columns, count, spare_keys, spare_columns, histogram)
            for i in range(k):
                out_columns[r, i], out_scores[r, i] = ranked[i], _score(row, ranked[i])


def top_k_rows(block: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns (int64) and scores (float32) of each row's k highest scores, best first; k <= block's width. Runs on
    the calling thread's numba thread count, without the GIL."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    n_rows, n = block.shape
    if not 0 < k <= n:
        raise ValueError(f"top-k needs 0 < k <= {n} columns, got k={k}")
    columns = np.empty((n_rows, k), dtype=np.int64)
    scores = np.empty((n_rows, k), dtype=np.float32)
    if n_rows:
        _top_k(block, k, min(numba.get_num_threads(), n_rows), columns, scores)
    return columns, scores

"""The validation gate: delivery checks, file checks, Great Expectations suites derived from the contract, and
batch checks. ``gate.validate_drop`` runs them all; ``checks`` holds the pandas checks, ``gx`` the suites and the
Great Expectations adapter, ``window`` what the lake says about the days before a drop, ``report`` the HTML report.

A drop passes four layers, each reported with the table, the check and a sample of bad rows:
0. the delivery against its manifest: no file missing, extra or misnamed (with a "did you mean"), none truncated
   or altered (size and SHA-256), row counts as listed, and a table's parent in the same drop when its rows are
   placed by it (order lines with their orders);
1. file checks on every CSV (empty, not UTF-8, wrong delimiter, truncated, unparsable), columns the contract does
   not have (refused, or ignored and reported when the source allows it), timestamps that mix naive values with
   offsets (refused; a consistent offset is converted to UTC and reported);
2. GX phase "schema" on the raw text: required columns exist (a nullable column left out is filled with nulls
   and reported), required values present, values look like their type, values in their allowed set;
3. GX phase "content" on typed values: ranges, unique keys, ordered column pairs, the batch window (no future or
   stale rows), freshness of daily tables and volume against previous days; plus referential integrity,
   computed with pandas because a GX value set of every product id would bloat the suite and its Data Docs.
"""

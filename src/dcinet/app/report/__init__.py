"""``dcinet report``: one HTML page (with PNG figures) about a trained run's retrieval.

The page shows the paper's tables and every other metric with their bootstrap intervals, the AP of
every class, the most confused pairs of classes (:mod:`~dcinet.app.report.confusion`), the loss
and validation curves, and example queries with their top results. One module per job: confusion
(the numbers), examples (the queries and their media), figures (the PNGs), page (the HTML), build
(what runs them, from a run or from saved features).
"""

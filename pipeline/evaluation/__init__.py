"""Measuring a run: what evaluate measures about replies, refusal detectors and the figures a
reviewer signs, and the pages a run is read in (metrics.json, summary.md, report.html)."""

"""The pages a run is read in: metrics.json and summary.md (`summary.py`), report.html
(`html.py`), and the headline at the top of each (`headline.py`)."""

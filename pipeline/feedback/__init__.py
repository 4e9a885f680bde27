"""AI feedback and what it is worth: the judge (`judge.py`, its answers' form in `structured.py`,
their probabilities in `probability.py`), revision filters, the human slice, calibration, trust
and whether the AI data helped (`ai_value.py`)."""

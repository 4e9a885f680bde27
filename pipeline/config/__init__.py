"""The run config: every knob of a run, one pydantic model per section (`run.py` holds RunConfig;
`train.py`, `evaluate.py` and `loops.py` the training, evaluation and loop sections)."""

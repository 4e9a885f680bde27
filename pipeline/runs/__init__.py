"""A run: what every stage is handed (`context.py`), walking the stages (`runner.py`), what a run
would do (`plan.py`), iterations and which outputs are still fresh."""

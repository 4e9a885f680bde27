"""What users give cai, read and checked: prompts and human pairs (`sources.py`), the held-out
evaluation prompts training must never see, untrusted text's control strings, and `cai check`."""

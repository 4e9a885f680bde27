"""Training with TRL: what the training stages share (`base.py`), the policy recipes (`policy.py`),
rewards for online RL and the texts training and scoring tokenize."""

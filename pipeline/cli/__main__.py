"""`python -m cai.cli`: the `cai` command (as `accelerate launch -m cai.cli` runs it)."""

from cai.cli import main

main()

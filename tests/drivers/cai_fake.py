"""`cai` with the deterministic fake backend registered as `fake:` (for subprocess tests).

    python tests/drivers/cai_fake.py run --to export --set models.policy=fake:p ...

CAI_FAKE_DELAY (seconds per backend batch) slows it down, so a test can kill it mid-stage.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakes import FakeBackend  # noqa: E402

from cai import backends  # noqa: E402
from cai.cli import main  # noqa: E402

DELAY = float(os.environ.get("CAI_FAKE_DELAY", "0"))


class SlowFake(FakeBackend):
    def generate(self, requests):
        time.sleep(DELAY)
        return super().generate(requests)

    def choice_logprobs(self, requests):
        time.sleep(DELAY)
        return super().choice_logprobs(requests)


backends.BACKENDS["fake"] = lambda model, options: SlowFake(model)

if __name__ == "__main__":
    main()

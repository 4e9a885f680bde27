"""A deterministic fake backend: answers depend only on the request, so reruns are comparable."""

import hashlib
import math

WORDS = ("safe kind help sorry cannot explain careful please idea friend learn try share "
         "question answer simple person people better today maybe never always local law "
         "doctor advice risk caution respect privacy honest unsure").split()


def _digest(*parts) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


class FakeBackend:
    def __init__(self, model: str):
        self.identity = {"model": f"fake:{model}"}
        self.generate_calls = 0
        self.choice_calls = 0
        self.fail_after = None  # raise this exception once this many requests were answered
        self.exception = KeyboardInterrupt

    def _tick(self, n):
        if self.fail_after is not None and self.generate_calls + self.choice_calls + n > self.fail_after:
            raise self.exception()

    def generate(self, requests):
        self._tick(len(requests))
        self.generate_calls += len(requests)
        out = []
        for r in requests:
            d = _digest(r.messages, r.params, r.seed, r.sample)
            asked = dict(r.messages[-1])["content"]
            # A multiple-choice question asked as text (the judge's voting fallback): answer it.
            if asked.endswith("Answer with the letter A or B only."):
                out.append(f"Answer: {'AB'[d[0] % 2]}")
            elif asked.endswith("Answer Yes or No."):
                out.append(("Yes", "No")[d[0] % 2] + ".")
            else:
                out.append(" ".join(WORDS[b % len(WORDS)] for b in d[:12]).capitalize() + ".")
        return out

    def choice_logprobs(self, requests):
        self._tick(len(requests))
        self.choice_calls += len(requests)
        out = []
        for r in requests:
            d = _digest(r.messages, r.choices)
            out.append([math.log((b + 1) / 257) for b in d[:len(r.choices)]])
        return out

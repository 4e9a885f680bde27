"""A deterministic fake backend: answers depend only on the request, so reruns are comparable."""

import hashlib
import math
import re

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


_RESPONSES = re.compile(r"(`{3,})response A\n(.*?)\n\1\n\nResponse B:\n(`{3,})response B\n(.*?)\n\3\n",
                        re.DOTALL)


class HumanFollowingJudge(FakeBackend):
    """A scripted judge that agrees with the human label of a set share of the human pairs
    (which ones: a hash of the pair), in both orders, and answers every other comparison
    confidently for a side picked by a hash of the two replies (so AI comparisons come out
    sure of themselves, like a real judge's)."""

    def __init__(self, model: str, humans: list[dict], accuracy: float, sure: float = 0.9):
        super().__init__(model)
        self.humans = {(h["chosen"], h["rejected"]): h for h in humans}
        self.accuracy, self.sure = accuracy, sure

    def _a_wins(self, a: str, b: str) -> bool:
        for (chosen, rejected), h in ((k, self.humans.get(k)) for k in ((a, b), (b, a))):
            if h is not None:
                right = _digest("agree", h["id"])[0] / 256 < self.accuracy
                return (chosen == a) == right
        return _digest("side", *sorted((a, b)))[0] % 2 == (a < b)

    def choice_logprobs(self, requests):
        out = super().choice_logprobs(requests)
        for i, r in enumerate(requests):
            found = _RESPONSES.search(dict(r.messages[-1])["content"])
            if found and tuple(r.choices) == ("A", "B"):
                win = (self.sure, 1 - self.sure)
                a_wins = self._a_wins(found.group(2), found.group(4))
                out[i] = [math.log(x) for x in (win if a_wins else win[::-1])]
        return out


_REPLY = re.compile(r"The assistant's response:\n(`{3,})response\n(.*?)\n\1\n", re.DOTALL)


class PositionBiasedScorer(FakeBackend):
    """A scripted judge that is useless pairwise and informative pointwise, like small instruct
    models: shown two replies it picks A (P = `lean`) whatever they are; asked whether one reply
    violates a principle, it says "No" to the reply people chose and "Yes" to the one they
    rejected for a set share of the human pairs (`accuracy`), with P = `sure`."""

    def __init__(self, model: str, humans: list[dict], accuracy: float, sure: float = 0.8,
                 lean: float = 0.95):
        super().__init__(model)
        self.replies = {}
        for h in humans:
            right = _digest("agree", h["id"])[0] / 256 < accuracy
            self.replies[h["chosen"]], self.replies[h["rejected"]] = (not right), right
        self.sure, self.lean = sure, lean

    def choice_logprobs(self, requests):
        out = super().choice_logprobs(requests)
        for i, r in enumerate(requests):
            asked = dict(r.messages[-1])["content"]
            if tuple(r.choices) == ("A", "B"):
                out[i] = [math.log(self.lean), math.log(1 - self.lean)]
            elif (found := _REPLY.search(asked)) and found.group(2) in self.replies:
                yes = self.sure if self.replies[found.group(2)] else 1 - self.sure
                out[i] = [math.log(yes), math.log(1 - yes)]
        return out

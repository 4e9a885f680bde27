"""The `transformers:` backend: local models on CPU or CUDA, HF directories or GGUF files.

`transformers:smollm2-135m` is the embedded default; `transformers:/path/to/dir` or
`transformers:/path/to/model.gguf` load local weights. Generation is batched with left padding;
choice log-probabilities come from one forward pass when every choice is a single token.
"""

from collections import defaultdict

from cai.backends.base import ChoiceRequest, GenerationRequest, as_messages
from cai.backends.device import pick_device, resolve_dtype, set_threads
from cai.backends.prefix_cache import PrefixScorer, by_token_budget, plan_prefixes
from cai.backends.sampling import request_seed, row_sampler
from cai.backends.weights import resolve
from cai.inputs.control_tokens import encode_chat, encode_chat_with_starts


class TransformersBackend:
    def __init__(self, model: str, device: str = "auto", dtype: str = "auto", threads: int = 0,
                 prefix_cache: bool = True):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        set_threads(threads)
        self.path, self.identity = resolve(model)
        self.device = pick_device(device)
        dtype = resolve_dtype(self.device, dtype)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"  # decoder-only batches pad on the left
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        # Padded tokens per scoring pass: small on CPU (compute-bound), large on a GPU.
        self.max_batch_tokens = 1024 if self.device == "cpu" else 65536
        # Judge prompts share long prefixes: each is prefilled once (cai.backends.prefix_cache).
        self.prefixes = PrefixScorer(self.model, self.device, self.tokenizer.pad_token_id,
                                     self.max_batch_tokens) if prefix_cache else None

    def _ids(self, conversations: list[list[dict]]) -> list[list[int]]:
        # Contents are tokenized as plain text: a control string in a prompt or reply never
        # becomes a control token (cai.inputs.control_tokens).
        return [encode_chat(self.tokenizer, m) for m in conversations]

    def _encode(self, conversations: list[list[dict]]):
        return self.tokenizer.pad({"input_ids": self._ids(conversations)},
                                  return_tensors="pt").to(self.device)

    def generate(self, requests: list[GenerationRequest]) -> list[str]:
        import torch
        if not requests:
            return []
        params = requests[0].params
        assert all(r.params == params for r in requests), "a batch shares sampling parameters"
        batch = self._encode([as_messages(r.messages) for r in requests])
        # Sampled rows draw from their own generators (seeded by the request), so a request
        # samples the same tokens in any batch; greedy decoding then takes the drawn token.
        sampler = [row_sampler([request_seed(r) for r in requests], params.temperature,
                               params.top_p, self.device)] if params.temperature > 0 else []
        with torch.no_grad():
            out = self.model.generate(
                **batch, max_new_tokens=params.max_new_tokens, do_sample=False,
                temperature=None, top_p=None, top_k=None, logits_processor=sampler,
                pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, batch["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]

    def choice_logprobs(self, requests: list[ChoiceRequest]) -> list[list[float]]:
        encoded = [encode_chat_with_starts(self.tokenizer, as_messages(r.messages)) for r in requests]
        cuts = plan_prefixes(encoded, self.prefixes.cache) if self.prefixes else [0] * len(encoded)
        groups = defaultdict(list)  # prefix -> request indices; () = no shared prefix
        for i, ((ids, _), cut) in enumerate(zip(encoded, cuts)):
            groups[tuple(ids[:cut])].append(i)
        out = [None] * len(requests)
        for prefix, idx in groups.items():
            rows = [encoded[i][0] for i in idx]
            scored = self.prefixes.score(rows, prefix) if prefix else self._score_plain(rows)
            for i, next_logprobs in zip(idx, scored):
                out[i] = [self._choice_logprob(next_logprobs, requests[i], c)
                          for c in requests[i].choices]
        return out

    def _score_plain(self, rows: list[list[int]]) -> list:
        """Next-token log-probabilities after each row, every token prefilled."""
        out = [None] * len(rows)
        for chunk in by_token_budget([len(r) for r in rows], self.max_batch_tokens):
            for i, logprobs in zip(chunk, self._choice_chunk([rows[i] for i in chunk])):
                out[i] = logprobs
        return out

    def _choice_chunk(self, rows: list[list[int]]) -> list:
        import torch
        batch = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt").to(self.device)
        with torch.no_grad():  # logits of the last position only: the full [batch, seq, vocab]
            logits = self.model(**batch, logits_to_keep=1).logits[:, -1, :].float()  # is GBs
        return list(torch.log_softmax(logits, dim=-1))

    def _choice_logprob(self, next_logprobs, req, choice: str) -> float:
        ids = self.tokenizer.encode(choice, add_special_tokens=False)
        if len(ids) == 1:
            return float(next_logprobs[ids[0]])
        return self._sequence_logprob(req, ids)

    def _sequence_logprob(self, req: ChoiceRequest, choice_ids: list[int]) -> float:
        """Sum of token log-probs of a multi-token choice after the prompt (one extra pass)."""
        import torch
        prompt = self._encode([as_messages(req.messages)])["input_ids"]
        ids = torch.cat([prompt, torch.tensor([choice_ids], device=self.device)], dim=1)
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), dim=-1)
        start = prompt.shape[1]
        return float(sum(logp[start - 1 + k, t] for k, t in enumerate(choice_ids)))

"""Tiny randomly initialised Llama models with the SmolLM2 tokenizer and chat template: what the
tests and benchmarks use where any model will do (its outputs are noise, its shapes are real).
"""

from pathlib import Path


def tiny_model(out: Path, width: int = 64, layers: int = 2, seed: int = 0,
               tokenizer_dir: Path | None = None) -> Path:
    """Write a `layers`-layer, `width`-wide Llama with random weights (seeded) to `out`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from cai.backends.weights import ensure_embedded
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or ensure_embedded("smollm2-135m")[0])
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=width, intermediate_size=2 * width,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return Path(out)

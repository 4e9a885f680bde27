"""GPU check: cai's CUDA paths on randomly initialised models of real configs, beside plain scripts.

    python bench/gpu.py --wheels .whl --tokenizer .gpu/tokenizer --out $OUT/gpu.json   # CUDA
    python bench/gpu.py --device cpu --configs tiny --batch 8 --new-tokens 16           # smoke run

Made for a CUDA machine that has torch and transformers but none of cai's other dependencies
and no network (the device machines this project is lent):

1. `--wheels DIR`: the wheels of what is missing (trl, datasets, peft, ...) are installed into a
   folder of their own (`--site`) without an index, and the script starts again with it on its
   path. Nothing is installed when every dependency imports already;
2. each config in `--configs` (`bench/data/configs/<name>.json`: SmolLM2-135M and SmolLM2-1.7B as
   published; `tiny` for a smoke run) becomes a model with random weights (seeded) and the SmolLM2
   tokenizer of `--tokenizer` (default: the embedded model's, where it is cached);
3. generation, greedy, bf16 where the device has it, `--batch` prompts at a time: cai's
   `transformers:` backend through its client (what the generate stage calls: left padding,
   per-request seeds, the store logging each call) vs a plain `model.generate` loop on the same
   prompts. Both decode greedily from the same weights, so they make the same tokens: the plain
   loop's count of new tokens (up to the end-of-text token) is the numerator of both rates, and
   the share of replies that came out the same text is printed beside it;
4. one reward-model epoch and one DPO epoch on CUDA: cai's train-rm / train-policy stages vs a
   plain TRL script with the same settings (`bench/train.py`'s, on a dataset cai's data stages
   make with the random model as policy and judge).

Prints a table of tokens/s and ratios (cai ÷ plain; above 1 cai is faster) and writes `--out`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CONFIGS = ROOT / "bench" / "data" / "configs"
NEEDED = ("trl", "datasets", "peft", "accelerate", "pydantic", "yaml", "click", "sklearn",
          "openai", "jsonschema")


def install(wheels: Path, site: Path):
    """Install the given wheels once (no index, no resolver) and start again with them."""
    missing = [m for m in NEEDED if find_spec(m) is None]
    if not missing or os.environ.get("CAI_GPU_BENCH_SITE"):
        if missing:
            sys.exit(f"bench/gpu.py: still missing after installing {wheels}: {', '.join(missing)}")
        return
    files = sorted(str(w) for w in Path(wheels).glob("*.whl"))
    if not files:
        sys.exit(f"bench/gpu.py: missing {', '.join(missing)} and no wheels in {wheels}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    "--no-compile", "--upgrade", "--target", str(site), *files], check=True)
    checkout_as_cai(site)
    env = {**os.environ, "CAI_GPU_BENCH_SITE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def random_model(name: str, tokenizer_dir: Path, out: Path, seed: int = 0) -> Path:
    """A model of config `name` with random weights, saved with the SmolLM2 tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    if name == "tiny":
        from cai.backends.tiny import tiny_model
        return tiny_model(out, width=128, layers=2, seed=seed, tokenizer_dir=tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = AutoConfig.for_model(**json.loads((CONFIGS / f"{name}.json").read_text()))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def cai_generation(model: Path, device: str, prompts: list[str], batch: int, new_tokens: int):
    from cai.backends import SamplingParams
    from cai.config.run import load_config
    from cai.stages.context import RunContext
    with tempfile.TemporaryDirectory(prefix="cai-gpu-gen-") as run_dir:
        cfg = load_config(None, [f"run_dir={run_dir}", f"models.policy=transformers:{model}",
                                 f"models.device={device}", f"models.batch_size={batch}",
                                 "models.shared_cache=off"])
        ctx = RunContext(cfg)
        client = ctx.client(cfg.models.policy)
        conversations = [[{"role": "user", "content": p}] for p in prompts]
        params = SamplingParams(new_tokens, 0.0, 1.0)
        client.generate(conversations[:batch], params, seed=1, desc="warm-up")
        start = time.perf_counter()
        texts = [r.text for r in client.generate(conversations, params, seed=0, desc="cai")]
        seconds = time.perf_counter() - start
        ctx.close()
    return texts, seconds


def plain_generation(model: Path, device: str, prompts: list[str], batch: int, new_tokens: int):
    """What a user writes from the transformers docs: left padding, generate, decode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai.backends.device import resolve_dtype
    tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
    dtype = getattr(torch, resolve_dtype(device, "auto"))
    net = AutoModelForCausalLM.from_pretrained(model, dtype=dtype).to(device).eval()

    def run(chunk):
        text = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                              add_generation_prompt=True) for p in chunk]
        enc = tokenizer(text, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.no_grad():
            out = net.generate(**enc, max_new_tokens=new_tokens, do_sample=False,
                               pad_token_id=tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return tokenizer.batch_decode(new, skip_special_tokens=True), int(new_tokens_of(new))

    def new_tokens_of(new):  # up to and including each row's first end-of-text token
        done = (new == tokenizer.eos_token_id).int().cumsum(dim=1)
        return ((done == 0) | ((done == 1) & (new == tokenizer.eos_token_id))).sum()

    run(prompts[:batch])  # warm-up
    start = time.perf_counter()
    chunks = [run(prompts[i:i + batch]) for i in range(0, len(prompts), batch)]
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return [t.strip() for texts, _ in chunks for t in texts], sum(n for _, n in chunks), seconds


def generation_row(model: Path, device: str, args) -> dict:
    from cai.inputs.sources import load_prompts
    prompts = [p["prompt"] for p in load_prompts("builtin:redteam")][:args.batch * args.batches]
    cai_texts, cai_s = cai_generation(model, device, prompts, args.batch, args.new_tokens)
    plain_texts, n, plain_s = plain_generation(model, device, prompts, args.batch, args.new_tokens)
    same = sum(a == b for a, b in zip(cai_texts, plain_texts)) / len(prompts)
    return {"prompts": len(prompts), "tokens": n, "same_text": round(same, 3),
            "cai_tokens_s": round(n / cai_s), "plain_tokens_s": round(n / plain_s),
            "ratio": round(plain_s / cai_s, 3)}


def training_rows(model: Path, device: str, args) -> dict:
    """One epoch each of train-rm and train-policy (DPO), cai's stage vs plain TRL."""
    import train as bench_train

    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    rows = {}
    with tempfile.TemporaryDirectory(prefix="cai-gpu-train-") as tmp:
        run_dir = Path(tmp) / "run"
        cfg = bench_train.config(run_dir, model, args.pairs, device)
        run_stages(cfg, DATA_STAGES, echo=lambda s: None)
        for stage, artifact, section in (("train-rm", "rm", cfg.train_rm),
                                         ("train-policy", "policy", cfg.train_policy)):
            n = bench_train.tokens(run_dir, model, section)[0]
            _, cai_loop = bench_train.cai_stage(cfg, stage, artifact)
            _, trl_loop = bench_train.trl_script(artifact, run_dir, model, cfg, device, True)
            rows[stage] = {"tokens": n, "cai_tokens_s": round(n / cai_loop),
                           "trl_tokens_s": round(n / trl_loop), "ratio": round(trl_loop / cai_loop, 3)}
    return rows


def checkout_as_cai(site: Path):
    """`import cai` from this checkout, uninstalled: `site/cai/` holds a link to every entry of
    pipeline/ and `constitution` to constitution/ (the package-dir mapping of pyproject.toml,
    by hand; modules resolve their own paths through the links)."""
    if find_spec("cai") is not None and "CAI_GPU_BENCH_SITE" not in os.environ:
        return
    pkg = site / "cai"
    pkg.mkdir(parents=True, exist_ok=True)
    for entry in [*(ROOT / "pipeline").iterdir(), ROOT / "constitution"]:
        link = pkg / entry.name
        if not link.exists() and entry.name != "__pycache__":
            link.symlink_to(entry)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="folder of wheels for what is missing")
    ap.add_argument("--site", type=Path, default=Path(tempfile.gettempdir()) / "cai-gpu-site")
    ap.add_argument("--tokenizer", type=Path, help="a folder with the SmolLM2 tokenizer")
    ap.add_argument("--configs", default="smollm2-135m,smollm2-1.7b", help="comma-separated")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=64, help="generation batch size")
    ap.add_argument("--batches", type=int, default=4, help="generation batches measured")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=64, help="human pairs in the training set")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    if args.wheels:
        install(args.wheels, args.site)
    from cai.backends.weights import ensure_embedded
    from cai.log import quiet_libraries
    quiet_libraries()
    tokenizer = args.tokenizer or ensure_embedded("smollm2-135m")[0]
    results = {"device": device_name(args.device), "configs": {}}
    with tempfile.TemporaryDirectory(prefix="cai-gpu-") as tmp:
        for name in args.configs.split(","):
            model = random_model(name, tokenizer, Path(tmp) / name)
            results["configs"][name] = {"generate": generation_row(model, args.device, args),
                                        **training_rows(model, args.device, args)}
            print(json.dumps({name: results["configs"][name]}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    print(table(results))


def device_name(device: str) -> str:
    import torch
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return device


def table(results: dict) -> str:
    lines = [f"device: {results['device']}", "",
             "| config | what | cai tokens/s | plain tokens/s | cai ÷ plain |", "|---|---|---|---|---|"]
    for name, rows in results["configs"].items():
        for what, r in rows.items():
            plain = r.get("plain_tokens_s", r.get("trl_tokens_s"))
            lines.append(f"| {name} | {what} | {r['cai_tokens_s']} | {plain} | {r['ratio']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

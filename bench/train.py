"""Training tokens per second: cai's train-rm and train-policy (DPO) stages vs a plain TRL script.

    python bench/train.py [--pairs 64] [--width 128]   # ~2 minutes on 2 CPU cores

One tiny random Llama (SmolLM2 tokenizer and chat template) and one preference dataset, made
by cai's own data stages with that model as policy and judge (AI pairs + human pairs). Then,
side by side in this process, each measured twice in alternation (best kept):

- cai: `run_stages(["train-rm"])` / `run_stages(["train-policy"])` with the defaults, except
  LoRA off for DPO (the plain script trains all weights) and train-sft off (DPO from the base);
- TRL: a plain script, `RewardTrainer` / `DPOTrainer` with TRL's default settings, given only
  what must match for the same work: batch size, max length, one epoch, CPU.

Tokens = the tokenized prompt+chosen and prompt+rejected of every training pair (truncated at
max_length), the same for both. Two rates per side: the whole stage or script (loading,
training, cai's held-out scoring, saving) and the training loop alone (the trainer's
`train_runtime`). With `--device cuda` the same runs on a GPU.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def config(run_dir, model, pairs, device, **keys):
    from pipeline.config import load_config
    spec = f"transformers:{model}"
    sets = {"run_dir": run_dir, "constitution": ROOT / "principles.yaml", "models.policy": spec,
            "models.judge": spec, "models.device": device, "prompts.limit": 8,
            "generate.max_new_tokens": 24, "critique.rounds": 1, "calibration.limit": 16,
            "calibration.heldout": 8, "blend.min_human": pairs, "evaluate.limit": 2,
            "train_sft.enabled": False, "train_policy.lora": False, **keys}
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def tokens(run_dir, model, max_length) -> int:
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model)
    rows = load_from_disk(str(Path(run_dir) / "dataset" / "prefs"))["train"]
    return sum(min(max_length, len(tok.apply_chat_template(r["prompt"] + r[side], tokenize=True,
                                                           return_dict=False)))
               for r in rows for side in ("chosen", "rejected"))


def cai_stage(cfg, stage: str, artifact: str) -> tuple[float, float]:
    from pipeline.runner import run_stages
    from pipeline.store import Store
    with Store(cfg.run_dir, lock=False) as store:  # forget the last model: train it again
        for a in store.list_artifacts():
            if a["name"] == artifact:
                store.delete_artifact(a["name"], a["input_hash"])
    start = time.perf_counter()
    metrics = run_stages(cfg, [stage], echo=lambda s: None)
    wall = time.perf_counter() - start
    path = metrics["reward_model" if artifact == "rm" else "policy"]["path"]
    meta = json.loads((Path(path) / "cai-model.json").read_text())
    shutil.rmtree(path)
    return wall, meta["train_seconds"]


def trl_script(method: str, run_dir, model, batch_size, max_length, device) -> tuple[float, float]:
    """What a user writes from TRL's docs: load, train, save."""
    start = time.perf_counter()
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer
    train = load_from_disk(str(Path(run_dir) / "dataset" / "prefs"))["train"] \
        .select_columns(["prompt", "chosen", "rejected"])
    tokenizer = AutoTokenizer.from_pretrained(model)
    out = Path(run_dir) / f"trl-{method}"
    common = dict(output_dir=str(out), per_device_train_batch_size=batch_size, num_train_epochs=1,
                  max_length=max_length, report_to="none", use_cpu=device == "cpu")
    if method == "rm":
        net = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
        trainer = RewardTrainer(model=net, args=RewardConfig(**common), train_dataset=train,
                                processing_class=tokenizer)
    else:
        net = AutoModelForCausalLM.from_pretrained(model)
        trainer = DPOTrainer(model=net, args=DPOConfig(**common), train_dataset=train,
                             processing_class=tokenizer)
    trainer.train()
    trainer.save_model(str(out / "final"))
    wall = time.perf_counter() - start
    loop = trainer.state.log_history[-1]["train_runtime"]
    shutil.rmtree(out)
    return wall, loop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=64, help="human pairs in the training set")
    parser.add_argument("--width", type=int, default=128, help="hidden size of the tiny model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    from pipeline.runner import quiet_libraries, run_stages
    from pipeline.tiny import tiny_model
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="cai-bench-train-") as tmp:
        model = tiny_model(Path(tmp) / "tiny", width=args.width)
        run_dir = Path(tmp) / "run"
        cfg = config(run_dir, model, args.pairs, args.device)
        run_stages(cfg, ["generate", "critique", "label", "pairs", "blend", "export"],
                   echo=lambda s: None)
        rows = []
        for stage, artifact, section in (("train-rm", "rm", cfg.train_rm),
                                         ("train-policy", "policy", cfg.train_policy)):
            n = tokens(run_dir, model, section.max_length)
            best = {"cai": (1e9, 1e9), "trl": (1e9, 1e9)}
            for _ in range(args.repeat):
                t = trl_script(artifact, run_dir, model, section.batch_size, section.max_length,
                               args.device)
                best["trl"] = min(best["trl"], t)
                c = cai_stage(cfg, stage, artifact)
                best["cai"] = min(best["cai"], c)
            rows.append((stage, n, best))
    print(f"\n{'stage':13} {'tokens':>7} {'cai tok/s':>10} {'TRL tok/s':>10} {'ratio':>6}"
          f"   {'loop: cai':>10} {'TRL':>8} {'ratio':>6}")
    for stage, n, best in rows:
        (cw, cl), (tw, tl) = best["cai"], best["trl"]
        print(f"{stage:13} {n:7d} {n / cw:10.0f} {n / tw:10.0f} {tw / cw:5.2f}x"
              f"   {n / cl:10.0f} {n / tl:8.0f} {tl / cl:5.2f}x")
    print("\nratio = cai tokens/s ÷ TRL tokens/s (above 1: cai is faster). Whole stage/script, "
          "then the training loop alone.")


if __name__ == "__main__":
    main()

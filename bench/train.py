"""Training tokens per second: cai's train-rm and train-policy (DPO) stages vs plain TRL scripts.

    python bench/train.py [--pairs 64] [--width 128]   # ~4 minutes on 2 CPU cores

One tiny random Llama (SmolLM2 tokenizer and chat template) and one preference dataset, made
by cai's own data stages with that model as policy and judge (AI pairs + human pairs). Then,
side by side in this process, in alternation, best of `--repeat` each:

- cai: `run_stages(["train-rm"])` / `run_stages(["train-policy"])` with the defaults, except
  LoRA off for DPO, train-sft off (DPO from the base) and the reward model on every layer
  (`train_rm.depth` 1), so a plain script does the same work;
- TRL, same settings: a plain script given every setting cai's stage uses, taken from the
  stage's own setup function (`rm_setup`, `dpo_setup`: epochs, batch size, max length,
  learning rate, seed, bf16 and gradient checkpointing as cai sets them for the device, the
  length-grouped row order, the reward model's `margin` column, DPO's β and label
  smoothing); only checkpoints are off. cai vs this script is cai's own overhead, like for like;
- TRL, defaults: what a user writes from TRL's docs (only batch size, max length, one epoch,
  the device; no margin column). This script vs the same-settings one is the gain of cai's
  settings alone (TRL's defaults assume a GPU: bf16 and gradient checkpointing on).

Tokens = the tokenized prompt+chosen and prompt+rejected of every training pair (truncated at
max_length) times the share of a pass trained (DPO's default: a third) for cai and the
same-settings script; the TRL-defaults script trains one whole pass and is credited with it.
Two rates per script: the training loop alone (the trainer's `train_runtime`) and the whole
stage or script (loading, training, saving; cai's stage also scores every training and held-out
pair). Each row's figures come from one bench run, each
side's wall and loop time from its same best repeat. With `--device cuda` the same runs on a GPU.
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
    from cai.config.run import load_config
    spec = f"transformers:{model}"
    sets = {"run_dir": run_dir, "constitution": ROOT / "principles.yaml", "models.policy": spec,
            "models.judge": spec, "models.device": device, "prompts.limit": 8,
            "generate.max_new_tokens": 24, "critique.rounds": 1,
            "calibration.heldout": 8, "calibration.limit": pairs + 8, "evaluate.limit": 2,
            "train_sft.enabled": False, "train_policy.lora": False, "models.shared_cache": "off",
            # every layer, as a plain script trains them: like for like
            "train_rm.depth": 1,
            **keys}
    return load_config(None, [f"{k}={v}" for k, v in sets.items()])


def tokens(run_dir, model, section) -> tuple[int, int]:
    """(tokens the stage trains on: one pass over the training pairs times the share of a pass
    it trains, `epochs` below 1 for DPO's default third; tokens of one whole pass, what the
    TRL-defaults script trains on)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(model)
    rows = load_from_disk(str(Path(run_dir) / "dataset" / "prefs"))["train"]
    n = sum(min(section.max_length, len(tok.apply_chat_template(r["prompt"] + r[side],
                                                                tokenize=True, return_dict=False)))
            for r in rows for side in ("chosen", "rejected"))
    return round(n * min(1.0, section.epochs)), n


def cai_stage(cfg, stage: str, artifact: str) -> tuple[float, float]:
    from cai.runs.runner import run_stages
    from cai.store.core import Store
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


def same_settings(method: str, cfg, out: Path) -> tuple:
    """(TRL config, rows in their order) exactly as cai's stage trains with them: taken from the
    stage's own setup (`rm_setup`, `dpo_setup`: epochs, bf16, length-grouped order, margin,
    label smoothing, ...), so a default can never change on one side only. No checkpoints."""
    from cai.stages.context import RunContext
    from cai.stages.train_rm import rm_setup
    from cai.training.policy import dpo_setup
    ctx = RunContext(cfg)
    try:
        from cai.training.base import base_model, load_tokenizer
        tokenizer = load_tokenizer(base_model(ctx, rm=method == "rm", tuned=method != "rm")[0])
        args, train = (rm_setup if method == "rm" else dpo_setup)(ctx, out, tokenizer)
    finally:
        ctx.close()
    args.output_dir, args.save_strategy = str(out), "no"
    return args, train


def trl_script(method: str, run_dir, model, cfg, device, same: bool) -> tuple[float, float]:
    """A plain TRL script: load, train, save. `same`: given every setting cai's stage uses
    (`same_settings`); otherwise TRL's defaults, as a user writes it from TRL's docs."""
    start = time.perf_counter()
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer
    section = cfg.train_rm if method == "rm" else cfg.train_policy
    tokenizer = AutoTokenizer.from_pretrained(model)
    out = Path(run_dir) / f"trl-{method}"
    if same:
        args, train = same_settings(method, cfg, out)
    else:
        train = load_from_disk(str(Path(run_dir) / "dataset" / "prefs"))["train"].select_columns(
            ["prompt", "chosen", "rejected"])
        common = dict(output_dir=str(out), per_device_train_batch_size=section.batch_size,
                      num_train_epochs=1, max_length=section.max_length, report_to="none",
                      use_cpu=device == "cpu")
        args = (RewardConfig if method == "rm" else DPOConfig)(**common)
    if method == "rm":
        net = AutoModelForSequenceClassification.from_pretrained(model, num_labels=1)
        net.config.pad_token_id = tokenizer.pad_token_id
        trainer = RewardTrainer(model=net, args=args, train_dataset=train,
                                processing_class=tokenizer)
    else:
        net = AutoModelForCausalLM.from_pretrained(model)
        trainer = DPOTrainer(model=net, args=args, train_dataset=train,
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
    parser.add_argument("--stages", default="train-rm,train-policy", help="comma-separated")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))
    from cai.backends.tiny import tiny_model
    from cai.log import quiet_libraries
    from cai.runs.runner import run_stages
    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="cai-bench-train-") as tmp:
        model = tiny_model(Path(tmp) / "tiny", width=args.width)
        run_dir = Path(tmp) / "run"
        cfg = config(run_dir, model, args.pairs, args.device)
        from cai.stages import DATA_STAGES
        run_stages(cfg, DATA_STAGES, echo=lambda s: None)
        rows = []
        for stage, artifact, section in (("train-rm", "rm", cfg.train_rm),
                                         ("train-policy", "policy", cfg.train_policy)):
            if stage not in args.stages.split(","):
                continue
            n = tokens(run_dir, model, section)
            best = {k: (1e9, 1e9) for k in ("cai", "same", "defaults")}
            for _ in range(args.repeat):  # alternating, so drift hits all three alike
                for name, same in (("defaults", False), ("same", True)):
                    t = trl_script(artifact, run_dir, model, cfg, args.device, same)
                    best[name] = min(best[name], t)
                best["cai"] = min(best["cai"], cai_stage(cfg, stage, artifact))
            rows.append((stage, n, best))
    print(f"\n{'':21}{'training loop, tokens/s':^40}   {'whole stage/script, tokens/s':^32}")
    print(f"{'stage':13} {'tokens':>6} {'cai':>7} {'TRL same':>9} {'ratio':>6} {'TRL dflt':>9}"
          f" {'gain':>6}   {'cai':>7} {'TRL same':>9} {'ratio':>6}")
    for stage, (n, whole), best in rows:
        (cw, cl), (sw, sl), (_, dl) = best["cai"], best["same"], best["defaults"]
        # the defaults script trains one whole pass: its rate counts a whole pass's tokens
        print(f"{stage:13} {n:6d} {n / cl:7.0f} {n / sl:9.0f} {sl / cl:5.2f}x {whole / dl:9.0f}"
              f" {(n / sl) / (whole / dl):5.2f}x   {n / cw:7.0f} {n / sw:9.0f} {sw / cw:5.2f}x")
    print("\nratio = cai ÷ TRL with the same settings (above 1: cai is faster): cai's own "
          "overhead, like for like.\ngain = TRL with cai's settings ÷ TRL's defaults: what "
          "cai's device-aware settings alone buy.")


if __name__ == "__main__":
    main()

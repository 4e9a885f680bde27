"""What the training stages share: where a model starts (the base, the SFT model or the
user's own), its identity, the seed and the tokenizer."""

from pathlib import Path

from cai.backends import parse_spec
from cai.backends.weights import identity, resolve
from cai.errors import CaiError

TEXT_COLUMNS = ["prompt", "chosen", "rejected"]


def policy_init(cfg) -> str:
    """Where train-policy starts: 'sft' or 'base' ('auto': base for ORPO, which does SFT in its
    own loss; the SL-CAI model for every other method)."""
    init = cfg.train_policy.init
    if init == "auto":
        init = "base" if cfg.train_policy.method == "orpo" else "sft"
    return init if cfg.train_sft.enabled else "base"


def sft_rows(ctx) -> int | None:
    """SL-CAI rows the export holds (None before export): 0 when no revision earned trust."""
    m = ctx.store.get_manifest("export")
    return None if m is None else m["meta"].get("sft")


def policy_start(ctx) -> str:
    """`policy_init`, knowing the data: with no trusted SL-CAI row there is no SL-CAI model, so
    'auto' starts from the base (an explicit 'sft' is an error that says why)."""
    init = policy_init(ctx.config)
    if init == "sft" and sft_rows(ctx) == 0:
        if ctx.config.train_policy.init == "sft":
            raise CaiError("train_policy.init is 'sft' but no SL-CAI row earned trust (the "
                           "judge's principles scored trust 0 on the human pairs); set "
                           "train_policy.init=auto or base, or calibration.use_trust=false")
        return "base"
    return init


def base_model(ctx, tuned: bool = False, rm: bool = False) -> tuple[Path, dict]:
    """The weights a training stage starts from: the policy's, or with `tuned` (train-policy)
    the SL-CAI model of train-sft when `policy_init` says so, or with `rm` `train_rm.base`."""
    if tuned and policy_start(ctx) == "sft":
        sft = ctx.store.get_manifest("train-sft")
        if sft is None:
            raise CaiError(f"{ctx.run_dir}: train_policy.init is 'sft' but train-sft has not run; "
                           "run `cai train-sft` first (or set train_policy.init=base)")
        return Path(sft["meta"]["path"]), {"model": Path(sft["meta"]["path"]).name,
                                           "weights": sft["ids"][0]}
    return resolve(_local_policy(ctx, rm))


def base_identity(ctx, tuned: bool = False, rm: bool = False) -> dict:
    """What `base_model` starts from, named without fetching or loading any weights."""
    if tuned and policy_start(ctx) == "sft":
        return base_model(ctx, tuned)[1]
    return identity(_local_policy(ctx, rm), fetch=not ctx.dry_run)


def _local_policy(ctx, rm: bool = False) -> str:
    key = "train_rm.base" if rm and ctx.config.train_rm.base else "models.policy"
    spec = ctx.config.train_rm.base if key == "train_rm.base" else ctx.config.models.policy
    kind, model = parse_spec(spec)
    if kind != "transformers":
        raise CaiError(f"training starts from local weights: {key} must be a "
                       f"'transformers:' spec, got '{spec}'")
    return model


def seed_everything(seed: int):
    """Before any model is built: a reward model's score head is initialised randomly when
    loaded, and unseeded it made two runs of the same inputs train different models."""
    from transformers import set_seed
    set_seed(seed)





def load_tokenizer(model_dir):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


























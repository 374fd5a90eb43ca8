"""Students: the offline tiny default, or any HF causal LM by id or local path.

The tiny student is what makes fine-tuning runnable on a CPU machine with no internet: a
byte-level BPE tokenizer trained on the subset's own rendered texts, and a GPT-2-style model
built from a config (random init). Both are saved with `save_pretrained`, so every later
step (further training, evaluation, a ladder rung) loads them through the same
`AutoTokenizer` / `AutoModelForCausalLM` code path as a real hub model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tasks.render import SYSTEM_PROMPT, render_completion, render_prompt

TINY = "tiny"
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
            {"role": "user", "content": render_prompt(question, context)}]


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


def load_student(ref: str, *, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) of an HF id or local path, via the Auto classes.

    A tokenizer without a chat template gets ours (its special tokens added, embeddings
    resized), so training and evaluation still render turns the same way."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref)
    model = AutoModelForCausalLM.from_pretrained(ref, dtype=dtype) if dtype is not None \
        else AutoModelForCausalLM.from_pretrained(ref)
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

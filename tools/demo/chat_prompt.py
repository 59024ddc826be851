"""frugal's knowledge prompt for a model with a ChatML chat template (the
thinking model, models/frugal-think.md), token for token, and the vocabulary
of that model: the llama-spm vocabulary plus four added tokens.

frugal cuts one rendered user turn of the chat template around the user's
text (src/cag/prompt_template.cpp, cut_chat_turn) and tokenizes each segment
on its own with encode_parts: template text has its special tokens matched,
values (system text, id, title, text, question) are plain, neighbouring
plain runs are joined, and a plain run right after a special token (or at
the start of a segment) gets SentencePiece's space prefix:

- header:   BOS, `<|im_start|>user\\n{system}\\n\\n`
- document: `Document [{id}] {title}\\n{text}\\n\\n`
- question: `Question: {question}<|im_end|>\\n<|im_start|>assistant\\n`,
  with thinking off followed by `<think>\\n\\n</think>\\n\\n`.

The assistant's text is tokenized in one call, as frugal's
encode(text, add_special=false, parse_special=true), then `<|im_end|>`:
thinking on `<think>\\n{chain}\\n</think>\\n\\n{answer}`, thinking off `{answer}`.
`check_chat_tokenizer.py` checks all of it against `frugal tokenize` and `frugal ask`.
"""
import gguf
from prompt import SYSTEM

IM_START, IM_END, THINK, END_THINK = 32000, 32001, 32002, 32003
ADDED_TOKENS = [("<|im_start|>", 3), ("<|im_end|>", 3), ("<think>", 4), ("</think>", 4)]  # type 3 CONTROL, 4 USER_DEFINED

CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + "
    "'\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- if enable_thinking "
    "is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}")

NO_THINK = "<think>\n\n</think>\n\n"


def chat_vocab_metadata(base_path):
    """The tokenizer metadata (dict key -> gguf.Value) of the thinking model:
    the base vocabulary's `tokenizer.*` keys with the four added tokens
    appended (score 0), EOS `<|im_end|>` and the chat template."""
    base = gguf.read_metadata(base_path)
    meta = {k: v for k, v in base.items() if k.startswith("tokenizer.")}
    tokens = list(meta["tokenizer.ggml.tokens"].value)
    assert len(tokens) == 32000, len(tokens)
    meta["tokenizer.ggml.tokens"] = gguf.Value(gguf.ARRAY, tokens + [t for t, _ in ADDED_TOKENS], gguf.STRING)
    meta["tokenizer.ggml.scores"] = gguf.Value(gguf.ARRAY, list(meta["tokenizer.ggml.scores"].value) + [0.0] * 4,
                                               gguf.FLOAT32)
    meta["tokenizer.ggml.token_type"] = gguf.Value(
        gguf.ARRAY, list(meta["tokenizer.ggml.token_type"].value) + [ty for _, ty in ADDED_TOKENS], gguf.INT32)
    meta["tokenizer.ggml.eos_token_id"] = gguf.Value(gguf.UINT32, IM_END)
    meta["tokenizer.chat_template"] = gguf.Value(gguf.STRING, CHAT_TEMPLATE)
    return meta


def write_vocab(base_path, path):
    """A vocabulary-only GGUF of the thinking model (for `frugal tokenize`)."""
    meta = {"general.architecture": gguf.Value(gguf.STRING, "llama"),
            "general.name": gguf.Value(gguf.STRING, "frugal-think-vocab"),
            "llama.vocab_size": gguf.Value(gguf.UINT32, 32004)}
    meta.update(chat_vocab_metadata(base_path))
    gguf.write_model(path, meta, [])


def header_tokens(tok, system=SYSTEM):
    return [tok.bos] + tok.encode_parts([("<|im_start|>user\n", True), (system, False), ("\n\n", True)])


def document_tokens(tok, doc):
    return tok.encode_parts([("Document [", True), (doc["id"], False), ("] ", True), (doc["title"], False),
                             ("\n", True), (doc["text"], False), ("\n\n", True)])


def question_tokens(tok, question, thinking=True):
    end = "<|im_end|>\n<|im_start|>assistant\n" + ("" if thinking else NO_THINK)
    return tok.encode_parts([("Question: ", True), (question, False), (end, True)])


def prefix_tokens(tok, documents):
    ids = header_tokens(tok)
    for doc in documents:
        ids += document_tokens(tok, doc)
    return ids


def assistant_text(answer, chain=None):
    """What the model generates after the prompt (without `<|im_end|>`)."""
    return answer if chain is None else f"<think>\n{chain}\n</think>\n\n{answer}"


def assistant_tokens(tok, answer, chain=None):
    """The assistant's tokens, `<|im_end|>` last. `chain` None: thinking off."""
    return tok.encode_special(assistant_text(answer, chain)) + [IM_END]

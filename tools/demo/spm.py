"""SentencePiece-style tokenization of the llama-spm vocabulary, as
llama.cpp (and frugal's SpmTokenizer) do it: symbols are UTF-8 characters,
the adjacent pair whose merged text is the highest-scoring token merges
first (leftmost on ties), and what is left unknown falls back to byte tokens.

Text is tokenized chunk by chunk: a chunk is a run of characters other than
space and newline, with the "▁" of a preceding space (or of the text start).
No token of this vocabulary spans a space-to-word or newline boundary, so the
result equals tokenizing the whole text at once, and chunks repeat enough
that memoizing them makes the training-data generator fast.
`tools/demo/check_tokenizer.py` checks this against `frugal tokenize`.
"""
import heapq
import re

from gguf import read_metadata

SPACE = "\u2581"


# Token types (GGUF / llama.cpp): the ones `encode_special` matches in text.
UNKNOWN, CONTROL, USER_DEFINED = 2, 3, 4


class SpmTokenizer:
    def __init__(self, vocab_path):
        """`vocab_path`: a GGUF file, or its metadata (dict key -> gguf.Value)."""
        meta = vocab_path if isinstance(vocab_path, dict) else read_metadata(vocab_path)
        self.tokens = meta["tokenizer.ggml.tokens"].value
        self.scores = meta["tokenizer.ggml.scores"].value
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.bos = meta["tokenizer.ggml.bos_token_id"].value
        self.eos = meta["tokenizer.ggml.eos_token_id"].value
        self.byte_ids = [self.ids[f"<0x{b:02X}>"] for b in range(256)]
        self.memo = {}
        types = meta["tokenizer.ggml.token_type"].value
        # Special tokens as frugal's partition() matches them: longest text first (stable).
        self.special = sorted((i for i, t in enumerate(types) if t in (UNKNOWN, CONTROL, USER_DEFINED)),
                              key=lambda i: -len(self.tokens[i].encode("utf-8")))

    def _bpe(self, text):
        symbols = list(text)
        prev = list(range(-1, len(symbols) - 1))
        nxt = list(range(1, len(symbols) + 1))
        nxt[-1] = -1
        heap, rev_merge = [], {}

        def add(left, right):
            if left < 0 or right < 0:
                return
            merged = symbols[left] + symbols[right]
            tid = self.ids.get(merged)
            if tid is None:
                return
            heapq.heappush(heap, (-self.scores[tid], left, merged))
            rev_merge[merged] = (symbols[left], symbols[right])

        for i in range(len(symbols) - 1):
            add(i, i + 1)
        while heap:
            _, left, merged = heapq.heappop(heap)
            right = nxt[left]
            if right < 0 or symbols[left] + symbols[right] != merged or not symbols[left] or not symbols[right]:
                continue
            symbols[left] = merged
            symbols[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            add(prev[left], left)
            add(left, nxt[left])
        out = []

        def resegment(s):
            tid = self.ids.get(s)
            if tid is not None:
                out.append(tid)
                return
            if s in rev_merge:
                a, b = rev_merge[s]
                resegment(a)
                resegment(b)
                return
            out.extend(self.byte_ids[b] for b in s.encode("utf-8"))

        i = 0
        while i >= 0 and i < len(symbols):
            if symbols[i]:
                resegment(symbols[i])
            i = nxt[i]
        return out

    def _chunk(self, chunk):
        ids = self.memo.get(chunk)
        if ids is None:
            ids = self._bpe(chunk)
            self.memo[chunk] = ids
        return ids

    def encode(self, text, space_prefix=True):
        """Tokens of `text` as one segment: a leading "▁" is added (llama's
        add_space_prefix) unless `space_prefix` is False. No BOS."""
        s = text.replace(" ", SPACE)
        if space_prefix:
            s = SPACE + s
        out = []
        for piece in re.findall(SPACE + "*[^" + SPACE + "\n]+|" + SPACE + "+|\n", s):
            out.extend(self._chunk(piece))
        return out

    def partition(self, text):
        """Splits `text` at special tokens as frugal's VocabTokenizer::partition
        (parse_special on): a list of token ids (int) and plain strings."""
        fragments = [text] if text else []
        for tid in self.special:
            special = self.tokens[tid]
            if not any(isinstance(f, str) and special in f for f in fragments):
                continue
            out = []
            for f in fragments:
                if not isinstance(f, str) or special not in f:
                    out.append(f)
                    continue
                parts = f.split(special)
                for j, p in enumerate(parts):
                    if j:
                        out.append(tid)
                    if p:
                        out.append(p)
            fragments = out
        return fragments

    def encode_special(self, text):
        """frugal's encode(text, add_special=false, parse_special=true): special
        tokens in the text become their ids, and each plain fragment after a
        special token (or at the start) gets the space prefix."""
        out, after_special = [], True
        for f in self.partition(text):
            if isinstance(f, int):
                out.append(f)
                after_special = True
            else:
                out += self.encode(f, space_prefix=after_special)
                after_special = False
        return out

    def encode_parts(self, parts):
        """frugal's encode_parts: `parts` is a list of (text, parse_special);
        template text (True) has its special tokens matched, values (False)
        are plain; neighbouring plain runs are joined before tokenizing."""
        runs = []
        for text, parse in parts:
            for f in (self.partition(text) if parse else ([text] if text else [])):
                if isinstance(f, str) and runs and isinstance(runs[-1], str):
                    runs[-1] += f
                else:
                    runs.append(f)
        out, after_special = [], True
        for f in runs:
            if isinstance(f, int):
                out.append(f)
                after_special = True
            else:
                out += self.encode(f, space_prefix=after_special)
                after_special = False
        return out

    def decode(self, ids):
        raw = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t.startswith("<0x") and len(t) == 6:
                raw.append(int(t[3:5], 16))
            elif i in (self.bos, self.eos):
                continue
            else:
                raw += t.replace(SPACE, " ").encode("utf-8")
        return raw.decode("utf-8", errors="replace")

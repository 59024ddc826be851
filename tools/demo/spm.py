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


class SpmTokenizer:
    def __init__(self, vocab_path):
        meta = read_metadata(vocab_path)
        self.tokens = meta["tokenizer.ggml.tokens"].value
        self.scores = meta["tokenizer.ggml.scores"].value
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.bos = meta["tokenizer.ggml.bos_token_id"].value
        self.eos = meta["tokenizer.ggml.eos_token_id"].value
        self.byte_ids = [self.ids[f"<0x{b:02X}>"] for b in range(256)]
        self.memo = {}

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

"""frugal's plain knowledge prompt (docs/knowledge-cache.md), token for token:
each segment (header, each document, the question) is tokenized on its own,
the header after BOS. Must match src/cag/prompt_template.cpp."""

SYSTEM = ('Answer the question using only the documents below. If they do not contain the answer, '
          'answer "unknown".')


def header_tokens(tok):
    return [tok.bos] + tok.encode(f"{SYSTEM}\n\n")


def document_tokens(tok, doc):
    return tok.encode(f"Document [{doc['id']}] {doc['title']}\n{doc['text']}\n\n")


def question_tokens(tok, question):
    return tok.encode(f"Question: {question}\nAnswer:")


def answer_tokens(tok, answer):
    """What the model should generate after "Answer:": the answer with its
    leading space, then end of sequence."""
    return tok.encode(" " + answer, space_prefix=False) + [tok.eos]


def prefix_tokens(tok, documents):
    ids = header_tokens(tok)
    for doc in documents:
        ids += document_tokens(tok, doc)
    return ids

"""Knowledge worlds with thinking chains for frugal's thinking model
(models/frugal-think.md, issue #17).

A world (5-15 documents) is one of tools/demo/world.py's, with one group of
2-7 organisations of one kind in one town (small head counts, 2-40) and
distractors (the same kind in a look-alike town, another kind in the same
town). Questions, each with a thinking chain and an answer:

- single: one fact of one document ("Who directs the Harlow Clinic?");
- two-hop: an entity found first ("In which town is the clinic that Dr. Mira
  Osei directs?"), or through a named person across two documents ("Where was
  the director of the Harlow Clinic born?", "How old is ...?");
- unanswerable: a fact or organisation the documents do not hold ("unknown");
- counting: "How many clinics are there in Marketby?" (digits);
- summing: "How many staff work at the clinics in Marketby in all?".

A chain (run 3 on) is paragraphs separated by blank lines (the transition
points where early exit probes an answer). The first, the core, lists the
facts found, one a line (numbered group members, with a running sum), and
ends "So it is X." / "That makes N."; then 0, 1 or 2 re-checks starting with
"Wait," or "Alternatively," (probabilities 0.3 / 0.45 / 0.25: quoted
sentences, distractors, another order), then "So the answer is X.". Chains
are always correct; in training some are cut (cut_chain) and still answered.
world.py is used as it is (the demo model's data do not change).
"""
import random
import re

from world import KIND_WORD, KINDS, PLACE_SUFFIXES, document_id, make_world, org_document, person_document

PLURAL = {"clinic": "clinics", "school": "schools", "office": "offices", "firm": "businesses"}
KINDS_EVAL = ("single", "two-hop", "unanswerable", "counting", "summing")
TITLES = ("Dr.", "Mr.", "Ms.", "Mrs.", "Prof.")


def sentences(text):
    """The sentences of a document text (titles such as "Dr." do not end one)."""
    out = []
    for piece in re.split(r"(?<=\.)\s+", text):
        if out and out[-1].split()[-1] in TITLES:
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def quote(doc, *needles):
    """The first sentence of `doc` that contains every needle."""
    for s in sentences(doc["text"]):
        if all(n in s for n in needles):
            return s
    raise ValueError(f"{needles} not in {doc['text']!r}")


def town_stem(town):
    for suffix in sorted(PLACE_SUFFIXES, key=len, reverse=True):
        if town.endswith(suffix) and len(town) > len(suffix):
            return town[:-len(suffix)]
    return town


def make_thinking_world(rng, pools, n_docs, max_group=7):
    """Documents, organisations, people and the counting group of one world."""
    n_orgs = max(3, round(n_docs * 0.6))
    orgs, people = make_world(rng, pools, n_orgs + max(1, n_orgs // 4))
    present, absent = orgs[:n_orgs], orgs[n_orgs:]
    used_names = {o["name"] for o in orgs}
    kind = rng.choice(list(KINDS))
    town = rng.choice(present)["town"]
    m = min(rng.randint(2, max_group), n_orgs - 1)
    group = rng.sample(present, m)
    for org in group:
        if org["kind"] != kind:
            for _ in range(30):
                stem = org["stem"] if rng.random() < 0.7 else rng.choice(orgs)["stem"]
                name = f"{stem} {rng.choice(KINDS[kind]['names'])}"
                if name not in used_names:
                    break
            else:
                continue  # keeps its kind (rare); the group is what ends up matching below
            used_names.discard(org["name"])
            used_names.add(name)
            org.update(kind=kind, stem=stem, name=name)
        org["town"] = town
        org["count"] = rng.randint(2, 40)
    stem = town_stem(town)
    others = [s for s in PLACE_SUFFIXES if stem + s != town]
    rest = [o for o in present if o not in group]
    for org in rest:
        if org["town"] == town and org["kind"] == kind:
            org["town"] = stem + rng.choice(others)
    rng.shuffle(rest)
    if rest and rng.random() < 0.6:  # the same kind in a look-alike town
        org = rest.pop()
        if org["kind"] != kind:
            name = f"{org['stem']} {rng.choice(KINDS[kind]['names'])}"
            if name not in used_names:
                used_names.discard(org["name"])
                used_names.add(name)
                org.update(kind=kind, name=name)
        if org["kind"] == kind:
            org["town"] = stem + rng.choice(others)
    if rest and rng.random() < 0.6:  # another kind in the same town
        org = rest.pop()
        if org["kind"] != kind:
            org["town"] = town
    group = [o for o in present if o["kind"] == kind and o["town"] == town]
    heads = [o["head"] for o in present]
    present_people = rng.sample(heads, min(len(heads), max(0, n_docs - n_orgs)))
    docs = [org_document(rng, o) for o in present] + [person_document(rng, people[p]) for p in present_people]
    rng.shuffle(docs)
    for i, doc in enumerate(docs):
        doc["id"] = document_id(rng, doc["title"], i)
    return {"documents": docs, "orgs": present, "absent": absent, "people": people,
            "present_people": present_people, "kind": kind, "town": town}


# ----------------------------------------------------------------------------- chains

def n_rechecks(rng):
    r = rng.random()
    return 0 if r < 0.3 else 1 if r < 0.75 else 2


def finish(rng, core, rechecks, answer):
    """A chain: the core (one paragraph: the facts found, one a line, then the
    line that combines them, ending in the answer; no blank line inside, so
    early exit first probes after it), 0-2 re-checks starting "Wait," or
    "Alternatively,", then "So the answer is X."."""
    pool = rechecks[:]
    rng.shuffle(pool)
    return "\n\n".join(["\n".join(core)] + pool[:n_rechecks(rng)] + [f"So the answer is {answer}."])


def look_alikes(world, org):
    return [o for o in world["orgs"] if o is not org and (o["stem"] == org["stem"] or o["name"].split()[-1] ==
                                                           org["name"].split()[-1] and o["town"] == org["town"])]


FACTS = {  # fact: question templates
    "head": ["Who {verb} the {n}?", "Who is the {role} of the {n}?"],
    "town": ["In which town is the {n}?", "Where is the {n} located?"],
    "founded": ["When was the {n} founded?", "In which year was the {n} founded?"],
    "count": ["How many {people} does the {n} have?"],
    "opens": ["At what time does the {n} open?"],
}
MISSING = {"founded": "when it was founded", "count": "how many {people} it has", "opens": "when it opens",
           "head": "who its {role} is", "town": "where it is"}


def fact_answer(org, fact):
    v = org[fact]
    if v is None:
        return None
    return f"{v} am" if fact == "opens" else str(v)


def fact_line(f, fact, answer):
    """A found fact as one short line."""
    return {"head": "The {role} of the {n} is {a}.", "town": "The {n} is in {a}.",
            "founded": "The {n} was founded in {a}.", "count": "The {n} has {a} {people}.",
            "opens": "The {n} opens at {a}."}[fact].format(a=answer, **f)


def org_fields(rng, org):
    k = KINDS[org["kind"]]
    return {"n": org["name"], "role": k["head"], "verb": rng.choice(k["verbs"]), "people": k["people"],
            "word": KIND_WORD[org["kind"]], "head": org["head"]}


def doc_of(world, title):
    return next(d for d in world["documents"] if d["title"] == title)


def reread(doc, sentences_, answer):
    return f"Wait, let me read document [{doc['id']}] again: " + " ".join(f'"{s}"' for s in sentences_) + \
        f" So it is {answer}."


def single_questions(rng, world):
    out = []
    for org in world["orgs"]:
        f = org_fields(rng, org)
        doc = doc_of(world, org["name"])
        for fact, templates in FACTS.items():
            answer = fact_answer(org, fact)
            question = rng.choice(templates).format(**f)
            if answer is None:  # an unanswerable fact of a present organisation
                missing = MISSING[fact].format(**f)
                core = [f"Document [{doc['id']}] is about the {f['n']}.", f"It does not say {missing}.",
                        "So it is unknown."]
                rechecks = [f"Wait, maybe another document says {missing}. No other document is about the {f['n']}.",
                            f"Alternatively, another sentence of document [{doc['id']}] could say it. None does."]
                out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                            "chain": finish(rng, core, rechecks, "unknown")})
                continue
            s = quote(doc, org["head"] if fact == "head" else answer)
            rechecks = [reread(doc, [s], answer)]
            alike = look_alikes(world, org)
            if alike:
                a = rng.choice(alike)
                rechecks.append(f"Alternatively, the question could mean the {a['name']}. No, it names the "
                                f"{f['n']}, another organisation.")
            else:
                rechecks.append(f"Wait, another document might also be about the {f['n']}. Only document "
                                f"[{doc['id']}] is.")
            out.append({"kind": "single", "question": question, "answer": answer, "sources": [org["name"]],
                        "chain": finish(rng, [fact_line(f, fact, answer), f"So it is {answer}."], rechecks, answer)})
    for name in world["present_people"]:
        p = world["people"][name]
        doc = doc_of(world, name)
        for question, line, answer in ((f"Where was {name} born?", f"{name} was born in {p['born']}.", p["born"]),
                                       (f"How old is {name}?", f"{name} is {p['age']} years old.", str(p["age"]))):
            rechecks = [reread(doc, [quote(doc, answer)], answer),
                        f"Alternatively, another document could be about {name} too. Only document [{doc['id']}] is."]
            out.append({"kind": "single", "question": question, "answer": answer, "sources": [name],
                        "chain": finish(rng, [line, f"So it is {answer}."], rechecks, answer)})
    return out


def two_hop_questions(rng, world):
    """Head -> organisation -> town or founding year (one document), and
    organisation -> head -> birthplace or age (two documents, through the
    named head)."""
    out = []
    for org in world["orgs"]:
        f = org_fields(rng, org)
        doc = doc_of(world, org["name"])
        head, role, word = org["head"], f["role"], f["word"]
        head_s = quote(doc, head)
        fact = "town" if org["founded"] is None or rng.random() < 0.5 else "founded"
        answer = fact_answer(org, fact)
        question = rng.choice([f"In which town is the {word} that {head} {f['verb']}?",
                               f"Where is the {word} whose {role} is {head}?"]) if fact == "town" else \
            f"When was the {word} that {head} {f['verb']} founded?"
        core = [f"{head} is the {role} of the {f['n']}.", fact_line(f, fact, answer), f"So it is {answer}."]
        rechecks = [reread(doc, [head_s, quote(doc, answer)], answer),
                    f"Alternatively, {head} could lead another {word}. No other document names {head}, so it is "
                    f"the {f['n']}."]
        out.append({"kind": "two-hop", "question": question, "answer": answer, "sources": [org["name"]],
                    "chain": finish(rng, core, rechecks, answer)})
        first = f"The {role} of the {f['n']} is {head}."
        person = world["people"][head]
        for question, attr, line in (
                (rng.choice([f"Where was the {role} of the {f['n']} born?",
                             f"In which town was the {role} of the {f['n']} born?"]), "born",
                 f"{head} was born in {person['born']}."),
                (f"How old is the {role} of the {f['n']}?", "age", f"{head} is {person['age']} years old.")):
            if head in world["present_people"]:
                pdoc = doc_of(world, head)
                answer = str(person[attr])
                rechecks = [f"Wait, let me read both documents again. Document [{doc['id']}]: \"{head_s}\" Document "
                            f"[{pdoc['id']}]: \"{quote(pdoc, answer)}\" So it is {answer}."]
                if attr == "born":
                    rechecks.append(f"Alternatively, the town of the {f['n']}, {org['town']}, could be meant. No, that "
                                    f"is where the {word} is; {head} was born in {answer}.")
                else:
                    rechecks.append(f"Alternatively, another person could be the {role}. No, document [{doc['id']}] "
                                    f"names {head}.")
                out.append({"kind": "two-hop", "question": question, "answer": answer,
                            "sources": [org["name"], head], "chain": finish(rng, [first, line, f"So it is {answer}."],
                                                                            rechecks, answer)})
            else:
                core = [first, f"No document is about {head}.", "So it is unknown."]
                rechecks = [f"Wait, let me look for {head} again. Only document [{doc['id']}] names {head}, and it "
                            "does not say that."]
                out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                            "chain": finish(rng, core, rechecks, "unknown")})
    return out


def absent_questions(rng, world):
    out = []
    names = {o["name"] for o in world["orgs"]}
    for org in world["absent"]:
        if org["name"] in names:
            continue
        f = org_fields(rng, org)
        question = rng.choice(FACTS[rng.choice(["head", "town", "founded"])]).format(**f)
        alike = [o for o in world["orgs"] if o["stem"] == org["stem"]]
        core = [f"No document is about the {f['n']}."]
        if alike:
            core.append(f"Document [{doc_of(world, alike[0]['name'])['id']}] is about the {alike[0]['name']}, "
                        "another organisation.")
        rechecks = [f"Wait, let me look through the titles again. None of them is the {f['n']}.",
                    f"Alternatively, a document could mention the {f['n']} inside its text. None does."]
        out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                    "chain": finish(rng, core + ["So it is unknown."], rechecks, "unknown")})
        name = org["head"]
        if name not in world["present_people"] and all(o["head"] != name for o in world["orgs"]):
            rechecks = [f"Wait, let me check the titles again. None of them is {name}.",
                        f"Alternatively, someone with a similar name could be meant. No document names {name}."]
            out.append({"kind": "unanswerable", "question": f"Where was {name} born?", "answer": "unknown",
                        "sources": [], "chain": finish(rng, [f"No document names {name}.", "So it is unknown."],
                                                       rechecks, "unknown")})
    return out


def article(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def join_names(names):
    names = [f"the {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def group_questions(rng, world, kind, town, with_sum=True):
    """Counting (and summing) questions about the organisations of `kind` in
    `town`: the members listed one a line in document order, numbered (and
    with a running sum)."""
    word, plural, people = KIND_WORD[kind], PLURAL[kind], KINDS[kind]["people"]
    docs = {d["title"]: d for d in world["documents"]}
    members = [o for o in world["orgs"] if o["kind"] == kind and o["town"] == town]
    members.sort(key=lambda o: world["documents"].index(docs[o["name"]]))
    if not members:
        return []
    noise = [f"the {o['name']} is {article(word)} too, but it is in {o['town']}, not {town}."
             for o in world["orgs"] if o["kind"] == kind and o["town"] != town]
    noise += [f"the {o['name']} is in {town}, but it is not {article(word)}."
              for o in world["orgs"] if o["kind"] != kind and o["town"] == town]
    m = len(members)
    names = [o["name"] for o in members]
    rechecks = [f"Wait, let me count again: {join_names(names)}. That makes {m}.",
                f"Alternatively, I can count the {plural} in {town} from the last one: "
                f"{join_names(names[::-1])}. That makes {m}."]
    if noise:
        rechecks[1] = "Wait, " + " And ".join(noise) + f" So it stays {m}."
    question = rng.choice([f"How many {plural} are there in {town}?", f"How many {plural} are in {town}?",
                           f"How many {plural} does {town} have?"])
    core = [f"{plural.capitalize()} in {town}:"] + [f"{i + 1}. the {n}" for i, n in enumerate(names)] + \
        [f"That makes {m}."]
    out = [{"kind": "counting", "question": question, "answer": str(m), "sources": names,
            "chain": finish(rng, core, rechecks, str(m))}]
    if with_sum and all(o["count"] is not None for o in members) and (m == 1 or max(o["count"] for o in members) <= 40):
        counts = [o["count"] for o in members]
        total = sum(counts)
        core = [f"{people.capitalize()} at the {plural} in {town}:", f"1. the {names[0]}: {counts[0]}"]
        run = counts[0]
        for i in range(1, m):
            core.append(f"{i + 1}. the {names[i]}: {counts[i]}, {run} + {counts[i]} = {run + counts[i]}")
            run += counts[i]
        core.append(f"That makes {total}.")
        steps, run = [], counts[-1]
        for x in counts[-2::-1]:
            steps.append(f"{run} + {x} = {run + x}.")
            run += x
        rechecks = [f"Wait, let me add them in the other order: " + " ".join(steps) + f" That makes {total}."
                    if m > 1 else f"Wait, let me check: only the {names[0]}, with {total}. That makes {total}."]
        rechecks.append("Wait, " + " And ".join(noise) + f" So it stays {total}." if noise else
                        f"Alternatively, I can check the numbers: " + ", ".join(
                            f"the {n} has {c}" for n, c in zip(names, counts)) + f". That makes {total}.")
        verb = "attend" if people == "pupils" else "work at"
        question = rng.choice([f"How many {people} {verb} the {plural} in {town} in all?",
                               f"What is the total number of {people} at the {plural} in {town}?"])
        out.append({"kind": "summing", "question": question, "answer": str(total), "sources": names,
                    "chain": finish(rng, core, rechecks, str(total))})
    return out


def make_thinking_example(rng, pools, n_docs):
    """A world's documents and questions (each with its chain); the group's
    counting and summing questions come first among those kinds."""
    world = make_thinking_world(rng, pools, n_docs)
    questions = single_questions(rng, world) + two_hop_questions(rng, world) + absent_questions(rng, world)
    questions += group_questions(rng, world, world["kind"], world["town"])
    # Other (kind, town) pairs: counts of 1 and more, for variety in training.
    pairs = {(o["kind"], o["town"]) for o in world["orgs"]} - {(world["kind"], world["town"])}
    for kind, town in sorted(pairs):
        for q in group_questions(rng, world, kind, town):
            q["group"] = False
            questions.append(q)
    for q in questions:
        q.setdefault("group", q["kind"] in ("counting", "summing"))
    return {"documents": world["documents"], "questions": questions}


def pick_questions(rng, questions, per_kind, kinds=("two-hop", "counting", "summing")):
    """Evaluation: `per_kind` questions of each kind (the world's group first for counting and summing)."""
    chosen = []
    for kind in kinds:
        pool = [q for q in questions if q["kind"] == kind]
        main = [q for q in pool if q["group"]]
        rest = [q for q in pool if not q["group"]]
        rng.shuffle(rest)
        chosen += (main + rest)[:per_kind] if kind in ("counting", "summing") else rng.sample(pool, min(per_kind, len(pool)))
    return chosen


# ----------------------------------------------------------------------------- training sequences

TRAIN_KIND_WEIGHTS = {"single": 0.12, "two-hop": 0.25, "unanswerable": 0.1, "counting": 0.25, "summing": 0.28}


def training_branches(rng, questions, n):
    """Up to `n` questions drawn by kind (TRAIN_KIND_WEIGHTS), without repeats."""
    by_kind = {}
    for q in questions:
        by_kind.setdefault(q["kind"], []).append(q)
    for pool in by_kind.values():
        rng.shuffle(pool)
    kinds = [k for k in TRAIN_KIND_WEIGHTS if by_kind.get(k)]
    out = []
    while len(out) < n and kinds:
        kind = rng.choices(kinds, [TRAIN_KIND_WEIGHTS[k] for k in kinds])[0]
        out.append(by_kind[kind].pop())
        if not by_kind[kind]:
            kinds.remove(kind)
    return out


def cut_chain(rng, chain):
    """The chain as frugal leaves it when a budget or early exit ends the
    thinking: at a paragraph break before the conclusion (half the time, where
    there is one), else at any character. frugal then writes a newline unless
    the text ends with one, and `</think>`; assistant_text adds one newline, so
    one trailing newline is dropped here."""
    paras = chain.split("\n\n")
    if len(paras) > 1 and rng.random() < 0.5:
        return "\n\n".join(paras[:rng.randint(1, len(paras) - 1)]) + "\n"
    cut = chain[:rng.randint(1, len(chain) - 1)]
    return cut[:-1] if cut.endswith("\n") else cut


def build_thinking_sequence(rng, tok, pools, length, max_prefix=1200, max_questions=48, think_prob=0.5,
                            doc_loss_fraction=0.25, answer_weight=2.0, min_docs=5, max_docs=15, cut_prob=0.0):
    """One training sequence of `length` tokens, packed as tools/train_demo_model.py
    does: knowledge prefixes (chat layout, positions from 0), each followed by
    question/answer branches that see their prefix and themselves only. A branch
    is thinking (`think_prob`) or not; a share `cut_prob` of the thinking ones
    is cut (cut_chain) and followed by the answer; loss on the assistant's tokens: chain 1,
    the final answer and `<|im_end|>` `answer_weight` (these tokens have weight >= 2
    exactly, which validation uses). Returns lists: tokens, positions, groups,
    branches, targets, weights."""
    from chat_prompt import assistant_tokens, prefix_tokens, question_tokens
    tokens, positions, groups, branches, targets, weights = [], [], [], [], [], []
    header = len(prefix_tokens(tok, []))
    group = branch = 0
    while length - len(tokens) > 300:
        room = length - len(tokens)
        for _ in range(20):
            example = make_thinking_example(rng, pools, rng.randint(min_docs, max_docs))
            prefix = prefix_tokens(tok, example["documents"])
            if len(prefix) <= min(max_prefix, room - 250):
                break
        else:
            break
        group += 1
        tokens += prefix
        positions += range(len(prefix))
        groups += [group] * len(prefix)
        branches += [0] * len(prefix)
        targets += prefix[1:] + [0]
        for i in range(len(prefix)):
            weights.append(0.3 if header - 1 <= i < len(prefix) - 1 and rng.random() < doc_loss_fraction else 0.0)
        for q in training_branches(rng, example["questions"], max_questions):
            think = rng.random() < think_prob
            qt = question_tokens(tok, q["question"], thinking=think)
            chain = q["chain"]
            if think and cut_prob and rng.random() < cut_prob:
                chain = cut_chain(rng, chain)
            at = assistant_tokens(tok, q["answer"], chain if think else None)
            if len(prefix) + len(qt) + len(at) > 2048:
                continue
            if think:  # the tokens after </think>: the final answer
                end = len(at) - 1 - at[::-1].index(END_THINK_ID)
                w = [1.0] * (end + 1) + [answer_weight] * (len(at) - end - 1)
            else:
                w = [answer_weight] * len(at)
            seq = qt + at[:-1]
            if len(tokens) + len(seq) > length:
                continue
            branch += 1
            tokens += seq
            positions += range(len(prefix), len(prefix) + len(seq))
            groups += [group] * len(seq)
            branches += [branch] * len(seq)
            targets += seq[1:] + [at[-1]]
            weights += [0.0] * (len(qt) - 1) + w
    pad = length - len(tokens)
    tokens += [0] * pad
    positions += [0] * pad
    groups += list(range(10_000, 10_000 + pad))
    branches += list(range(10_000, 10_000 + pad))
    targets += [0] * pad
    weights += [0.0] * pad
    return tokens, positions, groups, branches, targets, weights


END_THINK_ID = 32003


if __name__ == "__main__":
    from world import Pools
    ex = make_thinking_example(random.Random(1), Pools("test"), 10)
    for d in ex["documents"]:
        print(f"Document [{d['id']}] {d['title']}\n{d['text']}\n")
    seen = set()
    for q in ex["questions"]:
        if q["kind"] in seen:
            continue
        seen.add(q["kind"])
        print("=" * 60, q["kind"], "|", q["question"], "->", q["answer"])
        print(q["chain"])

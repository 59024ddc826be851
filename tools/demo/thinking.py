"""Knowledge worlds with thinking chains for frugal's thinking model
(models/frugal-think.md, issue #17).

A world (5-15 documents) is one of tools/demo/world.py's, with one group of
2-5 organisations of one kind in one town (small head counts, 2-40) and
distractors (the same kind in a look-alike town, another kind in the same
town). Questions, each with a thinking chain and an answer:

- single: one fact of one document ("Who directs the Harlow Clinic?");
- two-hop: an entity found first ("In which town is the clinic that Dr. Mira
  Osei directs?", "Where was the director of the Harlow Clinic born?");
- unanswerable: a fact or organisation the documents do not hold ("unknown");
- counting: "How many clinics are there in Marketby?" (digits);
- summing: "How many staff work at the clinics in Marketby in all?".

A chain is paragraphs separated by blank lines (the transition points where
early exit probes an answer): what the question asks, the evidence (quoted
sentences, document ids), the combination (running counts and sums), then 0,
1 or 2 re-checks starting with "Wait," or "Alternatively," (probabilities
0.3 / 0.45 / 0.25), then "So the answer is X.". Chains are always correct.
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


def make_thinking_world(rng, pools, n_docs):
    """Documents, organisations, people and the counting group of one world."""
    n_orgs = max(3, round(n_docs * 0.6))
    orgs, people = make_world(rng, pools, n_orgs + max(1, n_orgs // 4))
    present, absent = orgs[:n_orgs], orgs[n_orgs:]
    used_names = {o["name"] for o in orgs}
    kind = rng.choice(list(KINDS))
    town = rng.choice(present)["town"]
    m = min(rng.randint(2, 5), n_orgs - 1)
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


def says(rng, doc, sentence):
    return rng.choice([f'Document [{doc["id"]}] says: "{sentence}"', f'Document [{doc["id"]}]: "{sentence}"',
                       f'In document [{doc["id"]}]: "{sentence}"'])


class Chain(str):
    """A chain's text; `core`: how many of its paragraphs (opening and evidence)
    come before the re-checks and the conclusion."""
    core = 0


def finish(rng, opening, evidence, rechecks, answer):
    """Joins the paragraphs: opening, evidence, 0-2 re-checks, conclusion."""
    paras = [opening] + evidence
    k = n_rechecks(rng)
    pool = rechecks[:]
    rng.shuffle(pool)
    paras += pool[:k]
    paras.append(rng.choice([f"So the answer is {answer}.", f"The answer is {answer}.",
                             f"So the answer is {answer}."]))
    chain = Chain("\n\n".join(paras))
    chain.core = 1 + len(evidence)
    return chain


def look_alikes(world, org):
    return [o for o in world["orgs"] if o is not org and (o["stem"] == org["stem"] or o["name"].split()[-1] ==
                                                           org["name"].split()[-1] and o["town"] == org["town"])]


FACTS = {  # fact: (question templates, what the question asks, needle in the sentence)
    "head": (["Who {verb} the {n}?", "Who is the {role} of the {n}?"], "who the {role} of the {n} is"),
    "town": (["In which town is the {n}?", "Where is the {n} located?"], "in which town the {n} is"),
    "founded": (["When was the {n} founded?", "In which year was the {n} founded?"], "when the {n} was founded"),
    "count": (["How many {people} does the {n} have?"], "how many {people} the {n} has"),
    "opens": (["At what time does the {n} open?"], "when the {n} opens"),
}
FACT_WORDS = {"town": "town", "founded": "founding year"}
MISSING = {"founded": "when it was founded", "count": "how many {people} it has", "opens": "when it opens",
           "head": "who its {role} is"}


def fact_answer(org, fact):
    v = org[fact]
    if v is None:
        return None
    return f"{v} am" if fact == "opens" else str(v)


def org_fields(rng, org):
    k = KINDS[org["kind"]]
    return {"n": org["name"], "role": k["head"], "verb": rng.choice(k["verbs"]), "people": k["people"],
            "word": KIND_WORD[org["kind"]], "head": org["head"]}


def doc_of(world, title):
    return next(d for d in world["documents"] if d["title"] == title)


def single_questions(rng, world):
    out = []
    for org in world["orgs"]:
        f = org_fields(rng, org)
        doc = doc_of(world, org["name"])
        for fact, (templates, asks) in FACTS.items():
            answer = fact_answer(org, fact)
            question = rng.choice(templates).format(**f)
            opening = rng.choice([f"The question asks {asks.format(**f)}.", f"I need to find {asks.format(**f)}."])
            if answer is None:  # an unanswerable fact of a present organisation
                given = [x for x in ("founded", "count", "opens") if org[x] is not None]
                evidence = [says(rng, doc, quote(doc, org["town"])),
                            f"Document [{doc['id']}] is about the {f['n']}, but it does not say "
                            f"{MISSING[fact].format(**f)}."]
                rechecks = [f"Wait, maybe another document says {MISSING[fact].format(**f)}. No other document is "
                            f"about the {f['n']}.",
                            f"Alternatively, the answer could be in another sentence of document [{doc['id']}]. "
                            f"It gives {len(given) + 2} facts, and none of them says {MISSING[fact].format(**f)}."]
                out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                            "chain": finish(rng, opening, evidence, rechecks, "unknown")})
                continue
            needle = org["head"] if fact == "head" else answer
            s = quote(doc, needle)
            evidence = [says(rng, doc, s)]
            rechecks = [f"Wait, let me check that document [{doc['id']}] is the right one. Its title is "
                        f"{f['n']}, the organisation the question names. It says: \"{s}\" So it is {answer}."]
            alike = look_alikes(world, org)
            if alike:
                a = rng.choice(alike)
                rechecks.append(f"Alternatively, the question could mean the {a['name']}. No, the question names the "
                                f"{f['n']}, and the {a['name']} is another organisation.")
            else:
                rechecks.append(f"Wait, another document might also be about the {f['n']}. Only document "
                                f"[{doc['id']}] is.")
            out.append({"kind": "single", "question": question, "answer": answer, "sources": [org["name"]],
                        "chain": finish(rng, opening, evidence, rechecks, answer)})
    for name in world["present_people"]:
        p = world["people"][name]
        doc = doc_of(world, name)
        for question, asks, answer in ((f"Where was {name} born?", f"where {name} was born", p["born"]),
                                       (f"How old is {name}?", f"how old {name} is", str(p["age"]))):
            s = quote(doc, answer)
            rechecks = [f"Wait, let me read document [{doc['id']}] again. It says: \"{s}\" So it is {answer}.",
                        f"Alternatively, another document could be about {name} too. Only document [{doc['id']}] is."]
            out.append({"kind": "single", "question": question, "answer": answer, "sources": [name],
                        "chain": finish(rng, f"The question asks {asks}.", [says(rng, doc, s)], rechecks, answer)})
    return out


def two_hop_questions(rng, world):
    out = []
    for org in world["orgs"]:
        f = org_fields(rng, org)
        doc = doc_of(world, org["name"])
        head_s = quote(doc, org["head"])
        bridge = [says(rng, doc, head_s) + f" So the {f['word']} that {org['head']} {f['verb']} is the {f['n']}."]
        # head -> organisation -> town / founded
        for question, fact, asks in (
                (rng.choice([f"In which town is the {f['word']} that {org['head']} {f['verb']}?",
                             f"Where is the {f['word']} whose {f['role']} is {org['head']}?"]), "town",
                 f"the town of the {f['word']} that {org['head']} {f['verb']}"),
                (f"When was the {f['word']} that {org['head']} {f['verb']} founded?", "founded",
                 f"when the {f['word']} that {org['head']} {f['verb']} was founded")):
            answer = fact_answer(org, fact)
            if answer is None:
                continue
            s = quote(doc, answer)
            opening = rng.choice([f"The question asks for {asks}. First I need to find that {f['word']}.",
                                  f"I need {asks}. The {f['word']} is not named, so first I find it."])
            evidence = bridge + [f"Now the {FACT_WORDS[fact]} of the {f['n']}. " + says(rng, doc, s)]
            rechecks = [f"Wait, let me check the {f['word']} again. {org['head']} is the {f['role']} of the "
                        f"{f['n']}, and document [{doc['id']}] says: \"{s}\" So it is {answer}.",
                        f"Alternatively, {org['head']} could lead another {f['word']}. No other document names "
                        f"{org['head']}, so it is the {f['n']}."]
            out.append({"kind": "two-hop", "question": question, "answer": answer, "sources": [org["name"]],
                        "chain": finish(rng, opening, evidence, rechecks, answer)})
        # organisation -> head -> birthplace
        question = rng.choice([f"Where was the {f['role']} of the {f['n']} born?",
                               f"In which town was the {f['role']} of the {f['n']} born?"])
        opening = rng.choice([f"The question asks where the {f['role']} of the {f['n']} was born. First I need "
                              f"the {f['role']}.", f"I need the {f['role']} of the {f['n']} first, then where "
                              "that person was born."])
        evidence = [says(rng, doc, head_s) + f" So the {f['role']} is {org['head']}."]
        if org["head"] in world["present_people"]:
            pdoc = doc_of(world, org["head"])
            born = world["people"][org["head"]]["born"]
            ps = quote(pdoc, born)
            evidence.append(f"Now where {org['head']} was born. " + says(rng, pdoc, ps))
            rechecks = [f"Wait, let me check both documents. Document [{doc['id']}] names {org['head']} as the "
                        f"{f['role']} of the {f['n']}, and document [{pdoc['id']}] says {org['head']} was born in "
                        f"{born}.",
                        f"Alternatively, the birthplace could be the town of the {f['n']}, {org['town']}. No, that "
                        f"is where the {f['word']} is; document [{pdoc['id']}] gives the birthplace: {born}."]
            out.append({"kind": "two-hop", "question": question, "answer": born, "sources": [org["name"], org["head"]],
                        "chain": finish(rng, opening, evidence, rechecks, born)})
        else:
            evidence.append(f"Now where {org['head']} was born. No document is about {org['head']}, and document "
                            f"[{doc['id']}] does not say where {org['head']} was born.")
            rechecks = [f"Wait, let me look for {org['head']} again. Only document [{doc['id']}] names "
                        f"{org['head']}, and it does not give a birthplace.",
                        f"Alternatively, the town of the {f['n']} could be meant. No, the question asks where the "
                        f"{f['role']} was born, and no document says that."]
            out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                        "chain": finish(rng, opening, evidence, rechecks, "unknown")})
    return out


def absent_questions(rng, world):
    out = []
    names = {o["name"] for o in world["orgs"]}
    for org in world["absent"]:
        if org["name"] in names:
            continue
        f = org_fields(rng, org)
        fact = rng.choice(["head", "town", "founded"])
        templates, asks = FACTS[fact]
        question = rng.choice(templates).format(**f)
        alike = [o for o in world["orgs"] if o["stem"] == org["stem"]]
        evidence = [f"No document is about the {f['n']}." + (
            f" Document [{doc_of(world, alike[0]['name'])['id']}] is about the {alike[0]['name']}, which is another "
            "organisation." if alike else "")]
        rechecks = [f"Wait, let me look through the titles again. None of them is the {f['n']}.",
                    f"Alternatively, a document could mention the {f['n']} inside its text. None does."]
        out.append({"kind": "unanswerable", "question": question, "answer": "unknown", "sources": [],
                    "chain": finish(rng, f"The question asks {asks.format(**f)}.", evidence, rechecks, "unknown")})
        name = org["head"]
        if name not in world["present_people"] and all(o["head"] != name for o in world["orgs"]):
            evidence = [f"No document is about {name}, and no document names {name}."]
            rechecks = [f"Wait, let me check the titles again. None of them is {name}.",
                        f"Alternatively, someone with a similar name could be meant. The question names {name}, "
                        "and no document does."]
            out.append({"kind": "unanswerable", "question": f"Where was {name} born?", "answer": "unknown",
                        "sources": [], "chain": finish(rng, f"The question asks where {name} was born.", evidence,
                                                       rechecks, "unknown")})
    return out


def article(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


def join_names(names):
    names = [f"the {n}" for n in names]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def running_sum(numbers):
    """"12 + 7 = 19. 19 + 5 = 24." (one step per number after the first)."""
    steps, total = [], numbers[0]
    for x in numbers[1:]:
        steps.append(f"{total} + {x} = {total + x}.")
        total += x
    return " ".join(steps) if steps else f"Only one, with {total}.", total


def group_questions(rng, world, kind, town, with_sum=True):
    """Counting (and summing) questions about the organisations of `kind` in `town`."""
    word, plural, people = KIND_WORD[kind], PLURAL[kind], KINDS[kind]["people"]
    docs = {d["title"]: d for d in world["documents"]}
    members = [o for o in world["orgs"] if o["kind"] == kind and o["town"] == town]
    members.sort(key=lambda o: world["documents"].index(docs[o["name"]]))
    same_kind_elsewhere = [o for o in world["orgs"] if o["kind"] == kind and o["town"] != town]
    other_kind_here = [o for o in world["orgs"] if o["kind"] != kind and o["town"] == town]
    if not members:
        return []
    out = []
    lines = [f"Document [{docs[o['name']]['id']}] says the {o['name']} is in {town}." for o in members]
    noise = []
    for o in same_kind_elsewhere:
        noise.append(f"Document [{docs[o['name']]['id']}]: the {o['name']} is {article(word)} too, but it is in {o['town']}, "
                     f"not {town}.")
    for o in other_kind_here:
        noise.append(f"Document [{docs[o['name']]['id']}]: the {o['name']} is in {town}, but it is not {article(word)}.")
    m = len(members)
    count_names = ", ".join(f"the {o['name']} ({i + 1})" for i, o in enumerate(members))
    question = rng.choice([f"How many {plural} are there in {town}?", f"How many {plural} are in {town}?",
                           f"How many {plural} does {town} have?"])
    evidence = ["\n".join(lines)] + (["\n".join(noise)] if noise else [])
    evidence.append(f"Counting them: {count_names}. That makes {m}.")
    rechecks = [f"Wait, let me check the documents again. " + " ".join(f"The {o['name']} is in {town}." for o in members)
                + f" No other {word} is in {town}. That is {m}.",
                f"Alternatively, I can count the {plural} in {town} once more: {join_names([o['name'] for o in members])}."
                f" That is {m}."]
    out.append({"kind": "counting", "question": question, "answer": str(m), "sources": [o["name"] for o in members],
                "chain": finish(rng, rng.choice([f"The question asks how many {plural} are in {town}.",
                                                 f"I need to count the {plural} in {town}."]), evidence, rechecks,
                                str(m))})
    if with_sum and all(o["count"] is not None for o in members) and (m == 1 or max(o["count"] for o in members) <= 40):
        counts = [o["count"] for o in members]
        sums, total = running_sum(counts)
        verb = "attend" if people == "pupils" else "work at"
        question = rng.choice([f"How many {people} {verb} the {plural} in {town} in all?",
                               f"What is the total number of {people} at the {plural} in {town}?"])
        lines = [f"Document [{docs[o['name']]['id']}] says the {o['name']} is in {town} and has {o['count']} {people}."
                 for o in members]
        evidence = ["\n".join(lines)] + (["\n".join(noise)] if noise and rng.random() < 0.7 else []) + [sums]
        rechecks = [f"Wait, let me check the documents again. " + " ".join(
            f"The {o['name']} has {o['count']} {people}." for o in members) + f" No other {word} is in {town}. " + sums,
            f"Alternatively, I can add them in the other order. " + running_sum(counts[::-1])[0]]
        out.append({"kind": "summing", "question": question, "answer": str(total),
                    "sources": [o["name"] for o in members],
                    "chain": finish(rng, rng.choice([f"The question asks for the {people} of the {plural} in {town}.",
                                                     f"I need the {people} of all the {plural} in {town}, added up."]),
                                    evidence, rechecks, str(total))})
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


def build_thinking_sequence(rng, tok, pools, length, max_prefix=1200, max_questions=48, think_prob=0.5,
                            doc_loss_fraction=0.25, answer_weight=2.0, min_docs=5, max_docs=15, cut_prob=0.0):
    """One training sequence of `length` tokens, packed as tools/train_demo_model.py
    does: knowledge prefixes (chat layout, positions from 0), each followed by
    question/answer branches that see their prefix and themselves only. A branch
    is thinking (`think_prob`) or not; a share `cut_prob` of the thinking ones
    ends right after the evidence, at a paragraph break; loss on the assistant's tokens: chain 1,
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
            if think and cut_prob and rng.random() < cut_prob and getattr(chain, "core", 0):
                # Thinking ended at a paragraph break once the evidence is in (as frugal's budget
                # cut or early exit ends it: "\n\n" then </think>): the answer still follows.
                chain = "\n\n".join(chain.split("\n\n")[:chain.core]) + "\n"
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

"""Knowledge QA records for fine-tuning the demo model on phrasings its own
generator (world.py) does not use (issue #18, part 5), deterministic from a seed.

    python3 tools/demo/finetune_data.py [--out examples/finetune/demo] [--seed 18]
        [--train 300] [--held-out 150] [--preserve 160] [--train-questions 1]
        [--check-model models/frugal-demo-qa-q8_0.gguf] [--spelling FILE]

Writes, in frugal finetune's knowledge QA record format (docs/finetune.md),
one record a line: {"documents": [{"id", "title", "text"}, ...], "question", "answer"}

- train.jsonl (at most 300 records): documents written as the generator never
  writes them: prose that names the organisation once and then says "the
  office", "It", "X runs it" ("The office is led by Clara Voss."), fact
  sheets ("Director: Clara Voss"), notices, short letters, bullet lists, news
  items ("X has been in charge of Y since 2019", "can be found in", "employs
  42 people", "Doors open at 8 am"); names with or without a title; new kinds
  of organisation (pharmacies, nurseries, water offices, bookshops, ...); and
  some documents in the generator's own sentences, so that the new questions
  are also learnt on text the model already reads. Questions in other words
  ("Who leads / runs / is in charge of ...", "Where is ... based?", "When
  does ... open?", "How many people work at ...?"), one to seven documents a
  record, about a fifth unanswerable ("unknown": a fact the documents leave
  out, or a look-alike organisation or a person not in them). Names are drawn
  as world.py draws training names (Pools("train") with the vocabulary's name
  pieces: mostly made up, a small pool per record), so that the adapter
  learns to copy them rather than recall them.
- held-out.jsonl: the evaluation set, kept apart: its people, towns and
  organisation names are real names of world.py's test-split pools; about a
  third of its records have their answer in a document family train.jsonl
  never uses (directory listings with several organisations in one
  document, interviews with quotes, "About us" pages in the first person,
  relative clauses: "Ashford is home to the X, whose manager is Y"), about a
  third a question template train.jsonl never uses, half neither.
- preserve.jsonl: the generator's own prompts (world.make_example on the
  validation split, not the test split of tools/eval_demo_model.py), for
  `frugal finetune --preserve`.

Each FILE.jsonl has a sidecar FILE.kinds.json: per record (same order) its
question kind, whether it is answerable, the style family of the document that
holds the answer, whether that family and the question template occur in
train.jsonl, and more (frugal finetune refuses unknown keys, so they are not
in the records). tools/eval_finetune_demo.py reads it.

Every answer is a span copied from the documents (or "unknown"), spelled with
pieces the demo model has produced in its own training. --check-model MODEL
verifies that: each answer token must have a live embedding in MODEL (a
tied-embedding model cannot produce a token it never saw; such tokens all
share one embedding vector). --spelling FILE writes every distinct person and
town answer in the generator's own sentences, for tools/eval_finetune_demo.py
to check that the base model spells them.

Standard library only.
"""
import argparse
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import world  # noqa: E402
from world import FIRST_NAMES, ORG_STEMS, SURNAMES  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# Kinds of organisation. "names": the second part of an organisation's name,
# with the noun a text uses for it after naming it once ("the practice").
# "held_out_names" appear only in held-out.jsonl. All of these words are
# spelled with tokens the demo model has seen (checked with --check-model).
KINDS = {
    "clinic": {"names": {"Clinic": "clinic", "Health Centre": "centre", "Medical Practice": "practice",
                         "Dental Surgery": "surgery", "Veterinary Practice": "practice", "Pharmacy": "pharmacy",
                         "Physiotherapy Centre": "centre"},
               "held_out_names": {"Care Home": "home", "Eye Clinic": "clinic"},
               "roles": ["director", "lead doctor", "head of practice"], "titles": ["Dr.", "Dr.", "Prof."],
               "count": "staff"},
    "school": {"names": {"School": "school", "Primary School": "school", "Academy": "academy", "Nursery": "nursery",
                         "Music School": "school", "Language School": "school", "College": "college"},
               "held_out_names": {"Dance School": "school", "Art College": "college"},
               "roles": ["head teacher", "principal", "headmistress", "headmaster"],
               "titles": ["Mr.", "Ms.", "Mrs.", "Dr."], "count": "pupils"},
    "office": {"names": {"Town Office": "office", "Water Office": "office", "Registry Office": "office",
                         "Public Library": "library", "Tax Office": "office", "Post Office": "office",
                         "Planning Office": "office", "Museum": "museum"},
               "held_out_names": {"Community Centre": "centre", "Land Registry": "registry"},
               "roles": ["manager", "director", "head"], "titles": ["Mr.", "Ms.", "Mrs."], "count": "staff"},
    "firm": {"names": {"Bakery": "bakery", "Garage": "garage", "Bookshop": "shop", "Flower Shop": "shop",
                       "Cafe": "cafe", "Laundry": "laundry", "Butcher": "shop", "Carpentry Workshop": "workshop",
                       "Printing Works": "business"},
             "held_out_names": {"Tea Room": "tea room", "Bicycle Workshop": "workshop"},
             "roles": ["owner", "manager", "proprietor"], "titles": ["Mr.", "Ms.", "Mrs."], "count": "staff"},
}

# The issue's own example stays out of both sets, so it remains a clean demonstration.
EXCLUDED_ORGS = {"Fenwick Water Office"}


class Names:
    """People, towns and organisations of one of world.py's name splits, drawn
    as world.py draws them (its Pools). The train split makes up most names
    from the vocabulary's name pieces and syllables, as the demo model's own
    training did, and each record gets a small pool of its own (look-alike
    names): with 300 records, real names would repeat until the adapter
    recalls them instead of copying them from the documents. The test split
    (held-out.jsonl) draws real names from its own pool, which no training
    data of the demo model or of train.jsonl uses."""

    def __init__(self, split, held_out, vocab_tokens=None):
        self.pools = world.Pools(split, vocab_tokens)
        self.held_out = held_out
        self.current = self.pools

    def for_record(self, rng):
        self.current = self.pools.for_world(rng)

    def first(self, rng):
        return self.current.first(rng)

    def last(self, rng):
        return self.current.last(rng)

    def org_stem(self, rng):
        return self.current.org_stem(rng)

    def town(self, rng):
        return self.current.town(rng)

    def kind_names(self, kind):
        names = dict(KINDS[kind]["names"])
        if self.held_out:
            names.update(KINDS[kind]["held_out_names"])
        return names

    def person(self, rng, kind):
        name = f"{self.first(rng)} {self.last(rng)}"
        titled = rng.random() < (0.55 if kind == "clinic" else 0.35)
        return f"{rng.choice(KINDS[kind]['titles'])} {name}" if titled else name


class Record:
    """The organisations and people of one record's documents, their names unique."""

    def __init__(self, rng, names):
        self.rng, self.names = rng, names
        self.orgs, self.people, self.used = [], {}, set()

    def _unique_person(self, kind):
        while True:
            name = self.names.person(self.rng, kind)
            core = " ".join(name.split()[-2:])
            if core not in self.used:
                self.used.add(core)
                return name

    def new_org(self, stem=None):
        rng = self.rng
        while True:
            kind = rng.choice(list(KINDS))
            kind_name, noun = rng.choice(list(self.names.kind_names(kind).items()))
            name = f"{stem or self.names.org_stem(rng)} {kind_name}"
            if name not in self.used and name not in EXCLUDED_ORGS:
                break
        self.used.add(name)
        founded = rng.randint(1890, 2021) if rng.random() < 0.8 else None
        org = {"kind": kind, "name": name, "noun": noun, "role": rng.choice(KINDS[kind]["roles"]),
               "town": self.names.town(rng) if rng.random() < 0.95 else None,
               "head": self._unique_person(kind) if rng.random() < 0.9 else None,
               "founded": founded,
               "since": rng.randint(max(founded or 1950, 1980), 2024) if rng.random() < 0.35 else None,
               "count": rng.randint(3, 420) if rng.random() < 0.75 else None,
               "opens": rng.choice([7, 8, 9, 10, 11]) if rng.random() < 0.7 else None}
        if org["since"] == org["founded"]:
            org["since"] = None
        return org

    def person_facts(self, name):
        if name not in self.people:
            self.people[name] = {"name": name, "born": self.names.town(self.rng), "age": self.rng.randint(29, 71)}
        return self.people[name]


def fill(template, org):
    k = KINDS[org["kind"]]
    values = {"n": org["name"], "noun": org["noun"], "Noun": org["noun"].capitalize(), "town": org["town"],
              "head": org["head"], "role": org["role"], "Role": org["role"].capitalize(), "y": org["founded"],
              "since": org["since"], "c": org["count"], "h": org["opens"],
              "people": "pupils" if k["count"] == "pupils" else "people",
              "staff": "pupils" if k["count"] == "pupils" else "staff"}
    return template.format(**values)


def pick(rng, org, options):
    """One of the templates whose facts the organisation has."""
    fields = {"head": "head", "since": "since", "y": "founded", "c": "count", "h": "opens", "town": "town"}
    usable = [t for t in options if all(org[fields[f]] is not None for f in re.findall(r"\{(head|since|y|c|h|town)\}", t))]
    return fill(rng.choice(usable), org) if usable else None


# ---------------------------------------------------------------------------
# Document styles. Each takes (rng, org) and returns (title, text). Those of
# TRAIN_STYLES appear in both files; HELD_OUT_STYLES only in held-out.jsonl.

def style_prose(rng, org):
    """Names the organisation once, then "the office", "It"."""
    first = pick(rng, org, ["The {n} serves {town} and the villages around it.", "The {n} can be found in {town}.",
                            "The {n} is based in {town}.", "The {n} sits in the middle of {town}.",
                            "The {n} is one of the oldest places in {town}.", "This page is about the {n}."])
    facts = []
    if org["head"]:
        facts.append(pick(rng, org, ["The {noun} is led by {head}.", "{head} runs it.",
                                     "{head} is in charge of the {noun}.",
                                     "The {noun} has been headed by {head} since {since}.",
                                     "Its {role}, {head}, took over in {since}.", "At its head is {head}.",
                                     "It is run by {head}."]))
    if org["founded"]:
        facts.append(pick(rng, org, ["The {noun} was established in {y}.", "It was set up in {y}.",
                                     "It dates from {y}.", "It first opened in {y}."]))
    if org["count"]:
        facts.append(pick(rng, org, ["It employs {c} people.", "{c} people work there.", "The {noun} has a staff of {c}."]
                          if org["kind"] != "school" else
                          ["{c} pupils attend the {noun}.", "The {noun} teaches {c} pupils.",
                           "It has room for {c} pupils."]))
    if org["opens"]:
        facts.append(pick(rng, org, ["Doors open at {h} am.", "The {noun} opens its doors at {h} am.",
                                     "It is open from {h} am on weekdays.", "Opening time is {h} am."]))
    rng.shuffle(facts)
    if org["town"] and org["town"] not in first:  # "This page is about ..."
        facts.insert(0, pick(rng, org, ["It lies in {town}.", "You can visit it in {town}."]))
    title = rng.choice([org["name"], org["name"], f"About the {org['name']}"])
    return title, " ".join([first] + facts)


def fact_lines(rng, org):
    lines = []
    if org["town"]:
        lines.append(pick(rng, org, ["Town: {town}", "Location: {town}", "Based in: {town}",
                                     f"Address: {rng.randint(1, 90)} "
                                     f"{rng.choice(['Mill', 'Church', 'Station', 'Market', 'High'])} "
                                     + rng.choice(["Road", "Street", "Lane"]) + ", {town}"]))
    if org["head"]:
        lines.append(pick(rng, org, ["{Role}: {head}", "Head: {head}", "Run by: {head}", "In charge: {head}"]))
    if org["founded"]:
        lines.append(pick(rng, org, ["Founded: {y}", "Established: {y}", "Since: {y}"]))
    if org["count"]:
        lines.append(pick(rng, org, ["Staff: {c}", "Employees: {c}", "Team: {c} people"] if org["kind"] != "school"
                          else ["Pupils: {c}", "Number of pupils: {c}"]))
    if org["opens"]:
        lines.append(pick(rng, org, ["Opens: {h} am", "Opening time: {h} am", "Hours: from {h} am"]))
    rng.shuffle(lines)
    return lines


def style_fact_sheet(rng, org):
    lines = fact_lines(rng, org)
    if rng.random() < 0.5:
        lines.insert(0, f"Name: {org['name']}")
        return rng.choice(["Fact sheet", "Key facts", org["name"]]), "\n".join(lines)
    return org["name"], "\n".join(lines)


def style_notice(rng, org):
    parts = [pick(rng, org, ["Notice to the people of {town}:", "A notice from the {n}:", "Please note:"])]
    if org["opens"]:
        parts.append(pick(rng, org, ["From next week the {n} will open at {h} am.", "The {n} now opens at {h} am.",
                                     "Starting on Monday, the doors of the {n} open at {h} am."]))
    else:
        parts.append(pick(rng, org, ["The {n} will be closed next Friday.", "The {n} is looking for helpers."]))
    if org["town"] and "{town}" not in parts[0] and rng.random() < 0.8:
        parts.append(pick(rng, org, ["The {noun} is based in {town}.", "The {noun} can be found in {town}.",
                                     "Visit us in {town}."]))
    if org["head"]:
        parts.append(pick(rng, org, ["Questions go to the {role}, {head}.", "Signed, {head}, {role} of the {noun}.",
                                     "Please ask {head}, who leads the {noun}, if you need help."]))
    if org["count"] and rng.random() < 0.6:
        parts.append(pick(rng, org, ["The {noun} thanks its {c} staff for their work.", "All {c} staff will be there."]
                          if org["kind"] != "school" else ["All {c} pupils are asked to bring a coat."]))
    if org["founded"] and rng.random() < 0.6:
        parts.append(pick(rng, org, ["The {noun} was set up in {y}.", "It has served the town since {y}."]))
    if rng.random() < 0.5:
        return rng.choice(["Notice", f"Notice: {org['name']}", "News for visitors"]), " ".join(parts)
    return f"{org['name']} notice", " ".join(parts)


def style_letter(rng, org):
    body = []
    if org["founded"]:
        body.append(pick(rng, org, ["The {n} has been part of {town} since {y}.", "The {n} was set up in {y}."]))
    else:
        body.append(fill("Thank you for your support of the {n} this year.", org))
    if org["town"] and org["town"] not in body[0]:
        body.append(pick(rng, org, ["We are based in {town}.", "You will find us in {town}.",
                                    "Our {noun} can be found in {town}."]))
    if org["count"]:
        body.append(pick(rng, org, ["Our team of {c} looks forward to seeing you.", "All {c} of our staff say thank you."]
                          if org["kind"] != "school" else ["Our {c} pupils look forward to the summer."]))
    if org["opens"]:
        body.append(pick(rng, org, ["Our doors open at {h} am.", "We open at {h} am on weekdays."]))
    greeting = rng.choice(["Dear neighbours,", "Dear friends,", "Dear visitors,", "Dear parents,"])
    if org["head"]:
        closing = pick(rng, org, ["Yours sincerely,\n{head}\n{Role}, {n}", "With best wishes,\n{head}, {role}"])
    else:
        closing = fill("With best wishes,\nThe {n}", org)
    title = rng.choice(["Letter", f"A letter from the {org['name']}", f"Letter from the {org['noun']}"])
    return title, "\n".join([greeting, " ".join(body), closing])


def style_bullets(rng, org):
    items = []
    if org["town"]:
        items.append(pick(rng, org, ["based in {town}", "located in {town}", "in the centre of {town}"]))
    if org["head"]:
        items.append(pick(rng, org, ["headed by {head} since {since}", "{role}: {head}", "run by {head}",
                                     "led by {head}"]))
    if org["founded"]:
        items.append(pick(rng, org, ["set up in {y}", "founded in {y}", "established {y}"]))
    if org["count"]:
        items.append(pick(rng, org, ["{c} staff", "{c} people on the team"] if org["kind"] != "school"
                          else ["{c} pupils", "room for {c} pupils"]))
    if org["opens"]:
        items.append(pick(rng, org, ["doors open at {h} am", "opens at {h} am", "open from {h} am"]))
    rng.shuffle(items)
    head = fill(rng.choice(["The {n} at a glance:", "Facts about the {n}:", "The {n}:"]), org)
    return rng.choice([org["name"], "At a glance", f"{org['name']} in brief"]), "\n".join([head] + [f"- {i}" for i in items])


def style_news(rng, org):
    parts = []
    if org["head"]:
        parts.append(pick(rng, org, ["{head} has been in charge of the {n} since {since}.",
                                     "{head} is the new {role} of the {n}.",
                                     "{head}, who runs the {n}, gave a talk on Monday.",
                                     "Good news from the {n}: {head} will stay on as {role}."]))
    else:
        parts.append(fill(rng.choice(["The {n} held an open day on Saturday.", "The {n} has a new garden."]), org))
    if org["town"]:
        parts.append(pick(rng, org, ["The {noun}, which can be found in {town}, is busy this month.",
                                     "The {noun} is based in {town}.", "It is located in {town}."]))
    if org["count"]:
        parts.append(pick(rng, org, ["It employs {c} people.", "The {noun} now has {c} staff."] if org["kind"] != "school"
                          else ["The {noun} now teaches {c} pupils.", "{c} pupils go there."]))
    if org["founded"]:
        parts.append(pick(rng, org, ["It dates from {y}.", "It was established in {y}."]))
    if org["opens"]:
        parts.append(pick(rng, org, ["Doors open at {h} am.", "It opens at {h} am as before."]))
    title = rng.choice(["Town news", f"News from {org['town']}" if org["town"] else "Local news", "This week"])
    return title, " ".join(parts)


# Held-out families.

def style_relative(rng, org):
    """"Ashford is home to the X, whose manager is Y.\""""
    parts = [pick(rng, org, ["{town} is home to the {n}, whose {role} is {head}.",
                             "In {town} stands the {n}, where {head} is the {role}.",
                             "The {n}, whose {role} is {head}, is a well known place.",
                             "{town} is home to the {n}.", "Many people know the {n}."])]
    if org["count"]:
        parts.append(pick(rng, org, ["Some {c} people work there.", "A staff of {c} keeps it going."]
                          if org["kind"] != "school" else ["Some {c} pupils learn there."]))
    if org["founded"]:
        parts.append(pick(rng, org, ["The {noun} goes back to {y}.", "Its story began in {y}."]))
    if org["opens"]:
        parts.append(pick(rng, org, ["Every weekday it opens at {h} am.", "Visitors may come in from {h} am."]))
    if org["town"] and "{town}" not in parts[0] and org["town"] not in parts[0]:
        parts.append(pick(rng, org, ["You can reach it in {town}."]))
    if org["head"] and org["head"] not in parts[0]:
        parts.append(pick(rng, org, ["The one in charge there is {head}."]))
    return org["name"], " ".join(parts)


def style_quote(rng, org):
    """An interview: the facts in the head's own words."""
    if not org["head"]:
        return style_relative(rng, org)
    said = []
    if org["opens"]:
        said.append(pick(rng, org, ["We open at {h} am every weekday", "Our doors open at {h} am"]))
    if org["count"]:
        said.append(pick(rng, org, ["There are {c} of us", "We are a team of {c}"] if org["kind"] != "school"
                         else ["We teach {c} pupils"]))
    if org["founded"]:
        said.append(pick(rng, org, ["the {noun} has been here since {y}", "we started in {y}"]))
    if not said:
        said.append("We love our work")
    who = pick(rng, org, ["says {head}, the {role} of the {n} in {town}", "says {head}, who runs the {n} in {town}",
                          "says {head}, {role} of the {n}"])
    text = f'"{said[0]}," {who}.'
    if len(said) > 1:
        text += f' "{" and ".join(s[0].upper() + s[1:] if i == 0 else s for i, s in enumerate(said[1:]))}."'
    return rng.choice([f"Meet the {org['role']}", "Interview", f"Five minutes with {org['head']}"]), text


def style_welcome(rng, org):
    """An "About us" page in the first person."""
    parts = [fill("Welcome to the {n}!", org)]
    if org["count"] or org["town"]:
        parts.append(pick(rng, org, ["We are a team of {c} in the heart of {town}.", "We are a small team based in {town}.",
                                     "You will find us in {town}.", "We are a team of {c}."]
                          if org["kind"] != "school" else ["We teach {c} pupils in {town}.", "We are a school in {town}.",
                                                            "We teach {c} pupils."]))
    if org["head"]:
        parts.append(pick(rng, org, ["Our {role} is {head}.", "{head} leads our team.",
                                     "{head} looks after everything here."]))
    if org["founded"]:
        parts.append(pick(rng, org, ["We opened in {y}.", "We have been here since {y}."]))
    if org["opens"]:
        parts.append(pick(rng, org, ["Come and see us from {h} am.", "We open at {h} am."]))
    return rng.choice(["About us", "Welcome", f"Welcome to the {org['name']}"]), " ".join(parts)


def directory_row(rng, org, separator):
    cells = [org["name"]]
    if org["town"]:
        cells.append(org["town"])
    if org["head"]:
        cells.append(fill(rng.choice(["{role}: {head}", "{role} {head}"]), org))
    if org["founded"]:
        cells.append(fill(rng.choice(["est. {y}", "since {y}"]), org))
    if org["count"]:
        cells.append(fill("{c} {staff}", org))
    if org["opens"]:
        cells.append(fill(rng.choice(["opens {h} am", "from {h} am"]), org))
    return separator.join(cells)


STYLES = {"prose": style_prose, "fact-sheet": style_fact_sheet, "notice": style_notice, "letter": style_letter,
          "bullets": style_bullets, "news": style_news,
          "relative": style_relative, "interview": style_quote, "welcome": style_welcome}
TRAIN_STYLES = ["prose", "fact-sheet", "notice", "letter", "bullets", "news"]
HELD_OUT_STYLES = ["relative", "interview", "welcome", "directory"]  # directory: several organisations in one document


def person_doc(rng, person, held_out_style):
    p, town, age = person["name"], person["born"], person["age"]
    if held_out_style:
        text = rng.choice([f"Now aged {age}, {p} still lives near {town}, the town where {p} was born.",
                           f"{p} | born in {town} | {age} years old",
                           f"Ask anyone in {town}: {p} was born there. {p} has just turned {age}."])
        return rng.choice([p, "Who is who", f"Portrait: {p}"]), text, "person-new"
    text = rng.choice([f"{p}\nPlace of birth: {town}\nAge: {age}", f"Born in: {town}\nAge: {age}",
                       f"{p} is a native of {town} and is now {age}.",
                       f"A native of {town}, {p} turned {age} this year.", f"{p}, {age}, was born and raised in {town}."])
    if text.startswith("Born in:"):
        return p, text, "person"
    return rng.choice([p, f"Profile: {p}", "Staff profile"]), text, "person"


# ---------------------------------------------------------------------------
# Questions: (kind, template) lists; HELD_OUT_QUESTIONS only in held-out.jsonl.

TRAIN_QUESTIONS = {
    "head": ["Who leads the {n}?", "Who runs the {n}?", "Who is in charge of the {n}?", "Who heads the {n}?",
             "Who is the {role} of the {n}?", "Who is the head of the {n}?", "Which person leads the {n}?"],
    "town": ["Where is the {n} based?", "Which town is the {n} in?", "In what town can the {n} be found?",
             "Where can I find the {n}?", "Where is the {n}?"],
    "founded": ["When was the {n} established?", "When was the {n} set up?", "Since when has the {n} existed?",
                "In what year was the {n} founded?"],
    "count": ["How many people work at the {n}?", "How many staff does the {n} employ?", "How big is the team at the {n}?"],
    "count-school": ["How many pupils attend the {n}?", "How many pupils go to the {n}?"],
    "opens": ["When does the {n} open?", "What time does the {n} open?", "At what time do the doors of the {n} open?",
              "How early does the {n} open?"],
    "born": ["Where is {p} from?", "What is the birthplace of {p}?", "In which town was {p} born?"],
    "age": ["What age is {p}?", "How old is {p} now?"],
    "head-born": ["Where was the person who leads the {n} born?", "Where does the {role} of the {n} come from?"],
}
HELD_OUT_QUESTIONS = {
    "head": ["Who is the boss of the {n}?", "Who is responsible for the {n}?", "Name the person who leads the {n}.",
             "Who is at the head of the {n}?"],
    "town": ["What town is the {n} in?", "Where does the {n} have its home?", "Tell me where the {n} is."],
    "founded": ["What year was the {n} established?", "In what year did the {n} start?"],
    "count": ["What is the number of staff at the {n}?", "How many people are employed by the {n}?"],
    "count-school": ["What is the number of pupils at the {n}?", "How many pupils does the {n} teach?"],
    "opens": ["From what time is the {n} open?", "What is the opening time of the {n}?"],
    "born": ["Which town does {p} come from?", "What is the home town of {p}?"],
    "age": ["What is the age of {p}?", "How many years old is {p}?"],
    "head-born": ["In which town was the person in charge of the {n} born?"],
}
# What a question kind asks for, by organisation field.
FIELD = {"head": "head", "town": "town", "founded": "founded", "count": "count", "count-school": "count",
         "opens": "opens"}
# Shares of the question kinds (the target organisation or person is in the documents).
QUESTION_WEIGHTS = {"head": 30, "town": 14, "founded": 10, "count": 10, "opens": 10, "born": 7, "age": 5,
                    "head-born": 5, "absent-org": 6, "absent-person": 3}


def question_text(rng, kind, new_question, **values):
    templates = (HELD_OUT_QUESTIONS if new_question else TRAIN_QUESTIONS)[kind]
    return rng.choice(templates).format(**values), not new_question


def answer_of(org, field):
    value = org[field]
    if value is None:
        return "unknown"
    return f"{value} am" if field == "opens" else str(value)


def forget_unstated(org, text):
    """A style may leave a fact out: then the documents do not hold it."""
    for field, pattern in (("town", "{}"), ("head", "{}"), ("founded", r"\b{}\b"), ("since", r"\b{}\b"),
                           ("count", r"\b{}\b"), ("opens", r"\b{} am\b")):
        if org[field] is not None and not re.search(pattern.format(re.escape(str(org[field]))), text):
            org[field] = None


def make_context(rng, names, held_out, n_questions):
    """Documents (1-6) and n_questions questions about them, each with its answer:
    one record per question, and the kinds of each. Several questions on the same
    documents (the organisation's head, its town, a year ...) make the answer
    depend on the question, not on the style of the document alone."""
    names.for_record(rng)
    rec = Record(rng, names)
    n_orgs = rng.choice([1, 1, 2, 2, 3, 3, 4])
    orgs = [rec.new_org() for _ in range(n_orgs)]
    # Look-alikes: another organisation with the same stem.
    if n_orgs > 1 and rng.random() < 0.4:
        orgs[-1] = rec.new_org(stem=orgs[0]["name"].split()[0])
    # The questions: (kind, target organisation), no two alike; most about the first organisation.
    plan = []
    while len(plan) < n_questions:
        qkind = rng.choices(list(QUESTION_WEIGHTS), weights=list(QUESTION_WEIGHTS.values()))[0]
        target = orgs[0] if not plan or len(orgs) == 1 or rng.random() < 0.6 else rng.choice(orgs[1:])
        if (qkind, id(target)) not in [(k, id(t)) for k, t in plan]:
            plan.append((qkind, target))
    for qkind, target in plan:
        if qkind in ("born", "age", "head-born", "absent-person") and not target["head"]:
            target["head"] = rec._unique_person(target["kind"])
    # Held-out: about half the records in train.jsonl's document families and question
    # templates (new names only); the others with a document family, a question
    # template or both that train.jsonl never uses.
    new_style, new_question = False, False
    if held_out:
        new_style, new_question = rng.choices([(False, False), (False, True), (True, False), (True, True)],
                                              weights=[50, 17, 18, 15])[0]
    styles = TRAIN_STYLES + (HELD_OUT_STYLES if new_style else [])
    style_of = {id(o): rng.choice(styles) for o in orgs}
    style_of[id(orgs[0])] = rng.choice(HELD_OUT_STYLES if new_style else TRAIN_STYLES)
    # Train: some documents in the generator's own sentences, so that new question
    # phrasings are also learnt on documents the model already reads.
    if not held_out:
        for o in orgs:
            if o["head"] and o["town"] and rng.random() < (0.15 if o is orgs[0] else 0.1):
                style_of[id(o)] = "generator"
    heads = {id(o): o["head"] for o in orgs}  # before a style leaves one out
    docs = []  # (title, text, style)
    directory = [o for o in orgs if style_of[id(o)] == "directory"]
    if directory:
        sep = rng.choice([" | ", "; ", ", "])
        rows = [directory_row(rng, o, sep) for o in directory]
        if len(rows) == 1 and len(orgs) > 1:  # a directory lists several
            extra = next(o for o in orgs if o not in directory)
            style_of[id(extra)] = "directory"
            directory.append(extra)
            rows.append(directory_row(rng, extra, sep))
        docs.append((rng.choice(["Directory", "Local services", "Who is where"]), "\n".join(rows), "directory"))
    for o in orgs:
        if style_of[id(o)] == "generator":
            doc = world.org_document(rng, o)
            title, text = doc["title"], doc["text"]
            forget_unstated(o, title + "\n" + text)
            docs.append((title, text, "generator"))
        elif style_of[id(o)] != "directory":
            title, text = STYLES[style_of[id(o)]](rng, o)
            forget_unstated(o, title + "\n" + text)
            docs.append((title, text, style_of[id(o)]))
    # Person documents: the heads the questions need, and some others.
    people_docs = []
    for qkind, target in plan:
        if qkind in ("born", "age", "head-born") and heads[id(target)] not in people_docs:
            people_docs.append(heads[id(target)])
    for o in orgs[1:]:
        if o["head"] and o["head"] not in people_docs and rng.random() < 0.25:
            people_docs.append(o["head"])
    person_style = {}
    for p in people_docs:
        title, text, person_style[p] = person_doc(rng, rec.person_facts(p), new_style and rng.random() < 0.7)
        docs.append((title, text, person_style[p]))
    questions = []
    for qkind, target in plan:
        head = heads[id(target)]
        values = {"n": target["name"], "role": target["role"]}
        if qkind in FIELD:
            if qkind == "count" and target["kind"] == "school":
                qkind = "count-school"
            question, seen_q = question_text(rng, qkind, new_question, **values)
            answer = answer_of(target, FIELD[qkind])
            source = style_of[id(target)]
        elif qkind in ("born", "age"):
            question, seen_q = question_text(rng, qkind, new_question, p=head)
            answer = str(rec.people[head][qkind])
            source = person_style[head]
        elif qkind == "head-born":
            question, seen_q = question_text(rng, qkind, new_question, **values)
            # Unknown where the organisation's document does not say who leads it.
            answer = rec.people[head]["born"] if target["head"] else "unknown"
            source = style_of[id(target)] + "+" + person_style[head]
        elif qkind == "absent-org":
            # A look-alike (same stem, another kind) or another organisation, not in the documents.
            absent = rec.new_org(stem=target["name"].split()[0] if rng.random() < 0.7 else None)
            kind = rng.choice(["head", "town", "founded", "opens"])
            question, seen_q = question_text(rng, kind, new_question, n=absent["name"], role=absent["role"])
            answer, source = "unknown", "absent"
        else:  # absent-person: someone with the head's first or last name, or a stranger
            first, last = head.split()[-2:]
            while True:
                other = rng.choice([f"{first} {names.last(rng)}", f"{names.first(rng)} {last}",
                                    f"{names.first(rng)} {names.last(rng)}"])
                if other not in rec.used and not any(other in text or other in title for title, text, _ in docs):
                    break
            rec.used.add(other)
            question, seen_q = question_text(rng, rng.choice(["born", "age"]), new_question, p=other)
            answer, source = "unknown", "absent"
        kinds = {"question": qkind.replace("count-school", "count"), "answerable": answer != "unknown",
                 "style": source, "seen_style": not new_style, "seen_question": seen_q, "documents": len(docs),
                 # Whether the organisation's kind word is one world.py uses ("Clinic") or new ("Pharmacy"),
                 # and whether a person answer carries a title as all of world.py's do.
                 "org_word": org_word(target["name"]),
                 "titled": answer.split()[0] in world.TITLES if qkind == "head" and answer != "unknown" else None}
        questions.append((question, answer, kinds))
    rng.shuffle(docs)
    documents = []
    for i, (title, text, _) in enumerate(docs):
        doc_id = world.document_id(rng, title, i)
        if any(d["id"] == doc_id for d in documents):  # two titled "Letter"
            doc_id = f"{doc_id}-{i + 1}"
        documents.append({"id": doc_id, "title": title, "text": text})
    out = []
    for question, answer, kinds in questions:
        if answer != "unknown":
            assert any(answer in d["text"] for d in documents), (answer, documents)
        out.append(({"documents": documents, "question": question, "answer": answer}, kinds))
    entities = set(rec.used) | {o["town"] for o in orgs if o["town"]} | {p["born"] for p in rec.people.values()}
    return out, entities


def org_word(name):
    generator = {n for k in world.KINDS.values() for n in k["names"]}
    held_out_only = {n for k in KINDS.values() for n in k["held_out_names"]}
    word = next(n for k in KINDS.values() for n in list(k["names"]) + list(k["held_out_names"]) if name.endswith(" " + n))
    return "generator" if word in generator else "held-out only" if word in held_out_only else "new"


def preserve_records(rng, count):
    """The generator's own prompts on the validation split, one question each,
    single-hop, two-hop and unanswerable in turn, as long as the model's own
    prompts are (a preserve set of short prompts only let run 1 lose 9 points
    on the 20-30 document evaluation: docs/finetune.md)."""
    pools = world.Pools("validation")
    out, kinds = [], []
    order = ["single", "two-hop", "unanswerable"]
    while len(out) < count:
        # The model's own workload (models/README.md): 3-10 documents, and
        # 20-30 (about its whole context), half each.
        n_docs = rng.randint(3, 10) if rng.random() < 0.5 else rng.randint(20, 30)
        example = world.make_example(rng, pools, n_docs)
        want = order[len(out) % 3]
        qs = [q for q in example["questions"] if q["kind"] == want]
        if not qs:
            continue
        q = rng.choice(qs)
        docs = [{"id": d["id"], "title": d["title"], "text": d["text"]} for d in example["documents"]]
        out.append({"documents": docs, "question": q["question"], "answer": q["answer"]})
        kinds.append({"question": q["kind"], "answerable": q["answer"] != "unknown", "style": "generator",
                      "seen_style": True, "seen_question": True, "documents": len(docs)})
    return out, kinds


def spelling_records(records):
    """Each distinct person and town of the answers in the generator's own sentences
    (world.py's templates, people with a title as there), so that a wrong answer
    means the model cannot spell it rather than that it does not read the style."""
    rng = random.Random("spelling")
    answers = sorted({r["answer"] for r in records if r["answer"] != "unknown" and not r["answer"][0].isdigit()})
    out = []
    for i, answer in enumerate(answers):
        stem = world.ORG_STEMS[i % len(world.ORG_STEMS)]
        # A town is a single word from the pools; a person has two words and maybe a title.
        if " " in answer:
            kind = "clinic" if answer.startswith(("Dr.", "Prof.")) else "office"
            head = answer if answer.split()[0] in world.TITLES else f"{rng.choice(['Mr.', 'Ms.', 'Mrs.'])} {answer}"
            org = {"kind": kind, "name": f"{stem} {'Clinic' if kind == 'clinic' else 'Town Office'}", "head": head,
                   "town": "Harlowby", "founded": None, "count": None, "opens": None}
            answer, question = head, f"Who is the {world.KINDS[kind]['head']} of the {org['name']}?"
        else:
            org = {"kind": "clinic", "name": f"{stem} Clinic", "head": "Dr. Mira Osei", "town": answer,
                   "founded": None, "count": None, "opens": None}
            question = f"In which town is the {org['name']}?"
        doc = world.org_document(rng, org)
        out.append({"documents": [{"id": "1", "title": doc["title"], "text": doc["text"]}], "question": question,
                    "answer": answer})
    return out


def check_model(path, files):
    """Every answer token must have a live embedding; report dead tokens elsewhere."""
    import math
    import struct
    from gguf import read_tensors
    from spm import SpmTokenizer
    tok = SpmTokenizer(path)
    shape, type_, data = read_tensors(path)["token_embd.weight"]
    n_embd, n_vocab = shape
    row = len(data) // n_vocab

    def vector(i):
        r = data[i * row:(i + 1) * row]
        if type_ == 0:
            return struct.unpack(f"<{n_embd}f", r)
        out = []
        for b in range(0, row, 34):
            d = struct.unpack("<e", r[b:b + 2])[0]
            out += [d * q for q in struct.unpack("<32b", r[b + 2:b + 34])]
        return out

    # Tokens never trained all keep one shared embedding: find it as the most common norm.
    norms = [round(math.sqrt(sum(x * x for x in vector(i))), 3) for i in range(n_vocab)]
    common = max(set(norms), key=norms.count)
    dead = {i for i, n in enumerate(norms) if n == common}
    print(f"{path}: {n_vocab - len(dead)} live tokens, {len(dead)} dead (shared norm {common})")
    ok = True
    for name, records in files:
        bad_answers, dead_input = {}, {}
        for r in records:
            ids = tok.encode(" " + r["answer"], space_prefix=False)
            for i in ids:
                if i in dead:
                    bad_answers[r["answer"]] = tok.tokens[i]
            text = r["question"] + " " + " ".join(d["title"] + " " + d["text"] for d in r["documents"])
            for i in tok.encode(text):
                if i in dead:
                    dead_input[tok.tokens[i]] = dead_input.get(tok.tokens[i], 0) + 1
        print(f"{name}: answers with a dead token: {len(bad_answers)}; dead tokens in documents and questions: "
              f"{sum(dead_input.values())} ({len(dead_input)} distinct; most common: "
              + ", ".join(f"{t} {c}" for t, c in sorted(dead_input.items(), key=lambda x: -x[1])[:12]) + ")")
        for a, t in sorted(bad_answers.items()):
            print(f"  answer {a!r}: dead token {t!r}")
        ok = ok and not bad_answers
    return ok


def write(path, records, kinds):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    if kinds is not None:
        with open(re.sub(r"\.jsonl$", ".kinds.json", path), "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(k) for k in kinds) + "\n]\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "examples", "finetune", "demo"))
    ap.add_argument("--seed", default="18")
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--held-out", type=int, default=150)
    ap.add_argument("--preserve", type=int, default=160)
    ap.add_argument("--train-questions", type=int, default=1, help="train.jsonl: questions (records) per set of documents")
    ap.add_argument("--held-out-questions", type=int, default=1, help="held-out.jsonl: questions per set of documents")
    ap.add_argument("--vocab", default=os.path.join(ROOT, "models", "frugal-demo-qa-q8_0.gguf"),
                    help="GGUF whose vocabulary's name pieces spell the made-up training names (world.Pools)")
    ap.add_argument("--check-model", metavar="GGUF", help="check that every answer token has a live embedding")
    ap.add_argument("--spelling", metavar="FILE", help="also write the name and town answers in the generator's sentences")
    args = ap.parse_args()
    if args.train > 300:
        ap.error("issue #18 allows at most 300 training examples")
    from gguf import read_metadata
    vocab_tokens = read_metadata(args.vocab)["tokenizer.ggml.tokens"].value
    sets, entities = {}, {}
    per_context = {"train": args.train_questions, "held-out": args.held_out_questions}
    for name, count, split, held_out in (("train", args.train, "train", False),
                                         ("held-out", args.held_out, "test", True)):
        rng = random.Random(f"{args.seed}:{name}")
        names = Names(split, held_out, vocab_tokens if split == "train" else None)
        records, kinds, seen, entities[name] = [], [], set(), set()
        while len(records) < count:
            n_questions = min(per_context[name], count - len(records))
            context, used = make_context(rng, names, held_out, n_questions)
            for record, k in context:
                key = json.dumps(record, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    records.append(record)
                    kinds.append(k)
            entities[name] |= used
        sets[name] = (records, kinds)
    sets["preserve"] = preserve_records(random.Random(f"{args.seed}:preserve"), args.preserve)
    # Train and held-out share no person, town, organisation or document, nor a name of world.py's pools.
    shared = entities["train"] & entities["held-out"]
    assert not shared, shared
    train_docs = {d["text"] for r in sets["train"][0] for d in r["documents"]}
    assert not train_docs & {d["text"] for r in sets["held-out"][0] for d in r["documents"]}
    words = {name: {w for r in recs for d in r["documents"]
                    for w in re.findall(r"[A-Z][a-z]+", d["text"] + " " + d["title"])}
             for name, (recs, _) in sets.items()}
    for pool in (FIRST_NAMES, SURNAMES, ORG_STEMS):
        assert not set(pool) & words["train"] & words["held-out"], set(pool) & words["train"] & words["held-out"]
    os.makedirs(args.out, exist_ok=True)
    for name, (records, kinds) in sets.items():
        write(os.path.join(args.out, f"{name}.jsonl"), records, kinds)
        unknown = sum(r["answer"] == "unknown" for r in records)
        ndocs = [len(r["documents"]) for r in records]
        print(f"{name}.jsonl: {len(records)} records, {unknown} unknown, documents {min(ndocs)}-{max(ndocs)} "
              f"(mean {sum(ndocs) / len(ndocs):.1f})")
    if args.spelling:
        write(args.spelling, spelling_records(sets["train"][0] + sets["held-out"][0]), None)
    if args.check_model:
        if not check_model(args.check_model, [(n, recs) for n, (recs, _) in sets.items()]):
            sys.exit(1)


if __name__ == "__main__":
    main()

"""Synthetic knowledge worlds for the demo QA model (deterministic from a seed).

A world is a set of organisations of the kinds the OAE paper names (clinics,
schools, municipal offices, small firms) with people, towns, years and
numbers, written up as short documents in varied sentences, and questions of
three kinds about them:

- single-hop: the answer is in one document, the entity is named
  ("Who directs the Harlow Clinic?");
- two-hop: an entity must be found first ("In which town is the clinic that
  Dr. Mira Osei directs?", "Where was the director of the Harlow Clinic born?",
  the latter across two documents);
- unanswerable: about an entity or fact that is not in the documents, answer
  "unknown" (distractors with similar names make this hard to guess).

Names are split three ways (train / validation / test) before anything is
generated, so the splits share no entities.
"""
import random
import re

FIRST_NAMES = """Mira Tom Anna Lena Omar Ravi Sofia Jonas Priya Ines Kofi Elena Marek Yuki Hana Samir Nora Felix
Amara Lucas Zara Ibrahim Clara Mateo Aisha Hugo Leila Emil Freya Tariq Greta Nikolai Asha Bruno Maya Idris Lotte
Rosa Kenji Farah Otto Selma Diego Mina Viktor Alma Hassan Ingrid Pavel Naomi Rahul Elif Anton Chiara Malik Britta
Tomas Layla Sven Amina Carlos Ada Yusuf Helga Luca Dina Arjun Maren Said Irene Pablo Noor Erik Lina Jamal Vera Kai
Petra Karim Julia Moritz Rania Gustav Leona Ahmed Silke Marco Ayla Oskar Nadia Ruben Eva Sami Tilda Hamid Frida
Andrei Sana Jakob Zoe Bilal Agnes Tobias Yara Milan Elsa Omid Dora Linus Rima Felipe Hilde Deniz Ella Kaspar""".split()

SURNAMES = """Osei Adler Brandt Okafor Lindqvist Moreau Haddad Novak Tanaka Silva Kowalski Mensah Fischer Rossi
Petrov Nakamura Achebe Larsen Costa Weber Ibrahim Jensen Dubois Sato Kovac Mbeki Horvat Schmidt Ferreira Nilsson
Yilmaz Kruger Alvarez Bauer Owusu Lund Marchetti Kaya Olsen Romero Hoffmann Diallo Berg Santos Keller Mwangi Holm
Duarte Wagner Chen Eriksen Vargas Richter Banda Strom Moretti Aydin Falk Castro Vogel Kariuki Dahl Pereira Lange
Boateng Sund Navarro Kraus Njoroge Ekman Rinaldi Demir Hagen Ortiz Wolff Asante Lind Mendes Brenner Otieno Nyberg
Fuentes Seidel Quaye Holt Barros Winter Kamau Aberg Lopes Roth Sesay Blom Ramos Stein Appiah Wik Correia Frank
Achterberg Ilunga Sandberg Medina Graf Tembo Hedlund Pinto Busch Agyeman Lindgren Herrera Kuhn Phiri Sjoberg""".split()

TITLES = ["Dr.", "Mr.", "Ms.", "Mrs.", "Prof."]

PLACE_STEMS = """West East North South Oak Ash Elm Mill Stone Clay River Brook Fox Hare Kings Queens Market Church
Bridge Marsh Heath Moor Lake Green Red White Black Silver Gold Iron Copper Salt Wool Corn Hay Apple Cherry Rose
Thorn Birch Willow Pine Cedar Maple Holly Ivy Fern Moss Rock Hill Vale Glen Dale Cliff Bay Port Haven Sand Shell
Wind Rain Snow Frost Sun Star Moon Bell Crown Castle Tower Abbey Priory Grange Manor Forge Wheel Anchor Harbor""".split()
PLACE_SUFFIXES = ["brook", "field", "ton", "ford", "wick", "bury", "stead", "by", "ham", "worth", "mouth", "dale"]

ORG_STEMS = """Harlow Maple Riverside Oakfield Bramley Carver Linden Ashby Fairview Greystone Hollins Kestrel
Larkspur Meadow Northgate Orchard Pembroke Quarry Rowan Saxon Tamworth Upton Valley Wexford Yarrow Alder Beacon
Chapel Dunmore Eastwood Fenwick Garnet Hawthorn Ingram Juniper Kirkby Lowther Milford Newbury Ockley Parkside
Redhill Sheldon Thornbury Underwood Vernon Whitby Aldgate Bellamy Crestwood Danbury Elmstead Foxley Glenfield
Hartley Ivybridge Jarrow Kingsley Langley Marlow Netley Oldfield Penrose Radley Selby Tilbury Verity Winslow Ashdown
Bexley Coombe Denholm Everly Fulton Gresham Holloway Keswick Lytton Morley Norcott Orwell Preston Rydal Stanton""".split()

# Kinds of organisation: the words of their names, who heads them and what
# their documents may say.
KINDS = {
    "clinic": {"names": ["Clinic", "Health Centre", "Medical Practice", "Dental Clinic"], "head": "director",
               "verbs": ["directs", "runs", "leads"], "people": "staff", "titles": ["Dr.", "Dr.", "Prof."]},
    "school": {"names": ["School", "Primary School", "Academy", "High School"], "head": "head teacher",
               "verbs": ["leads", "runs", "heads"], "people": "pupils", "titles": ["Mr.", "Ms.", "Mrs.", "Dr."]},
    "office": {"names": ["Town Office", "Registry Office", "Public Library", "Water Board"], "head": "manager",
               "verbs": ["manages", "runs", "heads"], "people": "staff", "titles": ["Mr.", "Ms.", "Mrs."]},
    "firm": {"names": ["Bakery", "Garage", "Printing Works", "Hardware Store", "Bicycle Shop"], "head": "owner",
             "verbs": ["owns", "runs", "manages"], "people": "employees", "titles": ["Mr.", "Ms.", "Mrs."]},
}
KIND_WORD = {"clinic": "clinic", "school": "school", "office": "office", "firm": "business"}

FILLERS = [
    "Visitors are asked to arrive a few minutes early.", "Parking is available behind the building.",
    "The entrance is accessible by wheelchair.", "Appointments can be made by telephone.",
    "It was renovated a few years ago.", "Local people speak well of it.", "A small garden lies next to it.",
    "The building is painted blue.", "It is closed on public holidays.", "Notices are posted by the door.",
]


def _split_pool(items, split):
    """Deterministic three-way split of a name pool: 70% / 15% / 15%."""
    rng = random.Random("pool:" + items[0])
    shuffled = items[:]
    rng.shuffle(shuffled)
    a, b = int(len(shuffled) * 0.7), int(len(shuffled) * 0.85)
    return {"train": shuffled[:a], "validation": shuffled[a:b], "test": shuffled[b:]}[split]


SYLLABLES = """ba be bi bo bu da de di do du fa fe fi ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu
ra re ri ro ru sa se si so su ta te ti to tu va ve vi vo za ze zo bra bri dra fro gra kra pra tra ston mar ber wen
dal rik lin mor tam sel hol kar vin dor ess ard ell orn ust ald""".split()


def pseudo_name(rng, syllables=(2, 3)):
    """A made-up name ("Kovimar"): training on names that mean nothing makes
    the model copy names from the documents rather than recall them."""
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(*syllables))).capitalize()


# Words of the prompt and the document templates: a made-up name must not be one of them.
TEMPLATE_WORDS = set("""The This It Its In An A You Question Answer Document Documents Who Where When What Which How
Based Born There Visitors Parking Appointments Local Notices Doors If They Is Of At On And Or To Dr Mr Ms Mrs Prof
Unknown Use Using Only Below Do Not Contain Answer Year Town Since Years Old Aged Still Often Open Opens""".split())


class NamePieces:
    """Name-like pieces of the vocabulary: a capitalised word start ("▁Kru")
    and lower-case continuations ("ger"). Names built from them make every
    such token an answer the model has to copy in training, so a real name in
    the test split ("Kruger") is spelled with tokens the model has learnt to
    produce, without the split ever seeing that name."""

    def __init__(self, vocab_tokens, excluded_words):
        self.starts = [t[1:] for t in vocab_tokens if re.fullmatch("\u2581[A-Z][a-z]{1,11}", t)
                       and t[1:] not in TEMPLATE_WORDS]
        self.continuations = [t for t in vocab_tokens if re.fullmatch("[a-z]{1,6}", t)]
        self.excluded = set(excluded_words)

    def name(self, rng):
        while True:
            name = rng.choice(self.starts)
            if len(name) < 4 or rng.random() < 0.5:
                name += rng.choice(self.continuations)
            if name not in self.excluded:
                return name


class Pools:
    """Names one split draws from. The training split also makes up names
    (most of the time when it is given the vocabulary's name pieces), so
    that answering means copying from the documents; validation and test
    names are real names never seen in training."""

    def __init__(self, split, vocab_tokens=None):
        self.split = split
        self._first = _split_pool(FIRST_NAMES, split)
        self._last = _split_pool(SURNAMES, split)
        self._org_stems = _split_pool(ORG_STEMS, split)
        self._town_stems = _split_pool(PLACE_STEMS, split)
        self._pieces = None
        if vocab_tokens is not None and split == "train":
            held_out = [w for pool in (FIRST_NAMES, SURNAMES, ORG_STEMS, PLACE_STEMS)
                        for other in ("validation", "test") for w in _split_pool(pool, other)]
            self._pieces = NamePieces(vocab_tokens, held_out)

    def _made_up(self, rng, syllables=(2, 3)):
        """A made-up name, or None for a name from the pool."""
        if self.split != "train" or rng.random() >= (0.7 if self._pieces else 0.5):
            return None
        if self._pieces and rng.random() < 0.6:
            return self._pieces.name(rng)
        return pseudo_name(rng, syllables)

    def first(self, rng):
        return self._made_up(rng) or rng.choice(self._first)

    def last(self, rng):
        return self._made_up(rng) or rng.choice(self._last)

    def org_stem(self, rng):
        return self._made_up(rng) or rng.choice(self._org_stems)

    def town(self, rng):
        stem = self._made_up(rng, (1, 2)) or rng.choice(self._town_stems)
        return stem + rng.choice(PLACE_SUFFIXES)

    def for_world(self, rng):
        """The names one world draws from. Validation and test worlds draw
        from their whole (small) pools, so their people and towns look alike
        ("Marketby", "Marketdale"); a training world gets a small pool of its
        own for the same reason: with every name new, copying only the first
        piece of a name would be enough."""
        if self.split != "train":
            return self
        return WorldNames(rng, self)


class WorldNames:
    """A few first names, surnames, organisation and town stems for one world."""

    def __init__(self, rng, pools):
        self._first = [pools.first(rng) for _ in range(rng.randint(6, 18))]
        self._last = [pools.last(rng) for _ in range(rng.randint(6, 18))]
        self._org_stems = [pools.org_stem(rng) for _ in range(rng.randint(6, 20))]
        self._town_stems = [pools._made_up(rng, (1, 2)) or rng.choice(pools._town_stems)
                            for _ in range(rng.randint(4, 14))]

    def first(self, rng):
        return rng.choice(self._first)

    def last(self, rng):
        return rng.choice(self._last)

    def org_stem(self, rng):
        return rng.choice(self._org_stems)

    def town(self, rng):
        return rng.choice(self._town_stems) + rng.choice(PLACE_SUFFIXES)


def make_world(rng, pools, n_orgs):
    """Organisations (some with look-alike names) and people."""
    orgs, people, used_names, used_people = [], {}, set(), set()
    pools = pools.for_world(rng)

    def new_person(kind):
        while True:
            title = rng.choice(KINDS[kind]["titles"])
            name = f"{title} {pools.first(rng)} {pools.last(rng)}"
            core = name.split(" ", 1)[1]
            if core not in used_people:
                used_people.add(core)
                people[name] = {"name": name, "born": pools.town(rng), "age": rng.randint(29, 71)}
                return name

    while len(orgs) < n_orgs:
        kind = rng.choice(list(KINDS))
        # Look-alikes: reuse a stem with another name word, or a near stem.
        if orgs and rng.random() < 0.35:
            stem = rng.choice(orgs)["stem"]
        else:
            stem = pools.org_stem(rng)
        name = f"{stem} {rng.choice(KINDS[kind]['names'])}"
        if name in used_names:
            continue
        used_names.add(name)
        orgs.append({
            "kind": kind, "stem": stem, "name": name, "town": pools.town(rng),
            "head": new_person(kind), "founded": rng.randint(1890, 2021) if rng.random() < 0.9 else None,
            "count": rng.randint(3, 420) if rng.random() < 0.8 else None,
            "opens": rng.choice([7, 8, 9, 10]) if rng.random() < 0.7 else None,
        })
    return orgs, people


def org_document(rng, org):
    k = KINDS[org["kind"]]
    n, head, town = org["name"], org["head"], org["town"]
    verb = rng.choice(k["verbs"])
    facts = [
        rng.choice([f"The {n} is in {town}.", f"The {n} is located in {town}.", f"You will find the {n} in {town}.",
                    f"Based in {town}, the {n} serves the surrounding area."]),
        rng.choice([f"{head} {verb} the {n}.", f"The {k['head']} of the {n} is {head}.",
                    f"The {n} is {'run' if verb == 'runs' else 'led'} by {head}.",
                    f"Its {k['head']} is {head}."]),
    ]
    if org["founded"]:
        facts.append(rng.choice([f"It was founded in {org['founded']}.", f"The {n} opened in {org['founded']}.",
                                 f"It has existed since {org['founded']}."]))
    if org["count"]:
        facts.append(rng.choice([f"It has {org['count']} {k['people']}.",
                                 f"There are {org['count']} {k['people']} at the {n}.",
                                 f"The {n} counts {org['count']} {k['people']}."]))
    if org["opens"]:
        facts.append(rng.choice([f"It opens at {org['opens']} am.", f"Doors open at {org['opens']} am.",
                                 f"The {n} opens its doors at {org['opens']} am each weekday."]))
    # The first sentence names the organisation; the rest in any order.
    rest = facts[1:]
    rng.shuffle(rest)
    if rng.random() < 0.25:
        rest.insert(rng.randint(0, len(rest)), rng.choice(FILLERS))
    return {"title": n, "text": " ".join([facts[0]] + rest)}


def person_document(rng, person):
    p = person["name"]
    facts = [rng.choice([f"{p} was born in {person['born']}.", f"{p} comes from {person['born']}.",
                         f"Born in {person['born']}, {p} still visits often."]),
             rng.choice([f"{p} is {person['age']} years old.", f"{p} is aged {person['age']}."])]
    rng.shuffle(facts)
    return {"title": p, "text": " ".join(facts)}


def document_id(rng, title, index):
    """Ids as users write them: slugs, numbers, file-like names."""
    style = rng.random()
    if style < 0.4:
        return "-".join(w.strip(".").lower() for w in title.split())
    if style < 0.7:
        return str(index + 1)
    return f"doc{index + 1:02d}"


def questions_for(rng, orgs, people, present_orgs, present_people, absent_orgs):
    """(question, answer, kind, source titles) answerable or not from what is present;
    the sources are the titles of the documents that hold the answer."""
    out = []
    for org in present_orgs:
        k, n = KINDS[org["kind"]], org["name"]
        role = k["head"]
        out.append((rng.choice([f"Who {rng.choice(k['verbs'])} the {n}?", f"Who is the {role} of the {n}?"]),
                    org["head"], "single", [n]))
        out.append((rng.choice([f"In which town is the {n}?", f"Where is the {n} located?"]), org["town"], "single", [n]))
        q = rng.choice([f"When was the {n} founded?", f"In which year was the {n} founded?"])
        out.append((q, str(org["founded"]) if org["founded"] else "unknown",
                    "single" if org["founded"] else "unanswerable", [n] if org["founded"] else []))
        q = f"How many {k['people']} does the {n} have?"
        out.append((q, str(org["count"]) if org["count"] else "unknown", "single" if org["count"] else "unanswerable",
                    [n] if org["count"] else []))
        q = f"At what time does the {n} open?"
        out.append((q, f"{org['opens']} am" if org["opens"] else "unknown",
                    "single" if org["opens"] else "unanswerable", [n] if org["opens"] else []))
        word, head = KIND_WORD[org["kind"]], org["head"]
        verb = rng.choice(k["verbs"])
        out.append((rng.choice([f"In which town is the {word} that {head} {verb}?",
                                f"Where is the {word} whose {role} is {head}?"]), org["town"], "two-hop", [n]))
        if org["founded"]:
            out.append((f"When was the {word} that {head} {verb} founded?", str(org["founded"]), "two-hop", [n]))
        born = people[head]["born"] if head in present_people else "unknown"
        out.append((rng.choice([f"Where was the {role} of the {n} born?", f"In which town was the {role} of the {n} born?"]),
                    born, "two-hop" if born != "unknown" else "unanswerable", [n, head] if born != "unknown" else []))
    for name in present_people:
        out.append((f"Where was {name} born?", people[name]["born"], "single", [name]))
        out.append((f"How old is {name}?", str(people[name]["age"]), "single", [name]))
    for org in absent_orgs:
        k, n = KINDS[org["kind"]], org["name"]
        out.append((rng.choice([f"Who {rng.choice(k['verbs'])} the {n}?", f"In which town is the {n}?",
                                f"When was the {n} founded?"]), "unknown", "unanswerable", []))
        out.append((f"Where was {org['head']} born?", "unknown", "unanswerable", []))
    return out


def make_example(rng, pools, n_docs):
    """One context: documents (organisations and some of their heads) and
    questions about it. Some organisations exist in the world but are left
    out of the documents: questions about them have the answer "unknown"."""
    n_orgs = max(2, int(n_docs * 0.55))
    orgs, people = make_world(rng, pools, n_orgs + max(1, n_orgs // 5))
    present_orgs, absent_orgs = orgs[:n_orgs], orgs[n_orgs:]
    heads = [o["head"] for o in present_orgs]
    # A list, not a set: set order changes with Python's hash seed, and the
    # worlds must depend on the seed alone.
    present_people = rng.sample(heads, min(len(heads), n_docs - n_orgs))
    docs = [org_document(rng, o) for o in present_orgs] + [person_document(rng, people[p]) for p in present_people]
    rng.shuffle(docs)
    for i, doc in enumerate(docs):
        doc["id"] = document_id(rng, doc["title"], i)
    questions = questions_for(rng, orgs, people, present_orgs, present_people, absent_orgs)
    return {"documents": docs, "questions": [{"question": q, "answer": a, "kind": k, "sources": src}
                                             for q, a, k, src in questions]}

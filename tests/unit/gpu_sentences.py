"""A few thousand English sentences over ten topics, made deterministically from small
word lists (shipped as code, not data). Embedded with MiniLM they give the shape real
text embeddings have (dense topic clusters, many near neighbours close in score), which
is where fp16 scores lose neighbours at the k boundary (test_gpu_cuda.py)."""
from __future__ import annotations

import itertools
import random

TOPICS = {
    "cooking": (["the chef", "my grandmother", "a line cook", "the baker", "our neighbour"],
                ["simmers", "roasts", "slices", "seasons", "bakes", "stirs"],
                ["the tomato sauce", "a loaf of rye bread", "fresh salmon", "the onion soup",
                 "a chocolate cake", "garlic and basil"],
                ["for twenty minutes", "over a low flame", "before dinner", "with sea salt"]),
    "astronomy": (["the telescope", "an astronomer", "the probe", "the observatory", "a student"],
                  ["tracks", "photographs", "measures", "detects", "maps", "observes"],
                  ["a distant galaxy", "the rings of Saturn", "a faint comet", "solar flares",
                   "the moons of Jupiter", "a red dwarf star"],
                  ["on a clear night", "through the clouds", "for the first time", "every winter"]),
    "football": (["the striker", "the goalkeeper", "our coach", "the home team", "a young winger"],
                 ["scores", "defends", "passes", "celebrates", "misses", "trains for"],
                 ["a late penalty", "the corner kick", "the cup final", "a header",
                  "the league title", "an away match"],
                 ["in extra time", "before the break", "in the rain", "after a long season"]),
    "finance": (["the central bank", "an investor", "the startup", "the pension fund", "a trader"],
                ["raises", "cuts", "buys", "sells", "hedges", "reports"],
                ["interest rates", "government bonds", "its quarterly earnings", "tech shares",
                 "the currency risk", "a large dividend"],
                ["this quarter", "despite inflation", "after the announcement", "at a loss"]),
    "gardening": (["the gardener", "my aunt", "a volunteer", "the nursery", "our landlord"],
                  ["plants", "prunes", "waters", "harvests", "fertilises", "digs up"],
                  ["the rose bushes", "tomato seedlings", "an apple tree", "the herb bed",
                   "spring bulbs", "the potato patch"],
                  ["in early spring", "every morning", "after the frost", "in the shade"]),
    "medicine": (["the surgeon", "a nurse", "the clinic", "our doctor", "the pharmacist"],
                 ["treats", "examines", "prescribes", "monitors", "vaccinates", "operates on"],
                 ["a broken wrist", "the patient's fever", "antibiotics", "high blood pressure",
                  "a child with asthma", "the infected wound"],
                 ["in the emergency room", "overnight", "with great care", "twice a day"]),
    "programming": (["the compiler", "a developer", "the test suite", "our build server", "the intern"],
                    ["refactors", "debugs", "compiles", "deploys", "profiles", "rewrites"],
                    ["the parser", "a memory leak", "the web service", "the database schema",
                     "a race condition", "the search index"],
                    ["before the release", "in production", "late at night", "with fewer locks"]),
    "music": (["the orchestra", "a violinist", "the band", "our choir", "the pianist"],
              ["rehearses", "performs", "records", "composes", "tunes", "improvises"],
              ["a slow sonata", "the national anthem", "a jazz standard", "the new album",
               "a folk ballad", "the second movement"],
              ["on stage", "for the festival", "in a small club", "without a conductor"]),
    "travel": (["the tourists", "a backpacker", "the airline", "our guide", "the ferry"],
               ["visits", "crosses", "books", "explores", "leaves", "returns to"],
               ["the old harbour", "a mountain village", "the night train", "the museum",
                "a quiet beach", "the border town"],
               ["at dawn", "in the off season", "on a tight budget", "after a long delay"]),
    "weather": (["the storm", "a cold front", "the forecast", "heavy rain", "the heatwave"],
                ["floods", "reaches", "threatens", "cools", "batters", "dries out"],
                ["the coastal towns", "the northern valleys", "the farmland", "the city centre",
                 "the river banks", "the ski resorts"],
                ["by the weekend", "overnight", "for three days", "earlier than expected"]),
}


def sentences(n: int = 3000, seed: int = 0) -> list[str]:
    """``n`` distinct sentences (at most 7,200), in a fixed order."""
    out = []
    for topic, (subj, verb, obj, tail) in TOPICS.items():
        for s, v, o, t in itertools.product(subj, verb, obj, tail):
            out.append(f"{s[0].upper()}{s[1:]} {v} {o} {t}.")
    random.Random(seed).shuffle(out)
    return out[:n]

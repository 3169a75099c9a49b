"""``nucleotides.dinucleotide_shuffle``: the Altschul-Erickson shuffle, checked against brute-force
enumeration of every sequence with the same dinucleotide counts and ends."""

import random
from collections import Counter

from scipy.stats import chisquare

from rnnkit.data.nucleotides import dinucleotide_shuffle, kmers


def test_keeps_dinucleotides_and_ends_of_any_sequence():
    rng = random.Random(0)
    for _ in range(300):
        sequence = "".join(rng.choice("ACGTN") for _ in range(rng.randint(0, 60)))
        shuffled = dinucleotide_shuffle(sequence, rng)
        assert Counter(kmers(shuffled, 2)) == Counter(kmers(sequence, 2))
        assert shuffled[:1] == sequence[:1] and shuffled[-1:] == sequence[-1:] and len(shuffled) == len(sequence)


def every_sequence(first: str, doublets: Counter) -> list[str]:
    """All sequences starting with ``first`` that use exactly ``doublets``: depth-first, letter by letter."""
    if not +doublets:
        return [first]
    found = []
    for (a, b), n in doublets.items():
        if a == first[-1] and n:
            found += every_sequence(first + b, doublets - Counter({(a, b): 1}))
    return found


def test_draws_every_sequence_with_the_same_dinucleotides_equally_often():
    sequence = "TACAGTACGTTAGC"  # 72 sequences share its dinucleotides
    every = sorted(every_sequence(sequence[0], Counter(zip(sequence, sequence[1:]))))
    assert sequence in every and len(every) == len(set(every)) == 72
    rng = random.Random(1)
    draws = Counter(dinucleotide_shuffle(sequence, rng) for _ in range(200 * len(every)))
    assert set(draws) == set(every)
    assert chisquare([draws[s] for s in every]).pvalue > 1e-3


def test_the_same_generator_state_gives_the_same_shuffle():
    sequence = "UGAGGUAGUAGGUUGUAUAGUU".replace("U", "T")
    assert dinucleotide_shuffle(sequence, random.Random(7)) == dinucleotide_shuffle(sequence, random.Random(7))
    assert len({dinucleotide_shuffle(sequence, random.Random(s)) for s in range(20)}) > 10

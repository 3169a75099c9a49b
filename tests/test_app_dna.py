"""rnnkit dna: reading and normalising FASTA/FASTQ, the k-mer and Markov baselines against formulas written
out here, the family split, one-line errors for bad input; and (slow) a classifier and a language model
that learn generated sequences, beat the baselines on them, round-trip predict/evaluate/sample and give the
same bits for the same seed, also after a kill and a resume."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from collections import Counter

import numpy as np
import pytest

from app_support import assert_reproducible_and_resumable, training_losses
from rnnkit.apps import dna
from rnnkit.cli.main import main
from rnnkit.data import nucleotides
from rnnkit.data.nucleotides import MarkovModel, Record, kmer_counts, normalize, read_records
from rnnkit.datasets import dna as hairpins
from rnnkit.errors import InputError

pytest.importorskip("Bio", reason="needs biopython (pip install 'rnnkit[dna]')")


def fasta(path, records, *, compress=False):
    text = "".join(f">{name} some description\n{seq}\n" for name, seq in records)
    if compress:
        with gzip.open(path, "wt") as file:
            file.write(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------- reading, alphabet
def test_normalize_case_rna_ambiguity_and_gaps():
    assert normalize("acgu") == "ACGT"
    assert normalize("NRYSWKMBDHV") == "N" * 11
    assert normalize("AC-G.T*") == "ACGT"


def test_a_protein_is_refused_naming_the_record_and_letters():
    with pytest.raises(InputError, match=r"record 'p1' .*not nucleotide codes: E, F, I, L, P, Q.*protein"):
        normalize("MKVLAAGIVGLLLAQEFPQ", "p1")


def test_fasta_gzip_and_fastq_are_read_and_normalised(tmp_path):
    path = fasta(tmp_path / "x.fa.gz", [("r1", "acguN"), ("r2", "GGRY")], compress=True)
    records = read_records(path)
    assert [(r.id, r.description, r.sequence, r.rna) for r in records] == [
        ("r1", "some description", "ACGTN", True), ("r2", "some description", "GGNN", False)]
    fq = tmp_path / "reads.fastq"
    fq.write_text("@read1\nACGT\n+\nIIII\n@read2\nttga\n+\nIIII\n")
    assert [r.sequence for r in read_records(fq)] == ["ACGT", "TTGA"]


@pytest.mark.parametrize("name, content, message", [
    ("comment.fa", "hello\n>a\nACGT\n", "not a valid FASTA file (This FASTA file contains comments"),
    ("empty.fa", "", "no FASTA records"),
    ("quality.fq", "@r1\nACGT\n+\nII\n", "not a valid FASTQ file (Lengths of sequence and quality"),
    ("protein.fa", ">sp|P1\nMKVLAAGIVGLLLAQE\n", "not nucleotide codes"),
    ("hole.fa", ">a\n\n>b\nACGT\n", "record 'a' has no sequence (1 empty record(s)); remove them or pass --skip-empty"),
])
def test_bad_files_get_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError) as error:
        read_records(path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_binary_and_missing_files(tmp_path):
    (tmp_path / "b.fa").write_bytes(b"\xff\xfe\x00\x01" * 10)
    with pytest.raises(InputError, match="not a text FASTA file"):
        read_records(tmp_path / "b.fa")
    with pytest.raises(InputError, match="no such file"):
        read_records(tmp_path / "missing.fa")


def test_skip_empty_drops_records_without_sequence(tmp_path):
    path = tmp_path / "hole.fa"
    path.write_text(">a\n\n>b\nACGT\n")
    assert [r.id for r in read_records(path, skip_empty=True)] == ["b"]


# ------------------------------------------------------------------------------------------ k-mers
def test_kmer_counts_match_counting_substrings():
    rng = random.Random(0)
    sequences = ["".join(rng.choices("ACGTN", weights=[5, 5, 5, 5, 1], k=rng.randint(0, 30))) for _ in range(20)]
    for k in (1, 2, 3):
        columns = ["".join(p) for p in itertools.product("ACGT", repeat=k)]  # column order: base-4 digits
        expected = [[Counter(s[i:i + k] for i in range(len(s) - k + 1))[c] for c in columns] for s in sequences]
        assert kmer_counts(sequences, k).tolist() == expected


# ----------------------------------------------------------------------------------------- Markov
def test_kmer_tokens_are_the_overlapping_kmers_in_base_4_order():
    # id = 4 + the k-mer read as a base-4 number (A C G T = 0 1 2 3), most significant first; with an N: UNK (1)
    acg, cgt, aaa, ttt = 4 + 0 * 16 + 1 * 4 + 2, 4 + 1 * 16 + 2 * 4 + 3, 4, 4 + 63
    assert dna.encode_bases("ACGTN", 3) == [acg, cgt, 1]
    assert dna.encode_bases("AAAA", 3) == [aaa, aaa] and dna.encode_bases("TTT", 3) == [ttt]
    assert dna.encode_bases("AC", 3) == [1]  # shorter than k: one UNK
    assert dna.encode_bases("ACGTN") == [4, 5, 6, 7, 8]  # k = 1: the bases (and N) as before
    vocab = dna.kmer_vocabulary(3)
    assert len(vocab) == 4 + 64 and vocab.tokens[acg] == "ACG" and vocab.tokens[-1] == "TTT"
    assert nucleotides.kmers("ACGTA", 2) == ["AC", "CG", "GT", "TA"] and nucleotides.kmers("A", 2) == []
    for k in (1, 3):
        model = dna.build_model(dna.DnaSettings(kmer=k), {"labels": ["a", "b"]})
        assert model.config.vocab_size == (9 if k == 1 else 68) and dna.model_kmer(model) == k
    for bad, message in (({"kmer": 0}, "kmer must be >= 1"), ({"kmer": 9}, "kmer must be <= 8"),
                         ({"kmer": 3, "task": "lm"}, "--kmer is for --task classify")):
        with pytest.raises(ValueError, match=message):
            dna.DnaSettings(**bad)


def test_add_one_markov_closed_form():
    # order 1 trained on "AAC": after '^' one A; after A one A and one C.
    model = MarkovModel(1, "add-one").fit(["AAC"])
    assert model.probability("^", "A") == (1 + 1) / (1 + 4)
    assert model.probability("A", "A") == model.probability("A", "C") == (1 + 1) / (2 + 4)
    assert model.probability("A", "G") == 1 / 6 and model.probability("C", "A") == 1 / 4  # unseen context
    expected = -(math.log2(2 / 5) + math.log2(2 / 6)) / 2  # "AC": A after '^', C after A
    assert model.bits_per_base(["AC"]) == pytest.approx(expected, abs=1e-12)
    assert MarkovModel(0, "add-one").fit(["AAAC"]).probability("", "A") == (3 + 1) / (4 + 4)


def test_witten_bell_closed_form():
    # order 1 on "AAC" (^A, AA, AC). Order 0: n = A:2 C:1, T = 2 -> P0(A) = (2 + 2/4) / 5, P0(C) = (1 + 2/4) / 5,
    # P0(G) = (2/4) / 5. Context A: n(A) = 2, T(A) = 2 -> P1(x|A) = (n(A,x) + 2 P0(x)) / 4.
    model = MarkovModel(1, "witten-bell").fit(["AAC"])
    p0 = {"A": 2.5 / 5, "C": 1.5 / 5, "G": 0.5 / 5, "T": 0.5 / 5}
    for base, n in (("A", 1), ("C", 1), ("G", 0), ("T", 0)):
        assert model.probability("A", base) == pytest.approx((n + 2 * p0[base]) / 4, abs=1e-12)
    assert model.probability("G", "C") == pytest.approx(p0["C"], abs=1e-12)  # unseen context backs off to P0
    assert model.probability("^", "A") == pytest.approx((1 + 1 * p0["A"]) / 2, abs=1e-12)  # n=1, T=1
    assert sum(model.probability("A", b) for b in "ACGT") == pytest.approx(1, abs=1e-12)


def _naive_bits(train, test, order, smoothing):
    """The formulas of MarkovModel's docstring with dictionaries, one position at a time."""
    counts = [Counter() for _ in range(order + 1)]
    for seq in train:
        padded = "^" * order + seq
        for i, base in enumerate(seq):
            if base in "ACGT":
                context = padded[i:i + order]
                for j in range(order + 1):
                    counts[j][(context[order - j:], base)] += 1

    def prob(context, base, j):
        n = {b: counts[j][(context, b)] for b in "ACGT"}
        total = sum(n.values())
        if smoothing == "add-one":
            return (n[base] + 1) / (total + 4)
        lower = prob(context[1:], base, j - 1) if j else 0.25
        types = sum(v > 0 for v in n.values())
        return (n[base] + types * lower) / (total + types) if total else lower

    bits, scored = 0.0, 0
    for seq in test:
        padded = "^" * order + seq
        for i, base in enumerate(seq):
            if base in "ACGT":
                bits -= math.log2(prob(padded[i:i + order], base, order))
                scored += 1
    return bits / scored


@pytest.mark.parametrize("smoothing", nucleotides.SMOOTHINGS)
def test_markov_bits_per_base_equal_the_formula_position_by_position(smoothing):
    rng = random.Random(1)
    make = lambda n: ["".join(rng.choices("ACGTN", weights=[4, 3, 2, 1, 0.3], k=rng.randint(1, 40)))  # noqa: E731
                      for _ in range(n)]
    train, test = make(40), make(10)
    for order in (0, 1, 2, 3):
        fitted = MarkovModel(order, smoothing).fit(train).bits_per_base(test)
        assert fitted == pytest.approx(_naive_bits(train, test, order, smoothing), rel=1e-10)


def test_kmer_logistic_regression_separates_composition_and_reports_its_choice():
    rng = random.Random(4)
    make = lambda n: [("".join(rng.choices("ACGT", weights=[3, 1, 1, 1] if y else [1, 1, 3, 1], k=30)), y)  # noqa
                      for y in (rng.randint(0, 1) for _ in range(n))]
    train, val, test = make(120), make(40), make(40)
    predict, chosen = nucleotides.kmer_logistic_regression(train, val, 2, progress=False)
    assert chosen["max_k"] in (1, 2) and chosen["C"] in (0.1, 1.0) and chosen["val_accuracy"] >= 0.9
    assert np.mean(np.array(predict([s for s, _ in test])) == [y for _, y in test]) >= 0.9


def test_markov_baselines_table_and_best():
    result = nucleotides.markov_baselines(["ACGTACGTAC", "ACGTTT"], ["ACGTAC"], 3)
    table = result["markov_bits_per_base"]
    assert set(table) == {"add-one", "witten-bell"} and all(set(row) == {"1", "2", "3"} for row in table.values())
    assert table["add-one"]["2"] == MarkovModel(2, "add-one").fit(["ACGTACGTAC", "ACGTTT"]).bits_per_base(["ACGTAC"])
    best = result["best_markov"]
    assert best["bits_per_base"] == min(v for row in table.values() for v in row.values())
    assert table[best["smoothing"]][str(best["order"])] == best["bits_per_base"]


# ------------------------------------------------------------------------------ hairpins and split
def test_mirbase_names():
    assert [hairpins.mirbase_family(i) for i in ("hsa-mir-21a-1", "mmu-mir-21a", "ath-MIR156a", "cel-let-7",
                                                "dme-bantam", "ebv-mir-BART1-2")] == \
        ["mir21", "mir21", "mir156", "let7", "bantam", "mir-bart1"]
    assert [hairpins.organism_group(i) for i in ("hsa-mir-1", "gga-mir-1", "dme-mir-1", "osa-MIR156a",
                                                "hcmv-mir-UL22A", "ddi-mir-1176")] == \
        ["mammal", "other_vertebrate", "invertebrate", "plant", "virus", None]


@pytest.mark.skipif(not hairpins.HAIRPIN.is_file(), reason="needs the Debian package seqkit-examples")
def test_every_hairpin_species_has_a_group_and_the_file_is_as_documented():
    ids = [line[1:].split()[0] for line in gzip.open(hairpins.HAIRPIN, "rt") if line.startswith(">")]
    assert len(ids) == 28645 and len({hairpins.species(i) for i in ids}) == 223
    ungrouped = {hairpins.species(i) for i in ids if hairpins.organism_group(i) is None}
    assert ungrouped == set(hairpins.UNGROUPED)
    assert Counter(hairpins.organism_group(i) for i in ids) == {
        "mammal": 10800, "plant": 6992, "invertebrate": 6915, "other_vertebrate": 3548, "virus": 308, None: 82}


def test_grouped_split_keeps_groups_and_identical_sequences_together():
    rng = random.Random(2)
    records = [Record(f"r{i}", "", "".join(rng.choices("ACGT", k=8))) for i in range(300)]
    records += [Record("copy", "", records[5].sequence)]  # an identical sequence under another key
    keys = [f"family{i % 37}" for i in range(300)] + ["other"]
    parts = dna.grouped_split(records, keys, [0.1, 0.2], seed=3)
    assert sorted(itertools.chain(*parts)) == list(range(301))
    side = {i: p for p, part in enumerate(parts) for i in part}
    for a, b in itertools.combinations(range(301), 2):
        if keys[a] == keys[b] or records[a].sequence == records[b].sequence:
            assert side[a] == side[b]
    assert 20 <= len(parts[1]) <= 45 and 50 <= len(parts[2]) <= 75  # whole families of ~8 records each
    assert parts == dna.grouped_split(records, keys, [0.1, 0.2], seed=3)
    assert parts != dna.grouped_split(records, keys, [0.1, 0.2], seed=4)


def test_shuffled_controls_pair_each_record_with_its_shuffle_on_the_same_side(tmp_path):
    rng = random.Random(4)
    records = [(f"fam{i % 12}_r{i}", "".join(rng.choices("ACGT", k=rng.randint(25, 60)))) for i in range(120)]
    path = fasta(tmp_path / "x.fa", records + [("fam0_tiny", "AC"), ("fam1_repeat", "AAAAAAAA")])
    settings = dna.DnaSettings(data=(str(path),), shuffled_controls=True, group_pattern=r"^(fam\d+)_")
    parts = dna.split(settings, seed=3)
    assert parts["labels"] == ["real", "shuffled"]
    original = dict(records)
    families = []
    for name in ("train", "val", "test"):
        real = {r.id: r.sequence for r, label in parts[name] if label == "real"}
        shuffled = {r.id.removesuffix("/shuffled"): r.sequence for r, label in parts[name] if label == "shuffled"}
        assert real.keys() == shuffled.keys() and real == {i: original[i] for i in real}
        for i in real:
            assert Counter(nucleotides.kmers(shuffled[i], 2)) == Counter(nucleotides.kmers(real[i], 2))
            assert shuffled[i] != real[i]
        families.append({i.split("_")[0] for i in real})
    assert sum(map(len, families)) == 12  # each family on one side only
    assert len(parts["train"]) + len(parts["val"]) + len(parts["test"]) == 240  # the two constant pairs dropped
    assert parts["test"] == dna.split(settings, seed=3)["test"]
    assert {r.sequence for r, _ in dna.split(settings, seed=4)["train"]} != {r.sequence for r, _ in parts["train"]}
    with pytest.raises(ValueError, match="--shuffled-controls"):
        dna.DnaSettings(shuffled_controls=True, label_pattern="x")
    with pytest.raises(ValueError, match="--shuffled-controls"):
        dna.DnaSettings(shuffled_controls=True, task="lm")


# ---------------------------------------------------------------------------------- bad input (CLI)
def _labelled_fasta(path, n=40):
    rng = random.Random(3)
    return fasta(path, [(f"{'up' if i % 2 else 'down'}|seq{i}", "".join(rng.choices("ACGT", k=20)))
                        for i in range(n)])


def test_bad_input_one_line_on_the_command_line_before_training(tmp_path, cli_error):
    data = _labelled_fasta(tmp_path / "x.fa")
    out = tmp_path / "run"
    train = ["dna", "train", "--out", str(out), "--max-steps", "2", "--quiet"]
    err = cli_error([*train, "--data", str(data), "--label-pattern", r"^(zebra)\|"])
    assert "--label-pattern '^(zebra)\\\\|' matches none of the 40 record ids (e.g. 'down|seq0')" in err
    (tmp_path / "protein.fa").write_text(">sp|P1 a protein\nMKVLAAGIVGLLLAQE\n")
    assert "a protein sequence?" in cli_error([*train, "--data", str(tmp_path / "protein.fa"), "--task", "lm"])
    (tmp_path / "hole.fa").write_text(">a\n\n>b\nACGT\n")
    assert "--skip-empty" in cli_error([*train, "--data", str(tmp_path / "hole.fa"), "--task", "lm"])
    assert "drop --bidirectional" in cli_error([*train, "--task", "lm", "--bidirectional"])
    assert not out.exists()


def _refused(tmp_path, message, settings=None, **config):
    from rnnkit.apps import lifecycle
    from rnnkit.train import TrainConfig

    with pytest.raises(InputError) as error:
        settings = settings if isinstance(settings, dna.DnaSettings) else dna.DnaSettings(**settings)
        lifecycle.train(dna.APP, settings, TrainConfig(max_steps=2, **config), tmp_path / "run", progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "run").exists()


def test_bad_labels_patterns_and_options_are_refused_before_training(tmp_path):
    data = str(_labelled_fasta(tmp_path / "x.fa"))
    _refused(tmp_path, "not a valid regular expression", {"data": (data,), "label_pattern": "(["})
    _refused(tmp_path, "not a valid regular expression", {"data": (data,), "label_pattern": "x", "group_pattern": "(["})
    _refused(tmp_path, "needs labels: --labels FILE", {"data": (data,)})
    (tmp_path / "labels.tsv").write_text("nobody\tx\n")
    _refused(tmp_path, "none of the 40 record ids appears in", {"data": (data,), "labels": str(tmp_path / "labels.tsv")})
    (tmp_path / "bad.tsv").write_text("down|seq0 up\n")
    _refused(tmp_path, "line 1: expected 'record id<TAB>label'", {"data": (data,), "labels": str(tmp_path / "bad.tsv")})
    (tmp_path / "one.tsv").write_text("".join(f"{'down' if i % 2 == 0 else 'up'}|seq{i}\tsame\n" for i in range(40)))
    _refused(tmp_path, "classification needs at least two", {"data": (data,), "labels": str(tmp_path / "one.tsv")})
    _refused(tmp_path, "is not reported by --task lm", {"task": "lm"}, monitor="val_accuracy")
    _refused(tmp_path, "no such file", {"data": (str(tmp_path / "missing.fa"),), "task": "lm"})
    with pytest.raises(ValueError, match="for --task classify"):
        dna.DnaSettings(task="lm", label_pattern="x")
    with pytest.raises(ValueError, match="not both"):
        dna.DnaSettings(labels="a.tsv", label_pattern="x")


def test_help_of_every_verb_has_examples():
    from rnnkit.cli.main import build_parser

    commands = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices).choices
    verbs = next(a for a in commands["dna"]._actions if hasattr(a, "choices") and a.choices).choices
    assert set(verbs) == {"train", "evaluate", "predict", "sample"}
    for parser in verbs.values():
        text = parser.format_help()
        assert "examples:" in text and "rnnkit dna train --task lm" in text and "rnnkit dna sample --run" in text


# ------------------------------------------------------------------------------ learning (slow)
def order_fasta(path, n=240, seed=0):
    """Class 'ac' has a run of A before a run of C, class 'ca' the reverse; the rest is random. Both classes
    have the same k-mer counts up to the junctions, so only the order tells them apart."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        label = rng.choice(["ac", "ca"])
        blocks = ["AAAAA", "CCCCC"] if label == "ac" else ["CCCCC", "AAAAA"]
        parts = ["".join(rng.choices("GT", k=rng.randint(2, 8))) for _ in range(3)]
        records.append((f"{label}_{i}", parts[0] + blocks[0] + parts[1] + blocks[1] + parts[2]))
    return fasta(path, records)


def periodic_fasta(path, n=300, seed=0):
    """Each sequence repeats a random 5-mer: after the first five bases the base five back predicts the next one,
    which a Markov model of order <= 4 cannot see."""
    rng = random.Random(seed)
    return fasta(path, [(f"p{i}", "".join(rng.choices("ACGT", k=5)) * rng.randint(4, 7)) for i in range(n)])


SMALL = ["--hidden-size", "32", "--embedding-dim", "8", "--batch-size", "16", "--quiet", "--dropout", "0"]


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dna-classify")
    data, run = order_fasta(root / "order.fa"), root / "run"
    assert main(["dna", "train", "--data", str(data), "--label-pattern", r"^(\w\w)_", "--out", str(run),
                 "--bidirectional", "--max-steps", "100", "--eval-every", "50", "--lr", "1e-2",
                 "--baseline-max-k", "3", *SMALL]) == 0
    return data, run


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("dna-lm")
    data, run = periodic_fasta(root / "periodic.fa"), root / "run"
    assert main(["dna", "train", "--task", "lm", "--data", str(data), "--out", str(run), "--max-steps", "300",
                 "--eval-every", "100", "--lr", "1e-2", "--markov-max-order", "4", "--sample-count", "2", *SMALL]) == 0
    return data, run


@pytest.mark.slow
def test_classifier_learns_order_and_beats_the_kmer_baseline(classify_run, capsys, tmp_path):
    _, run = classify_run
    result = json.loads((run / "results.json").read_text())
    assert result["labels"] == ["ac", "ca"] and result["accuracy"] >= 0.9
    assert result["kmer_baseline"]["accuracy"] <= 0.75 and result["beats_kmer_baseline"]
    assert (run / "confusion_matrix.png").stat().st_size > 0
    sequences = ["GTAAAAAGGCCCCCT", "GGCCCCCTTAAAAAG"]
    assert main(["dna", "predict", "--run", str(run), *sequences]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == ["ac", "ca"]
    assert main(["dna", "evaluate", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == result["accuracy"]
    other = order_fasta(tmp_path / "other.fa", n=30, seed=9)
    assert main(["dna", "evaluate", "--run", str(run), "--data", str(other), "--json"]) == 0  # the run's pattern
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["examples"] == 30 and evaluated["accuracy"] >= 0.9
    assert main(["dna", "predict", "--run", str(run), "--data", str(other), "--json"]) == 0
    predicted = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    truth = [r.id[:2] for r in read_records(other)]
    assert [p["id"][:2] for p in predicted] == truth
    assert sum(p["label"] == t for p, t in zip(predicted, truth)) >= 27
    # the majority baseline always says the training part's majority (it took the evaluated file's own)
    majority = json.loads((run / "app.json").read_text())["facts"]["majority_label"]
    labels = [r.id[:2] for r in read_records(classify_run[0])]
    assert labels.count(majority) > len(labels) / 2  # of all records; training is most of them
    minority = fasta(tmp_path / "minority.fa", [(r.id, r.sequence) for r in read_records(other) if r.id[:2] != majority])
    assert main(["dna", "evaluate", "--run", str(run), "--data", str(minority), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["majority_baseline_accuracy"] == 0.0


@pytest.mark.slow
def test_a_kmer_classifier_learns_order_and_predicts_with_its_own_tokens(tmp_path, capsys):
    data, run = order_fasta(tmp_path / "order.fa"), tmp_path / "run"
    assert main(["dna", "train", "--data", str(data), "--label-pattern", r"^(\w\w)_", "--out", str(run), "--kmer", "3",
                 "--bidirectional", "--max-steps", "100", "--eval-every", "50", "--lr", "1e-2",
                 "--baseline-max-k", "3", *SMALL]) == 0
    result = json.loads((run / "results.json").read_text())
    assert result["accuracy"] >= 0.9 and result["beats_kmer_baseline"]
    model, vocab, _ = dna.load_run(run)
    assert len(vocab) == 68 and dna.model_kmer(model) == 3  # the saved vocabulary is the k-mers'
    capsys.readouterr()  # the training report
    assert main(["dna", "predict", "--run", str(run), "GTAAAAAGGCCCCCT", "GGCCCCCTTAAAAAG"]) == 0
    assert [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()] == ["ac", "ca"]


def motif_fasta(path, n=300, seed=0):
    """Random 30-mers, each holding the motif GATTACAG at a random place: a shuffle keeps the motif's
    dinucleotides but almost never the motif."""
    rng = random.Random(seed)

    def one():
        at, flank = rng.randint(0, 22), "".join(rng.choices("ACGT", k=22))
        return flank[:at] + "GATTACAG" + flank[at:]

    return fasta(path, [(f"f{i % 30}_m{i}", one()) for i in range(n)])


@pytest.mark.slow
def test_shuffled_controls_learn_the_motif_that_composition_misses(tmp_path, capsys, cli_error):
    data, run = motif_fasta(tmp_path / "motif.fa"), tmp_path / "run"
    assert main(["dna", "train", "--shuffled-controls", "--data", str(data), "--group-pattern", r"^(f\d+)_",
                 "--out", str(run), "--bidirectional", "--max-steps", "150", "--eval-every", "50", "--lr", "1e-2",
                 "--baseline-max-k", "2", *SMALL]) == 0
    result = json.loads((run / "results.json").read_text())
    assert result["labels"] == ["real", "shuffled"] and result["test"] == 60
    assert result["accuracy"] >= 0.9 and result["beats_kmer_baseline"]
    # k <= 2 counts and the length are the same for a sequence and its shuffle: each pair gets one prediction
    assert result["kmer_baseline"]["accuracy"] == 0.5
    other = motif_fasta(tmp_path / "other.fa", n=40, seed=5)
    capsys.readouterr()
    assert main(["dna", "evaluate", "--run", str(run), "--data", str(other), "--json"]) == 0  # controls built too
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["examples"] == 80 and evaluated["accuracy"] >= 0.85
    assert main(["dna", "predict", "--run", str(run), "AAGATTACAGCTTCGGA"]) == 0
    assert capsys.readouterr().out.split("\t")[1] == "real"
    labels = tmp_path / "labels.tsv"
    labels.write_text("f0_0\treal\n")
    assert "labels the files itself" in cli_error(["dna", "evaluate", "--run", str(run), "--data", str(other),
                                                    "--labels", str(labels)])


@pytest.mark.slow
def test_language_model_beats_markov_and_samples(lm_run, capsys, tmp_path):
    data, run = lm_run
    result = json.loads((run / "results.json").read_text())
    assert set(result["markov_bits_per_base"]["add-one"]) == {"1", "2", "3", "4"}
    assert result["best_markov"]["bits_per_base"] > 1.5  # the base five back is out of their reach
    assert result["bits_per_base"] < 1.0 and result["beats_markov"]
    assert (run / "bits_per_base.png").stat().st_size > 0 and len(result["samples"]) == 2
    out = tmp_path / "new.fa"
    assert main(["dna", "sample", "--run", str(run), "--count", "2", "--prime", "acgtaacgta", "--seed", "3",
                 "--temperature", "0", "--out", str(out)]) == 0
    sampled = [r.sequence for r in read_records(out)]
    assert len(sampled) == 2 and all(s.startswith("ACGTAACGTAACGTA") for s in sampled)  # the period goes on
    assert capsys.readouterr().out == f"wrote 2 sequences to {out}\n"
    assert main(["dna", "sample", "--run", str(run), "--count", "3", "--seed", "5", "--temperature", "0.7"]) == 0
    text = capsys.readouterr().out
    assert text.count(">sample-") == 3 and text == (main(["dna", "sample", "--run", str(run), "--count", "3", "--seed",
                                                          "5", "--temperature", "0.7"]) or capsys.readouterr().out)
    assert main(["dna", "evaluate", "--run", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bits_per_base"] == pytest.approx(result["bits_per_base"], abs=1e-9)


@pytest.mark.slow
def test_wrong_task_verbs_are_refused(classify_run, lm_run, cli_error):
    assert "is a language model" in cli_error(["dna", "predict", "--run", str(lm_run[1]), "ACGT"])
    assert "is a classifier" in cli_error(["dna", "sample", "--run", str(classify_run[1])])
    assert "not nucleotide codes" in cli_error(["dna", "predict", "--run", str(classify_run[1]), "MKLPEEQ"])
    assert "not nucleotide codes" in cli_error(["dna", "sample", "--run", str(lm_run[1]), "--prime", "hello"])


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classify", "classify-kmer", "lm"])
def test_same_seed_same_bits_and_a_killed_run_resumes_to_them(task, tmp_path, monkeypatch):
    data = order_fasta(tmp_path / "d.fa", n=80) if task != "lm" else periodic_fasta(tmp_path / "d.fa", n=80)
    extra = ["--label-pattern", r"^(\w\w)_", "--baseline-max-k", "2"] if task != "lm" else \
        ["--markov-max-order", "2", "--sample-count", "0"]
    if task == "classify-kmer":
        task, extra = "classify", [*extra, "--kmer", "4"]

    def argv(out, *more):
        return ["dna", "train", "--task", task, "--data", str(data), *extra, "--out", str(out), "--seed", "7",
                "--max-steps", "12", "--eval-every", "5", "--checkpoint-every", "5", *SMALL, "--dropout", "0.2",
                *more]

    first = assert_reproducible_and_resumable(lambda out, *more: main(argv(out, *more)), tmp_path, monkeypatch)
    other = tmp_path / "other"
    assert main([*argv(other), "--seed", "8"]) == 0
    assert training_losses(other) != training_losses(first)


def test_records_without_mirbase_ids_are_refused_when_the_built_in_labels_are_asked_for():
    """`dna evaluate --run <built-in classifier> --data mine.fa`: labels come from miRBase organism names, which
    ids like 'a' lack; one line naming the fix (it crashed in torch.cat on an empty list)."""
    records = [nucleotides.Record(name, "", "ACGU", True) for name in ("a", "b")]
    with pytest.raises(InputError, match="none of the 2 record ids names a miRBase organism.*--label-pattern"):
        dna.label_records(records, dna.DnaSettings(), builtin=True)

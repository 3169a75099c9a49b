"""The built-in nucleotide data: miRBase stem-loop (hairpin) sequences from Debian's ``seqkit-examples``.

Source: ``/usr/share/doc/seqkit-examples/tests/hairpin.fa.gz`` (``apt install seqkit-examples``; MIT
packaging, miRBase data freely available, Kozomara et al. 2019): 28,645 precursor miRNAs of 223
species, 39-2,354 nt (mean 103), RNA alphabet, a few IUPAC codes. Ids are ``<species>-<name>``
(``hsa-mir-21``).

Two facts per record, both from its id:

- :func:`organism_group`: one of :data:`GROUPS` from the species prefix, by the table
  :data:`SPECIES_GROUPS` written from the species names in the headers (mammals; other vertebrates:
  birds, reptiles, amphibians, fish, lamprey; invertebrates, including the non-vertebrate chordates
  amphioxus, tunicates; land plants and green algae; viruses). The 82 records of brown algae,
  diatoms, slime moulds and oomycetes (``esi pti ddi psj pra pin``) belong to none and are left out.
- :func:`mirbase_family`: the miRNA family from the name (``hsa-mir-21a-1`` -> ``mir21``,
  ``ath-MIR156a`` -> ``mir156``, ``cel-let-7`` -> ``let7``): orthologues and paralogues, which are
  often near-identical, share it, so a split by family keeps near-duplicates on one side.
"""

from __future__ import annotations

import re
from pathlib import Path

from rnnkit.datasets._common import DatasetUnavailable

HAIRPIN = Path("/usr/share/doc/seqkit-examples/tests/hairpin.fa.gz")
GROUPS = ("mammal", "other_vertebrate", "invertebrate", "plant", "virus")

_TABLE = {
    "mammal": "hsa mmu bta eca ptr ppy mml efu cfa rno mdo oan ssc ggo chi tch cgr oar ppa mne sha age lla sla "
              "aja ocu ssy pbi lca meu",
    "other_vertebrate": "gga tgu aca oha xtr xla ssa ipu dre ola tni fru ccr pma hhi pol",
    "invertebrate": "ppc bmo dme cel crm cbn cbr dps tca ame hco prd bfl bbe sme nve dsi dvi pxy cte api sma bma "
                    "str aae mse asu hme sko dgr der dse dwi dya dan dpe cqu dmo odi aga spu lgi sja nvi tur lva "
                    "pmi isc dpu rmi ngi nlo gsa egr emu mja hru hma lmi xbo aqu smr tre sci cla gpy lco cin csa",
    "plant": "mtr osa gma ath bdi gra ptc stu mdm sbi aly zma ppe vvi nta mes cme tae atr lus bra bna ata tcc cpa "
             "ghr sly hvu rco lja csi smo cca aqc pab pta pde rgl hbr pgi ssp sof far vun ssl cre dpr bol pvu aau "
             "han egu ctr ccl peu crt cln bgy bcy hpe hpa hci har amg ttu ghb gar ama hex htu ahy gso ppt",
    "virus": "bfv bkv blv dev ebv hbv hvt jcv mcv prv rrv bhv1 bhv5 bpcv1 bpcv2 hcmv hhv6b hiv1 hsv1 hsv2 hvsa "
             "iltv kshv mcmv mdv1 mdv2 mghv rlcv sv40",
}
#: Species prefix -> organism group, for every species in the file except the six left out.
SPECIES_GROUPS: dict[str, str] = {prefix: group for group, names in _TABLE.items() for prefix in names.split()}
#: Species in the file that belong to no group (brown alga, diatom, slime mould, oomycetes).
UNGROUPED = ("esi", "pti", "ddi", "psj", "pra", "pin")

_FAMILY = re.compile(r"^(mir|let|lin|lsy|bantam)-?(\d+)", re.IGNORECASE)


def species(record_id: str) -> str:
    """The species prefix of a miRBase id: ``'hsa-mir-21'`` -> ``'hsa'`` (viruses have longer ones: ``'hcmv'``)."""
    return record_id.split("-", 1)[0].lower()


def organism_group(record_id: str) -> str | None:
    """The organism group of a miRBase id, ``None`` for the ungrouped species and unknown prefixes.

    >>> organism_group("hsa-mir-21"), organism_group("ath-MIR156a"), organism_group("ebv-mir-BART1")
    ('mammal', 'plant', 'virus')
    """
    return SPECIES_GROUPS.get(species(record_id))


def mirbase_family(record_id: str) -> str:
    """The miRNA family of a miRBase id: species prefix, case, paralogue letters and copy numbers dropped.

    >>> [mirbase_family(i) for i in ("hsa-mir-21a-1", "ath-MIR156a", "cel-let-7", "dme-bantam", "ebv-mir-BART1-2")]
    ['mir21', 'mir156', 'let7', 'bantam', 'mir-bart1']
    """
    name = record_id.split("-", 1)[1] if "-" in record_id else record_id
    match = _FAMILY.match(name)
    if match:
        return match.group(1).lower() + match.group(2)
    return re.sub(r"(-\d+)+$", "", name.lower())


def hairpin_path() -> Path:
    """The hairpin file, or :class:`DatasetUnavailable` naming the Debian package to install."""
    if not HAIRPIN.is_file():
        raise DatasetUnavailable(f"the built-in miRBase hairpins need {HAIRPIN}: apt install seqkit-examples "
                                 "(or give your own FASTA/FASTQ with --data)")
    return HAIRPIN

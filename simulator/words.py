"""Words a rule's sentence needs, so that the rule that raises a warning builds its whole sentence once (the CLI's
JSON, the pages and the PDFs all show it): the article of a spoken name, an accelerator's name without its vendor,
and a memory size."""

from __future__ import annotations

import re

_LETTER_AN = set("AEFHILMNORSX")  # letters whose spoken name starts with a vowel: "an H100", "an MI300X"


def article(text: str) -> str:
    """"a" or "an" for the way `text` is spoken: an A100, an H100, a B200, an 8B, an 11B, a 175B, an Instinct."""
    word = text.strip().split(" ", 1)[0] if text.strip() else ""
    if not word:
        return "a"
    if word[0].isdigit():
        whole = re.match(r"[\d,]*", word).group(0).replace(",", "")
        spoken_eleven = whole[:2] in ("11", "18") and len(whole) % 3 == 2  # eleven, eighteen (thousand, ...)
        return "an" if word[0] == "8" or spoken_eleven else "a"
    letters = re.sub(r"[^A-Za-z]", "", word)
    initialism = len(word) == 1 or any(c.isdigit() for c in word) or (letters.isupper() and len(letters) > 1)
    if initialism:
        return "an" if word[0].upper() in _LETTER_AN else "a"
    return "an" if word[0].lower() in "aeiou" else "a"


def hardware_name(label: str) -> str:
    """Catalog display name without the vendor: "NVIDIA H100 SXM5 80GB" -> "H100 SXM5 80GB"."""
    return re.sub(r"^(NVIDIA|AMD|Intel|Google)\s+", "", label)


def gigabytes(x: float) -> str:
    """"96 GB", "2.4 GB", "0.55 GB": whole gigabytes from 10 up, two significant figures below."""
    return f"{x:,.0f} GB" if abs(x) >= 10 else f"{x:.2g} GB"


def does_not_fit(need_gb: float, hbm_GB: float, hardware_label: str) -> str:
    """"Does not fit: needs 96 GB per GPU, but an H100 SXM5 80GB has 80 GB." """
    name = hardware_name(hardware_label)
    return f"Does not fit: needs {gigabytes(need_gb)} per GPU, but {article(name)} {name} has {gigabytes(hbm_GB)}."


# said after the memory warning where no nearby plan (the training family's remedy, families/training.py) fits
NO_NEARBY_FIT = ("No nearby change fits: try more GPUs with ZeRO stage 3, a smaller model, or an accelerator with "
                 "more memory.")

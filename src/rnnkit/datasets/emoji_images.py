"""Emoji images with their names: built-in captioning data, offline.

Every fully-qualified emoji of the ``emoji`` package (3,963 in emoji 2.16; BSD) is drawn with Pillow
from Debian's ``fonts-noto-color-emoji`` (the font is OFL-1.1, the art Apache-2.0; the only bitmap
size the font has is 109, drawn on a 136x128 canvas) on white, centred on a square and scaled to
``size`` x ``size`` RGB. Its caption is its English name in words: ``:thumbs_up_medium_skin_tone:``
-> ``"thumbs up medium skin tone"`` (lower case, ``_`` and ``-`` kept as word separators only, the
punctuation ``()`` ``,`` ``:`` ``!`` ``"`` removed, so a name is a plain sequence of words).

**Variants stay together.** Skin-tone and gender variants of one base emoji share a :func:`base_key`:
the code points with the skin-tone modifiers (U+1F3FB..U+1F3FF), the variation selector U+FE0F, the
zero-width joiner and the gender signs (U+2640, U+2642) removed, and the gendered people mapped to their
neutral form (man/woman -> person, boy/girl -> child, old man/woman -> older person, the gendered
couples and pairs -> the neutral couple). "health worker", "man health worker: dark skin tone" and
"woman health worker: light skin tone" all have the key of "health worker"; :func:`group_split`
puts whole groups on one side, so a test emoji is never a recoloured or regendered training one.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import numpy as np

from rnnkit.datasets._common import DatasetUnavailable, import_module

FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FONT_FIX = "install the Debian package fonts-noto-color-emoji (apt-get install fonts-noto-color-emoji, or make " \
           "system-packages)"
VISION_FIX = "pip install 'rnnkit[vision]'"
_SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}
_DROPPED = _SKIN_TONES | {"\ufe0f", "\u200d", "\u2640", "\u2642"}
#: Gendered people -> their neutral form (one base emoji, however the variant is gendered).
_NEUTRAL = {"👨": "🧑", "👩": "🧑", "👦": "🧒", "👧": "🧒", "👴": "🧓", "👵": "🧓",
            "💏": "🧑❤💋🧑", "💑": "🧑❤🧑", "👫": "🧑🤝🧑", "👬": "🧑🤝🧑", "👭": "🧑🤝🧑"}


def caption_of(name: str) -> str:
    """An ``emoji`` package name as words: ``":AB_button_(blood_type):"`` -> ``"ab button blood type"``.

    >>> caption_of(":thumbs_up_medium-dark_skin_tone:")
    'thumbs up medium-dark skin tone'
    >>> caption_of(":keycap_#:"), caption_of(":Åland_Islands:")
    ('keycap #', 'åland islands')
    """
    words = re.sub(r"[():,!\"“”]", " ", name.strip(":").replace("_", " "))
    return " ".join(words.lower().split())


def base_key(emoji: str) -> str:
    """The base emoji of a skin-tone or gender variant (see the module doc).

    >>> base_key("👩🏽\\u200d⚕️") == base_key("🧑\\u200d⚕️") == base_key("👨🏿\\u200d⚕️")
    True
    >>> base_key("🏃\\u200d♀️") == base_key("🏃🏻"), base_key("👍") == base_key("👎")
    (True, False)
    """
    return "".join(_NEUTRAL.get(c, c) for c in emoji if c not in _DROPPED)


def emoji_names() -> list[tuple[str, str]]:
    """``(emoji, caption)`` of every fully-qualified emoji, in the ``emoji`` package's order."""
    package = import_module("emoji", "emoji", VISION_FIX)
    qualified = package.STATUS["fully_qualified"]
    return [(e, caption_of(data["en"])) for e, data in package.EMOJI_DATA.items() if data["status"] == qualified]


def render(emojis: list[str], size: int = 32, *, progress: bool = False) -> np.ndarray:
    """The emoji drawn on white and scaled to ``size`` x ``size``: float32 ``(n, 3, size, size)`` in [0, 1]."""
    image_module = import_module("emoji images", "PIL.Image", VISION_FIX)
    from PIL import ImageDraw, ImageFont

    if not FONT.is_file():
        raise DatasetUnavailable(f"the emoji data set needs {FONT}, which is missing: {FONT_FIX}")
    font = ImageFont.truetype(str(FONT), 109)  # the only size of the font's bitmaps
    out = np.empty((len(emojis), 3, size, size), np.float32)
    for index, emoji in enumerate(emojis):
        canvas = image_module.new("RGBA", (136, 136), (255, 255, 255, 255))
        layer = image_module.new("RGBA", (136, 128), (255, 255, 255, 0))
        ImageDraw.Draw(layer).text((0, 0), emoji, font=font, embedded_color=True)
        canvas.alpha_composite(layer, (0, 4))
        small = canvas.convert("RGB").resize((size, size), image_module.Resampling.LANCZOS)
        out[index] = np.asarray(small, np.float32).transpose(2, 0, 1) / 255.0
        if progress and (index + 1) % 500 == 0:
            print(f"\rrendering emoji: {index + 1}/{len(emojis)}", end="", file=sys.stderr, flush=True)
    if progress and len(emojis) >= 500:
        print(f"\rrendering emoji: {len(emojis)}/{len(emojis)}", file=sys.stderr)
    return out


def group_split(keys: list[str], fractions: tuple[float, float], seed: int) -> tuple[list[int], list[int], list[int]]:
    """Indices ``(train, val, test)`` with every group (equal ``keys``) on one side.

    The groups are shuffled with ``seed``; whole groups go to the test part until it holds at least
    ``fractions[1]`` of the items, then to validation until ``fractions[0]``, the rest to training.

    >>> train, val, test = group_split(["a", "a", "b", "c", "c", "d"], (0.2, 0.2), seed=0)
    >>> sorted(train + val + test) == list(range(6)) and bool(val) and bool(test)
    True
    """
    groups: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    order = list(groups)
    random.Random(seed).shuffle(order)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    wanted = (None, fractions[0] * len(keys), fractions[1] * len(keys))
    for key in order:
        part = 2 if len(parts[2]) < wanted[2] else 1 if len(parts[1]) < wanted[1] else 0
        parts[part].extend(groups[key])
    return parts

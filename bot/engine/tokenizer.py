"""rf-clip's tokenizer (inference's own), made to leave the event loop its turns.

rf-clip's `SimpleTokenizer.encode` calls the `regex` package twice per text, and `regex`
lets go of the GIL while it matches a `str`, then takes it straight back. A thread that
tokenises (pure-Python BPE between those calls) so takes the GIL anew every few
milliseconds, and CPython forces a switch to a waiting thread only when no switch at all
happened in the switch interval: the event loop's thread, waiting, could be passed over
for most of a second while long or many new words were tokenised.

`FairTokenizer` encodes exactly as rf-clip does, but matches with `concurrent=False`
(holding the GIL through each match, which takes microseconds), so the switch interval
works as designed and the loop gets the GIL within it.
"""

from __future__ import annotations

from typing import Any

import regex
from clip import clip as clip_module  # rf-clip
from clip.simple_tokenizer import SimpleTokenizer, basic_clean

#: rf-clip's `whitespace_clean` pattern.
_WHITESPACE = regex.compile(r"\s+")


def clean(text: str) -> str:
    """rf-clip's `whitespace_clean(basic_clean(text))`, holding the GIL through the match."""
    return str(_WHITESPACE.sub(" ", basic_clean(text), concurrent=False)).strip()


class FairTokenizer(SimpleTokenizer):
    """rf-clip's tokenizer: the same tokens, without handing the GIL away mid-text."""

    def encode(self, text: str) -> list[int]:
        """rf-clip's `SimpleTokenizer.encode`, line for line, but for `concurrent=False`."""
        tokens: list[int] = []
        for word in self.pat.findall(clean(text).lower(), concurrent=False):
            word = "".join(self.byte_encoder[byte] for byte in word.encode("utf-8"))
            tokens.extend(self.encoder[piece] for piece in self.bpe(word).split(" "))
        return tokens


def fair_copy(tokenizer: Any) -> FairTokenizer:
    """A `FairTokenizer` sharing `tokenizer`'s vocabulary (no reload), with its own word cache."""
    fair: FairTokenizer = FairTokenizer.__new__(FairTokenizer)
    fair.__dict__.update(vars(tokenizer))
    fair.cache = dict(tokenizer.cache)
    return fair


def install_fair_tokenizer() -> FairTokenizer:
    """Make `clip.tokenize`, which inference's `Clip.embed_text` calls, tokenise fairly.

    rf-clip keeps one module-level tokenizer and offers no way to pass another, so it is
    replaced in place (once; later calls return the one installed).
    """
    current = clip_module._tokenizer
    if not isinstance(current, FairTokenizer):
        current = clip_module._tokenizer = fair_copy(current)
    return current

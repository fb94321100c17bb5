"""`logs.mask`'s ASCII test of the trigger words answers as the case-insensitive pattern does, on any text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler import logs

# Pieces that make credential-looking text in any case, with the letters re.IGNORECASE folds and lower() does
# not (the long s, the Kelvin sign, the dotted and dotless i) and plain filler around them.
PIECES = st.sampled_from([
    "secret", "SeCrEt", "token", "TOKEN", "signature", "Signature", "credential", "CREDENTIAL", "authorization",
    "Authorization", "aws_secret_access_key", "x-amz-security-token", "ſecret", "toKen", "toKen", "sıgnature",
    "sİgnature", "x-amz-credential", "=", ": ", '"', "'", " ", "abc123/+", "key", "upload",
    "bench:bench/data/shard000/part-000100.jsonl",
])


def pattern_mask(text: str) -> str:
    """The masking by the patterns alone: what `mask` answers, whatever shortcut it takes."""
    text = logs._AUTHORIZATION.sub(r"\g<name>\g<sep>[redacted]", text)
    return logs._SECRET_VALUES.sub(r"\g<name>\g<sep>[redacted]", text)


@given(st.lists(PIECES | st.text(max_size=4), max_size=8).map("".join))
def test_mask_answers_as_the_patterns_do(text: str) -> None:
    assert logs.mask(text) == pattern_mask(text)


def test_each_trigger_word_in_ascii_text_is_masked() -> None:
    for name in ("aws_secret_access_key", "session_token", "Signature", "x-amz-credential", "authorization"):
        assert logs.mask(f"{name}=hunter2") == f"{name}=[redacted]"

"""Stand-in for resemble-perth, Chatterbox's watermarker: the notebook checks that its
`PerthImplicitWatermarker` imported (the real package sets it to None when it cannot)."""

STANDIN = True


class PerthImplicitWatermarker:
    """Stand-in for `perth.PerthImplicitWatermarker`; the stand-in models never call it."""

"""The effect-size layer's error: a row whose numbers cannot give an effect size, naming the study
and the field."""


class EffectSizeError(ValueError):
    """An effect size cannot be computed; the message names the study and the field."""

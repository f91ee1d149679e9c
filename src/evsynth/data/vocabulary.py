"""The fixed words of the effect table and the command line (measures, p-bound modes, model
names), in a module that imports nothing: the CLI builds its parser, and answers --help, from
these without loading pandas, scipy, PyMC or ArviZ."""

CONTINUOUS_MEASURES = ("MD", "SMD", "SMCC", "ROM")
BINARY_MEASURES = ("RR", "OR", "RD")
MEASURES = CONTINUOUS_MEASURES + BINARY_MEASURES
P_BOUND_MODES = ("auto", "conservative", "censor", "exclude")
DEFAULT_R_PREPOST = 0.5
# the models evsynth.engines.builders.BUILDERS registers (a test keeps the two equal)
MODELS = ("by_technique", "common_effect", "meta_regression", "network", "random_effects", "selection")
ENGINES = ("auto", "exact", "pymc")
MAX_SCENARIOS = 10_000  # a larger sweep grid is refused unless [run] max_scenarios (or --max-scenarios) raises it

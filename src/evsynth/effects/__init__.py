"""Layer 2, effects: study rows -> effect sizes with honest standard errors (metafor's escalc).

`table` builds the effect table (one row per study row, nothing dropped, `used`/`why_not`);
`continuous` and `binary` hold the two families' formulas; `techniques` names and groups the
techniques behind the rows. Imports only evsynth.data.
"""

from .binary import Continuity, logit_to_smd  # noqa: F401
from .continuous import consistency_warnings, hedges_j, t_from_p  # noqa: F401
from .errors import EffectSizeError  # noqa: F401
from .table import (CONTROL_LABELS, DEFAULT_R_PREPOST, EFFECT_COLUMNS, MEASURES, P_BOUND_MODES,  # noqa: F401
                    RATIO_MEASURES, check_poolable, compute_effects, not_used, study_arrays, study_data,
                    uncontrolled, used_effects)

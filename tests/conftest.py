import gc
import os
import resource
import sys
import time
from pathlib import Path

# One OpenBLAS thread in the test process and the commands it starts (set before numpy loads; a value
# the developer set is kept). At the tests' sizes a second BLAS thread saves nothing, and its worker
# spins while it waits: on this shared 2-core machine (load 7-9) eight numeric test files took 24-29 s
# of CPU with two threads and 16-19 s with one. Only the tests' environment: users' runs keep theirs.
_LIMIT_LOADED_BLAS = "OPENBLAS_NUM_THREADS" not in os.environ and "numpy" in sys.modules
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# Published data sets and the figures printed for them, shipped with the tests so that the
# metafor/bayesmeta checks run from any clone: bcg.csv (metadat dat.bcg), eight_schools.csv
# (Rubin 1981) and reference_figures.md (the published numbers the tests check).
REFERENCE = ROOT / "tests" / "data"


def shared_control_csv(path: Path, trials: int) -> Path:
    """A SYNTHETIC study table (made-up trials, generated here): the first four trials have two
    arms (oxytocin, neck) against one control group (sample_id shared), the rest one arm."""
    rng = np.random.default_rng(5)
    rows = []
    for k in range(trials):
        base = rng.normal(0.5, 0.3)
        for tech in (["oxytocin", "neck"] if k < 4 else ["oxytocin"]):
            d = base + rng.normal(0, 0.15)
            rows.append(dict(study_id=f"trial{k}_{tech}", citation=f"made-up trial {k}", source_level="synthetic",
                             design="two_group", technique=tech, outcome="milk volume", unit="mL",
                             n_treat=int(rng.integers(20, 40)), n_ctrl=30, mean_treat=round(50 + 10 * d, 2),
                             mean_ctrl=50.0, sd_treat=10.0, sd_ctrl=10.0, synthetic="true",
                             sample_id=f"trial{k}" if k < 4 else ""))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def reference_file(name: str) -> Path:
    """A published data set or figure list under tests/data (a missing file is an error, not a skip)."""
    path = REFERENCE / name
    if not path.exists():
        raise FileNotFoundError(f"reference data missing from the repository: {path}")
    return path


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE


def assert_printed(value, printed: str, tol: float | None = None):
    """Within half a unit of the last digit a reference prints (or within tol)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tol = 0.5 * 10.0**-decimals if tol is None else tol
    assert abs(float(value) - float(printed)) <= tol + 1e-12, (float(value), printed)


def assert_all_printed(result, printed: dict[str, str]):
    """Each attribute of `result` named in `printed` matches its printed reference value."""
    for name, text in printed.items():
        try:
            assert_printed(getattr(result, name), text)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


def bcg_log_risk_ratios(bcg: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """metafor's escalc("RR") on dat.bcg: log risk ratios and their variances."""
    yi = np.log(bcg.tpos / (bcg.tpos + bcg.tneg)) - np.log(bcg.cpos / (bcg.cpos + bcg.cneg))
    vi = 1 / bcg.tpos - 1 / (bcg.tpos + bcg.tneg) + 1 / bcg.cpos - 1 / (bcg.cpos + bcg.cneg)
    return yi.to_numpy(), vi.to_numpy()


@pytest.fixture
def write_csv(tmp_path):
    """Write rows (list of dicts) to a CSV and return its path."""
    import pandas as pd

    def _write(rows, name="studies.csv"):
        path = tmp_path / name
        pd.DataFrame(rows).to_csv(path, index=False)
        return path

    return _write


def outcome_effects(csv: str, outcome: str = "milk volume", **options) -> pd.DataFrame:
    """compute_effects on studies/<csv>, one outcome's rows (the effect table's attrs kept)."""
    import evsynth as es

    effects = es.compute_effects(es.load_studies(ROOT / "studies" / csv), **options)
    one = effects[effects["outcome"] == outcome].reset_index(drop=True)
    one.attrs = dict(effects.attrs)
    return one


def censored_milk_effects() -> pd.DataFrame:
    """The real data's milk-volume rows with p-bound rows censored (some censored, some not). The
    printed bounds of the milk rows come from Wilcoxon tests, which the default never censors
    (studies/README.md, "Rank tests"); here the `test` column is cleared, so those bounds are read as
    t-test bounds and censored: the censored-likelihood path on real numbers."""
    import evsynth as es

    studies = es.load_studies(ROOT / "studies" / "massage.csv")
    everything = es.compute_effects(studies.assign(test=None), p_bound="censor")
    effects = everything[everything["outcome"] == "milk volume"].reset_index(drop=True)
    effects.attrs = dict(everything.attrs)
    used = effects[effects["used"]]
    assert used["censored"].any() and not used["censored"].all()
    return effects


@pytest.fixture(scope="session")
def milk_cache_entry(tmp_path_factory) -> Path:
    """A compile-cache entry (evsynth.engines.nutpie_cache) of the random-effects model of the censored
    milk rows, compiled once per test session. The cache tests whose subject is not the first compile
    start from a copy of it: each first compile is a child process (~3 s of CPU); numba's own cache,
    which the entry points into, is the user's, shared by all tests as by all runs."""
    from evsynth.engines import nutpie_cache
    from evsynth.engines.fit import compile_nutpie
    from evsynth.engines.pymc import build
    from evsynth.model import description

    folder = tmp_path_factory.mktemp("nutpie_cache")
    effects = censored_milk_effects()
    model = description.random_effects(effects[effects["used"]].reset_index(drop=True))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nutpie_cache, "_cache_dir", lambda: folder)
        compile_nutpie(build(model), reusable=False, description=model)
    (entry,) = folder.glob("*.json")
    return entry


# Synthetic effect tables shared by the bias, selection and comparison tests.
def effect_table(yi, sei, technique="x") -> pd.DataFrame:
    """A synthetic EffectTable (design 'effect', all rows used)."""
    k = len(yi)
    table = pd.DataFrame({
        "study_id": [f"s{i}" for i in range(k)], "technique": technique, "comparator": "control",
        "outcome": "o", "unit": "u", "design": "effect", "measure": "SMD", "yi": np.asarray(yi, float),
        "sei": np.asarray(sei, float), "vi": np.asarray(sei, float) ** 2, "se_route": "given",
        "n_total": np.nan, "df": np.nan, "sd_scale": np.nan, "censored": False, "head_to_head": False,
        "used": True, "why_not": "", "synthetic": True})
    table.attrs["measure"] = "SMD"
    return table


def simulate(seed, k=15, mu=0.2, tau=0.0, keep_nonsig=0.05):
    """Synthetic: significant (two-sided 0.05, positive) studies always published, others w.p. keep_nonsig."""
    rng = np.random.default_rng(seed)
    n = rng.integers(10, 61, 4000)
    se = 1 / np.sqrt(n)
    y = rng.normal(rng.normal(mu, tau, n.size), se)
    idx = np.flatnonzero((y / se > stats.norm.isf(0.025)) | (rng.random(n.size) < keep_nonsig))[:k]
    return effect_table(y[idx], se[idx])


def synthetic_row(study_id, technique, yi=None, sei=None, **fields):
    """A study-table row labelled synthetic (an effect given directly when yi/sei are), for the plot tests."""
    base = {"study_id": study_id, "citation": "test row", "source_level": "synthetic", "design": "effect",
            "technique": technique, "outcome": "milk volume", "measure": "SMD", "synthetic": "true"}
    if yi is not None:
        base.update(yi=yi, sei=sei)
    return base | fields


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test leaves no open matplotlib figure behind (imported lazily: most tests draw nothing)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def technique_idata(effects, mu=(0.5, 0.1), tau=0.2, tau_technique=0.3, technique=None, seed=1, measure="SMD",
                    chains=2, draws=4000):
    """A constructed by_technique-shaped posterior (no MCMC) for the plot tests: mu ~ N(m, s), each
    technique ~ N(its mean, its sd), tau and tau_technique constant, theta at its technique's draw;
    constant_data and prior attrs as evsynth.engines.fit writes them."""
    import arviz as az

    rng = np.random.default_rng(seed)
    normal = lambda mean, sd, *shape: rng.normal(mean, sd, size=(chains, draws, *shape))  # noqa: E731
    used = effects[effects["used"] & ~effects["head_to_head"]]
    studies, techniques = list(used["study_id"]), sorted(used["technique"].unique())
    technique = technique or {t: (0.2 + 0.3 * k, 0.05) for k, t in enumerate(techniques)}
    tech_draws = np.stack([normal(*technique[t]) for t in techniques], axis=-1)
    idx = np.array([techniques.index(t) for t in used["technique"]])
    posterior = {"mu": normal(*mu), "tau": np.full((chains, draws), tau),
                 "tau_technique": np.full((chains, draws), tau_technique), "technique_effect": tech_draws,
                 "theta": tech_draws[..., idx] + normal(0, 0.01, len(studies))}
    data = {"yi": used["yi"].to_numpy(), "sei": used["sei"].to_numpy(), "technique_idx": idx}
    idata = az.from_dict({"posterior": posterior, "constant_data": data},
                         coords={"study": studies, "technique": techniques},
                         dims={"theta": ["study"], "technique_effect": ["technique"],
                               **{name: ["study"] for name in data}})
    idata.attrs.update({"measure": measure, "prior_tau": "halfnormal(0.5)", "prior_mu": "normal(0, 1)"})
    return idata


def artists_by_gid(fig, prefix):
    """Artists of the first axes whose gid starts with `prefix` (a trailing '=' asks for an exact match)."""
    exact = prefix.endswith("=")
    key = prefix.rstrip("=")
    return [a for a in fig.axes[0].findobj() if isinstance(a.get_gid(), str)
            and (a.get_gid() == key if exact else a.get_gid().startswith(key))]


# The quick developer run is `pytest -m "not slow"` (under 3 minutes on an idle 2-core machine); the
# README's `pytest` runs everything, as CI does. A test that takes more than SLOW_CPU_SECONDS of CPU
# (this process and its child processes, setup to teardown) belongs under @pytest.mark.slow. CPU
# time, not wall time: on a shared machine wall time grows with the load, CPU time barely does. The
# summary lists such tests; it never fails a run (a busy machine must not fail the suite at random).
SLOW_CPU_SECONDS = 10.0
_TIMES = pytest.StashKey[list]()
_BLAS_LIMIT = pytest.StashKey[object]()


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_configure(config):
    config.stash[_TIMES] = []
    if _LIMIT_LOADED_BLAS:  # numpy was loaded before this file (by a plugin): limit its BLAS now
        from threadpoolctl import threadpool_limits

        config.stash[_BLAS_LIMIT] = threadpool_limits(limits=1, user_api="blas")


def pytest_collection_finish(session):
    """Garbage collection for a run of many short tests. Everything alive after collection (the
    modules the tests import: PyMC, pandas, matplotlib, ~200,000 objects) is moved out of the
    collector's reach, so that full collections during the run do not walk it again; and a young
    collection waits for 10,000 new container objects instead of 700, so fewer of them escalate into
    full ones. Cyclic garbage made by the tests is still collected, a little later. Measured on 8
    test files (CPU of the collecting thread, load 5): 3.1 s with the defaults, 2.4 s frozen, 1.5 s frozen
    with the higher threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Time each test, setup to teardown: CPU seconds (with children) and wall seconds."""
    cpu, wall = _cpu_seconds(), time.perf_counter()
    try:
        return (yield)
    finally:
        item.config.stash[_TIMES].append((item.nodeid, item.get_closest_marker("slow") is not None,
                                          _cpu_seconds() - cpu, time.perf_counter() - wall))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Report the CPU time of slow and quick tests, and every unmarked test over SLOW_CPU_SECONDS."""
    times = config.stash.get(_TIMES, [])
    if not times:
        return
    write = terminalreporter.write_line
    slow = sum(cpu for _, marked, cpu, _ in times if marked)
    quick = sum(cpu for _, marked, cpu, _ in times if not marked)
    write(f"CPU time of the tests run: {quick:.0f} s in tests not marked slow, {slow:.0f} s in slow ones "
          f"(the quick run is pytest -m \"not slow\")")
    unmarked = sorted((t for t in times if not t[1] and t[2] > SLOW_CPU_SECONDS), key=lambda t: -t[2])
    if unmarked:
        terminalreporter.section(f"tests over {SLOW_CPU_SECONDS:.0f} s of CPU not marked slow", sep="-")
        for nodeid, _, cpu, wall in unmarked:
            write(f"{cpu:6.1f} s CPU {wall:6.1f} s wall  {nodeid}")
        write("mark them @pytest.mark.slow (statistical checks: long MCMC, simulations, builds, notebooks) "
              "or make them faster")

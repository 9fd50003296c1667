import pickle

import pytest

import methods
from bench import tasks
from bench.errors import ConfigError
from bench.space import contains
from methods.base import MethodKind, TrialOutcome, TrialStatus, parse_options
from methods.hd import HDOptions

SPACE = tasks.get("digits").space


def test_builtins_are_registered_with_their_kind():
    found = methods.all_methods()
    assert found["random"].kind is MethodKind.BLACK_BOX
    assert found["hd"].kind is MethodKind.ONLINE and found["hd"].tunes == ("lr",)
    valid = ", ".join(sorted(found))
    with pytest.raises(ConfigError, match=f"unknown method 'tpe'; valid: {valid}$"):
        methods.get("tpe")


@pytest.mark.parametrize("name", ["random", "hd"])
def test_search_is_seeded_inside_the_space_and_respects_the_budget(name):
    method = methods.get(name)
    budget = 1 if method.kind is MethodKind.ONLINE else 5

    def proposals(seed):
        search = method.search(SPACE, seed, budget, method.options_type())
        out = []
        while (config := search.suggest()) is not None:
            out.append(config)
            search.observe(config, TrialOutcome(TrialStatus.COMPLETED, 1.0))
        return out

    first = proposals(11)
    assert len(first) == budget and first == proposals(11) and first != proposals(12)
    assert all(contains(SPACE, c) for c in first)


def test_search_state_round_trip_continues_the_same_sequence():
    method = methods.get("random")
    search = method.search(SPACE, 3, 6, method.options_type())
    seen = [search.suggest() for _ in range(2)]
    search.observe(seen[0], TrialOutcome(TrialStatus.DIVERGED))
    state = pickle.loads(pickle.dumps(search.state_dict()))
    rest = [search.suggest() for _ in range(5)]
    restored = method.search(SPACE, 999, 6, method.options_type())
    restored.load_state_dict(state)
    assert [restored.suggest() for _ in range(5)] == rest
    assert rest[-1] is None  # budget of 6 spent


def test_ray_adapter_save_restore_and_failure_outcomes(tmp_path):
    from ray.tune.search import Searcher

    from bench.ray_adapter import SearchAdapter, outcome

    method = methods.get("random")

    def adapter():
        return SearchAdapter(method.search(SPACE, 1, 3, method.options_type()),
                             lambda i, hp: {"trial": i, "hparams": hp})

    a = adapter()
    first = a.suggest("t0")
    a.on_trial_complete("t0", {"val_loss": float("nan"), "diverged": True})
    assert a.search.history[-1][1].status is TrialStatus.DIVERGED
    a.save(str(tmp_path / "s.pkl"))
    b = adapter()
    b.restore(str(tmp_path / "s.pkl"))
    assert b.suggest("t1") == a.suggest("t1") and first["trial"] == 0
    assert b.suggest("t2")["trial"] == 2 and b.suggest("t3") == Searcher.FINISHED
    assert outcome(None, error=True).status is TrialStatus.ERRORED
    assert outcome({"val_loss": 0.5, "diverged": False}, False) == \
        TrialOutcome(TrialStatus.COMPLETED, 0.5)


def test_options_are_typed_and_unknown_keys_named():
    opts, found = parse_options(HDOptions, {"beta": 1}, "hd")
    assert found == [] and opts.beta == 1.0
    _, found = parse_options(HDOptions, {"betta": 1e-3, "lr_min": "x"}, "options.hd")
    assert found == ["options.hd: unknown option 'betta'; valid: beta, lr_min, lr_max",
                     "options.hd.lr_min: expected float, got 'x'"]
    _, found = parse_options(HDOptions, {"beta": -1.0}, "options.hd")
    assert found == ["options.hd.beta: must be > 0, got -1.0"]


def test_model_based_searches_are_capped_so_proposals_stay_informed():
    from bench.experiment import MODEL_BASED_CONCURRENT, cap_for, plan
    from bench.suite import build

    for name in ("optuna-tpe", "optuna-gp", "skopt-gp"):
        assert methods.get(name).model_based
    assert cap_for(True, 0, 30) == MODEL_BASED_CONCURRENT and cap_for(True, 2, 30) == 2
    assert cap_for(True, 0, 2) == 2  # never above the search's budget
    assert cap_for(False, 0, 30) is None and cap_for(False, 3, 30) == 3
    exps = plan(build({"methods": ["optuna-tpe", "random", "hd"], "repetitions": 2}))
    caps = {(e.method, e.cap, e.budget) for e in exps}
    assert caps == {("optuna-tpe", MODEL_BASED_CONCURRENT, 6), ("random", None, 6),
                    ("hd", None, 1)}

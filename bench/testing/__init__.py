"""The conformance kit for plugin authors, installed with ohobench. Mixins of plain `test_*`
methods that pytest collects (pytest is imported only by a check that does not apply, to
report it skipped with its reason), and the hypergradient verifier:

    from bench.testing import SearchConformance, TaskConformance, UpdateRuleConformance

    class TestMySearch(SearchConformance):
        method = "my-search"

    class TestMyRule(UpdateRuleConformance):
        method, exact, frozen = "my-rule", True, {"meta_lr": 0.0}
        horizon = 1  # a one-step hypergradient; None (default): exact over the whole run

    class TestMyTask(TaskConformance):
        task = "my-task"

`check_hypergradients(rule, horizon=None)` asserts that an exact rule's reported hypergradients
(`hg_<name>`) equal d E_val(w_T) / d <name> by autodiff through the unrolled training of a tiny
float64 MLP (the hyperparameters live over the last `horizon` steps, or the whole run), to a
relative error of 1e-6, and returns each one's relative error. UpdateRuleConformance also
checks that a trial resumed from its checkpoint reports what an uninterrupted one does, and
that a saved rule state missing a key is refused.
"""

from bench.testing.reference import check_hypergradients
from bench.testing.rules import UpdateRuleConformance
from bench.testing.search import SearchConformance
from bench.testing.tasks import TaskConformance

__all__ = ["SearchConformance", "TaskConformance", "UpdateRuleConformance",
           "check_hypergradients"]

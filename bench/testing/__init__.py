"""The conformance kit for plugin authors, installed with ohobench. Mixins of plain `test_*`
methods that pytest collects (nothing here imports pytest), and the hypergradient verifier:

    from bench.testing import SearchConformance, TaskConformance, UpdateRuleConformance

    class TestMySearch(SearchConformance):
        method = "my-search"

    class TestMyRule(UpdateRuleConformance):
        method, exact, frozen = "my-rule", True, {"meta_lr": 0.0}

    class TestMyTask(TaskConformance):
        task = "my-task"

`check_hypergradients(rule)` asserts that an exact rule's reported hypergradients equal
autodiff through the fully unrolled training on a tiny float64 MLP.
"""

from bench.testing.reference import check_hypergradients
from bench.testing.rules import UpdateRuleConformance
from bench.testing.search import SearchConformance
from bench.testing.tasks import TaskConformance

__all__ = ["SearchConformance", "TaskConformance", "UpdateRuleConformance",
           "check_hypergradients"]

"""`asha`: random search under asynchronous successive halving (Li et al. 2020), what many users
run instead of Bayesian optimization. Stopped trials keep the records and the training time they
used, so time-to-target counts them."""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import EarlyStopping, Method, MethodKind, Options


@dataclass(frozen=True)
class ASHAOptions(Options):
    grace_period: int = 1  # epochs before the first rung
    reduction_factor: int = 3  # keep the best 1/3 at each rung

    def problems(self) -> list[str]:
        found = []
        if self.grace_period < 1:
            found.append(f"grace_period: must be >= 1, got {self.grace_period}")
        if self.reduction_factor < 2:
            found.append(f"reduction_factor: must be >= 2, got {self.reduction_factor}")
        return found


class ASHAMethod(Method):
    name = "asha"
    kind = MethodKind.BLACK_BOX
    description = "random search under ASHA early stopping (Ray Tune's ASHAScheduler)"
    options_type = ASHAOptions

    def early_stopping(self, options: ASHAOptions) -> EarlyStopping:
        return EarlyStopping(options.grace_period, options.reduction_factor)

"""Response gradients: how the validation loss changes with (lr, wd) through the weights,
dL_val/dw . dw/dlambda (Adam & Lorraine's term that ENAS leaves out). Pure functions over loss
functions of a list of tensors, the tensors and the hyperparameters; the controller calls them.

Inner problem: SGD with an L2 penalty, w' = w - lr (g + wd w), g = grad L_train(w); its fixed
point w* minimizes L_train(w) + wd/2 |w|^2.

- `one_step_response`: unrolled through one step (Maclaurin et al.; greedy, as in T1-T2), at w:
      dL_val(w')/dlr = -<gv, g + wd w>,   dL_val(w')/dwd = -lr <gv, w>,   gv = grad L_val(w').
- `ift_response`: implicit function theorem at w, taken as w* (Pedregosa 2016; Lorraine et al.
  2020): dw*/dwd = -(H + wd I)^-1 w, H the Hessian of L_train, so
      dL_val(w*)/dwd = -<(H + wd I)^-1 gv, w>,   gv = grad L_val(w),
  with the inverse by a Neumann series, A^-1 v ~ alpha sum_{j=0..K} (I - alpha A)^j v: K
  Hessian-vector products (double backward). w* does not depend on lr (a stationary point of
  the training loss is one for every step size), so the IFT response for lr is 0.

Both return derivatives with respect to lr and wd themselves; the controller, whose policy is
over log lr and log wd, multiplies by lr and wd (chain rule).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from methods.hypergrad import dot_all

LossOf = Callable[[list[Tensor]], Tensor]


class Hypergrad(NamedTuple):
    d_lr: Tensor  # 0-d
    d_wd: Tensor  # 0-d
    val_loss: Tensor  # 0-d, detached: the validation loss gv was taken at


def _leaves(tensors: Sequence[Tensor]) -> list[Tensor]:
    return [t.detach().requires_grad_(True) for t in tensors]


def one_step_response(val_loss: LossOf, params: Sequence[Tensor], grads: Sequence[Tensor],
                      lr: float, wd: float) -> Hypergrad:
    """d L_val(w - lr (g + wd w)) / d(lr, wd) with w and g = grads held fixed. One validation
    forward and backward."""
    w = [p.detach() for p in params]
    direction = torch._foreach_add([g.detach() for g in grads], w, alpha=wd)  # g + wd w
    ahead = _leaves(torch._foreach_add(w, direction, alpha=-lr))
    val = val_loss(ahead)
    gv = torch.autograd.grad(val, ahead)
    return Hypergrad(-dot_all(gv, direction), -lr * dot_all(gv, w), val.detach())


def neumann_inverse_hvp(hvp: Callable[[list[Tensor]], list[Tensor]], v: Sequence[Tensor],
                        terms: int, alpha: float) -> list[Tensor]:
    """A^-1 v ~ alpha sum_{j=0..terms} (I - alpha A)^j v, with `hvp(u)` = A u. Converges when
    0 < alpha < 2 / lambda_max(A) and A is positive definite."""
    term = [t.detach() for t in v]
    total = [t.clone() for t in term]
    for _ in range(terms):
        au = hvp(term)
        term = torch._foreach_add(term, au, alpha=-alpha)
        torch._foreach_add_(total, term)
    return torch._foreach_mul(total, alpha)


def ift_response(train_loss: LossOf, val_loss: LossOf, params: Sequence[Tensor], wd: float,
                 terms: int, alpha: float) -> Hypergrad:
    """d L_val(w*(wd)) / dwd at w = w*, by the implicit function theorem with a `terms`-term
    Neumann series for (H + wd I)^-1; d/dlr is 0. One validation forward and backward, one
    training forward and backward with graph, `terms` Hessian-vector products."""
    w = _leaves(params)
    val = val_loss(w)
    gv = torch.autograd.grad(val, w)
    if terms < 0:
        raise ValueError(f"terms: must be >= 0, got {terms}")
    grads = torch.autograd.grad(train_loss(w), w, create_graph=True) if terms else ()

    def hvp(u: list[Tensor]) -> list[Tensor]:  # (H + wd I) u
        hu = torch.autograd.grad(grads, w, u, retain_graph=True)
        return torch._foreach_add([h.detach() for h in hu], u, alpha=wd)

    q = neumann_inverse_hvp(hvp, gv, terms, alpha)
    zero = torch.zeros((), dtype=val.dtype, device=val.device)
    return Hypergrad(zero, -dot_all(q, [t.detach() for t in w]), val.detach())

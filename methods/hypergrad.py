"""The hypergradient core: pure functions over lists of tensors (one per parameter tensor).

Inner dynamics, per parameter tensor i in group g (E, L, M: per-group lr, wd, momentum):
    d = grad + L w,   b' = M b + d   (b' = d without momentum),   w' = w - E b'.
Forward mode keeps, for each tuned scalar k, the influence V_k = dw/dlambda_k (and
P_k = db/dlambda_k with momentum), advanced every step with exact Hessian-vector products:
    Q_k = (H + L) V_k + M P_k + C_k,   P_k' = Q_k,   V_k' = V_k - E Q_k - [k is lr_g] b'_g
where C_k is w_g for wd_g, b_g for momentum_g, and 0 otherwise (restricted to group g). The
hypergradient is <grad E_val(w'), V_k>. Reverse mode (`reverse_step`) is the adjoint of the same
step. See ../shared/ALGORITHMS.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Tensors = list[Tensor]


@dataclass
class StepTerms:
    """What one inner step used: everything the recursions need, detached."""

    weights: Tensors  # w_t
    buffers: Tensors | None  # b_t (momentum buffers), None without momentum
    new_buffers: Tensors | None  # b_{t+1} (= the direction without momentum); see set_direction
    lr: Sequence[float]  # per parameter tensor
    wd: Sequence[float]
    momentum: Sequence[float] | None


def inner_step(grads: Sequence[Tensor], weights: Sequence[Tensor], buffers: Tensors | None,
               lr: Sequence[float], wd: Sequence[float], momentum: Sequence[float] | None
               ) -> StepTerms:
    """The terms of one step of SGD with weight decay, without moving w."""
    terms = StepTerms([x.detach() for x in weights], buffers, None, lr, wd, momentum)
    return set_direction(terms, grads)


def set_direction(terms: StepTerms, grads: Sequence[Tensor], in_place: bool = False) -> StepTerms:
    """Fill in b_{t+1}. With `in_place`, it is written over `grads` and the old buffers, so it
    costs no memory (the caller must need neither afterwards)."""
    pairs = zip(grads, terms.weights, terms.wd, strict=True)
    if in_place:
        direction = [g.detach().add_(w, alpha=lam) for g, w, lam in pairs]
    else:
        direction = [g.detach() + lam * w for g, w, lam in pairs]
    if terms.momentum is None:
        terms.new_buffers = direction
    elif terms.buffers is None:  # torch's first step: b_1 = d_0
        terms.new_buffers = direction if in_place else [d.clone() for d in direction]
    elif in_place:
        terms.new_buffers = [b.mul_(m).add_(d) for b, d, m
                             in zip(terms.buffers, direction, terms.momentum, strict=True)]
    else:
        terms.new_buffers = [m * b + d for b, d, m
                             in zip(terms.buffers, direction, terms.momentum, strict=True)]
    return terms


def hvp(grads: Sequence[Tensor], weights: Sequence[Tensor], vectors: Sequence[Tensor]) -> Tensors:
    """H v for a batch of vectors (leading dimension c) by double backward through `grads`,
    which must have been computed with create_graph=True."""
    if vectors[0].shape[0] == 1:
        out = torch.autograd.grad(grads, weights, [v[0] for v in vectors], retain_graph=True,
                                  materialize_grads=True)
        return [o.unsqueeze(0) for o in out]
    return list(torch.autograd.grad(grads, weights, list(vectors), retain_graph=True,
                                    is_grads_batched=True, materialize_grads=True))


def fd_hvp(grad_at: Callable[[Tensors], Tensors], weights: Sequence[Tensor],
           vectors: Sequence[Tensor], radius: float) -> Tensors:
    """Central finite differences (g(w + e v) - g(w - e v)) / 2e with e = radius / |v|, the
    norm taken over all tensors. Cheaper, but wrong across ReLU kinks: for comparison only."""
    w = [x.detach() for x in weights]
    out = [torch.zeros_like(v) for v in vectors]
    for j in range(vectors[0].shape[0]):
        v = [x[j] for x in vectors]
        norm = float(torch.sqrt(sum((x * x).sum() for x in v)))
        if norm == 0.0:
            continue
        eps = radius / norm
        plus = grad_at([a + eps * b for a, b in zip(w, v, strict=True)])
        minus = grad_at([a - eps * b for a, b in zip(w, v, strict=True)])
        for o, p, m in zip(out, plus, minus, strict=True):
            o[j] = (p - m) / (2 * eps)
    return out


def advance_influence(v: Tensors, p: Tensors | None, hv: Tensors, chunk: slice,
                      terms: StepTerms, tuned: Sequence[tuple[str, int]],
                      group_of: Sequence[int]) -> None:
    """V <- A V + B for the tuned scalars in `chunk`, in place, except the learning rates'
    -b_{t+1} term (`add_direction_term`, once b_{t+1} is known). `hv` holds H V[chunk] and is
    overwritten: memory stays at the influence plus one HVP result."""
    ks = list(enumerate(range(*chunk.indices(len(tuned)))))
    for i, g in enumerate(group_of):
        q = hv[i].add_(v[i][chunk], alpha=terms.wd[i])
        if p is not None:
            q.add_(p[i][chunk], alpha=terms.momentum[i])
        for j, k in ks:
            kind, group = tuned[k]
            if group != g:
                continue
            if kind == "wd":
                q[j] += terms.weights[i]
            elif kind == "momentum" and terms.buffers is not None:
                q[j] += terms.buffers[i]
        if p is not None:
            p[i][chunk] = q
        v[i][chunk].sub_(q, alpha=terms.lr[i])


def add_direction_term(v: Tensors, new_buffers: Sequence[Tensor],
                       tuned: Sequence[tuple[str, int]], group_of: Sequence[int]) -> None:
    """V_k -= b_{t+1} (restricted to group g) for every tuned learning rate k = lr_g."""
    for k, (kind, group) in enumerate(tuned):
        if kind == "lr":
            for i, g in enumerate(group_of):
                if g == group:
                    v[i][k] -= new_buffers[i]


def hypergradients(v: Sequence[Tensor], val_grads: Sequence[Tensor]) -> Tensor:
    """<grad E_val, V_k> for every tuned scalar k, as one vector."""
    return sum(vi.reshape(vi.shape[0], -1) @ gi.reshape(-1)
               for vi, gi in zip(v, val_grads, strict=True))


def sliced_hypergradients(v: Sequence[Tensor], val_grads: Sequence[Tensor], kinds: Sequence[str],
                          tuned: Sequence[tuple[str, int]], group_of: Sequence[int]) -> Tensor:
    """Shared influence (one vector V_kind per kind): <grad E_val, V_kind> restricted to the
    parameter tensors of group g, for every tuned scalar (kind, g), as one vector."""
    per_tensor = [vi.reshape(vi.shape[0], -1) @ gi.reshape(-1)
                  for vi, gi in zip(v, val_grads, strict=True)]
    return _sum_by_group(per_tensor, kinds, tuned, group_of)


def sliced_influence_norms(v: Sequence[Tensor], kinds: Sequence[str],
                           tuned: Sequence[tuple[str, int]], group_of: Sequence[int]) -> Tensor:
    """Shared influence: the norm of V_kind over group g's tensors, per tuned (kind, g)."""
    per_tensor = [vi.reshape(vi.shape[0], -1).square().sum(1) for vi in v]
    return torch.sqrt(_sum_by_group(per_tensor, kinds, tuned, group_of))


def _sum_by_group(per_tensor: Sequence[Tensor], kinds: Sequence[str],
                  tuned: Sequence[tuple[str, int]], group_of: Sequence[int]) -> Tensor:
    """Entry [kind] of each tensor's values, summed over the tensors of each tuned (kind, g)."""
    return torch.stack([sum(per_tensor[i][kinds.index(kind)]
                            for i, g in enumerate(group_of) if g == group)
                        for kind, group in tuned])


def influence_norms(v: Sequence[Tensor]) -> Tensor:
    return torch.sqrt(sum(vi.reshape(vi.shape[0], -1).square().sum(1) for vi in v))


def reverse_step(alpha_w: Tensors, alpha_b: Tensors | None, hvp_fn: Callable[[Tensors], Tensors],
                 terms: StepTerms, tuned: Sequence[tuple[str, int]], group_of: Sequence[int],
                 hypergrad: list[float]) -> tuple[Tensors, Tensors | None]:
    """The adjoint of one inner step. Given the cotangents of (w', b'), add this step's
    contribution to `hypergrad` and return the cotangents of (w, b). `hvp_fn(c)` is H_t c."""
    if alpha_b is None:
        c = [-lr * a for a, lr in zip(alpha_w, terms.lr, strict=True)]
    else:
        c = [ab - lr * a for a, ab, lr in zip(alpha_w, alpha_b, terms.lr, strict=True)]
    for k, (kind, group) in enumerate(tuned):
        members = [i for i, g in enumerate(group_of) if g == group]
        if kind == "lr":
            hypergrad[k] -= float(sum(torch.vdot(alpha_w[i].reshape(-1),
                                                 terms.new_buffers[i].reshape(-1))
                                      for i in members))
        elif kind == "wd":
            hypergrad[k] += float(sum(torch.vdot(c[i].reshape(-1), terms.weights[i].reshape(-1))
                                      for i in members))
        elif kind == "momentum" and terms.buffers is not None:
            hypergrad[k] += float(sum(torch.vdot(c[i].reshape(-1), terms.buffers[i].reshape(-1))
                                      for i in members))
    hc = hvp_fn(c)
    new_alpha_w = [a + h + lam * ci for a, h, ci, lam in zip(alpha_w, hc, c, terms.wd, strict=True)]
    new_alpha_b = None if terms.momentum is None else [
        m * ci for ci, m in zip(c, terms.momentum, strict=True)]
    return new_alpha_w, new_alpha_b


def dot_all(a: Sequence[Tensor], b: Sequence[Tensor]) -> Tensor:
    """Sum over tensors of <a_i, b_i>, as a 0-d tensor (no host sync)."""
    return sum(torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b, strict=True))

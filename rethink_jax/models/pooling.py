"""Max pooling with a gradient that is cheap on XLA:CPU.

The small AlexNet and the small Inception (Appendix A, Figure 3-2.3, Figure 3) and
Inception V3 pool with 3x3 windows of stride 2. ``flax.linen.max_pool``
differentiates through XLA's select-and-scatter, which on CPU costs many
times its forward pass (``benchmarks/max_pool.py``; the table is in
docs/benchmarks.md). ``max_pool`` here computes the same values as the
maximum of the window's strided slices and its gradient by sending each
output's gradient to the first maximum of its window in row-major order, the
choice select-and-scatter makes. Values equal those of
``flax.linen.max_pool`` exactly and every output's gradient reaches the same
input (tested, ties included); where several outputs reach one input, the
sum is taken in another order, so gradients agree to float rounding. It is
used on every backend (one implementation); on GPU it is plain fused
element-wise work, not measured against select-and-scatter (no GPU here).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
from jax import lax
import jax.numpy as jnp

Padding = str | Sequence[tuple[int, int]]


def max_pool(x: jax.Array, window: Sequence[int], strides: Sequence[int],
             padding: Padding = "VALID") -> jax.Array:
  """Max pooling of an NHWC batch, as ``flax.linen.max_pool``.

  Args:
    x: ``(batch, height, width, channels)`` floating-point array.
    window: ``(kh, kw)`` window shape.
    strides: ``(sh, sw)`` strides.
    padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``;
      padded positions are ``-inf``, so they are never the maximum.

  Returns:
    The pooled ``(batch, out_height, out_width, channels)`` array.

  Raises:
    ValueError: if ``x`` is not a rank-4 floating-point array.
  """
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"max_pool takes a float NHWC batch; got shape "
                     f"{x.shape} of dtype {x.dtype}.")
  window, strides = tuple(window), tuple(strides)
  if isinstance(padding, str):
    pads: Sequence[tuple[int, int]] = lax.padtype_to_pads(x.shape[1:3], window, strides, padding)
  else:
    pads = padding
  return _max_pool(x, window, strides, tuple(tuple(p) for p in pads))


def _taps(xp: jax.Array, window, strides, out_hw):
  """The window's strided slices of the padded input, in row-major order."""
  (kh, kw), (sh, sw), (ho, wo) = window, strides, out_hw
  for i in range(kh):
    for j in range(kw):
      yield i, j, xp[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]


def _padded(x: jax.Array, pads):
  return jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)


def _out_hw(xp: jax.Array, window, strides):
  return tuple((xp.shape[1 + d] - window[d]) // strides[d] + 1
               for d in range(2))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def _max_pool(x, window, strides, pads):
  xp = _padded(x, pads)
  out_hw = _out_hw(xp, window, strides)
  return functools.reduce(
      jnp.maximum, (t for _, _, t in _taps(xp, window, strides, out_hw)))


def _max_pool_fwd(x, window, strides, pads):
  out = _max_pool(x, window, strides, pads)
  return out, (x, out)


def _max_pool_bwd(window, strides, pads, residuals, g):
  x, out = residuals
  xp = _padded(x, pads)
  out_hw = _out_hw(xp, window, strides)
  (sh, sw), (ho, wo) = strides, out_hw
  taken = jnp.zeros(out.shape, bool)
  dxp = jnp.zeros(xp.shape, g.dtype)
  for i, j, tap in _taps(xp, window, strides, out_hw):
    hit = (tap == out) & ~taken  # The first maximum takes the gradient.
    taken = taken | hit
    # The transpose of the strided slice: interior padding puts the window
    # position (i, j) of every output back at its input pixel.
    dxp = dxp + lax.pad(
        jnp.where(hit, g, 0).astype(g.dtype), jnp.zeros((), g.dtype),
        ((0, 0, 0),
         (i, xp.shape[1] - i - sh * (ho - 1) - 1, sh - 1),
         (j, xp.shape[2] - j - sw * (wo - 1) - 1, sw - 1),
         (0, 0, 0)))
  (top, _), (left, _) = pads
  return (dxp[:, top:top + x.shape[1], left:left + x.shape[2]],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)

"""Tests for ``rethink_jax.models`` (Appendix A, Figure 3-2.5 and Table 1, §4).

Parameter counts are computed with ``jax.eval_shape`` (tracing only). Forward
passes use parameters drawn with numpy at the shapes ``init`` reports, because
compiling Flax's initializers for every parameter shape costs minutes on a
small CPU; ``test_init_runs_the_real_initializers`` covers the real ``init``.
Each model's eval and train passes are compiled as one program, with LLVM
optimizations off (``_FAST_COMPILE``), which only changes compile time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rethink_jax import models
from rethink_jax.models import inception_v3
from rethink_jax.paper import PARAM_COUNTS

CIFAR_SHAPE = (28, 28, 3)
V3_SMALL_SHAPE = (inception_v3.MIN_INPUT_SIZE,) * 2 + (3,)
V3_FULL_SHAPE = (inception_v3.DEFAULT_INPUT_SIZE,) * 2 + (3,)

# Per-block parameter counts of the small Inception on 28x28x3 (derived from
# Figure 3, Appendix A), keyed by SmallInception's submodules.
FIGURE3_BLOCK_PARAMS = {
    "conv1": 2_688,
    "block1": 30_784,    # Inception(32, 32)
    "block2": 29_776,    # Inception(32, 48)
    "block3": 57_680,    # Downsample(80)
    "block4": 87_200,    # Inception(112, 48)
    "block5": 107_680,   # Inception(96, 64)
    "block6": 128_160,   # Inception(80, 80)
    "block7": 146_064,   # Inception(48, 96)
    "block8": 124_512,   # Downsample(96)
    "block9": 388_176,   # Inception(176, 160)
    "block10": 543_312,  # Inception(176, 160)
    "logits": 3_370,     # FC-10
}
# TF-slim's auxiliary head at 299x299 with 1000 classes [D]: 1x1 conv on the
# 768 Mixed_6e channels to 128 (weights + BN shift), 5x5 conv to 768 (weights
# + BN shift), FC 768 -> 1000.
AUX_HEAD_PARAMS_299 = ((768 * 128 + 128) + (5 * 5 * 128 * 768 + 768)
                       + (768 * 1000 + 1000))


_FAST_COMPILE = {"xla_backend_optimization_level": 0,
                 "xla_llvm_disable_expensive_passes": True}


def _variable_shapes(model, input_shape):
  return jax.eval_shape(lambda key: models.init(model, key, input_shape),
                        jax.random.key(0))


def _random_variables(model, input_shape, seed=0):
  """Variables with ``init``'s structure: scaled normal params, fresh stats."""
  shapes = _variable_shapes(model, input_shape)
  rng = np.random.default_rng(seed)

  def param(leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
    values = rng.standard_normal(leaf.shape, dtype=np.float32)
    return jnp.asarray(values / np.sqrt(fan_in))

  variables = {"params": jax.tree_util.tree_map(param, shapes["params"])}
  if "batch_stats" in shapes:
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, leaf: (jnp.ones if path[-1].key == "var" else jnp.zeros)(
            leaf.shape, jnp.float32), shapes["batch_stats"])
  return variables


def _inputs(input_shape, batch=2, seed=1):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.standard_normal((batch, *input_shape), np.float32))


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_cifar_param_counts_match_table1(name):
  shapes = _variable_shapes(models.create(name), CIFAR_SHAPE)
  assert models.count_params(shapes["params"]) == PARAM_COUNTS[name]


@pytest.mark.parametrize("name", ["inception", "inception_no_bn"])
def test_small_inception_block_counts_match_figure3(name):
  assert sum(FIGURE3_BLOCK_PARAMS.values()) == PARAM_COUNTS[name]
  params = _variable_shapes(models.create(name), CIFAR_SHAPE)["params"]
  counts = {block: models.count_params(p) for block, p in params.items()}
  assert counts == FIGURE3_BLOCK_PARAMS


def test_small_inception_downsamples_28_14_7():
  model = models.create("inception")
  variables = _variable_shapes(model, CIFAR_SHAPE)
  _, state = jax.eval_shape(
      lambda v, x: model.apply(v, x, capture_intermediates=True),
      variables, jax.ShapeDtypeStruct((1, *CIFAR_SHAPE), jnp.float32))
  inter = state["intermediates"]
  assert inter["conv1"]["__call__"][0].shape == (1, 28, 28, 96)
  assert inter["block3"]["__call__"][0].shape == (1, 14, 14, 160)
  assert inter["block8"]["__call__"][0].shape == (1, 7, 7, 240)
  assert inter["block10"]["__call__"][0].shape == (1, 7, 7, 336)


def test_inception_v3_param_count_matches_keras():
  """Keras ``applications.InceptionV3(weights=None, classes=1000)``."""
  model = models.create("inception_v3", num_classes=1000)
  shapes = _variable_shapes(model, V3_FULL_SHAPE)
  assert (models.count_params(shapes["params"])
          == inception_v3.KERAS_TRAINABLE_PARAMS == 23_817_352)
  assert (models.count_params(shapes["batch_stats"])
          == inception_v3.KERAS_NON_TRAINABLE_PARAMS)


def test_inception_v3_aux_head():
  model = models.create("inception_v3", num_classes=1000, aux_logits=True)
  shapes = _variable_shapes(model, V3_FULL_SHAPE)
  assert models.count_params(shapes["params"]["AuxLogits"]) == (
      AUX_HEAD_PARAMS_299)
  small = models.create("inception_v3", num_classes=7, aux_logits=True)
  logits, aux = jax.eval_shape(
      lambda v, x: small.apply(v, x),
      _variable_shapes(small, V3_SMALL_SHAPE),
      jax.ShapeDtypeStruct((2, *V3_SMALL_SHAPE), jnp.float32))
  assert logits.shape == aux.shape == (2, 7)


def test_inception_v3_rejects_inputs_below_75():
  with pytest.raises(ValueError, match="75x75"):
    _variable_shapes(models.create("inception_v3"), (74, 74, 3))


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_batch_stats_only_where_batch_norm(name):
  """No BatchNorm sneaks into AlexNet, the MLPs or Inception w/o BN."""
  shape = V3_SMALL_SHAPE if name == "inception_v3" else CIFAR_SHAPE
  shapes = _variable_shapes(models.create(name), shape)
  expected = {"params", "batch_stats"} if models.uses_batch_norm(name) else {
      "params"}
  assert set(shapes) == expected


@pytest.mark.parametrize("name, expected", [
    ("mlp_1x512", False), ("mlp_3x512", False), ("alexnet", False),
    ("inception", True), ("inception_no_bn", False), ("inception_v3", True),
])
def test_uses_batch_norm(name, expected):
  assert models.uses_batch_norm(name) is expected


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_forward_train_and_eval(name):
  """Logits of shape (N, classes); BN models update their running stats.

  The CIFAR models run train mode without a ``dropout`` rng, which fails if
  dropout is on by default; Inception V3 gets one for its dropout.
  """
  is_v3 = name == "inception_v3"
  num_classes = 5 if is_v3 else 10
  shape = V3_SMALL_SHAPE if is_v3 else CIFAR_SHAPE
  model = models.create(name, num_classes=num_classes)
  variables = _random_variables(model, shape)
  rngs = {"dropout": jax.random.key(2)} if is_v3 else {}

  def eval_and_train(variables, x):
    eval_logits = model.apply(variables, x, train=False)
    train_logits, updates = model.apply(variables, x, train=True,
                                        mutable=["batch_stats"], rngs=rngs)
    return eval_logits, train_logits, updates

  eval_logits, train_logits, updates = jax.jit(
      eval_and_train, compiler_options=_FAST_COMPILE)(variables,
                                                      _inputs(shape))
  for logits in (eval_logits, train_logits):
    assert logits.shape == (2, num_classes) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
  if models.uses_batch_norm(name):
    before = jax.tree_util.tree_leaves(variables["batch_stats"])
    after = jax.tree_util.tree_leaves(updates["batch_stats"])
    assert len(after) == len(before) > 0
    assert all(not np.allclose(a, b) for a, b in zip(after, before))
  else:
    assert not updates


def test_init_runs_the_real_initializers():
  model = models.create("mlp_1x512")
  variables = jax.jit(lambda key: models.init(model, key, CIFAR_SHAPE),
                      compiler_options=_FAST_COMPILE)(jax.random.key(0))
  assert set(variables) == {"params"}
  assert models.count_params(variables) == PARAM_COUNTS["mlp_1x512"]
  logits = model.apply(variables, _inputs(CIFAR_SHAPE))
  assert logits.shape == (2, 10) and np.all(np.isfinite(logits))


def test_dropout_rate_is_off_by_default_and_uses_the_dropout_rng():
  assert models.create("mlp_3x512").dropout_rate == 0.0
  assert models.create("alexnet").dropout_rate == 0.0
  assert models.create("inception").dropout_rate == 0.0
  assert models.create("inception_v3").dropout_rate == 0.2
  model = models.create("mlp_1x512", dropout_rate=0.5)
  variables = _random_variables(model, CIFAR_SHAPE)
  x = _inputs(CIFAR_SHAPE)
  train = [model.apply(variables, x, train=True,
                       rngs={"dropout": jax.random.key(k)}) for k in (0, 1)]
  assert not np.allclose(train[0], train[1])
  np.testing.assert_array_equal(model.apply(variables, x),
                                model.apply(variables, x))


@pytest.mark.parametrize("name", ["alexnet", "inception", "inception_v3"])
def test_bfloat16_compute_keeps_float32_params_and_logits(name):
  shape = V3_SMALL_SHAPE if name == "inception_v3" else CIFAR_SHAPE
  model = models.create(name, dtype=jnp.bfloat16)
  variables = _variable_shapes(model, shape)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {
      jnp.dtype(jnp.float32)}
  logits = jax.eval_shape(lambda v, x: model.apply(v, x), variables,
                          jax.ShapeDtypeStruct((2, *shape), jnp.float32))
  assert logits.dtype == jnp.float32


def test_no_bn_variant_differs_only_in_batch_norm():
  with_bn, without = models.create("inception"), models.create(
      "inception_no_bn")
  assert type(with_bn) is type(without)
  assert with_bn.batch_norm and not without.batch_norm


def test_unknown_name_lists_the_valid_names():
  with pytest.raises(ValueError, match="inception_no_bn"):
    models.create("resnet18")
  with pytest.raises(ValueError, match="mlp_1x512"):
    models.uses_batch_norm("resnet18")


def test_local_response_normalization_matches_tensorflow_formula():
  """``x / (bias + alpha * sum of x**2 over 2r+1 channels) ** beta``."""
  rng = np.random.default_rng(0)
  x = 5.0 * rng.standard_normal((2, 3, 3, 12)).astype(np.float32)
  r, bias, alpha, beta = 4, 1.0, 0.001 / 9, 0.75
  expected = np.empty_like(x)
  for d in range(x.shape[-1]):
    window = x[..., max(0, d - r):d + r + 1]
    expected[..., d] = x[..., d] / (bias + alpha * np.sum(window**2, -1))**beta
  got = models.local_response_normalization(jnp.asarray(x), r, bias, alpha,
                                            beta)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def _window_taps(x, padding, out_hw):
  """The 3x3/2 window's strided slices of x, padded with -inf."""
  if isinstance(padding, str):
    padding = jax.lax.padtype_to_pads(x.shape[1:3], (3, 3), (2, 2), padding)
  xp = jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)
  (ho, wo) = out_hw
  return [xp[:, i:i + 2 * ho - 1:2, j:j + 2 * wo - 1:2]
          for i in range(3) for j in range(3)]


@pytest.mark.parametrize("shape,padding", [
    ((2, 28, 28, 3), "SAME"),   # Small Inception's first downsample.
    ((2, 14, 14, 5), "SAME"),
    ((2, 7, 7, 2), "SAME"),
    ((2, 35, 35, 3), "VALID"),  # Inception V3's grid reductions.
    ((2, 16, 15, 2), "VALID"),
    ((1, 9, 9, 1), ((1, 0), (0, 2))),
])
def test_max_pool_matches_flax_values_and_gradient_routing(shape, padding):
  """Same values as nn.max_pool, and each output's gradient goes to the same
  input (the first maximum of its window), ties included.

  Inputs are ReLU'd small integers, so windows hold many equal maxima; the
  output gradients are small integers, so every sum is exact in float32 and
  any difference in routing would show.
  """
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from rethink_jax.models import pooling  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(np.round(rng.normal(size=shape) * 1.5), 0),
                  jnp.float32)
  ours = lambda x: pooling.max_pool(x, (3, 3), (2, 2), padding)
  flax_pool = lambda x: nn.max_pool(x, (3, 3), strides=(2, 2),
                                    padding=padding)
  expected = flax_pool(x)
  np.testing.assert_array_equal(ours(x), expected)
  counts = sum(  # How many inputs of each window equal its maximum.
      (xs == expected).astype(jnp.int32)
      for xs in _window_taps(x, padding, expected.shape[1:3]))
  assert float(jnp.mean(counts > 1)) > 0.2  # Many windows hold ties.
  g = jnp.asarray(rng.integers(-4, 5, size=expected.shape), jnp.float32)
  np.testing.assert_array_equal(jax.vjp(ours, x)[1](g)[0],
                                jax.vjp(flax_pool, x)[1](g)[0])


def test_max_pool_rejects_non_float_or_non_nhwc():
  from rethink_jax.models import pooling  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="float NHWC"):
    pooling.max_pool(jnp.zeros((2, 8, 8, 3), jnp.int32), (3, 3), (2, 2))
  with pytest.raises(ValueError, match="float NHWC"):
    pooling.max_pool(jnp.zeros((8, 8, 3)), (3, 3), (2, 2))


@pytest.mark.parametrize("name", models.MODEL_NAMES)
def test_every_parameter_array_gets_a_gradient(name):
  """A training step reaches every parameter array of every model.

  A conv bias followed by BatchNorm without a shift gets a zero gradient
  (BN subtracts the batch mean), which this catches (max |grad| ~ 1e-8
  there against > 1e-4 everywhere else).
  """
  is_v3 = name == "inception_v3"
  shape = V3_SMALL_SHAPE if is_v3 else CIFAR_SHAPE
  model = models.create(name, num_classes=10)
  variables = _random_variables(model, shape)
  batch = 8
  labels = jnp.arange(batch) % 10
  rngs = {"dropout": jax.random.key(2)}

  def loss(params, x):
    logits, _ = model.apply({**variables, "params": params}, x, train=True,
                            mutable=["batch_stats"], rngs=rngs)
    return -jnp.mean(jnp.take_along_axis(
        jax.nn.log_softmax(logits), labels[:, None], axis=1))

  grads = jax.jit(jax.grad(loss), compiler_options=_FAST_COMPILE)(
      variables["params"], _inputs(shape, batch=batch))
  flat = jax.tree_util.tree_leaves_with_path(grads)
  dead = [jax.tree_util.keystr(path) for path, g in flat
          if not np.abs(np.asarray(g)).max() > 1e-6]
  assert not dead, f"{len(dead)} of {len(flat)} arrays get no gradient: {dead}"


def test_he_initialization_keeps_the_batch_norm_free_signal():
  x = jax.random.normal(jax.random.key(1), (8, 28, 28, 3))
  std = {}
  for init in ("lecun_normal", "he_normal"):
    model = models.create("inception_no_bn", kernel_init=init)
    variables = model.init(jax.random.key(0), x)
    std[init] = float(model.apply(variables, x).std())
    assert models.count_params(variables) == 1_649_402
  # Eleven ReLU layers deep, LeCun normal shrinks the logits many-fold.
  assert std["he_normal"] > 10 * std["lecun_normal"]
  assert 0.3 < std["he_normal"] < 3.0

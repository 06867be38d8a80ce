// The fused linear + activation against addmm + ATen's activation (values and gradients), and the MLP's shared-time
// path (time embedding as a broadcast bias of the first layer) against its concatenated path.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <torch/autograd.h>

#include <limits>

#include "flowlab/architecture.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/fused.hpp"
#include "flowlab/path.hpp"
#include "support.hpp"

using flowlab::Activation;
using flowlab::Tensor;
using flowlab::test::registry;

namespace {

// Elementwise |a - b| relative to |b|, with the largest |b| as the floor (so entries near zero compare at the
// tensor's scale).
double max_rel(const Tensor& a, const Tensor& b) {
  const Tensor d = b.detach().to(at::kDouble);
  return ((a.detach().to(at::kDouble) - d).abs() / (d.abs() + 1e-2 * d.abs().max() + 1e-30)).max().item<double>();
}

}  // namespace

TEST_CASE("linear_activation equals addmm + the ATen activation, forward and backward", "[fused]") {
  const auto act = GENERATE(Activation::silu, Activation::relu, Activation::selu, Activation::gelu);
  INFO("activation " << int(act));
  torch::manual_seed(0);
  // Inputs over the range where exp under- and overflows, a column block of a wider weight, a [1, out] bias.
  const Tensor x = (at::randn({67, 5}) * 30).requires_grad_();
  const Tensor wide = at::randn({9, 12}).requires_grad_();
  const Tensor weight = wide.narrow(1, 3, 5);
  const Tensor bias = at::randn({1, 9}).requires_grad_();
  const Tensor g = at::randn({67, 9});

  const Tensor y = flowlab::linear_activation(x, weight, bias, act);
  const auto grads = torch::autograd::grad({y}, {x, wide, bias}, {g});
  const Tensor y_ref = flowlab::activate(at::addmm(bias, x, weight.t()), act);
  const auto grads_ref = torch::autograd::grad({y_ref}, {x, wide, bias}, {g});
  CHECK(max_rel(y, y_ref) < 1e-5);
  for (size_t i = 0; i < grads.size(); ++i) {
    INFO("gradient " << i);
    CHECK(max_rel(grads[i], grads_ref[i]) < 1e-4);
  }
  {
    at::NoGradGuard no_grad;  // the in-place inference path
    CHECK(max_rel(flowlab::linear_activation(x, weight, bias, act), y_ref) < 1e-5);
  }
  // NaN is not hidden (the engine stops a diverged trial on it).
  const Tensor nan_x = x.detach().clone();
  nan_x[0][0] = std::numeric_limits<float>::quiet_NaN();
  CHECK(at::isnan(flowlab::linear_activation(nan_x, weight.detach(), bias.detach(), act)[0]).all().item<bool>());
}

TEST_CASE("mlp_layers equals linear_activation layer by layer and addmm, forward and backward", "[fused]") {
  const auto act = GENERATE(Activation::silu, Activation::relu, Activation::selu, Activation::gelu);
  const int hidden = GENERATE(0, 1, 3);
  INFO("activation " << int(act) << ", " << hidden << " hidden layers");
  torch::manual_seed(7);
  const std::vector<int64_t> widths = {7, 9, 5, 6};  // in, hidden widths...; the output has 3
  const Tensor x = (at::randn({67, widths[0]}) * 3).requires_grad_();
  std::vector<Tensor> params;
  for (int i = 0; i <= hidden; ++i) {
    const int64_t in = widths[size_t(i)], out = i == hidden ? 3 : widths[size_t(i + 1)];
    params.push_back(at::randn({out, in}).requires_grad_());
    params.push_back(at::randn({out}).requires_grad_());
  }
  auto reference = [&](const Tensor& input) {
    Tensor h = input;
    for (int i = 0; i < hidden; ++i) h = flowlab::linear_activation(h, params[size_t(2 * i)], params[size_t(2 * i + 1)], act);
    return at::addmm(params.back(), h, params[params.size() - 2].t());
  };
  const Tensor g = at::randn({67, 3});
  std::vector<Tensor> inputs = {x};
  inputs.insert(inputs.end(), params.begin(), params.end());

  const Tensor y = flowlab::mlp_layers(x, params, act);
  const Tensor y_ref = reference(x);
  // The same BLAS calls with the same arguments, the same activation loops: the same bits on Debian's LibTorch
  // (OpenBLAS). With PyPI's torch (MKL) on an AMD EPYC, the 3-hidden-layer stacks differed from addmm's by up to
  // 3.7e-6 relative (MKL's kernels are not bitwise reproducible across calls and shapes): there, to 1e-5 relative, the
  // bound the gradients and the float64 reference below are held to.
  if (FLOWLAB_SYSTEM_TORCH) CHECK(at::equal(y, y_ref));
  else CHECK(max_rel(y, y_ref) < 1e-5);
  const auto grads = torch::autograd::grad({y}, inputs, {g});
  const auto grads_ref = torch::autograd::grad({y_ref}, inputs, {g});
  for (size_t i = 0; i < grads.size(); ++i) {
    INFO("gradient " << i);
    CHECK(max_rel(grads[i], grads_ref[i]) < 1e-5);
  }
  // Against plain ATen in double as well (no fused code on that side).
  {
    Tensor h = x.detach().to(at::kDouble);
    for (int i = 0; i <= hidden; ++i) {
      h = at::addmm(params[size_t(2 * i + 1)].detach().to(at::kDouble), h, params[size_t(2 * i)].detach().to(at::kDouble).t());
      if (i < hidden) h = flowlab::activate(h, act);
    }
    CHECK(max_rel(y, h) < 1e-5);
  }
  {
    at::NoGradGuard no_grad;  // without autograd: the same forward (silu: a / (1 + e^-a) there, a sigmoid(a) here)
    const Tensor y_infer = flowlab::mlp_layers(x, params, act);
    if (act == Activation::silu) CHECK(max_rel(y_infer, y) < 1e-5);
    else CHECK(at::equal(y_infer, y));
  }
  // Only some inputs need a gradient: x does not, the first weight is frozen.
  const Tensor x_const = x.detach();
  params[0] = params[0].detach();
  const Tensor y_part = flowlab::mlp_layers(x_const, params, act);
  REQUIRE(y_part.requires_grad());
  const std::vector<Tensor> rest(params.begin() + 1, params.end());
  const auto grads_part = torch::autograd::grad({y_part}, rest, {g});
  for (size_t i = 0; i < rest.size(); ++i) {
    INFO("gradient of parameter " << i + 1);
    CHECK(max_rel(grads_part[i], grads_ref[i + 2]) < 1e-5);
  }
}

TEST_CASE("mlp_layers: one row, one output, a [1, out] bias, and no second derivatives", "[fused]") {
  torch::manual_seed(8);
  const Tensor x = at::randn({1, 4}).requires_grad_();
  const Tensor w1 = at::randn({6, 4}).requires_grad_(), b1 = at::randn({6}).requires_grad_();
  const Tensor w2 = at::randn({1, 6}).requires_grad_(), b2 = at::randn({1}).requires_grad_();
  const std::vector<Tensor> params = {w1, b1, w2, b2};
  const Tensor y = flowlab::mlp_layers(x, params, Activation::selu);
  const Tensor y_ref = at::addmm(b2, at::selu(at::addmm(b1, x, w1.t())), w2.t());
  CHECK(at::equal(y, y_ref));
  const auto g = torch::autograd::grad({y.sum()}, {x, w1, b1, w2, b2});
  const auto g_ref = torch::autograd::grad({y_ref.sum()}, {x, w1, b1, w2, b2});
  for (size_t i = 0; i < g.size(); ++i) CHECK(max_rel(g[i], g_ref[i]) < 1e-5);
  // A [1, out] bias (linear_activation takes one) goes layer by layer: its gradient keeps the bias's shape.
  const Tensor b1_row = at::randn({1, 6}).requires_grad_();
  const Tensor y_row = flowlab::mlp_layers(x, {w1, b1_row, w2, b2}, Activation::selu);
  CHECK(torch::autograd::grad({y_row.sum()}, {b1_row})[0].sizes() == b1_row.sizes());
  // create_graph would need the backward's own graph, which these loops do not record: refused, not left out.
  const Tensor y2 = flowlab::mlp_layers(x, params, Activation::selu);
  try {
    torch::autograd::grad({y2.sum()}, {w1}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    FAIL("no error");
  } catch (const std::exception& e) {
    CHECK(std::string(e.what()) == "mlp_layers is differentiable once: its backward cannot be recorded (create_graph)");
  }
}

TEST_CASE("every fused op refuses create_graph with its name, as fused.hpp promises", "[fused]") {
  // Each one's backward is a raw loop: a second derivative through it would be silently missing, so it is refused.
  const Tensor x = at::randn({4, 6}).requires_grad_(), w = at::randn({5, 6}).requires_grad_();
  const Tensor b = at::randn({5}).requires_grad_();
  const Tensor h = at::randn({2, 3, 4, 4}).requires_grad_();
  const Tensor scale = at::randn({2, 3}).requires_grad_(), shift = at::randn({2, 3}).requires_grad_();
  const std::vector<std::pair<std::string, Tensor>> ops = {
      {"silu", flowlab::silu(x)},
      {"film_silu", flowlab::film_silu(h, scale, shift)},
      {"linear_activation", flowlab::linear_activation(x, w, b, Activation::silu)},
      {"mlp_layers", flowlab::mlp_layers(x, {w, b, at::randn({3, 5}).requires_grad_(), at::randn({3}).requires_grad_()},
                                         Activation::selu)}};
  for (const auto& [name, y] : ops) {
    INFO(name);
    const Tensor input = name == "film_silu" ? h : x;
    // Once: fine.
    CHECK(torch::autograd::grad({y.sum()}, {input}, {}, /*retain_graph=*/true)[0].sizes() == input.sizes());
    try {
      torch::autograd::grad({y.sum()}, {input}, {}, /*retain_graph=*/true, /*create_graph=*/true);
      FAIL("no error");
    } catch (const std::exception& e) {
      CHECK(std::string(e.what()) == name + " is differentiable once: its backward cannot be recorded (create_graph)");
    }
  }
}

TEST_CASE("mlp_layers: a bad parameter list is an error that says what it got", "[fused]") {
  const Tensor x = at::randn({4, 3});
  try {
    flowlab::mlp_layers(x, {at::randn({2, 3}), at::randn({2}), at::randn({1, 2})}, Activation::silu);
    FAIL("no error");
  } catch (const flowlab::Error& e) {
    CHECK(std::string(e.what()) == "mlp_layers: params must be weight/bias pairs, got 3 tensors");
  }
}

TEST_CASE("the fused silu is within a few float ulp of ATen's over [-100, 100]", "[fused]") {
  const Tensor x = at::linspace(-100, 100, 200001).unsqueeze(1);
  const Tensor one = at::ones({1, 1}), zero = at::zeros({1});
  at::NoGradGuard no_grad;
  const Tensor y = flowlab::linear_activation(x, one, zero, Activation::silu);
  const Tensor ref = at::silu(x.to(at::kDouble));
  // 4 ulp of the value, or 1e-30 absolute where silu underflows.
  const Tensor err = (y.to(at::kDouble) - ref).abs() - 4 * 1.2e-7 * ref.abs();
  CHECK(err.max().item<double>() < 1e-30);
}

TEST_CASE("mlp: one t for every row (a solver's step) gives the concatenated network's values and gradients", "[fused][architecture]") {
  const std::string embedding = GENERATE(std::string("sinusoidal"), std::string("mlp"), std::string("raw"));
  const bool conditioned = GENERATE(false, true);
  INFO(embedding << (conditioned ? ", conditioned" : ""));
  flowlab::Params p;
  p.set("width", std::int64_t{32}).set("depth", std::int64_t{2}).set("time_embedding", embedding);
  torch::manual_seed(4);
  auto a = registry().create<flowlab::Architecture>("architecture", "mlp", p);
  a->build({{3}, conditioned ? 4 : 0, 0});
  const int64_t b = 50;
  const Tensor x = at::randn({b, 3});
  flowlab::Condition c;
  if (conditioned) c.label = at::arange(b, at::kLong).remainder(4);
  for (const double t : {0.0, 0.37, 1.0}) {
    const Tensor shared = at::scalar_tensor(t).expand({b});
    REQUIRE(flowlab::shared_time(shared));
    const Tensor full = at::full({b}, t);
    REQUIRE(!flowlab::shared_time(full));
    const Tensor v_shared = a->forward(x, shared, c);
    const Tensor v_full = a->forward(x, full, c);
    CHECK(max_rel(v_shared, v_full) < 1e-4);  // float sums in another order
    const auto params = a->parameters();
    const auto g_shared = torch::autograd::grad({v_shared.pow(2).sum()}, params);
    const auto g_full = torch::autograd::grad({v_full.pow(2).sum()}, params);
    for (size_t i = 0; i < params.size(); ++i) CHECK(max_rel(g_shared[i], g_full[i]) < 1e-4);
  }
}

TEST_CASE("the one-pass sinusoidal features equal ATen's cos and sin of the same float arguments", "[fused]") {
  const Tensor t = at::linspace(-0.01, 1.01, 4097, at::kFloat);
  for (const int64_t dim : {1, 2, 3, 64, 65, 128}) {
    INFO("dim " << dim);
    const int64_t half = dim / 2;
    std::vector<float> f;
    for (int64_t k = 0; k < half; ++k)
      f.push_back(float(half == 1 ? M_PI : M_PI * std::pow(1000.0 / M_PI, double(k) / double(half - 1))));
    const Tensor fast = flowlab::sinusoidal_embedding(t, dim);
    std::vector<Tensor> parts;
    if (half > 0) {
      const Tensor args = t.unsqueeze(1) * at::tensor(f).unsqueeze(0);  // float arguments, as both compute them
      const Tensor a = args.to(at::kDouble);
      parts = {at::cos(a), at::sin(a)};
    }
    if (dim % 2) parts.push_back(2 * t.unsqueeze(1).to(at::kDouble) - 1);
    CHECK((fast.to(at::kDouble) - at::cat(parts, 1)).abs().max().item<double>() < 2.5e-7);
  }
  // |t f| > 8192 leaves the one-pass kernel: ATen's sin and cos give the result.
  CHECK(!flowlab::sin_cos_features(at::full({4}, 100.0f), {1000.0f}, false).defined());
  CHECK(flowlab::sinusoidal_embedding(at::full({4}, 100.0f), 64).isfinite().all().item<bool>());
  CHECK(flowlab::sin_cos_features(at::full({2}, 0.5f), {1000.0f}, false).defined());
}

TEST_CASE("the rectified path's own sample() equals the affine formula from its schedule, bit for bit", "[fused][path]") {
  auto path = registry().create<flowlab::Path>("path", "rectified");
  torch::manual_seed(5);
  const Tensor x0 = at::randn({300, 3}), x1 = at::randn({300, 3}), t = at::rand({300});
  const flowlab::PathSample s = path->sample(x0, x1, t);
  const flowlab::Schedule k = path->schedule(t);
  const Tensor xt = flowlab::expand_like(k.alpha, x1) * x1 + flowlab::expand_like(k.sigma, x0) * x0;
  const Tensor ut = flowlab::expand_like(k.d_alpha, x1) * x1 + flowlab::expand_like(k.d_sigma, x0) * x0;
  CHECK(at::equal(s.xt, xt));
  CHECK(at::equal(s.ut, ut));
}

TEST_CASE("mlp: evaluation without autograd in blocks of rows equals the one-pass forward", "[fused][architecture]") {
  const bool conditioned = GENERATE(false, true);
  const int64_t time_dim = GENERATE(2, 64);  // the default, and 32 frequencies
  flowlab::Params p;
  p.set("width", std::int64_t{48}).set("depth", std::int64_t{3}).set("time_dim", time_dim);
  torch::manual_seed(6);
  auto a = registry().create<flowlab::Architecture>("architecture", "mlp", p);
  a->build({{2}, conditioned ? 4 : 0, 0});
  const int64_t b = 2600;  // more than two blocks, and a partial last one
  const Tensor x = at::randn({b, 2});
  flowlab::Condition c;
  if (conditioned) c.label = at::arange(b, at::kLong).remainder(4);
  for (const Tensor& t : {at::rand({b}), at::scalar_tensor(0.3).expand({b})}) {
    const Tensor whole = a->forward(x, t, c);  // with autograd: one pass over all rows
    at::NoGradGuard no_grad;
    // Not bit for bit: silu as a / (1 + e^-a) vs a sigmoid(a), in float32 through 3 layers (measured up to 2.0e-5
    // with the default time features; a wrong block is off by O(1)).
    CHECK(max_rel(a->forward(x, t, c), whole) < 5e-5);
  }
}

TEST_CASE("silu and film_silu equal their ATen expressions, forward and backward", "[fused]") {
  torch::manual_seed(7);
  const Tensor h = (at::randn({3, 5, 7, 6}) * 4).requires_grad_();
  const Tensor ss = at::randn({3, 10, 1, 1}).requires_grad_();  // as the U-Net's FiLM: chunk(2, 1) of one tensor
  const auto parts = ss.chunk(2, 1);
  const Tensor g = at::randn({3, 5, 7, 6});
  {
    const Tensor y = flowlab::silu(h), ref = at::silu(h);
    CHECK(max_rel(y, ref) < 1e-5);
    CHECK(max_rel(torch::autograd::grad({y}, {h}, {g})[0], torch::autograd::grad({ref}, {h}, {g})[0]) < 1e-5);
  }
  {
    const Tensor y = flowlab::film_silu(h, parts[0], parts[1]);
    const Tensor ref = at::silu(h * (1 + parts[0]) + parts[1]);
    CHECK(max_rel(y, ref) < 1e-5);
    const auto grads = torch::autograd::grad({y}, {h, ss}, {g});
    const auto grads_ref = torch::autograd::grad({ref}, {h, ss}, {g});
    CHECK(max_rel(grads[0], grads_ref[0]) < 1e-5);
    CHECK(max_rel(grads[1], grads_ref[1]) < 1e-5);
  }
  at::NoGradGuard no_grad;
  CHECK(max_rel(flowlab::silu(h), at::silu(h)) < 1e-5);
  CHECK(max_rel(flowlab::film_silu(h, parts[0], parts[1]), at::silu(h * (1 + parts[0]) + parts[1])) < 1e-5);
}

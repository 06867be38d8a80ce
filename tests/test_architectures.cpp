// Architectures: shapes, gradients to every parameter, t and condition enter, overfitting one batch, build
// errors, and classifier-free guidance. The contract cases run over every architecture plugin.
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>
#include <fmt/format.h>
#include <torch/optim/adam.h>

#include "flowlab/architecture.hpp"
#include "flowlab/solver.hpp"
#include "support.hpp"

using flowlab::Tensor;
using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

constexpr int64_t kClasses = 3;

// Small settings so the suite stays fast; an architecture not listed here runs with its defaults.
flowlab::Params small(const std::string& name) {
  flowlab::Params p;
  if (name == "mlp") p.set("width", std::int64_t{64}).set("depth", std::int64_t{2});
  if (name == "unet")
    p.set("channels", std::int64_t{8}).set("time_dim", std::int64_t{32}).set("attention_resolutions", std::string("4,7"));
  if (name == "dit") p.set("hidden", std::int64_t{32}).set("depth", std::int64_t{2}).set("heads", std::int64_t{2});
  return p;
}

std::vector<std::vector<int64_t>> candidate_shapes() { return {{2}, {5}, {1, 8, 8}, {3, 8, 8}, {1, 28, 28}}; }

// The architecture built for `shape` with class and attribute conditions, or null if it refuses the shape.
std::shared_ptr<flowlab::Architecture> build(const std::string& name, const std::vector<int64_t>& shape) {
  auto a = registry().create<flowlab::Architecture>("architecture", name, small(name));
  try {
    a->build({shape, kClasses, 1});
  } catch (const flowlab::Error&) {
    return nullptr;
  }
  a->to(at::kDouble);
  return a;
}

// Every architecture plugin but torchscript, which wraps a user's module (no conditions, no defaults to build from):
// tests/test_export.cpp checks it.
std::vector<std::string> names() {
  std::vector<std::string> out;
  for (const auto& info : registry().list("architecture"))
    if (info.name != "torchscript") out.push_back(info.name);
  return out;
}

flowlab::Condition condition(int64_t b) {
  flowlab::Condition c;
  c.label = at::arange(b, at::kLong).remainder(kClasses);
  c.attr = at::linspace(0.5, 2.0, b, at::kDouble).unsqueeze(1);
  c.drop = at::arange(b, at::kLong) >= b / 2;  // the second half gets the null condition
  return c;
}

// Moves every weight a little, so zero-initialised gates (adaLN-Zero) do not hide the graph.
void perturb(flowlab::Architecture& a) {
  at::NoGradGuard g;
  for (auto& p : a.parameters()) p.add_(at::randn_like(p) * 0.05);
}

Tensor input(const std::vector<int64_t>& shape, int64_t b) {
  std::vector<int64_t> full = {b};
  full.insert(full.end(), shape.begin(), shape.end());
  return at::randn(full, at::kDouble);
}

}  // namespace

TEST_CASE("contract: shapes, gradients, time and condition for every architecture", "[architecture][contract]") {
  const std::string name = GENERATE_COPY(from_range(names()));
  at::manual_seed(0);
  int supported = 0;
  for (const auto& shape : candidate_shapes()) {
    auto a = build(name, shape);
    if (!a) continue;
    ++supported;
    INFO("architecture/" << name << " on " << flowlab::shape_string(shape));
    perturb(*a);
    const int64_t b = 6;
    const Tensor x = input(shape, b);
    const Tensor t = at::full({b}, 0.3, at::kDouble);
    const auto cond = condition(b);
    const Tensor v = a->forward(x, t, cond);
    CHECK(v.sizes() == x.sizes());
    v.pow(2).mean().backward();
    for (const auto& p : a->named_parameters()) {
      INFO("parameter " << p.key());
      REQUIRE(p.value().grad().defined());
      CHECK(p.value().grad().abs().max().item<double>() > 0);
    }
    at::NoGradGuard g;
    CHECK(max_abs(a->forward(x, at::full({b}, 0.7, at::kDouble), cond) - v) > 1e-6);  // t enters
    flowlab::Condition other = cond;
    other.label = (cond.label + 1).remainder(kClasses);
    CHECK(max_abs(a->forward(x, t, other) - v) > 1e-6);  // the class enters
    other = cond;
    other.attr = cond.attr * 3;
    CHECK(max_abs(a->forward(x, t, other) - v) > 1e-6);  // the attribute enters
    CHECK(max_abs(a->forward(x, t, flowlab::Condition()) - v) > 1e-6);  // the null condition differs
  }
  CHECK(supported > 0);
}

TEST_CASE("contract: 300 steps on one batch cut the loss at least in half", "[architecture][contract]") {
  const std::string name = GENERATE_COPY(from_range(names()));
  at::manual_seed(1);
  std::shared_ptr<flowlab::Architecture> a;
  std::vector<int64_t> shape;
  for (const auto& s : candidate_shapes())
    if ((a = build(name, s))) {
      shape = s;
      break;
    }
  REQUIRE(a);
  a->to(at::kFloat);
  const int64_t b = 16;
  const Tensor x = input(shape, b).to(at::kFloat), target = input(shape, b).to(at::kFloat);
  const Tensor t = at::rand({b});
  const auto cond = condition(b);
  torch::optim::Adam opt(a->parameters(), torch::optim::AdamOptions(1e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    opt.zero_grad();
    const Tensor loss = (a->forward(x, t, cond) - target).pow(2).mean();
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  INFO("architecture/" << name << ": loss " << first << " -> " << last);
  CHECK(last <= 0.5 * first);
}

TEST_CASE("architectures refuse shapes they cannot take, saying why", "[architecture][errors]") {
  auto unet = registry().create<flowlab::Architecture>("architecture", "unet");
  CHECK(message_of<flowlab::Error>([&] { unet->build({{2}, 0, 0}); }) ==
        "architecture/unet: needs images [C, H, W], got event shape [2]");
  flowlab::Params p;
  p.set("patch_size", std::int64_t{3});
  auto dit = registry().create<flowlab::Architecture>("architecture", "dit", p);
  CHECK(message_of<flowlab::ParamError>([&] { dit->build({{1, 8, 8}, 0, 0}); }) ==
        "architecture/dit: parameter 'patch_size' must divide the image size 8x8, got 3");
  flowlab::Params heads;
  heads.set("hidden", std::int64_t{30}).set("heads", std::int64_t{4});
  CHECK(message_of<flowlab::ParamError>([&] { registry().create<flowlab::Architecture>("architecture", "dit", heads); }) ==
        "architecture/dit: parameter 'heads' must divide hidden (30), got 4");
  flowlab::Params act;
  act.set("activation", std::string("tanh"));
  CHECK(message_of<flowlab::ParamError>([&] { registry().create<flowlab::Architecture>("architecture", "mlp", act); }) ==
        "architecture/mlp: parameter 'activation' must be one of silu, relu, gelu, selu, got 'tanh'");
}

TEST_CASE("mlp supports every activation and every time embedding", "[architecture]") {
  for (const char* act : {"silu", "relu", "gelu", "selu"})
    for (const char* temb : {"sinusoidal", "mlp", "raw"}) {
      flowlab::Params p = small("mlp");
      p.set("activation", std::string(act)).set("time_embedding", std::string(temb));
      auto a = registry().create<flowlab::Architecture>("architecture", "mlp", p);
      a->build({{2}, 0, 0});
      const Tensor x = at::randn({4, 2});
      CHECK(a->forward(x, at::rand({4})).sizes() == x.sizes());
      CHECK(a->named_parameters().contains("time_in.weight") == (std::string(temb) == "mlp"));
      // The first layer's input: x (2), then emb(t): the default width, 2, of sinusoidal or mlp features, or t.
      CHECK(a->named_parameters()["layers.0.weight"].size(1) == 2 + (std::string(temb) == "raw" ? 1 : 2));
    }
}

TEST_CASE("mlp raw time: the first layer sees t itself, as TorchCFM's MLP", "[architecture][time]") {
  // With time_embedding raw the network is [x, t] -> Linear -> act -> ... -> Linear, with a step input
  // [x, t, d] -> ...: checked against that formula on per-row t, on one t shared by every row (the solver's path,
  // where t enters the first layer's bias), and with the step input.
  at::manual_seed(3);
  flowlab::Params p;
  p.set("width", std::int64_t{8}).set("depth", std::int64_t{1}).set("activation", std::string("relu"));
  p.set("time_embedding", std::string("raw"));
  auto formula = [](const std::shared_ptr<flowlab::Architecture>& a, const Tensor& input) {
    auto params = a->named_parameters();
    return at::relu(input.matmul(params["layers.0.weight"].t()) + params["layers.0.bias"])
               .matmul(params["out.weight"].t()) +
           params["out.bias"];
  };
  auto a = registry().create<flowlab::Architecture>("architecture", "mlp", p);
  a->build({{2}, 0, 0});
  at::NoGradGuard g;
  const Tensor x = at::randn({5, 2}), t = at::rand({5});
  CHECK(max_abs(a->forward(x, t) - formula(a, at::cat({x, t.reshape({5, 1})}, 1))) < 1e-6);
  const Tensor shared = at::scalar_tensor(0.25).expand({5});
  REQUIRE(flowlab::shared_time(shared));
  CHECK(max_abs(a->forward(x, shared) - formula(a, at::cat({x, at::full({5, 1}, 0.25)}, 1))) < 1e-6);
  auto s = registry().create<flowlab::Architecture>("architecture", "mlp", p);
  s->build({{2}, 0, 0, true});
  const Tensor d = at::rand({5});
  CHECK(s->named_parameters()["layers.0.weight"].size(1) == 4);
  CHECK(max_abs(s->forward_step(x, t, d, flowlab::Condition()) -
                formula(s, at::cat({x, t.reshape({5, 1}), d.reshape({5, 1})}, 1))) < 1e-6);
  // The default embedding (mlp 1.4.0): the two features (cos pi t, sin pi t), on per-row and on shared t.
  flowlab::Params q = p;
  q.set("time_embedding", std::string("sinusoidal"));
  auto c = registry().create<flowlab::Architecture>("architecture", "mlp", q);
  c->build({{2}, 0, 0});
  auto features = [](const Tensor& tt) {
    return at::cat({at::cos(M_PI * tt.reshape({-1, 1})), at::sin(M_PI * tt.reshape({-1, 1}))}, 1);
  };
  CHECK(max_abs(c->forward(x, t) - formula(c, at::cat({x, features(t)}, 1))) < 1e-6);
  CHECK(max_abs(c->forward(x, shared) - formula(c, at::cat({x, features(at::full({5}, 0.25))}, 1))) < 1e-6);
}

TEST_CASE("mlp refuses a time parameter its time embedding does not use, naming the one that does",
          "[architecture][time][errors]") {
  // The mlp's time parameters as a YAML file sets them: an empty embedding name or a negative number is "not set".
  struct Given {
    const char* time_embedding;
    std::int64_t time_dim;
    double max_frequency;
  };
  auto create = [](const Given& g) {
    flowlab::Params p;
    if (*g.time_embedding) p.set("time_embedding", std::string(g.time_embedding));
    if (g.time_dim >= 0) p.set("time_dim", g.time_dim);
    if (g.max_frequency >= 0) p.set("max_frequency", g.max_frequency);
    return registry().create<flowlab::Architecture>("architecture", "mlp", p);
  };
  const std::string unused_dim_raw =
      "architecture/mlp: parameter 'time_dim' is not used by time_embedding 'raw' (t is one input), got {}; it sets "
      "the width of time_embedding 'sinusoidal' or 'mlp'";
  const std::string unused_frequency =
      "architecture/mlp: parameter 'max_frequency' is not used by time_embedding '{}', got {}; it sets the range of "
      "time_embedding 'sinusoidal'";
  const std::string narrow_frequency =
      "architecture/mlp: parameter 'max_frequency' is not used at time_dim {} ({}), got {}; it sets the highest of "
      "time_dim / 2 frequencies from time_dim 4";
  const std::vector<std::pair<Given, std::string>> refused{
      {{"raw", 16, -1}, fmt::format(fmt::runtime(unused_dim_raw), 16)},
      {{"raw", 63, -1}, fmt::format(fmt::runtime(unused_dim_raw), 63)},
      {{"raw", -1, 30}, fmt::format(fmt::runtime(unused_frequency), "raw", 30)},
      {{"mlp", -1, 30}, fmt::format(fmt::runtime(unused_frequency), "mlp", 30)},
      // An unused parameter is refused as unused, not first sent round its range check.
      {{"raw", 0, -1}, fmt::format(fmt::runtime(unused_dim_raw), 0)},
      {{"mlp", -1, 1}, fmt::format(fmt::runtime(unused_frequency), "mlp", 1)},
      // At the default width, 2, the sinusoidal embedding is (cos pi t, sin pi t): max_frequency has nothing to set.
      {{"sinusoidal", -1, 30}, fmt::format(fmt::runtime(narrow_frequency), 2, "the one frequency is pi", 30)},
      {{"", 3, 1000}, fmt::format(fmt::runtime(narrow_frequency), 3, "the one frequency is pi", 1000)},
      {{"", 1, 30}, fmt::format(fmt::runtime(narrow_frequency), 1, "the one feature is 2t - 1", 30)},
      // A width out of range is refused as such, not as leaving max_frequency unused.
      {{"", 0, 30}, "architecture/mlp: parameter 'time_dim' must be > 0, got 0"},
  };
  for (const auto& [given, expected] : refused) {
    INFO("time_embedding '" << given.time_embedding << "', time_dim " << given.time_dim << ", max_frequency "
                            << given.max_frequency);
    CHECK(message_of<flowlab::ParamError>([&] { create(given); }) == expected);
  }
  // Accepted: raw t with time_dim 64, as results files of mlp 1.3 store it (its default then), so that their
  // models are rebuilt; the parameters of the embedding that uses them.
  auto stored = create({"raw", 64, -1});
  stored->build({{2}, 0, 0});
  CHECK(stored->named_parameters()["layers.0.weight"].size(1) == 3);  // x and t: the stored 64 changes nothing
  CHECK_NOTHROW(create({"mlp", 16, -1}));
  CHECK_NOTHROW(create({"", 4, 30}));
}

TEST_CASE("guidance: w = 0 is exactly unconditional, w = 1 exactly conditional", "[architecture][cfg]") {
  at::manual_seed(2);
  auto a = build("mlp", {2});
  at::NoGradGuard g;
  const int64_t b = 8;
  const Tensor x = input({2}, b), t = at::rand({b}, at::kDouble);
  flowlab::Condition cond;
  cond.label = at::arange(b, at::kLong).remainder(kClasses);
  cond.attr = at::rand({b, 1}, at::kDouble);
  const Tensor vu = a->forward(x, t, flowlab::Condition()), vc = a->forward(x, t, cond);
  CHECK(at::equal(flowlab::guided_field(a, cond, 0.0)(x, t), vu));
  CHECK(at::equal(flowlab::guided_field(a, cond, 1.0)(x, t), vc));
  CHECK(max_abs(flowlab::guided_field(a, cond, 2.5)(x, t) - (vu + 2.5 * (vc - vu))) < 1e-14);
  CHECK(max_abs(vc - vu) > 1e-6);
}

TEST_CASE("drop_condition marks rows for the null condition with probability p_uncond", "[architecture][cfg]") {
  flowlab::Condition c;
  c.label = at::zeros({20000}, at::kLong);
  CHECK(flowlab::drop_condition(c, 20000, 0.0, at::kFloat).drop.sum().item<int64_t>() == 0);
  CHECK(flowlab::drop_condition(c, 20000, 1.0, at::kFloat).drop.sum().item<int64_t>() == 20000);
  const double frac = flowlab::drop_condition(c, 20000, 0.2, at::kFloat).drop.to(at::kDouble).mean().item<double>();
  CHECK(std::abs(frac - 0.2) < 0.015);
}

namespace {

// dopri5 at rtol = atol = 1e-5 from 512 standard-normal points: the NFE it spends on `v`.
int64_t dopri5_nfe(const flowlab::VelocityField& v) {
  flowlab::Params p;
  p.set("rtol", 1e-5).set("atol", 1e-5);
  auto s = registry().create<flowlab::Solver>("solver", "dopri5", p);
  at::manual_seed(7);
  return s->sample(at::randn({512, 2}), v).nfe;
}

// The mlp (default parameters, plus `extra`) fitted by Adam to the constant field v(x, t) = c on x ~ N(0, 4 I),
// t ~ U(0, 1): the exactly straight flow of a translation, as a network with these time features learns it.
int64_t fitted_nfe(const flowlab::Params& extra, const Tensor& c) {
  at::manual_seed(0);
  auto a = registry().create<flowlab::Architecture>("architecture", "mlp", extra);
  a->build({{2}, 0, 0});
  torch::optim::Adam opt(a->parameters(), torch::optim::AdamOptions(1e-3));
  for (int step = 0; step < 1500; ++step) {
    opt.zero_grad();
    const Tensor x = 2 * at::randn({256, 2});
    const Tensor loss = (a->forward(x, at::rand({256})) - c).pow(2).mean();
    loss.backward();
    opt.step();
  }
  at::NoGradGuard g;
  return dopri5_nfe([&](const Tensor& x, const Tensor& t) { return a->forward(x, t); });
}

}  // namespace

TEST_CASE("time features: a straight field learned by the default mlp costs dopri5 its minimum, wide embeddings more",
          "[architecture][time]") {
  const Tensor c = at::tensor({1.5f, -0.5f});
  const int64_t minimum = dopri5_nfe([&](const Tensor& x, const Tensor&) { return c.expand_as(x).clone(); });
  const int64_t fitted = fitted_nfe(flowlab::Params(), c);  // the default: (cos pi t, sin pi t)
  flowlab::Params raw_time;
  raw_time.set("time_embedding", std::string("raw"));
  const int64_t raw = fitted_nfe(raw_time, c);
  flowlab::Params wide;
  wide.set("time_dim", std::int64_t{64});  // mlp 1.3's default: 64 features up to 10 rad per unit t
  const int64_t wide_nfe = fitted_nfe(wide, c);
  flowlab::Params rough;
  rough.set("time_dim", std::int64_t{64}).set("max_frequency", 1000.0);  // before mlp 1.2: the field follows cos(1000 t)
  const int64_t oscillating = fitted_nfe(rough, c);
  INFO("dopri5 NFE: exact constant field " << minimum << ", default " << fitted << ", raw t " << raw
                                            << ", 64 features up to 10 " << wide_nfe << ", up to 1000 " << oscillating);
  // Measured (Debian's LibTorch 1.13): minimum 20, default 20, raw t 20, 64 features up to 10: 38, up to 1000: 74.
  // (TorchCFM's MLP, SELU 64 x 3 on raw t, fitted the same way takes 32 with torchdiffeq's dopri5:
  // benchmarks/constant_field.py.) The bounds: the default and raw t cost the minimum, give or take one step of 6
  // evaluations (another BLAS rounds the fit differently), less than 64 features, and those cost less as their
  // range narrows.
  CHECK(fitted <= minimum + 6);
  CHECK(raw <= minimum + 6);
  CHECK(fitted < wide_nfe);
  CHECK(3 * wide_nfe <= 2 * oscillating);  // the test can tell: high frequencies in t do raise the NFE
}

TEST_CASE("max_frequency below pi is refused by every architecture, naming the parameter", "[architecture][time][errors]") {
  for (const char* name : {"mlp", "unet", "dit"}) {
    flowlab::Params p;
    p.set("max_frequency", 3.0);
    if (std::string(name) == "mlp") p.set("time_dim", std::int64_t{4});  // at its default width, 2, it is unused
    CHECK(message_of<flowlab::ParamError>([&] { registry().create<flowlab::Architecture>("architecture", name, p); }) ==
          fmt::format("architecture/{}: parameter 'max_frequency' must be >= pi, got 3", name));
  }
}

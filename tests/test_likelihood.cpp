// Likelihoods (flowlab/likelihood.hpp, metric/nll): the exact NLL of a Gaussian-to-Gaussian flow against its closed
// form, Hutchinson's estimator unbiased on a field with a non-symmetric Jacobian, the noises' log densities, bits per
// dimension on digits against the exact divergence, and the metric through an experiment.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/likelihood.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/noise.hpp"
#include "support.hpp"

using Catch::Approx;
using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

const auto kD = at::TensorOptions().dtype(at::kDouble);

Tensor std_normal_log_prob(const Tensor& x) {
  const Tensor f = x.flatten(1).to(at::kDouble);
  return -0.5 * f.pow(2).sum(1) - 0.5 * double(f.size(1)) * std::log(2 * M_PI);
}

std::shared_ptr<flowlab::Solver> solver(const std::string& name, const flowlab::Params& p) {
  return registry().create<flowlab::Solver>("solver", name, p);
}

/// The marginal velocity of the rectified path from N(0, I) to N(m, s^2 I): mu_t = t m, sigma_t^2 = (1-t)^2 + t^2 s^2,
/// v = m + (sigma_t' / sigma_t) (x - mu_t) with sigma_t' sigma_t = t s^2 - (1 - t).
flowlab::VelocityField gaussian_flow(const Tensor& m, double s) {
  return [m, s](const Tensor& x, const Tensor& t) {
    const Tensor tt = flowlab::expand_like(t, x).to(x.scalar_type());
    const Tensor var = (1 - tt).pow(2) + tt.pow(2) * s * s;
    return m + (tt * s * s - (1 - tt)) / var * (x - tt * m);
  };
}

flowlab::ModelAccess access(const flowlab::VelocityField& f, double quantization_step = 0) {
  flowlab::ModelAccess a;
  a.field = f;
  a.noise_log_prob = std_normal_log_prob;
  a.make_solver = [](const std::string& name, const flowlab::Params& p) { return solver(name, p); };
  a.quantization_step = quantization_step;
  return a;
}

std::shared_ptr<flowlab::ModelMetric> nll(const flowlab::Params& p) {
  auto m = registry().create<flowlab::Metric>("metric", "nll", p);
  return std::dynamic_pointer_cast<flowlab::ModelMetric>(m);
}

}  // namespace

TEST_CASE("the exact NLL of a Gaussian-to-Gaussian flow equals the closed form", "[nll]") {
  const Tensor m = at::tensor({1.5, -0.5, 0.25}, kD);
  const double s = 0.6;
  at::manual_seed(3);
  const Tensor x1 = m + s * at::randn({500, 3}, kD);
  // Closed form: x1 ~ N(m, s^2 I).
  const Tensor exact = -((x1 - m).pow(2).sum(1) / (2 * s * s)) - 3 * std::log(s) - 1.5 * std::log(2 * M_PI);
  flowlab::Params tight;
  tight.set("rtol", 1e-10).set("atol", 1e-10);
  const auto r = flowlab::log_likelihood(*solver("dopri5", tight), gaussian_flow(m, s), x1, std_normal_log_prob);
  CHECK((r.log_p - exact).abs().max().item<double>() < 1e-6);
  CHECK(r.vjps == r.nfe * 3);  // exact divergence: one vector-Jacobian product per dimension per evaluation
  // The backward endpoint is the noise the flow maps to x1: x0 = (x1 - m) / s.
  CHECK((r.x0 - (x1 - m) / s).abs().max().item<double>() < 1e-6);

  // metric/nll through its plugin: the mean NLL in nats, to 1e-4 at its default tolerances.
  auto metric = nll(flowlab::Params().set("rtol", 1e-8).set("atol", 1e-8));
  REQUIRE(metric);
  const double value = metric->compute_model(access(gaussian_flow(m, s)), x1.to(at::kFloat).to(at::kDouble));
  CHECK(value == Approx(-exact.mean().item<double>()).margin(1e-4));
  CHECK(metric->describe(access(nullptr)) ==
        "nats per sample; dopri5 backward, exact divergence up to 16 dimensions, else Hutchinson (1 rademacher probe)");
  // The sample interface refuses.
  CHECK(message_of<flowlab::Error>([&] { metric->compute(x1, x1); }) ==
        "a metric of the model is computed from the model, not from samples: call compute_model()");
}

TEST_CASE("Hutchinson's estimator is unbiased on a field with a non-symmetric Jacobian", "[nll]") {
  // v = B x: x1 = e^B x0, so log p1(x1) = log N(e^{-B} x1; 0, I) - tr B. Each probe's estimate of tr B is
  // eps^T B eps = tr B + (b12 + b21) eps1 eps2 (Rademacher), with a spread of |b12 + b21| = 1.5.
  const Tensor B = at::tensor({0.3, 1.0, 0.5, -0.2}, kD).reshape({2, 2});
  const flowlab::VelocityField field = [B](const Tensor& x, const Tensor&) { return at::matmul(x, B.t()); };
  at::manual_seed(5);
  const int64_t n = 4000;
  const Tensor x1 = at::randn({n, 2}, kD);
  const Tensor x0 = at::matmul(x1, at::linalg_matrix_exp(-B).t());
  const Tensor closed = std_normal_log_prob(x0) - 0.1;
  flowlab::Params tight;
  tight.set("rtol", 1e-9).set("atol", 1e-9);
  const auto ex = flowlab::log_likelihood(*solver("dopri5", tight), field, x1, std_normal_log_prob);
  CHECK((ex.log_p - closed).abs().max().item<double>() < 1e-6);
  for (const std::string probe : {"rademacher", "gaussian"}) {
    INFO(probe);
    flowlab::LikelihoodOptions o;
    o.exact = false;
    o.probe = probe;
    o.generator = at::detail::createCPUGenerator(11);
    const auto est = flowlab::log_likelihood(*solver("dopri5", tight), field, x1, std_normal_log_prob, o);
    CHECK(est.vjps == est.nfe);  // one probe: one vector-Jacobian product per evaluation
    const Tensor diff = est.log_p - closed;
    const double mean = diff.mean().item<double>(), se = diff.std().item<double>() / std::sqrt(double(n));
    CHECK(se > 0.01);  // the estimate does vary per probe (so the check below can fail)
    CHECK(std::abs(mean) < 3 * se);
    // More probes shrink the spread like 1/sqrt(K).
    o.probes = 16;
    const auto many = flowlab::log_likelihood(*solver("dopri5", tight), field, x1, std_normal_log_prob, o);
    const double se16 = (many.log_p - closed).std().item<double>() / std::sqrt(double(n));
    CHECK(se16 == Approx(se / 4).epsilon(0.15));
    CHECK(many.vjps == many.nfe * 16);
  }
  flowlab::LikelihoodOptions bad;
  bad.exact = false;
  bad.probe = "sphere";
  CHECK(message_of<flowlab::Error>([&] { flowlab::log_likelihood(*solver("dopri5", tight), field, x1, std_normal_log_prob, bad); }) ==
        "log_likelihood: unknown probe 'sphere' (valid: gaussian, rademacher)");
}

TEST_CASE("the noises' log densities equal their closed forms", "[nll]") {
  at::manual_seed(2);
  const Tensor x = at::randn({6, 3}, kD) * 0.5;
  auto gauss = registry().create<flowlab::Noise>("noise", "gaussian", flowlab::Params());
  CHECK((gauss->log_prob(x) - std_normal_log_prob(x)).abs().max().item<double>() < 1e-12);
  auto uniform = registry().create<flowlab::Noise>("noise", "uniform", flowlab::Params().set("low", -1.0).set("high", 3.0));
  const Tensor inside = uniform->log_prob(at::tensor({0.0, 2.5, -1.0, 2.9, 1.0, 1.0}, kD).reshape({2, 3}));
  CHECK(inside[0].item<double>() == Approx(-3 * std::log(4.0)));
  CHECK(std::isinf(uniform->log_prob(at::tensor({0.0, 3.0, 0.0}, kD).reshape({1, 3}))[0].item<double>()));
  auto matched = registry().create<flowlab::Noise>("noise", "matched", flowlab::Params());
  matched->fit(at::randn({10000, 3}, kD) * 2);
  const double s = 2;  // fitted within sampling error: compare with the fitted std itself
  const Tensor fitted = matched->sample({200000, 3}, kD).std();
  const Tensor lp = matched->log_prob(x);
  const double sf = fitted.item<double>();
  const Tensor expect = -(x.pow(2).sum(1) / (2 * sf * sf)) - 3 * std::log(sf) - 1.5 * std::log(2 * M_PI);
  CHECK((lp - expect).abs().max().item<double>() < 0.02);
  CHECK(sf == Approx(s).epsilon(0.03));
  // A noise without a density returns an undefined tensor (the engine names it in its error).
  auto sparse = registry().create<flowlab::Noise>("noise", "sparse", flowlab::Params());
  CHECK(!sparse->log_prob(x).defined());
}

TEST_CASE("bits per dimension on digits: dequantized, finite, and the estimator agrees with the exact divergence",
          "[nll][digits]") {
  auto digits = registry().create<flowlab::Dataset>("dataset", "digits", flowlab::Params());
  CHECK(digits->quantization_step() == 0.125);  // 17 levels (0..16) on [-1, 1]
  at::manual_seed(7);
  const Tensor x = digits->reference(64, kD).x;  // [64, 1, 8, 8]
  // An untrained MLP on 64 dimensions: its field's Jacobian is dense, so the estimator's spread is real.
  auto model = registry().create<flowlab::Architecture>(
      "architecture", "mlp", flowlab::Params().set("width", int64_t(32)).set("depth", int64_t(2)));
  model->build({{1, 8, 8}, 0, 0});
  model->to(at::kDouble);
  const flowlab::VelocityField field = [model](const Tensor& y, const Tensor& t) { return model->forward(y, t); };
  const flowlab::ModelAccess a = access(field, 0.125);
  auto exact = nll(flowlab::Params().set("exact_max_dim", int64_t(64)));
  auto hutch = nll(flowlab::Params().set("exact_max_dim", int64_t(0)).set("probes", int64_t(64)));
  const double be = exact->compute_model(a, x), bh = hutch->compute_model(a, x);
  CHECK(std::isfinite(be));
  CHECK(be > 0);
  // Both dequantize with the same seed; the estimator's mean over 64 probes per sample lies close to the exact one.
  CHECK(bh == Approx(be).margin(0.02 * std::abs(be)));
  // The bits/dim arithmetic: the same solve in nats, by hand.
  at::Generator gen = at::detail::createCPUGenerator(0);
  const Tensor y = x + at::rand(x.sizes(), gen, kD) * 0.125;
  flowlab::Params tol;
  tol.set("rtol", 1e-5).set("atol", 1e-5);
  const auto r = flowlab::log_likelihood(*solver("dopri5", tol), field, y, std_normal_log_prob);
  const double nats = -r.log_p.mean().item<double>();
  CHECK(be == Approx((nats - 64 * std::log(0.125)) / (64 * std::log(2.0))).epsilon(1e-12));
  CHECK(exact->describe(a).rfind("bits/dim, uniform dequantization (bin 0.125); dopri5 backward", 0) == 0);
}

TEST_CASE("metric nll in an experiment: a column of every row, described in the results; bad input refused", "[nll][eval]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_nll_");
  auto load = [&](const std::string& yaml, const std::string& name) {
    const fs::path file = dir / (name + ".yaml");
    std::ofstream(file) << yaml;
    return flowlab::load_experiment(file.string(), registry());
  };
  const std::string base = R"(name: nll
data: {dataset: eight_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 20, batch_size: 64}
eval:
  samples: 200
  solvers: [{solver: euler, steps: [4, 8]}]
  metrics: [w2, {name: nll, params: {rtol: 1e-4, atol: 1e-4}}]
)";
  const auto ex = load(base, "plain");
  const auto r = flowlab::run_trial(ex.trials[0], registry(), "cpu");
  REQUIRE(r.status == "completed");
  REQUIRE(r.metric_names == std::vector<std::string>{"w2", "nll"});
  REQUIRE(r.eval.size() == 2);
  CHECK(r.eval[0].error.empty());
  CHECK(std::isfinite(r.eval[0].metrics[1]));
  CHECK(r.eval[0].metrics[1] == r.eval[1].metrics[1]);  // the model's, once per stage, on every row
  CHECK(r.eval[0].metrics[0] != r.eval[1].metrics[0]);  // w2 is the samples'
  CHECK(r.metric_features[1] ==
        "nats per sample; dopri5 backward, exact divergence up to 16 dimensions, else Hutchinson (1 rademacher probe)");

  // Trained with minibatch OT pairs: the results say the density is the flow's, with a warning.
  std::string ot = base;
  ot.replace(ot.find("model: {"), 8, "model: {coupling: minibatch_ot, ");
  const auto rot = flowlab::run_trial(load(ot, "ot").trials[0], registry(), "cpu");
  CHECK(rot.metric_features[1].find("; warning: trained with coupling 'minibatch_ot', not independent pairs") !=
        std::string::npos);
  CHECK(std::isfinite(rot.eval[0].metrics[1]));

  // A noise without a density: the rows say why, the samples' metrics stay.
  std::string sparse = base;
  sparse.replace(sparse.find("model: {"), 8, "model: {noise: sparse, ");
  const auto rs = flowlab::run_trial(load(sparse, "sparse").trials[0], registry(), "cpu");
  CHECK(rs.eval[0].error ==
        "metric/nll: noise/sparse has no log density, so no likelihood (noises with one: gaussian, matched, uniform)");
  CHECK(std::isnan(rs.eval[0].metrics[1]));

  // An unknown solver is a located error listing the valid ones.
  std::string bad = base;
  bad.replace(bad.find("rtol: 1e-4"), 10, "solver: rk5");
  const std::string msg = message_of<flowlab::Error>([&] { load(bad, "bad"); });
  CHECK(msg.find("bad.yaml:8:") != std::string::npos);
  CHECK(msg.find("eval.metrics[1].params.solver: unknown solver 'rk5'") != std::string::npos);
}

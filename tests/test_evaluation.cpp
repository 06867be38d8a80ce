// Evaluation the numbers depend on: the time embedding, the EMA warm-up, times at the path ends, the checkpoint
// before evaluation, straightness and speed, per-row errors, network calls under guidance and unique labels.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "flowlab/architecture.hpp"
#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/path.hpp"
#include "support.hpp"

using Catch::Approx;
namespace fs = std::filesystem;

namespace {

/// The default plugins plus tests/plugins/eval_probes.cpp.
const flowlab::Registry& probes() {
  static const flowlab::Registry reg({std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/eval"});
  return reg;
}

/// Loads an experiment written to a scratch file.
flowlab::Experiment load(const std::string& yaml, const std::string& name) {
  const fs::path file = flowlab::test::scratch_dir("flowlab_eval_") / (name + ".yaml");
  std::ofstream(file) << yaml;
  return flowlab::load_experiment(file.string(), probes());
}

/// The smallest distance between embeddings of two different times on a grid of n + 1 points in [0, 1].
double min_pair_distance(const at::Tensor& emb) {
  const at::Tensor d = at::cdist(emb, emb) + at::eye(emb.size(0), emb.options()) * 1e9;
  return d.min().item<double>();
}

}  // namespace

TEST_CASE("the sinusoidal time embedding keeps t recoverable at every width", "[eval][embedding]") {
  const at::Tensor t = at::linspace(0, 1, 2001, at::kDouble);
  for (int64_t dim = 1; dim <= 64; ++dim) {
    INFO("dim " << dim);
    const at::Tensor emb = flowlab::sinusoidal_embedding(t, dim);
    REQUIRE(emb.sizes() == at::IntArrayRef({2001, dim}));
    // Neighbours 5e-4 apart: the lowest pair alone separates them by 2 sin(pi 5e-4 / 2) = 1.57e-3; at width 1
    // the single feature 2t - 1 by 1e-3.
    CHECK(min_pair_distance(emb) > (dim == 1 ? 0.999e-3 : 1.5e-3));
  }
  // The lowest frequency is pi: at width 2 the features are (cos pi t, sin pi t).
  const at::Tensor two = flowlab::sinusoidal_embedding(at::tensor({0.25}, at::kDouble), 2);
  CHECK(two[0][0].item<double>() == Approx(std::cos(M_PI / 4)).margin(1e-15));
  CHECK(two[0][1].item<double>() == Approx(std::sin(M_PI / 4)).margin(1e-15));
  // The old DDPM form at width 2, (cos 1000 t, sin 1000 t), maps different times to nearly the same point.
  const at::Tensor old = at::stack({at::cos(1000 * t), at::sin(1000 * t)}, 1);
  CHECK(min_pair_distance(old) < 1e-3);
}

TEST_CASE("EMA warm-up: the EMA of a constant sequence equals it", "[eval][ema]") {
  CHECK(flowlab::ema_decay(0.999, 0) == Approx(0.1));
  CHECK(flowlab::ema_decay(0.999, 10) == Approx(11.0 / 20.0));
  CHECK(flowlab::ema_decay(0.999, 100000) == 0.999);
  CHECK(flowlab::ema_decay(0.5, 20) == 0.5);
  // Start from a "random initialisation" of 0 and average a constant 1 for 1000 steps.
  double ema = 0;
  for (int64_t n = 0; n < 1000; ++n) {
    const double d = flowlab::ema_decay(0.999, n);
    ema = d * ema + (1 - d) * 1.0;
  }
  // The initialisation's share, 9! 1000! / 1009! = 4e-22, is far below double precision: what is left is rounding.
  CHECK(std::abs(ema - 1.0) < 1e-14);
  // After 5 updates the share of the initialisation is prod_{n<5} (1+n)/(10+n) = 9! 5! / 14!.
  ema = 0;
  for (int64_t n = 0; n < 5; ++n) {
    const double d = flowlab::ema_decay(0.999, n);
    ema = d * ema + (1 - d) * 1.0;
  }
  CHECK(1 - ema == Approx(362880.0 * 120.0 / 87178291200.0).epsilon(1e-12));
  // Without the warm-up, 0.999^1000 = 37% of the initialisation would remain.
  CHECK(std::pow(0.999, 1000) > 0.36);
}

TEST_CASE("training times are kept inside each path's domain, so samplers that hit the ends do not diverge", "[eval][path]") {
  const auto& reg = probes();
  // Without the clamp the singular paths give non-finite targets at the ends.
  const at::Tensor x0 = at::randn({2, 2}), x1 = at::randn({2, 2});
  const at::Tensor ends = at::tensor({0.0f, 1.0f});
  flowlab::Params half;
  half.set("n", 0.5);
  const auto vp = reg.create<flowlab::Path>("path", "vp");
  const auto vp_linear = reg.create<flowlab::Path>("path", "vp_linear");
  const auto poly = reg.create<flowlab::Path>("path", "polynomial", half);
  CHECK_FALSE(at::isfinite(vp->sample(x0, x1, ends).ut).all().item<bool>());
  CHECK_FALSE(at::isfinite(vp_linear->sample(x0, x1, ends).ut).all().item<bool>());
  CHECK_FALSE(at::isfinite(poly->sample(x0, x1, ends).ut).all().item<bool>());
  CHECK(vp->domain().open_at_1);
  CHECK_FALSE(vp->domain().open_at_0);
  CHECK(poly->domain().open_at_0);
  CHECK_FALSE(reg.create<flowlab::Path>("path", "polynomial")->domain().open_at_0);  // n = 2 is fine at 0
  const at::Tensor clamped = vp->clamp_to_domain(ends);
  CHECK(clamped[0].item<float>() == 0.0f);
  CHECK(clamped[1].item<float>() == static_cast<float>(1 - flowlab::kTimeMargin));
  CHECK(clamped[1].item<float>() < 1.0f);
  CHECK(at::isfinite(vp->sample(x0, x1, clamped).ut).all().item<bool>());
  CHECK(poly->clamp_to_domain(ends)[0].item<float>() == static_cast<float>(flowlab::kTimeMargin));

  const auto ex = load(R"(name: ends
data: {dataset: ring_gaussians}
model:
  time_sampler: test_ends
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: 20, batch_size: 32, log_every: 1}
eval: {samples: 50, solvers: [{solver: euler, steps: [2]}], metrics: [frechet]}
sweep:
  zip: {model.path: [vp, vp_linear, polynomial]}
)",
                       "ends");
  REQUIRE(ex.trials.size() == 3);
  for (auto trial : ex.trials) {
    if (trial.path.name == "polynomial") trial.path.params.set("n", 0.5);
    INFO(trial.path.name);
    const auto r = flowlab::run_trial(trial, reg, "cpu");
    CHECK(r.status == "completed");
    REQUIRE(r.train.loss.size() == 20);
    for (double l : r.train.loss) CHECK(std::isfinite(l));
  }
}

TEST_CASE("a checkpoint is written after the last step, so evaluating again does not retrain", "[eval][checkpoint]") {
  const fs::path dir = fs::temp_directory_path() / ("flowlab_eval_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto ex = load(R"(name: last
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 15, batch_size: 32, log_every: 5}
eval: {samples: 100, solvers: [{solver: rk4, steps: [3]}], metrics: [frechet]}
)",
                       "last");
  const std::string ckpt = (dir / "t.ckpt").string();
  int64_t trained = 0;
  const auto first = flowlab::run_trial(ex.trials[0], probes(), "cpu", [&](const flowlab::Progress&) { ++trained; }, ckpt);
  CHECK(trained == 4);  // steps 0, 5, 10 and the last are logged
  REQUIRE(fs::exists(ckpt));  // checkpoint_every is 0: this is the one written before evaluation
  trained = 0;
  const auto again = flowlab::run_trial(ex.trials[0], probes(), "cpu", [&](const flowlab::Progress&) { ++trained; }, ckpt);
  CHECK(trained == 0);
  CHECK(again.train.loss == first.train.loss);
  REQUIRE(again.eval.size() == 1);
  CHECK(again.eval[0].metrics == first.eval[0].metrics);
  CHECK(again.eval[0].samples.values == first.eval[0].samples.values);
  fs::remove_all(dir);
}

TEST_CASE("straightness: 0 for a straight field at any step count, the analytic value for a rotation", "[eval][straightness]") {
  const auto straight = load(R"(name: straight
data: {dataset: ring_gaussians}
model: {architecture: test_constant}
train: {steps: 1, batch_size: 8}
eval:
  samples: 300
  solvers: [{solver: euler, steps: [1, 3, 17]}, {solver: rk4, steps: [5]}, {solver: dopri5}]
)",
                             "straight");
  const auto s = flowlab::run_trial(straight.trials[0], probes(), "cpu");
  REQUIRE(s.eval.size() == 5);
  for (const auto& row : s.eval) {
    INFO(row.label);
    CHECK(row.error.empty());
    CHECK(std::abs(row.straightness) < 1e-9);
    // |v| = |(1, 2)| = sqrt(5) at every state; one state more than steps for fixed-step solvers.
    REQUIRE(row.mean_speed.size() == row.times.size());
    for (double v : row.mean_speed) CHECK(v == Approx(std::sqrt(5.0)).epsilon(1e-6));
    if (row.steps > 0) CHECK(static_cast<int64_t>(row.times.size()) == row.steps + 1);
    CHECK(row.times.front() == 0.0);
    CHECK(row.times.back() == 1.0);
  }

  // v = omega J x: x(t) = R(omega t) x0, d = x(1) - x0 with |d| = 2 sin(omega / 2) |x0|, int v dt = d, so
  // S = E[omega^2 |x0|^2 - 4 sin^2(omega / 2) |x0|^2]. RK4 with 200 steps follows the circle to 1e-9 and the
  // trapezoid rule over its states integrates to O(h^2) = 2.5e-5 relative.
  const auto rotation = load(R"(name: rotation
data: {dataset: ring_gaussians}
model: {architecture: {name: test_rotation, params: {omega: 2.0}}}
train: {steps: 1, batch_size: 8}
eval:
  samples: 400
  store_samples: 400
  solvers: [{solver: rk4, steps: [200]}]
)",
                             "rotation");
  const auto r = flowlab::run_trial(rotation.trials[0], probes(), "cpu");
  REQUIRE(r.eval.size() == 1);
  REQUIRE(r.x0.shape == std::vector<int64_t>{400, 2});
  double mean_sq = 0;
  for (float v : r.x0.values) mean_sq += double(v) * v;
  mean_sq /= 400;
  const double omega = 2.0;
  const double expected = (omega * omega - 4 * std::pow(std::sin(omega / 2), 2)) * mean_sq;
  CHECK(expected > 1.0);
  CHECK(r.eval[0].straightness == Approx(expected).epsilon(1e-4));
}

TEST_CASE("a failing solver fails its row only; the trial completes with the other rows", "[eval][errors]") {
  const auto ex = load(R"(name: rows
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 32}
eval:
  samples: 100
  solvers: [{solver: euler, steps: [4]}, {solver: dopri5, params: {max_steps: 1, rtol: 1e-9, atol: 1e-9}}]
  metrics: [frechet]
)",
                       "rows");
  const auto r = flowlab::run_trial(ex.trials[0], probes(), "cpu");
  CHECK(r.status == "completed");
  CHECK(r.failed_rows == 1);
  REQUIRE(r.eval.size() == 2);
  CHECK(r.eval[0].error.empty());
  CHECK(std::isfinite(r.eval[0].metrics.at(0)));
  CHECK(r.eval[1].error.rfind("solver/dopri5: exceeded max_steps = 1 at step ", 0) == 0);
  CHECK(std::isnan(r.eval[1].metrics.at(0)));
  CHECK(r.eval[1].samples.empty());
  CHECK(r.train.loss.size() == 2);  // the training log is kept (log_every 10: steps 0 and 4)
}

TEST_CASE("guidance with w not in {0, 1} costs two network calls per field evaluation", "[eval][cfg]") {
  const auto ex = load(R"(name: calls
data: {dataset: ring_gaussians, params: {modes: 4}}
model: {condition: label, architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 32}
eval: {samples: 50, solvers: [{solver: euler, steps: [6]}, {solver: heun, steps: [3]}]}
sweep:
  grid: {eval.guidance: [0.0, 1.0, 2.5]}
)",
                       "calls");
  REQUIRE(ex.trials.size() == 3);
  for (const auto& trial : ex.trials) {
    const auto r = flowlab::run_trial(trial, probes(), "cpu");
    const int64_t per = trial.eval.guidance == 2.5 ? 2 : 1;
    REQUIRE(r.eval.size() == 2);
    CHECK(r.eval[0].nfe == 6);
    CHECK(r.eval[0].network_calls == 6 * per);
    CHECK(r.eval[1].nfe == 6);  // heun: 2 evaluations per step
    CHECK(r.eval[1].network_calls == 6 * per);
  }
}

TEST_CASE("an adaptive solver that hits max_nfe fails its row, which says so", "[eval][errors]") {
  const auto ex = load(R"(name: cap
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 2, batch_size: 32}
eval:
  samples: 50
  solvers: [{solver: bosh3, params: {max_nfe: 7}}, {solver: euler, steps: [4]}]
  metrics: [frechet]
)",
                       "cap");
  const auto r = flowlab::run_trial(ex.trials[0], probes(), "cpu");
  CHECK(r.status == "completed");
  CHECK(r.failed_rows == 1);
  REQUIRE(r.eval.size() == 2);
  // f(t0) and Hairer's probe (2), one attempted step (3 more: 5), and the next would need 3 more.
  CHECK(r.eval[0].error.rfind("solver/bosh3: hit max_nfe = 7 at step ", 0) == 0);
  CHECK(r.eval[0].error.find("5 evaluations done, the next step needs 3") != std::string::npos);
  CHECK(std::isnan(r.eval[0].metrics.at(0)));
  CHECK(r.eval[1].error.empty());
}

TEST_CASE("eval runs and metrics get unique labels with every parameter that differs", "[eval][labels]") {
  const auto ex = load(R"(name: labels
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
eval:
  solvers:
    - {solver: rk4, steps: [5, 10]}
    - {solver: dopri5, params: {atol: [1.0e-6, 1.0e-8]}}
    - {solver: euler}
  metrics: [frechet]
)",
                       "labels");
  const auto& runs = ex.trials[0].eval.runs;
  std::vector<std::string> labels;
  for (const auto& r : runs) labels.push_back(r.label);
  CHECK(labels == std::vector<std::string>{"rk4:steps=5", "rk4:steps=10", "dopri5:rtol=1e-05,atol=1e-06",
                                           "dopri5:rtol=1e-05,atol=1e-08", "euler:steps=10"});
  CHECK(ex.trials[0].eval.metric_labels == std::vector<std::string>{"frechet"});

  const std::string same_run = flowlab::test::message_of<flowlab::ConfigError>([] {
    load("name: twice\ndata: {dataset: ring_gaussians}\nmodel: {architecture: mlp}\neval:\n  solvers: [{solver: rk4, steps: [5, 5]}]\n", "twice");
  });
  CHECK(same_run.substr(same_run.find(".yaml:") + 6) ==
        "5:12: eval.solvers: two runs are the same (rk4:steps=5): list each solver setting once");
  const std::string same_metric = flowlab::test::message_of<flowlab::ConfigError>([] {
    load("name: twice\ndata: {dataset: ring_gaussians}\nmodel: {architecture: mlp}\neval:\n  metrics: [frechet, frechet]\n", "twice");
  });
  CHECK(same_metric.substr(same_metric.find(".yaml:") + 6) ==
        "5:22: eval.metrics[1]: the same metric as eval.metrics[0] (frechet)");
}

TEST_CASE("metrics run on the features they name, against the held-out split", "[eval][features]") {
  const fs::path cache = fs::temp_directory_path() / ("flowlab_eval_cache_" + std::to_string(::getpid()));
  ::setenv("FLOWLAB_CACHE_DIR", cache.c_str(), 1);
  const auto ex = load(R"(name: feats
data: {dataset: digits}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 3, batch_size: 16}
eval:
  samples: 100
  solvers: [{solver: euler, steps: [2]}]
  metrics: [{name: frechet, params: {features: builtin:digits}}, frechet, w2]
)",
                       "feats");
  const auto& e = ex.trials[0].eval;
  CHECK(e.metric_labels == std::vector<std::string>{"frechet[features=builtin:digits]", "frechet[features=raw]", "w2"});
  const auto r = flowlab::run_trial(ex.trials[0], probes(), "cpu");
  ::unsetenv("FLOWLAB_CACHE_DIR");
  fs::remove_all(cache);
  REQUIRE(r.status == "completed");
  CHECK(r.reference_source == "held-out split (seeded 20%, 360 of 1797)");
  CHECK(r.reference_count == 100);
  REQUIRE(r.metric_features.size() == 3);
  CHECK(r.metric_features[0].rfind("builtin:digits v1 (held-out accuracy ", 0) == 0);
  CHECK(r.metric_features[1] == "raw");
  REQUIRE(r.eval.size() == 1);
  REQUIRE(r.eval[0].error.empty());
  // Feature space (128-d activations) and pixel space (64-d) give different numbers for the same samples.
  CHECK(std::isfinite(r.eval[0].metrics[0]));
  CHECK(std::isfinite(r.eval[0].metrics[1]));
  CHECK(r.eval[0].metrics[0] != r.eval[0].metrics[1]);
  CHECK(r.eval[0].samples.shape == std::vector<int64_t>{64, 1, 8, 8});  // images: 64 stored by default

  const std::string bad = flowlab::test::message_of<flowlab::ConfigError>([] {
    load("name: bad\ndata: {dataset: digits}\nmodel: {architecture: mlp}\neval:\n"
         "  metrics: [{name: kid, params: {features: inception}}]\n",
         "bad");
  });
  CHECK(bad.substr(bad.find(".yaml:") + 6) ==
        "5:44: eval.metrics[0].params.features: 'inception' is not a feature extractor (valid: raw, builtin:digits, "
        "builtin:fashion_mnist, torchscript:PATH)");
}

TEST_CASE("guidance schedules: the interval [0, 1] is constant guidance bit for bit; calls counted per time",
          "[eval][cfg][guidance]") {
  const std::string base = R"(name: sched
data: {dataset: ring_gaussians, params: {modes: 4}}
model: {condition: label, architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 5, batch_size: 32}
eval: {samples: 50, solvers: [{solver: euler, steps: [6]}, {solver: heun, steps: [3]}]}
sweep:
  grid:
    eval.guidance: [2.5, {scale: 2.5, interval: [0, 1]}, {scale: 2.5, interval: [0.5, 1]}, {scale: 2.5, ramp: up}]
)";
  const auto ex = load(base, "sched");
  REQUIRE(ex.trials.size() == 4);
  std::vector<flowlab::TrialResult> r;
  for (const auto& trial : ex.trials) r.push_back(flowlab::run_trial(trial, probes(), "cpu"));
  CHECK(ex.trials[2].eval.guidance_schedule == "interval");
  CHECK(ex.trials[3].eval.guidance_schedule == "up");
  for (size_t k = 0; k < 2; ++k) {
    INFO("row " << k);
    CHECK(r[1].eval[k].samples.values == r[0].eval[k].samples.values);  // [0, 1]: constant, bit for bit
    CHECK(r[1].eval[k].network_calls == 12);
    CHECK(r[2].eval[k].samples.values != r[0].eval[k].samples.values);
  }
  // [0.5, 1]: euler evaluates at 0, 1/6, 2/6 (one call each) and 3/6, 4/6, 5/6 (two); heun at 0, 1/3, 1/3 (one)
  // and 2/3, 2/3, 1 (two).
  CHECK(r[2].eval[0].network_calls == 9);
  CHECK(r[2].eval[1].network_calls == 9);
  // ramp up: w(0) = 1 (one call), then two per evaluation: euler 1 + 5 * 2, heun 1 + 5 * 2.
  CHECK(r[3].eval[0].network_calls == 11);
  CHECK(r[3].eval[1].network_calls == 11);
  for (const auto& t : r) CHECK(t.eval[0].nfe == 6);
}

TEST_CASE("autoguidance: a guide equal to the model is unguided sampling bit for bit; an earlier snapshot guides, "
          "is checkpointed, and a step never kept is refused", "[eval][autoguidance]") {
  const std::string base = R"(name: auto
data: {dataset: ring_gaussians, params: {modes: 4}}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 12, batch_size: 32, ema: 0}
eval:
  samples: 64
  solvers: [{solver: euler, steps: [5]}]
)";
  const auto plain = flowlab::run_trial(load(base, "auto_plain").trials[0], probes(), "cpu");
  // The guide is round 0 after all 12 steps: the evaluated model itself, so v_g + w (v - v_g) = v exactly.
  const auto same = flowlab::run_trial(load(base + "  guidance: {scale: 2.5, guide: {step: 12}}\n", "auto_same").trials[0],
                                       probes(), "cpu");
  REQUIRE(same.eval.size() == 1);
  CHECK(same.eval[0].error.empty());
  CHECK(same.eval[0].samples.values == plain.eval[0].samples.values);
  CHECK(same.eval[0].nfe == 5);
  CHECK(same.eval[0].network_calls == 10);  // guide and model per evaluation
  CHECK(plain.eval[0].network_calls == 5);

  // A guide from step 3: differs from unguided; w = 1 is the model alone (one call), w = 0 the guide alone.
  const auto early = load(base + "  guidance: {scale: 2.5, guide: {step: 3}}\n", "auto_early").trials[0];
  const auto guided = flowlab::run_trial(early, probes(), "cpu");
  CHECK(guided.eval[0].samples.values != plain.eval[0].samples.values);
  const auto one = flowlab::run_trial(load(base + "  guidance: {scale: 1, guide: {step: 3}}\n", "auto_one").trials[0],
                                      probes(), "cpu");
  CHECK(one.eval[0].samples.values == plain.eval[0].samples.values);
  CHECK(one.eval[0].network_calls == 5);
  // The guide's weights are in the checkpoint: evaluating again from it (no retraining) gives the same samples.
  const fs::path dir = flowlab::test::scratch_dir("flowlab_autoguide_");
  const std::string ckpt = (dir / "g.ckpt").string();
  const auto first = flowlab::run_trial(early, probes(), "cpu", nullptr, ckpt);
  int64_t trained = 0;
  const auto again = flowlab::run_trial(early, probes(), "cpu", [&](const flowlab::Progress&) { ++trained; }, ckpt);
  CHECK(trained == 0);
  CHECK(again.eval[0].samples.values == first.eval[0].samples.values);
  CHECK(first.eval[0].samples.values == guided.eval[0].samples.values);

  // A step round 0 never reaches is a located error.
  const std::string msg = flowlab::test::message_of<flowlab::ConfigError>(
      [&] { load(base + "  guidance: {scale: 2, guide: {step: 50}}\n", "auto_bad"); });
  CHECK(msg.find("auto_bad.yaml:8:") != std::string::npos);
  CHECK(msg.find("eval.guidance.guide.step: round 0 trains 12 steps (train.steps), so the snapshot at step 50 is never "
                 "kept: give 0 to 12") != std::string::npos);
}

TEST_CASE("autoguidance by a smaller architecture trained beside round 0: the model trains as without it, the guide "
          "network resumes from checkpoints, bad guides are refused", "[eval][autoguidance]") {
  const std::string base = R"(name: auto_arch
data: {dataset: ring_gaussians, params: {modes: 4}}
model: {architecture: {name: mlp, params: {width: 16, depth: 2}}}
train: {steps: 12, batch_size: 32, ema: 0.9, log_every: 1, grad_clip: 1}
eval:
  samples: 64
  solvers: [{solver: euler, steps: [5]}]
)";
  const std::string small = "{name: mlp, params: {width: 8, depth: 1}}";
  const auto plain = flowlab::run_trial(load(base, "arch_plain").trials[0], probes(), "cpu");
  // w = 1: the model alone, one call per step. Training the guide beside round 0 draws nothing and changes nothing
  // of the model's training: the same losses and samples, bit for bit.
  const auto one = flowlab::run_trial(
      load(base + "  guidance: {scale: 1, guide: {architecture: " + small + "}}\n", "arch_one").trials[0], probes(), "cpu");
  CHECK(one.train.loss == plain.train.loss);
  CHECK(one.train.grad_norm == plain.train.grad_norm);
  REQUIRE(one.eval.size() == 1);
  CHECK(one.eval[0].samples.values == plain.eval[0].samples.values);
  CHECK(one.eval[0].network_calls == 5);

  // w = 2.5: guide and model at each step; the guide is not the model, so the samples move.
  const auto guided_trial =
      load(base + "  guidance: {scale: 2.5, guide: {architecture: " + small + "}}\n", "arch_guided").trials[0];
  CHECK(guided_trial.eval.guide_step == 12);  // no step given: the guide network's end of round 0
  CHECK(guided_trial.eval.guide_architecture.name == "mlp");
  const auto guided = flowlab::run_trial(guided_trial, probes(), "cpu");
  REQUIRE(guided.eval.size() == 1);
  CHECK(guided.eval[0].error.empty());
  CHECK(guided.eval[0].nfe == 5);
  CHECK(guided.eval[0].network_calls == 10);
  CHECK(guided.eval[0].samples.values != plain.eval[0].samples.values);
  CHECK(guided.train.loss == plain.train.loss);
  // w = 0: the guide alone, which is a different network from the snapshot guide of the same step.
  const auto guide_only = flowlab::run_trial(
      load(base + "  guidance: {scale: 0, guide: {architecture: " + small + "}}\n", "arch_zero").trials[0], probes(), "cpu");
  const auto snapshot_only =
      flowlab::run_trial(load(base + "  guidance: {scale: 0, guide: {step: 12}}\n", "arch_snap").trials[0], probes(), "cpu");
  CHECK(guide_only.eval[0].network_calls == 5);
  CHECK(snapshot_only.eval[0].samples.values == plain.eval[0].samples.values);  // the snapshot at 12 is the model
  CHECK(guide_only.eval[0].samples.values != plain.eval[0].samples.values);
  // The guide network stopped at step 6 is another guide.
  const auto early = flowlab::run_trial(
      load(base + "  guidance: {scale: 2.5, guide: {architecture: " + small + ", step: 6}}\n", "arch_early").trials[0],
      probes(), "cpu");
  CHECK(early.eval[0].samples.values != guided.eval[0].samples.values);

  // A crash at step 7 after the checkpoint of step 4: the guide network's weights, AdamW state and EMA come back from
  // it, so the resumed trial ends bit for bit as the uninterrupted one.
  const fs::path dir = flowlab::test::scratch_dir("flowlab_autoguide_arch_");
  const std::string ckpt = (dir / "g.ckpt").string();
  std::string with_checkpoints = base;
  with_checkpoints.replace(with_checkpoints.find("grad_clip: 1}"), 13, "grad_clip: 1, checkpoint_every: 4}");
  const auto ckpt_trial =
      load(with_checkpoints + "  guidance: {scale: 2.5, guide: {architecture: " + small + "}}\n", "arch_ckpt").trials[0];
  CHECK_THROWS_AS(flowlab::run_trial(ckpt_trial, probes(), "cpu",
                                     [](const flowlab::Progress& p) {
                                       if (p.step == 7) throw std::runtime_error("crash");
                                     },
                                     ckpt),
                  std::runtime_error);
  REQUIRE(fs::exists(ckpt));
  int64_t first = -1;
  const auto resumed = flowlab::run_trial(ckpt_trial, probes(), "cpu",
                                          [&](const flowlab::Progress& p) {
                                            if (first < 0) first = p.step;
                                          },
                                          ckpt);
  CHECK(first == 5);
  CHECK(resumed.train.loss == guided.train.loss);
  CHECK(resumed.eval[0].samples.values == guided.eval[0].samples.values);

  // Bad guides, located, with the valid choices.
  std::string msg = flowlab::test::message_of<flowlab::ConfigError>(
      [&] { load(base + "  guidance: {scale: 2, guide: {architecture: mlpp}}\n", "arch_bad"); });
  CHECK(msg.find("arch_bad.yaml:8:") != std::string::npos);
  CHECK(msg.find("eval.guidance.guide.architecture: unknown architecture 'mlpp'") != std::string::npos);
  CHECK(msg.find("mlp") != std::string::npos);
  msg = flowlab::test::message_of<flowlab::ConfigError>(
      [&] { load(base + "  guidance: {scale: 2, guide: {}}\n", "arch_empty"); });
  CHECK(msg.find("arch_empty.yaml:8:") != std::string::npos);
  CHECK(msg.find("eval.guidance.guide: missing key 'step' or 'architecture' (the training step of round 0 whose "
                 "weights guide, or a smaller architecture trained beside round 0)") != std::string::npos);
  msg = flowlab::test::message_of<flowlab::ConfigError>(
      [&] { load(base + "  guidance: {scale: 2, guide: {architecture: {name: mlp, params: {widht: 8}}}}\n", "arch_param"); });
  CHECK(msg.find("arch_param.yaml:8:") != std::string::npos);
  CHECK(msg.find("widht") != std::string::npos);
}

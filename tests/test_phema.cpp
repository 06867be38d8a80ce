// Post-hoc EMA (EDM2): the profile formulas against NumPy (tests/data/make_phema_reference.py), the tracked EMAs
// against their closed-form step weights, the reconstruction, the exact snapshot, the engine's rows against
// flowlab ema's, resume, and the located errors.
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/phema.hpp"
#include "support.hpp"

using Catch::Approx;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

struct RefLine {
  std::string kind;
  double a, b, c, d, value;
};

std::vector<RefLine> reference() {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/phema_reference.csv");
  REQUIRE(in);
  std::vector<RefLine> out;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    RefLine r;
    std::string cell;
    std::getline(ss, r.kind, ',');
    for (double* v : {&r.a, &r.b, &r.c, &r.d, &r.value}) {
      std::getline(ss, cell, ',');
      *v = std::stod(cell);
    }
    out.push_back(r);
  }
  return out;
}

// A sequence of "weights" theta_s, s = 1..T, of width P: smooth drifts plus noise, in double.
at::Tensor sequence(int64_t T, int64_t P) {
  at::manual_seed(7);
  const at::Tensor s = at::arange(1, T + 1, at::kDouble).unsqueeze(1) / double(T);
  const at::Tensor phase = at::rand({1, P}, at::kDouble) * 6;
  return at::sin(3 * s + phase) + 0.05 * at::randn({T, P}, at::kDouble);
}

// sum_s w(s) theta_s with the closed-form weights of the power-function EMA (t, std).
at::Tensor direct_ema(const at::Tensor& theta, int64_t t, double std) {
  at::Tensor acc = at::zeros({theta.size(1)}, at::kDouble);
  for (int64_t s = 1; s <= t; ++s) acc += flowlab::phema_step_weight(s, t, std) * theta[s - 1];
  return acc;
}

std::string write_experiment(const fs::path& dir, const std::string& text) {
  fs::create_directories(dir);
  const fs::path file = dir / "exp.yaml";
  std::ofstream(file) << text;
  return file.string();
}

}  // namespace

TEST_CASE("post-hoc EMA profiles match EDM2's formulas computed with NumPy", "[phema]") {
  std::map<double, std::vector<std::pair<int64_t, double>>> coefficients;  // target -> (index, value)
  std::vector<int64_t> steps;
  std::vector<double> stds;
  std::map<double, double> profile_error;
  for (const RefLine& r : reference()) {
    if (r.kind == "exponent") {
      INFO("std " << r.a);
      CHECK(flowlab::phema_exponent(r.a) == Approx(r.value).epsilon(1e-12));
      CHECK(flowlab::phema_std(flowlab::phema_exponent(r.a)) == Approx(r.a).epsilon(1e-13));
    } else if (r.kind == "correlation") {
      CHECK(flowlab::phema_correlation(r.a, r.b, r.c, r.d) == Approx(r.value).epsilon(1e-10));
    } else if (r.kind == "coefficient") {
      coefficients[r.a].emplace_back(int64_t(r.b), r.value);
      if (r.a == 0.08) steps.push_back(int64_t(r.c)), stds.push_back(r.d);
    } else if (r.kind == "profile_error") {
      profile_error[r.a] = r.value;
    }
  }
  REQUIRE(coefficients.size() == 3);
  // The reference's snapshot steps are flowlab's own for 8 snapshots of a 300-step stage.
  std::vector<int64_t> distinct = steps;
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  CHECK(flowlab::phema_snapshot_steps(300, 8) == distinct);
  for (const auto& [target, expected] : coefficients) {
    INFO("target std " << target);
    const flowlab::PhemaFit fit = flowlab::phema_fit(steps, stds, 300, target);
    REQUIRE(fit.coefficients.size() == expected.size());
    double sum = 0;
    for (const auto& [i, value] : expected) {
      CHECK(fit.coefficients[size_t(i)] == Approx(value).margin(1e-9));
      sum += fit.coefficients[size_t(i)];
    }
    CHECK(sum == Approx(1.0).epsilon(1e-12));
    CHECK(fit.profile_error == Approx(profile_error.at(target)).epsilon(1e-6));
  }
}

TEST_CASE("tracked power-function EMAs equal their closed-form step weights; reconstruction is their combination",
          "[phema]") {
  const int64_t T = 200, P = 6;
  const at::Tensor theta = sequence(T, P);
  const std::vector<double> stds = {0.05, 0.1};
  for (const auto dtype : {at::kDouble, at::kFloat}) {
    INFO((dtype == at::kDouble ? "double" : "float"));
    const double tol = dtype == at::kDouble ? 1e-12 : 1e-6;
    flowlab::PowerEma ema(theta[0].to(dtype), stds, flowlab::phema_snapshot_steps(T, 5));
    for (int64_t t = 1; t <= T; ++t) ema.update(theta[t - 1].to(dtype), t);
    const auto& snaps = ema.snapshots();
    REQUIRE(snaps.size() == 10);
    for (const auto& s : snaps) {
      INFO("step " << s.step << " std " << s.std);
      CHECK(at::allclose(s.flat.to(at::kDouble), direct_ema(theta, s.step, s.std), 0, tol));
    }
    // A std between and beyond the stored ones: the reconstruction is the combination of the snapshots with the
    // fit's coefficients, which is the EMA with the fitted step weights; it differs from the exact EMA of that std
    // by at most profile_error * max |theta|.
    for (const double target : {0.03, 0.075, 0.2}) {
      INFO("target " << target);
      flowlab::PhemaFit fit;
      const at::Tensor rec = flowlab::phema_reconstruct(snaps, T, target, &fit).to(at::kDouble);
      at::Tensor fitted = at::zeros({P}, at::kDouble);
      for (int64_t s = 1; s <= T; ++s) {
        double w = 0;
        for (size_t i = 0; i < snaps.size(); ++i)
          w += fit.coefficients[i] * flowlab::phema_step_weight(s, snaps[i].step, snaps[i].std);
        fitted += w * theta[s - 1];
      }
      CHECK(at::allclose(rec, fitted, 0, tol));
      const double bound = fit.profile_error * theta.abs().max().item<double>();
      CHECK((rec - direct_ema(theta, T, target)).abs().max().item<double>() <= bound + tol);
      CHECK(fit.profile_error > 0);
    }
    // A stored std at the last step is that snapshot, exactly.
    for (const double s : stds) {
      flowlab::PhemaFit fit;
      const at::Tensor rec = flowlab::phema_reconstruct(snaps, T, s, &fit);
      CHECK(fit.exact < snaps.size());
      CHECK(fit.profile_error == 0);
      CHECK(at::equal(rec, snaps[fit.exact].flat));
    }
  }
  CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::phema_exponent(0.3); }) ==
        "post-hoc EMA std 0.3 is outside the reconstructable range (0, 0.288675): a power-function profile's relative "
        "std is below 1/sqrt(12), the uniform average over all of training");
}

TEST_CASE("eval.ema_std rows equal flowlab ema's, resume keeps the snapshots, a sweep axis trains once",
          "[phema][engine]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_phema_");
  const std::string file = write_experiment(dir, R"(name: phema
data: {dataset: moons}
model: {architecture: {name: mlp, params: {width: 16, depth: 2}}}
train: {steps: 40, batch_size: 64, log_every: 1, checkpoint_every: 10, phema: {stds: [0.05, 0.1], snapshots: 4}}
eval:
  samples: 128
  solvers: [{solver: euler, steps: [2, 8]}]
  metrics: [w2]
sweep:
  grid: {eval.ema_std: [0.07, 0.1]}
)");
  const auto ex = flowlab::load_experiment(file, registry());
  REQUIRE(ex.trials.size() == 1);  // the axis is folded into the trial
  const auto& trial = ex.trials[0];
  CHECK(trial.eval.ema_stds == std::vector<double>{0.07, 0.1});
  CHECK(trial.id == "seed=0");
  const auto straight = flowlab::run_trial(trial, registry(), "cpu", {}, (dir / "straight.ckpt").string());
  REQUIRE(straight.status == "completed");
  REQUIRE(straight.eval.size() == 6);
  const std::vector<std::string> labels = {"euler:steps=2", "euler:steps=8", "euler:steps=2,ema_std=0.07",
                                           "euler:steps=8,ema_std=0.07", "euler:steps=2,ema_std=0.1",
                                           "euler:steps=8,ema_std=0.1"};
  for (size_t i = 0; i < labels.size(); ++i) CHECK(straight.eval[i].label == labels[i]);
  CHECK(straight.phema.steps == std::vector<int64_t>{10, 10, 20, 20, 30, 30, 40, 40});
  CHECK(straight.phema.values.shape.size() == 2);
  // The EMA rows are not the ordinary EMA's (0.999) rows.
  CHECK(straight.eval[2].samples.values != straight.eval[0].samples.values);

  // Interrupted after step 25 and resumed from the checkpoint of step 20: the same snapshots and rows.
  const std::string ckpt = (dir / "resumed.ckpt").string();
  CHECK_THROWS_AS(flowlab::run_trial(trial, registry(), "cpu",
                                     [](const flowlab::Progress& p) {
                                       if (p.step == 25) throw std::runtime_error("interrupted");
                                     },
                                     ckpt),
                  std::runtime_error);
  const auto resumed = flowlab::run_trial(trial, registry(), "cpu", {}, ckpt);
  CHECK(resumed.phema.values.values == straight.phema.values.values);
  for (size_t i = 0; i < straight.eval.size(); ++i) CHECK(resumed.eval[i].samples.values == straight.eval[i].samples.values);

  // flowlab ema's engine call, from the stored weights and snapshots: the same rows bit for bit, for a std in the
  // list and one that is not.
  const auto again = flowlab::evaluate_posthoc_ema(trial, registry(), "cpu", straight.weights, straight.phema, {0.07, 0.1});
  REQUIRE(again.eval.size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    INFO(straight.eval[2 + i].label);
    CHECK(again.eval[i].label == straight.eval[2 + i].label);
    CHECK(again.eval[i].samples.values == straight.eval[2 + i].samples.values);
    CHECK(again.eval[i].metrics == straight.eval[2 + i].metrics);
  }
  const auto other = flowlab::evaluate_posthoc_ema(trial, registry(), "cpu", straight.weights, straight.phema, {0.2});
  REQUIRE(other.eval.size() == 2);
  CHECK(other.eval[0].label == "euler:steps=2,ema_std=0.2");
  CHECK(other.eval[0].samples.values != straight.eval[2].samples.values);
}

TEST_CASE("post-hoc EMA settings refuse bad input with located errors", "[phema][config]") {
  const fs::path dir = flowlab::test::scratch_dir("flowlab_phema_bad_");
  const std::string f = (dir / "exp.yaml").string();
  auto message = [&](const std::string& text) {
    write_experiment(dir, text);
    return flowlab::test::message_of<flowlab::ConfigError>([&] { flowlab::load_experiment(f, registry()); });
  };
  const std::string head = "name: bad\ndata: {dataset: moons}\nmodel: {architecture: mlp}\n";
  CHECK(message(head + "eval: {ema_std: 0.1}\n") ==
        f + ":4:17: eval.ema_std: round 0 keeps no post-hoc EMA snapshots to reconstruct from: add train.phema: "
            "{stds: [0.05, 0.1]}");
  CHECK(message(head + "train: {phema: {stds: [0.05]}}\neval: {ema_std: [0.1, 0.3]}\n") ==
        f + ":5:23: eval.ema_std[1]: 0.3 is outside the reconstructable range of post-hoc EMA stds (0, 0.288675): a "
            "power-function profile's relative std is below 1/sqrt(12), the uniform average over all of training");
  CHECK(message(head + "train: {phema: {stds: [0.05, 0.05]}}\n") ==
        f + ":4:30: train.phema.stds[1]: 0.05 is listed twice");
  CHECK(message(head + "train: {phema: {stds: [0.05], snapshot: 4}}\n") ==
        f + ":4:31: train.phema.snapshot: unknown key 'snapshot' (did you mean 'snapshots'? valid: stds, snapshots)");
  CHECK(message(head + "train: {steps: 0, phema: {stds: [0.05]}}\n") ==
        f + ":4:26: train.phema: round 0 trains 0 steps (train.steps): there is nothing to average; drop train.phema");
  CHECK(message(head + "train: {phema: {stds: [0.05]}}\nsweep: {zip: {eval.ema_std: [0.1]}}\n") ==
        f + ":5:29: sweep.zip.eval.ema_std: post-hoc EMA stds are evaluated within each trial from its snapshots, at "
            "no training cost, so they cannot be zipped with other keys: put eval.ema_std under sweep.grid, or list "
            "the stds in eval.ema_std");
}

TEST_CASE("flowlab ema prints the rows that eval.ema_std stored, and names what is missing", "[phema][cli]") {
  const flowlab::test::ScratchDir dir("flowlab_phema_cli");
  const std::string base = R"(name: phema_cli
output: )" + dir.file("r.h5") + R"(
data: {dataset: moons}
model: {architecture: {name: mlp, params: {width: 16, depth: 2}}}
eval:
  samples: 100
  solvers: [{solver: euler, steps: [3]}]
  metrics: [w2]
)";
  std::ofstream(dir.file("exp.yaml")) << base << "  ema_std: [0.09]\ntrain: {steps: 30, batch_size: 32, phema: {snapshots: 3}}\n";
  const std::string cli = FLOWLAB_CLI;
  REQUIRE(flowlab::test::run_command(cli + " run " + dir.file("exp.yaml")).status == 0);
  const auto stored = flowlab::test::run_command(cli + " report " + dir.file("r.h5") + " --format csv");
  REQUIRE(stored.status == 0);
  const auto r = flowlab::test::run_command(cli + " ema " + dir.file("r.h5") + " --trial seed=0 --std 0.09 --format csv");
  INFO(r.err);
  REQUIRE(r.status == 0);
  // One row: its label and w2, which the report read from the file.
  std::stringstream lines(r.out);
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  CHECK(header == "label,nfe,w2,error");
  const std::string label = "euler:steps=3,ema_std=0.09";
  REQUIRE(row.rfind("\"" + label + "\",3,", 0) == 0);  // quoted: the label has a comma
  const std::string rest = row.substr(label.size() + 5);   // "w2,error"
  REQUIRE(rest.back() == ',');                              // no error
  const std::vector<std::string> cells = {label, "3", rest.substr(0, rest.size() - 1)};
  // The report's line of that run holds the same w2, to the digits both print.
  const size_t at = stored.out.find(cells[0]);
  REQUIRE(at != std::string::npos);
  const std::string line = stored.out.substr(at, stored.out.find('\n', at) - at);
  CHECK(line.find(cells[2].substr(0, 6)) != std::string::npos);

  std::ofstream(dir.file("plain.yaml")) << base << "train: {steps: 5, batch_size: 32}\n";
  REQUIRE(flowlab::test::run_command(cli + " run " + dir.file("plain.yaml") + " --out " + dir.file("plain.h5")).status == 0);
  const auto none = flowlab::test::run_command(cli + " ema " + dir.file("plain.h5") + " --trial seed=0 --std 0.1");
  CHECK(none.status != 0);
  CHECK(none.err == "flowlab: error: " + dir.file("plain.h5") + ": trial seed=0 kept no post-hoc EMA snapshots: train "
                    "it with train.phema (e.g. train.phema: {stds: [0.05, 0.1], snapshots: 16})\n");
}

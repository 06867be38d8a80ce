// Reflow rounds and distillation: the rounds straighten the flow (straightness falls, one-step quality improves),
// the teacher pairs are reproducible from the seed and stored, a trial stopped in round 1 resumes in round 1 and
// ends bit for bit like an uninterrupted one, the round comparison of `flowlab report`, and located config errors.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/report.hpp"
#include "flowlab/results.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

struct Scratch : flowlab::test::ScratchDir {
  Scratch() : ScratchDir("flowlab_reflow") {}
};

/// 8 Gaussians -> moons, a small MLP; `extra` goes at the end of the document (reflow:, distill:, ...).
std::string experiment(const Scratch& s, const std::string& extra, int64_t steps = 600,
                       const std::string& solvers = "[{solver: euler, steps: [1, 50]}]") {
  const std::string path = s.file("reflow.yaml");
  std::ofstream(path) << fmt::format(R"(name: reflow_test
data: {{dataset: moons}}
model:
  noise: {{dataset: eight_gaussians}}
  architecture: {{name: mlp, params: {{width: 64, depth: 2}}}}
train: {{steps: {}, batch_size: 256, lr: 3.0e-3, ema: 0.99, log_every: 50}}
eval:
  samples: 1000
  solvers: {}
  metrics: [w2]
{})",
                                     steps, solvers, extra);
  return path;
}

const flowlab::EvalRow& row(const flowlab::TrialResult& r, int64_t round, int64_t steps) {
  for (const auto& e : r.eval)
    if (e.round == round && e.steps == steps) return e;
  throw std::runtime_error(fmt::format("no row for round {} with {} steps", round, steps));
}

std::string config_error(const std::string& file) {
  try {
    flowlab::load_experiment(file, registry());
  } catch (const flowlab::ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("reflow: round 1 is straighter than round 0 and better in one step; pairs come from the seed", "[reflow]") {
  Scratch s;
  const auto ex = flowlab::load_experiment(
      experiment(s, "reflow: {rounds: 1, pairs: 2048, teacher_solver: {solver: rk4, steps: 8}, mix: {start: 0.9}}\n"),
      registry());
  const auto& trial = ex.trials.at(0);
  CHECK(trial.reflow.rounds == 1);
  CHECK(trial.reflow.mix(1) == 0.9);
  const auto r = flowlab::run_trial(trial, registry(), "cpu");
  REQUIRE(r.status == "completed");
  REQUIRE(r.rounds.size() == 2);
  CHECK(r.rounds[0].stage == flowlab::Stage::base);
  CHECK(r.rounds[1].stage == flowlab::Stage::reflow);
  CHECK(r.rounds[1].mix == 0.9);
  CHECK(r.rounds[1].teacher == "rk4:steps=8");
  CHECK(r.rounds[1].teacher_nfe == 32);
  REQUIRE(r.eval.size() == 4);  // 2 runs x 2 rounds
  const auto& one0 = row(r, 0, 1);
  const auto& one1 = row(r, 1, 1);
  const auto& many0 = row(r, 0, 50);
  const auto& many1 = row(r, 1, 50);
  INFO("straightness " << many0.straightness << " -> " << many1.straightness << "; 1-step w2 " << one0.metrics[0]
                       << " -> " << one1.metrics[0]);
  CHECK(many1.straightness < many0.straightness);
  CHECK(one1.metrics[0] < one0.metrics[0]);
  // The training log says which round each entry belongs to.
  CHECK(r.train.round.front() == 0);
  CHECK(r.train.round.back() == 1);

  // The pairs: x0 from the noise (8 Gaussians), x1_hat where the teacher takes them; the same from the same seed.
  REQUIRE(r.rounds[1].pairs_x0.shape == std::vector<int64_t>{2048, 2});
  REQUIRE(r.rounds[1].pairs_x1.shape == std::vector<int64_t>{2048, 2});
  CHECK(r.rounds[0].pairs_x0.empty());
  const auto again = flowlab::run_trial(trial, registry(), "cpu");
  CHECK(again.rounds[1].pairs_x0.values == r.rounds[1].pairs_x0.values);
  CHECK(again.rounds[1].pairs_x1.values == r.rounds[1].pairs_x1.values);
  CHECK(again.eval[3].metrics == r.eval[3].metrics);

  // Round 0's rows are those of the same trial without reflow: rounds are evaluated exactly as round 0.
  Scratch s2;
  const auto plain = flowlab::run_trial(flowlab::load_experiment(experiment(s2, ""), registry()).trials.at(0), registry(), "cpu");
  REQUIRE(plain.eval.size() == 2);
  CHECK(plain.eval[0].metrics == one0.metrics);
  CHECK(plain.eval[1].metrics == many0.metrics);
}

TEST_CASE("reflow: a trial stopped in round 1 resumes in round 1 and ends as an uninterrupted one", "[reflow][checkpoint]") {
  Scratch s;
  const auto ex = flowlab::load_experiment(
      experiment(s,
                 "reflow: {rounds: 1, pairs: 512, teacher_solver: {solver: euler, steps: 4}, init: fresh,\n"
                 "         train: {steps: 60, checkpoint_every: 10}}\n"
                 "distill: {steps: 2, loss: l1, pairs: 256, train: {steps: 30, checkpoint_every: 10}}\n",
                 40),
      registry());
  const auto& trial = ex.trials.at(0);
  const auto straight = flowlab::run_trial(trial, registry(), "cpu", {}, s.file("straight.ckpt"));
  REQUIRE(straight.status == "completed");
  REQUIRE(straight.rounds.size() == 3);
  CHECK(straight.rounds[2].stage == flowlab::Stage::distill);
  CHECK(straight.rounds[2].round == 2);
  REQUIRE(straight.eval.size() == 6);
  CHECK(straight.eval[5].round == 2);

  // Stop after 40 steps of round 0 and 25 of round 1 (progress is counted over all stages: 65 of 130).
  const std::string ckpt = s.file("resumed.ckpt");
  int64_t calls = 0;
  CHECK_THROWS_AS(flowlab::run_trial(trial, registry(), "cpu", {}, ckpt, [&] { return ++calls > 65; }),
                  flowlab::Interrupted);
  REQUIRE(fs::exists(ckpt));
  int64_t first = -1;
  const auto resumed = flowlab::run_trial(trial, registry(), "cpu",
                                          [&](const flowlab::Progress& p) {
                                            if (first < 0) first = p.step;
                                          },
                                          ckpt);
  // log_every 50: the first report after resuming is round 1's step 50 (the 91st of 130), not round 0's step 0.
  CHECK(first == 91);
  REQUIRE(resumed.status == "completed");
  CHECK(resumed.train.round == straight.train.round);
  CHECK(resumed.train.loss == straight.train.loss);  // bit for bit
  CHECK(resumed.rounds[1].pairs_x1.values == straight.rounds[1].pairs_x1.values);
  CHECK(resumed.rounds[2].pairs_x1.values == straight.rounds[2].pairs_x1.values);
  REQUIRE(resumed.eval.size() == straight.eval.size());
  for (size_t i = 0; i < resumed.eval.size(); ++i) {
    CHECK(resumed.eval[i].metrics == straight.eval[i].metrics);
    CHECK(resumed.eval[i].straightness == straight.eval[i].straightness);
  }
}

TEST_CASE("reflow: the trial file holds the rounds and pairs; report compares the rounds", "[reflow][report]") {
  Scratch s;
  const auto ex = flowlab::load_experiment(
      experiment(s, "reflow: {rounds: 1, pairs: 256, teacher_solver: {solver: euler, steps: 2}, train: {steps: 20}}\n"
                    "distill: {steps: 1, train: {steps: 20}}\n",
                 20),
      registry());
  const auto& trial = ex.trials.at(0);
  const auto r = flowlab::run_trial(trial, registry(), "cpu");
  const std::string file = s.file("trial.h5");
  flowlab::write_trial_file(file, trial, r);
  CHECK(flowlab::read_array(file, "trials/seed=0/pairs/001/x1").shape == std::vector<int64_t>{256, 2});
  CHECK(flowlab::read_array(file, "trials/seed=0/pairs/002/x0").values == r.rounds[2].pairs_x0.values);
  CHECK_FALSE(flowlab::has_object(file, "trials/seed=0/pairs/000"));
  const auto stored = flowlab::read_results(file);
  REQUIRE(stored.trials.size() == 1);
  const auto& t = stored.trials[0];
  REQUIRE(t.rounds.size() == 3);
  CHECK(t.rounds[1].stage == flowlab::Stage::reflow);
  CHECK(t.rounds[2].stage == flowlab::Stage::distill);
  CHECK(t.rounds[1].teacher == "euler:steps=2");
  CHECK(t.rounds[1].teacher_nfe == 2);
  CHECK(t.train.round == r.train.round);

  const auto rep = flowlab::build_report(stored, {});
  REQUIRE(rep.group_keys == std::vector<std::string>{"round"});
  REQUIRE(rep.groups.size() == 3);
  CHECK(rep.groups[2].key.back().second == "distill");
  REQUIRE(rep.rounds.size() == 1);
  const auto& c = rep.rounds[0];
  REQUIRE(c.lines.size() == 3);
  CHECK(c.reference == "euler:steps=50");
  CHECK(c.reference_value == row(r, 0, 50).metrics[0]);
  CHECK(c.threshold == c.reference_value + 0.1 * std::abs(c.reference_value));  // as build_report computes it
  for (size_t k = 0; k < 3; ++k) {
    const auto& l = c.lines[k];
    CHECK(l.round == (k == 2 ? "distill" : std::to_string(k)));
    CHECK(l.one_step_run == "euler:steps=1");
    CHECK(l.one_step == row(r, int64_t(k), 1).metrics[0]);
    CHECK(l.straightness == row(r, int64_t(k), 50).straightness);
    CHECK(l.train_steps == 20);
    // The fewest Euler steps within round 0's threshold, of the two evaluated (1 and 50).
    const bool one = row(r, int64_t(k), 1).metrics[0] <= c.threshold;
    const bool fifty = row(r, int64_t(k), 50).metrics[0] <= c.threshold;
    CHECK(l.euler_steps == (one ? std::optional<int64_t>(1) : fifty ? std::optional<int64_t>(50) : std::nullopt));
    CHECK_FALSE(l.rk4_steps);
  }
  std::ostringstream out, notes;
  flowlab::write_report(rep, "term", out, notes);
  CHECK_THAT(out.str(), ContainsSubstring("1 of 1 trials in the file completed"));
  CHECK_THAT(out.str(), ContainsSubstring("round=distill (1 trial)"));
  CHECK_THAT(out.str(), ContainsSubstring(fmt::format(
      "round comparison\n  steps: the fewest within 10% of round 0's best converged w2 {:.4g} (euler:steps=50)",
      c.reference_value)));
  CHECK_THAT(out.str(), ContainsSubstring("round    Euler steps  RK4 steps"));
}

TEST_CASE("reflow: the round comparison shows each round's adaptive NFE, of its tightest tolerance",
          "[reflow][report]") {
  Scratch s;
  const auto ex = flowlab::load_experiment(
      experiment(s, "reflow: {rounds: 1, pairs: 256, teacher_solver: {solver: euler, steps: 2}, train: {steps: 20}}\n",
                 20,
                 "[{solver: euler, steps: [1]}, {solver: dopri5, params: {rtol: 1.0e-3, atol: 1.0e-3}}, "
                 "{solver: dopri5, params: {rtol: 1.0e-5, atol: 1.0e-5}}]"),
      registry());
  const auto r = flowlab::run_trial(ex.trials.at(0), registry(), "cpu");
  const std::string file = s.file("trial.h5");
  flowlab::write_trial_file(file, ex.trials.at(0), r);
  const auto rep = flowlab::build_report(flowlab::read_results(file), {});
  REQUIRE(rep.rounds.size() == 1);
  const auto& lines = rep.rounds[0].lines;
  REQUIRE(lines.size() == 2);
  for (int64_t k = 0; k < 2; ++k) {
    std::vector<const flowlab::EvalRow*> adaptive;
    for (const auto& e : r.eval)
      if (e.round == k && e.steps == 0) adaptive.push_back(&e);
    REQUIRE(adaptive.size() == 2);
    // The tighter tolerance is the one shown, whichever takes more NFE.
    CHECK(lines[size_t(k)].adaptive_nfe == double(adaptive[1]->nfe));
    CHECK(lines[size_t(k)].adaptive_run == "dopri5:rtol=1e-05,atol=1e-05");
    // The run that the round's steps to quality refers to.
    REQUIRE(rep.groups[size_t(k)].reference_row);
    CHECK(rep.groups[size_t(k)].rows[*rep.groups[size_t(k)].reference_row].label == lines[size_t(k)].adaptive_run);
  }
  std::ostringstream out, notes;
  flowlab::write_report(rep, "term", out, notes);
  // The column is as wide as its widest cell, "NFE (label)", right-aligned, between RK4 steps and straightness.
  const std::string cell0 = fmt::format("{} (dopri5:rtol=1e-05,atol=1e-05)", lines[0].adaptive_nfe);
  const std::string cell1 = fmt::format("{} (dopri5:rtol=1e-05,atol=1e-05)", lines[1].adaptive_nfe);
  const size_t width = std::max(cell0.size(), cell1.size());
  CHECK_THAT(out.str(), ContainsSubstring(fmt::format("round  Euler steps  RK4 steps  {:>{}}  ", "adaptive NFE", width)));
  CHECK_THAT(out.str(), ContainsSubstring(fmt::format("          -  {:>{}}  ", cell0, width)));
  CHECK_THAT(out.str(), ContainsSubstring(fmt::format("          -  {:>{}}  ", cell1, width)));
}

TEST_CASE("reflow: bad input gets located errors that list the valid choices", "[reflow][config]") {
  Scratch s;
  CHECK(config_error(experiment(s, "reflow: {rounds: -1}\n")) ==
        s.file("reflow.yaml") + ":11:18: reflow.rounds: expected an integer in [0, 100], got -1");
  CHECK(config_error(experiment(s, "reflow: {rounds: 2, mix: {start: 0.4, end: 1.5}}\n")) ==
        s.file("reflow.yaml") + ":11:44: reflow.mix.end: expected a number in [0, 1], got 1.5");
  CHECK(config_error(experiment(s, "reflow: {rounds: 2, init: cold}\n")) ==
        s.file("reflow.yaml") + ":11:27: reflow.init: unknown init 'cold' (valid: warm, fresh)");
  CHECK(config_error(experiment(s, "reflow: {rounds: 2, teacher_solver: {solver: dopri5, steps: 4}}\n")) ==
        s.file("reflow.yaml") + ":11:61: reflow.teacher_solver.steps: solver/dopri5 is adaptive and takes no steps "
                                "(set rtol/atol in params)");
  CHECK(config_error(experiment(s, "reflow: {round: 2}\n")) ==
        s.file("reflow.yaml") + ":11:10: reflow.round: unknown key 'round' (did you mean 'rounds'? valid: rounds, "
                                "pairs, teacher_solver, mix, init, train)");
  CHECK(config_error(experiment(s, "distill: {steps: 1, loss: l3}\n")) ==
        s.file("reflow.yaml") + ":11:27: distill.loss: unknown loss 'l3' (did you mean 'l2'? valid: l2, l1)");
  CHECK(config_error(experiment(s, "reflow: {rounds: 1, train: {stepz: 5}}\n")) ==
        s.file("reflow.yaml") + ":11:29: reflow.train.stepz: unknown key 'stepz' (did you mean 'steps'? valid: steps, "
                                "batch_size, lr, betas, weight_decay, warmup, schedule, ema, grad_clip, log_every, "
                                "checkpoint_every, p_uncond, precision, phema)");
  // A coupling that needs a teacher, without rounds to give it one.
  const std::string teacherless = s.file("teacherless.yaml");
  std::ofstream(teacherless) << "name: t\ndata: {dataset: moons}\nmodel:\n  coupling: reflow\n  architecture: mlp\n";
  CHECK(config_error(teacherless) ==
        teacherless + ":4:13: model.coupling: coupling/reflow pairs noise with a teacher's samples, and this trial has "
                      "no teacher: add reflow: {rounds: 1} or more (round 0 trains on independent pairs, each later "
                      "round on the previous round's samples)");
  // Conditioned models: not yet, and said where.
  const std::string conditioned = s.file("conditioned.yaml");
  std::ofstream(conditioned) << "name: t\ndata: {dataset: eight_gaussians}\nmodel: {architecture: mlp, condition: label}\n"
                                "reflow: {rounds: 1}\n";
  CHECK(config_error(conditioned) ==
        conditioned + ":4:9: reflow: a conditioned model (model.condition: label) cannot be reflowed yet: the teacher "
                      "pairs carry no condition; use model.condition: none");
  // Reflow keys are sweepable like any other; a wrong one names the valid keys.
  const std::string sweep = s.file("sweep.yaml");
  std::ofstream(sweep) << "name: t\ndata: {dataset: moons}\nmodel: {architecture: mlp}\nreflow: {rounds: 1}\n"
                          "sweep:\n  grid:\n    reflow.mix.start: [0.4, 1.0]\n    distill.steps: [1, 2]\n";
  const auto ex = flowlab::load_experiment(sweep, registry());
  REQUIRE(ex.trials.size() == 4);
  CHECK(ex.trials[0].id == "start=0.4,steps=1,seed=0");
  CHECK(ex.trials[3].reflow.mix_start == 1.0);
  CHECK(ex.trials[3].distill.enabled);
  CHECK(ex.trials[3].distill.steps == 2);
  std::ofstream(sweep) << "name: t\ndata: {dataset: moons}\nmodel: {architecture: mlp}\n"
                          "sweep:\n  grid:\n    reflow.mix.middle: [0.4]\n";
  CHECK(config_error(sweep) ==
        sweep + ":6:5: sweep.grid.reflow.mix.middle: unknown key 'middle' in 'reflow.mix.middle' (valid: start, end)");
  // Without reflow or distill, a trial's configuration (and hash) is what it was before they existed.
  CHECK(flowlab::load_experiment(experiment(s, ""), registry()).trials.at(0).resolved_yaml.find("reflow") ==
        std::string::npos);
}

// The engine: a trial interrupted after a checkpoint and resumed from it continues bit for bit on CPU.
#include <catch2/catch_test_macros.hpp>

#include <filesystem>
#include <fstream>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "support.hpp"

using flowlab::test::registry;
namespace fs = std::filesystem;

TEST_CASE("a trial resumed from its checkpoint continues bit for bit on CPU", "[engine][checkpoint]") {
  const fs::path dir = fs::temp_directory_path() / ("flowlab_engine_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "exp.yaml") << R"(name: ckpt
data: {dataset: ring_gaussians}
model:
  time_sampler: logit_normal
  architecture: {name: mlp, params: {width: 32, depth: 2}}
train: {steps: 30, batch_size: 64, lr: 1.0e-2, warmup: 5, ema: 0.9, grad_clip: 1.0, log_every: 1, checkpoint_every: 10}
eval:
  samples: 200
  solvers: [{solver: heun, steps: [4]}]
  metrics: [frechet]
)";
  const auto ex = flowlab::load_experiment((dir / "exp.yaml").string(), registry());
  const auto& trial = ex.trials.at(0);

  const auto straight = flowlab::run_trial(trial, registry(), "cpu", {}, (dir / "straight.ckpt").string());
  REQUIRE(straight.status == "completed");
  REQUIRE(straight.train.loss.size() == 30);

  // Interrupt after step 25: the checkpoint on disk holds the state after step 20.
  const std::string ckpt = (dir / "resumed.ckpt").string();
  CHECK_THROWS_AS(flowlab::run_trial(trial, registry(), "cpu",
                                     [](const flowlab::Progress& p) {
                                       if (p.step == 25) throw std::runtime_error("interrupted");
                                     },
                                     ckpt),
                  std::runtime_error);
  REQUIRE(fs::exists(ckpt));
  int64_t first_step_after_resume = -1;
  const auto resumed = flowlab::run_trial(trial, registry(), "cpu",
                                          [&](const flowlab::Progress& p) {
                                            if (first_step_after_resume < 0) first_step_after_resume = p.step;
                                          },
                                          ckpt);
  CHECK(first_step_after_resume == 21);  // steps 0..19 were not redone
  CHECK(resumed.train.step == straight.train.step);
  CHECK(resumed.train.loss == straight.train.loss);  // exact equality: bit for bit
  CHECK(resumed.train.grad_norm == straight.train.grad_norm);
  CHECK(resumed.train.lr == straight.train.lr);
  REQUIRE(resumed.eval.size() == 1);
  CHECK(resumed.eval[0].metrics == straight.eval[0].metrics);

  // Without a checkpoint file the same trial starts from scratch and gives the same numbers.
  const auto fresh = flowlab::run_trial(trial, registry(), "cpu");
  CHECK(fresh.train.loss == straight.train.loss);
  fs::remove_all(dir);
}

TEST_CASE("conditioned training with p_uncond; guidance changes sampling only", "[engine][cfg]") {
  const fs::path dir = fs::temp_directory_path() / ("flowlab_engine_cfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "exp.yaml") << R"(name: cfg
data: {dataset: ring_gaussians, params: {modes: 4, radius: 4.0, std: 0.1}}
model:
  condition: label
  architecture: {name: mlp, params: {width: 64, depth: 2}}
train: {steps: 200, batch_size: 128, lr: 3.0e-3, p_uncond: 0.2, log_every: 10}
eval:
  samples: 400
  solvers: [{solver: euler, steps: [8]}]
  metrics: [frechet]
sweep:
  grid: {eval.guidance: [0.0, 1.0, 3.0]}
)";
  const auto ex = flowlab::load_experiment((dir / "exp.yaml").string(), registry());
  REQUIRE(ex.trials.size() == 3);
  CHECK(ex.trials[2].eval.guidance == 3.0);
  CHECK(ex.trials[0].resolved_yaml.find("condition: label") != std::string::npos);
  std::vector<flowlab::TrialResult> r;
  for (const auto& t : ex.trials) r.push_back(flowlab::run_trial(t, registry(), "cpu"));
  for (const auto& x : r) REQUIRE(x.status == "completed");
  CHECK(r[0].train.loss == r[1].train.loss);  // the same training ...
  CHECK(r[1].train.loss == r[2].train.loss);
  CHECK(r[0].eval[0].metrics[0] != r[1].eval[0].metrics[0]);  // ... sampled with different guidance
  CHECK(r[1].eval[0].metrics[0] != r[2].eval[0].metrics[0]);
  CHECK(r[1].eval[0].nfe == 8);  // w = 1: one network call per step
  CHECK(r[2].eval[0].nfe == 8);  // the framework counts field evaluations; w = 3 makes two calls inside each

  std::ofstream(dir / "nolabels.csv") << "a,b\n1,2\n3,4\n5,7\n";
  std::ofstream(dir / "bad.yaml") << "name: bad\ndata: {dataset: tabular, params: {file: " << (dir / "nolabels.csv").string()
                                  << "}}\nmodel: {condition: label, architecture: mlp}\ntrain: {steps: 2, batch_size: 2}\n";
  const auto bad = flowlab::load_experiment((dir / "bad.yaml").string(), registry());
  try {
    flowlab::run_trial(bad.trials.at(0), registry(), "cpu");
    FAIL("no error");
  } catch (const flowlab::Error& e) {
    CHECK(std::string(e.what()) == "model.condition: label needs class labels, but dataset/tabular has none");
  }
  fs::remove_all(dir);
}

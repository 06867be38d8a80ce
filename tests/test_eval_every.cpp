// Quality during training (eval.every, eval.during): the final rows and the training are bit for bit those of the
// same trial without it (the evaluations during training leave the random stream, the model, the optimizer and the
// EMA alone); a row evaluated at step S is the final row of the same trial trained for S steps; a trial stopped or
// killed after a checkpoint (also while it evaluates) ends with the rows of an uninterrupted one; the config hash;
// the results file, the report and the plot.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/report.hpp"
#include "flowlab/results.hpp"
#include "flowlab/trial_files.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using flowlab::EvalRow;
using flowlab::TrialResult;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

struct Scratch : flowlab::test::ScratchDir {
  explicit Scratch(const std::string& name) : ScratchDir("flowlab_evalevery_" + name) {}
};

/// A ring of Gaussians and a small MLP; `train` and `eval_extra` complete their sections, `extra` goes at the end.
std::string experiment(const Scratch& s, const std::string& name, const std::string& train, const std::string& eval_extra,
                       const std::string& extra = "") {
  const std::string path = s.file(name + ".yaml");
  std::ofstream(path) << fmt::format(R"(name: {}
output: {}
devices: [cpu]
data: {{dataset: ring_gaussians}}
model:
  architecture: {{name: mlp, params: {{width: 32, depth: 2}}}}
train: {{batch_size: 64, lr: 1.0e-2, {}}}
eval:
  samples: 200
  store_trajectories: 2
  solvers:
    - {{solver: euler, steps: [1, 4]}}
    - {{solver: rk4, steps: [2]}}
    - {{solver: dopri5, params: {{rtol: 1.0e-3}}}}
  metrics: [frechet, sliced_wasserstein]
{}{})",
                                     name, s.file(name + ".h5"), train, eval_extra, extra);
  return path;
}

flowlab::TrialConfig trial_of(const std::string& file) { return flowlab::load_experiment(file, registry()).trials.at(0); }

bool same_number(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
bool same_numbers(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same_number(a[i], b[i])) return false;
  return true;
}

/// Every column of two rows but the wall-clock ones (seconds, samples_per_s), and their stored arrays.
void check_same_row(const EvalRow& a, const EvalRow& b) {
  INFO(fmt::format("round {} step {} {} vs round {} step {} {}", a.round, a.train_step, a.label, b.round, b.train_step,
                   b.label));
  CHECK(a.round == b.round);
  CHECK(a.train_step == b.train_step);
  CHECK(a.solver == b.solver);
  CHECK(a.label == b.label);
  CHECK(a.steps == b.steps);
  CHECK(same_number(a.rtol, b.rtol));
  CHECK(same_number(a.atol, b.atol));
  CHECK(a.nfe == b.nfe);
  CHECK(a.network_calls == b.network_calls);
  CHECK(a.accepted == b.accepted);
  CHECK(a.rejected == b.rejected);
  CHECK(a.error == b.error);
  CHECK(same_numbers(a.metrics, b.metrics));  // exact: bit for bit
  CHECK(same_number(a.straightness, b.straightness));
  CHECK(a.times == b.times);
  CHECK(a.mean_speed == b.mean_speed);
  CHECK(a.samples.shape == b.samples.shape);
  CHECK(a.samples.values == b.samples.values);
  CHECK(a.trajectory.shape == b.trajectory.shape);
  CHECK(a.trajectory.values == b.trajectory.values);
}

void check_same_training(const TrialResult& a, const TrialResult& b) {
  CHECK(a.train.round == b.train.round);
  CHECK(a.train.step == b.train.step);
  CHECK(a.train.loss == b.train.loss);  // bit for bit
  CHECK(a.train.grad_norm == b.train.grad_norm);
  CHECK(a.train.lr == b.train.lr);
  REQUIRE(a.rounds.size() == b.rounds.size());
  for (size_t k = 0; k < a.rounds.size(); ++k) {
    CHECK(a.rounds[k].pairs_x0.values == b.rounds[k].pairs_x0.values);
    CHECK(a.rounds[k].pairs_x1.values == b.rounds[k].pairs_x1.values);
  }
  REQUIRE(a.weights.size() == b.weights.size());
  for (size_t i = 0; i < a.weights.size(); ++i) CHECK(a.weights[i].second.values == b.weights[i].second.values);
}

/// The rows evaluated during training: those after the final ones (stages x runs).
std::vector<EvalRow> during_rows(const TrialResult& r, size_t final_rows) {
  REQUIRE(r.eval.size() >= final_rows);
  return std::vector<EvalRow>(r.eval.begin() + long(final_rows), r.eval.end());
}

flowlab::test::CommandResult flowlab_cmd(const std::string& args) {
  return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args);
}

std::string read_text(const std::string& path) {
  std::stringstream ss;
  ss << std::ifstream(path).rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("eval.every: the final rows and the training are bit for bit those of the trial without it",
          "[evalevery][engine]") {
  Scratch s("same");
  // Round 0, a reflow round and a distillation, each evaluated during training; the EMA evaluated (the default)
  // or the raw weights; independent pairs, or minibatch OT whose batches are drawn ahead and paired on a thread.
  struct Case {
    std::string name, model_extra, eval_extra;
    size_t during_runs;
  };
  const std::vector<Case> cases = {
      {"ema_subset", "", "  every: 15\n  during: [{solver: euler, steps: 4}, {solver: dopri5, params: {rtol: 1.0e-3}}]\n", 2},
      {"raw_all", "", "  every: 10\n  use_ema: false\n", 4},
      {"ot_ahead", "coupling: minibatch_ot", "  every: 7\n  during: [{solver: rk4, steps: 2}]\n", 1},
  };
  const std::string stages =
      "reflow: {rounds: 1, pairs: 256, teacher_solver: {solver: euler, steps: 4}, train: {steps: 30}}\n"
      "distill: {steps: 2, pairs: 128, train: {steps: 20}}\n";
  for (const auto& c : cases) {
    INFO(c.name);
    const std::string train = "steps: 45, ema: 0.9, log_every: 1";
    std::string with = experiment(s, c.name + "_with", train, c.eval_extra, stages);
    std::string without = experiment(s, c.name + "_without", train, c.eval_extra.find("use_ema") != std::string::npos
                                                                           ? "  use_ema: false\n"
                                                                           : "",
                                     stages);
    if (!c.model_extra.empty())
      for (const auto* f : {&with, &without}) {
        std::string text = read_text(*f);
        text.replace(text.find("  architecture:"), 0, "  " + c.model_extra + "\n");
        std::ofstream(*f) << text;
      }
    const auto a = flowlab::run_trial(trial_of(with), registry(), "cpu");
    const auto b = flowlab::run_trial(trial_of(without), registry(), "cpu");
    REQUIRE(a.status == "completed");
    REQUIRE(b.status == "completed");
    check_same_training(a, b);
    // The final rows come first, in the order and with the values of the trial without eval.every.
    REQUIRE(b.eval.size() == 3 * 4);
    for (size_t i = 0; i < b.eval.size(); ++i) check_same_row(a.eval[i], b.eval[i]);
    for (const auto& row : b.eval) CHECK(row.train_step == (row.round == 0 ? 45 : row.round == 1 ? 30 : 20));
    CHECK(a.failed_rows == b.failed_rows);
    CHECK(a.x0.values == b.x0.values);
    CHECK(a.reference.values == b.reference.values);
    CHECK(a.metric_names == b.metric_names);
    CHECK(a.during_seconds > 0);
    CHECK(b.during_seconds == 0);

    // Then the rows evaluated during training, stage by stage and step by step: every multiple of eval.every
    // below the stage's steps, the runs of eval.during in eval.solvers' order.
    const auto trial = trial_of(with);
    const int64_t every = trial.eval.every;
    std::vector<std::tuple<int64_t, int64_t, std::string>> expected;
    const std::vector<std::pair<int64_t, int64_t>> stage_steps = {{0, 45}, {1, 30}, {2, 20}};
    for (const auto& [round, steps] : stage_steps)
      for (int64_t step = every; step < steps; step += every)
        for (size_t i = 0; i < trial.eval.runs.size(); ++i)
          if (trial.eval.during.empty() ||
              std::find(trial.eval.during.begin(), trial.eval.during.end(), i) != trial.eval.during.end())
            expected.emplace_back(round, step, trial.eval.runs[i].label);
    const auto during = during_rows(a, b.eval.size());
    REQUIRE(during.size() == expected.size());
    size_t per_stage_runs = 0;
    for (size_t i = 0; i < during.size(); ++i) {
      CHECK(std::make_tuple(during[i].round, during[i].train_step, during[i].label) == expected[i]);
      CHECK(during[i].error.empty());
      CHECK(during[i].metrics.size() == 2);
      CHECK(std::isfinite(during[i].metrics[0]));
      CHECK(during[i].samples.shape == std::vector<int64_t>{200, 2});
      CHECK(during[i].trajectory.shape.at(0) == 2);
      if (during[i].round == 0 && during[i].train_step == every) ++per_stage_runs;
    }
    CHECK(per_stage_runs == c.during_runs);
  }
}

TEST_CASE("eval.every: the row evaluated at step S is the final row of the same trial trained for S steps",
          "[evalevery][engine]") {
  // A constant learning rate without warmup: the first S steps of a longer trial are those of a trial of S steps, so
  // the evaluation during training must see the same weights (the EMA), noise, reference and generator state as
  // the final evaluation of the shorter trial.
  Scratch s("prefix");
  const std::string train = "schedule: constant, ema: 0.95, log_every: 5";
  const auto longer = flowlab::run_trial(
      trial_of(experiment(s, "longer", "steps: 60, " + train, "  every: 20\n")), registry(), "cpu");
  const auto at20 = flowlab::run_trial(trial_of(experiment(s, "at20", "steps: 20, " + train, "")), registry(), "cpu");
  const auto at40 = flowlab::run_trial(trial_of(experiment(s, "at40", "steps: 40, " + train, "")), registry(), "cpu");
  REQUIRE(longer.status == "completed");
  const auto during = during_rows(longer, 4);
  REQUIRE(during.size() == 8);
  for (size_t i = 0; i < 4; ++i) {
    check_same_row(during[i], at20.eval[i]);
    check_same_row(during[4 + i], at40.eval[i]);
  }
  // And the evaluations moved: the quality changes with training (a test that could not tell steps apart fails).
  CHECK(during[1].metrics[0] != during[5].metrics[0]);
  CHECK(during[5].metrics[0] != longer.eval[1].metrics[0]);
}

TEST_CASE("eval.every: a trial stopped or crashed after a checkpoint ends with the rows of an uninterrupted one",
          "[evalevery][checkpoint]") {
  Scratch s("resume");
  // Checkpoints every 10 steps, evaluations every 15: a checkpoint holds some evaluations, others come after it.
  const auto trial = trial_of(experiment(
      s, "resume", "steps: 40, ema: 0.9, log_every: 1, checkpoint_every: 10",
      "  every: 15\n  during: [{solver: euler, steps: 4}, {solver: dopri5, params: {rtol: 1.0e-3}}]\n",
      "reflow: {rounds: 1, pairs: 256, teacher_solver: {solver: euler, steps: 4}, train: {steps: 30, checkpoint_every: 10}}\n"));
  const auto straight = flowlab::run_trial(trial, registry(), "cpu");
  REQUIRE(straight.status == "completed");
  REQUIRE(straight.eval.size() == 2 * 4 + 2 * 2 + 1 * 2);  // final rows; round 0 at 15, 30; round 1 at 15

  auto check_same_result = [&](const TrialResult& r) {
    REQUIRE(r.status == "completed");
    check_same_training(r, straight);
    REQUIRE(r.eval.size() == straight.eval.size());
    for (size_t i = 0; i < r.eval.size(); ++i) check_same_row(r.eval[i], straight.eval[i]);
  };

  SECTION("crashed in round 1 (at its step 17; the checkpoint holds step 10 and round 0's evaluations)") {
    const std::string ckpt = s.file("crash.ckpt");
    CHECK_THROWS_AS(flowlab::run_trial(trial, registry(), "cpu",
                                       [](const flowlab::Progress& p) {
                                         if (p.step == 40 + 17) throw std::runtime_error("crash");
                                       },
                                       ckpt),
                    std::runtime_error);
    REQUIRE(fs::exists(ckpt));
    int64_t first = -1;
    const auto resumed = flowlab::run_trial(trial, registry(), "cpu",
                                            [&](const flowlab::Progress& p) {
                                              if (first < 0) first = p.step;
                                            },
                                            ckpt);
    CHECK(first == 40 + 11);  // round 0 and round 1's first 10 steps were not redone
    check_same_result(resumed);
  }
  SECTION("stopped while evaluating at step 30 of round 0: the evaluation is done on resuming") {
    const std::string ckpt = s.file("stop.ckpt");
    bool stop = false;
    int64_t stopped_at = -1;
    try {
      flowlab::run_trial(trial, registry(), "cpu",
                         [&](const flowlab::Progress& p) {
                           if (p.step == 30) stop = true;  // reported before step 30's evaluation
                         },
                         ckpt, [&] { return stop; });
      FAIL("not stopped");
    } catch (const flowlab::Interrupted& e) {
      stopped_at = e.step();
    }
    CHECK(stopped_at == 30);
    REQUIRE(fs::exists(ckpt));
    CHECK(flowlab::checkpoint_step(ckpt, trial) == 30);
    int64_t first = -1;
    const auto resumed = flowlab::run_trial(trial, registry(), "cpu",
                                            [&](const flowlab::Progress& p) {
                                              if (first < 0) first = p.step;
                                            },
                                            ckpt);
    CHECK(first == 31);
    check_same_result(resumed);
  }
}

TEST_CASE("eval.every: a run killed after a checkpoint and resumed with --resume keeps the rows evaluated before it",
          "[evalevery][runner][resume]") {
  Scratch s("kill");
  const std::string train = "steps: 4000, log_every: 100, checkpoint_every: 500";
  const std::string eval = "  every: 400\n  during: [{solver: euler, steps: 4}]\n";
  const std::string exp = experiment(s, "kill", train, eval);
  const auto reference = flowlab_cmd("run " + exp + " --out " + s.file("ref.h5"));
  INFO(reference.out << reference.err);
  REQUIRE(reference.status == 0);

  // The runner in the background, killed (SIGKILL, its worker with it) once the trial has written a checkpoint.
  const std::string out = s.file("kill.h5"), log = s.file("run.log");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("FLOWLAB_PLUGIN_PATH", "", 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
    ::execl(FLOWLAB_CLI, FLOWLAB_CLI, "run", exp.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto checkpoint_written = [&] {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(flowlab::trial_dir(out), ec))
      if (e.path().extension() == ".ckpt") return true;
    return false;
  };
  for (int i = 0; i < 3000 && !checkpoint_written(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(checkpoint_written());
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFSIGNALED(wstatus));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the worker dies with its parent
  REQUIRE_FALSE(flowlab::trial_file_status(flowlab::trial_file_path(out, "seed=0")));

  const auto resumed = flowlab_cmd("run --resume " + exp);
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.status == 0);
  std::smatch at;
  REQUIRE(std::regex_search(resumed.out, at, std::regex("seed=0 resumes from its checkpoint at step ([0-9]+)/4000")));
  CHECK(std::stoi(at[1]) >= 500);

  const auto a = flowlab::read_results(out), b = flowlab::read_results(s.file("ref.h5"));
  const auto& ta = a.trial("seed=0");
  const auto& tb = b.trial("seed=0");
  CHECK(ta.train.loss == tb.train.loss);
  REQUIRE(ta.eval.size() == 4);
  REQUIRE(tb.during.size() == 9);  // steps 400, 800, ..., 3600
  for (auto rows : {&flowlab::StoredTrial::eval, &flowlab::StoredTrial::during}) {
    REQUIRE((ta.*rows).size() == (tb.*rows).size());
    for (size_t i = 0; i < (ta.*rows).size(); ++i) {
      const EvalRow &x = (ta.*rows)[i], &y = (tb.*rows)[i];
      CHECK(x.train_step == y.train_step);
      CHECK(x.label == y.label);
      CHECK(x.nfe == y.nfe);
      CHECK(same_numbers(x.metrics, y.metrics));
      CHECK(same_number(x.straightness, y.straightness));
    }
  }
  for (size_t i = 0; i < tb.during.size(); ++i) CHECK(tb.during[i].train_step == int64_t(400 * (i + 1)));
  // The stored samples of every row (rows/NNN, the final ones first) too.
  for (size_t i = 0; i < ta.eval.size() + ta.during.size(); ++i) {
    const std::string row = fmt::format("trials/seed=0/rows/{:03d}/samples", i);
    CHECK(flowlab::read_array(out, row).values == flowlab::read_array(s.file("ref.h5"), row).values);
  }
}

TEST_CASE("eval.every and eval.during are in the config hash, are swept, and survive the trial snapshot",
          "[evalevery][config]") {
  Scratch s("hash");
  const std::string train = "steps: 40";
  auto hash = [](const flowlab::TrialConfig& t) { return flowlab::config_hash(t.resolved_yaml); };
  const auto none = trial_of(experiment(s, "none", train, ""));
  const auto every20 = trial_of(experiment(s, "every20", train, "  every: 20\n"));
  const auto every10 = trial_of(experiment(s, "every10", train, "  every: 10\n"));
  const auto sub = trial_of(experiment(s, "sub", train, "  every: 20\n  during: [{solver: euler, steps: 4}]\n"));
  const auto sub2 = trial_of(experiment(s, "sub2", train, "  every: 20\n  during: [{solver: rk4, steps: 2}]\n"));
  const auto all = trial_of(experiment(
      s, "all", train,
      "  every: 20\n  during: [{solver: dopri5, params: {rtol: 1.0e-3}}, {solver: euler, steps: [4, 1]}, {solver: rk4, "
      "steps: 2}]\n"));
  CHECK(none.resolved_yaml.find("\n  every:") == std::string::npos);  // unset: earlier configurations keep their hashes
  CHECK_THAT(every20.resolved_yaml, ContainsSubstring("\n  every: 20\n"));
  CHECK_THAT(sub.resolved_yaml, ContainsSubstring("\n  every: 20\n  during: [euler:steps=4]\n"));
  CHECK(sub.eval.during == std::vector<size_t>{1});
  CHECK(sub2.eval.during == std::vector<size_t>{2});
  CHECK(all.eval.during.empty());  // every run listed, in any order: the same as none listed
  const std::set<std::string> hashes = {hash(none), hash(every20), hash(every10), hash(sub), hash(sub2)};
  CHECK(hashes.size() == 5);
  CHECK(hash(all) == hash(every20));

  // The worker reads the trial from its snapshot: the same configuration, hence the same hash.
  const std::string snap = s.file("sub.trial.yaml");
  std::ofstream(snap) << flowlab::trial_snapshot(sub);
  const auto back = flowlab::load_trial_snapshot(snap, registry());
  CHECK(back.resolved_yaml == sub.resolved_yaml);
  CHECK(back.eval.every == 20);
  CHECK(back.eval.during == sub.eval.during);

  // Swept: one trial per value, each with its own hash.
  const auto ex = flowlab::load_experiment(experiment(s, "swept", train, "  every: 10\n", "sweep:\n  grid: {eval.every: [10, 40]}\n"),
                                           registry());
  REQUIRE(ex.trials.size() == 2);
  CHECK(ex.trials[0].id == "every=10,seed=0");
  CHECK(ex.trials[1].eval.every == 40);
  CHECK(hash(ex.trials[0]) == hash(every10));
  CHECK(hash(ex.trials[1]) != hash(ex.trials[0]));
}

TEST_CASE("eval.every: results file, report and plot show each metric against the training step; the rest uses the "
          "final rows only",
          "[evalevery][report][plot]") {
  Scratch s("report");
  const std::string exp = experiment(
      s, "report", "steps: 40, log_every: 10",
      "  every: 10\n  during: [{solver: euler, steps: 4}, {solver: rk4, steps: 2}]\n", "sweep:\n  seeds: [0, 1]\n");
  const std::string out = s.file("report.h5");
  const auto run = flowlab_cmd("run " + exp);
  INFO(run.out << run.err);
  REQUIRE(run.status == 0);

  // Read back: the final rows in eval (rows/000 to 003), those during training in during.
  const auto res = flowlab::read_results(out);
  REQUIRE(res.trials.size() == 2);
  for (const auto& t : res.trials) {
    REQUIRE(t.eval.size() == 4);
    for (const auto& e : t.eval) CHECK(e.train_step == 40);
    REQUIRE(t.during.size() == 3 * 2);
    for (size_t i = 0; i < t.during.size(); ++i) {
      CHECK(t.during[i].train_step == int64_t(10 * (i / 2 + 1)));
      CHECK(t.during[i].label == (i % 2 == 0 ? "euler:steps=4" : "rk4:steps=2"));
    }
    CHECK(flowlab::test::attr(out, "trials/" + t.id + "/rows/004", "label") == "euler:steps=4");
    // The summary takes the final rows, not those evaluated during training.
    const auto frechet = flowlab::test::table_column(out, "summary", "frechet@euler:steps=4");
    const size_t k = &t == &res.trials[0] ? 0 : 1;
    CHECK(frechet.at(k) == t.eval[1].metrics[0]);
  }

  // The report: the quality-vs-steps table as before, then each metric against the training step, whose last step
  // is the final evaluation's value.
  const auto rep = flowlab::build_report(res, flowlab::ReportOptions{});
  REQUIRE(rep.groups.size() == 1);
  const auto& g = rep.groups[0];
  REQUIRE(g.rows.size() == 4);
  REQUIRE(g.curves.size() == 2);
  const auto& curve = g.curves[0];
  CHECK(curve.label == "euler:steps=4");
  CHECK(curve.steps == std::vector<int64_t>{10, 20, 30, 40});
  CHECK(curve.n == std::vector<int64_t>{2, 2, 2, 2});
  CHECK(curve.mean[0][3] == g.rows[1].mean[0]);  // the final evaluation's euler:steps=4
  CHECK(curve.std[0][3] == g.rows[1].std[0]);
  const double at10 = (res.trials[0].during[0].metrics[0] + res.trials[1].during[0].metrics[0]) / 2;
  CHECK(curve.mean[0][0] == at10);
  const auto text = flowlab_cmd("report " + out);
  REQUIRE(text.status == 0);
  CHECK_THAT(text.out, ContainsSubstring("\n  frechet during training: mean ± sample std over the trials at each training "
                                         "step; step 40 is the final evaluation\n"));
  CHECK_THAT(text.out, ContainsSubstring("\n  sliced_wasserstein during training:"));
  std::smatch header;
  REQUIRE(std::regex_search(text.out, header, std::regex("\n  step +euler:steps=4 +rk4:steps=2\n((  +[0-9]+ .*\n){4})")));
  CHECK_THAT(header[1].str(), ContainsSubstring("\n    40  "));

  // csv: the main table unchanged, a note; --during: the curves, one row per group, run and step.
  const auto csv = flowlab_cmd("report " + out + " --format csv");
  CHECK(csv.out.substr(0, csv.out.find('\n')) ==
        "label,solver,steps,rtol,atol,n,failed,nfe,frechet_mean,frechet_std,sliced_wasserstein_mean,sliced_wasserstein_std,"
        "seconds_per_1000");
  CHECK_THAT(csv.err, ContainsSubstring("the file holds evaluations during training: --during prints them\n"));
  const auto during_csv = flowlab_cmd("report " + out + " --format csv --during");
  REQUIRE(during_csv.status == 0);
  std::istringstream lines(during_csv.out);
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  REQUIRE(all.size() == 1 + 2 * 4);
  CHECK(all[0] == "label,solver,train_step,n,failed,nfe,frechet_mean,frechet_std,sliced_wasserstein_mean,"
                  "sliced_wasserstein_std");
  CHECK(all[1].rfind("euler:steps=4,euler,10,2,0,4,", 0) == 0);
  CHECK(all[8].rfind("rk4:steps=2,rk4,40,2,0,8,", 0) == 0);

  // A file without evaluations during training: --during says so.
  const auto plain_exp = experiment(s, "plain", "steps: 10", "");
  REQUIRE(flowlab_cmd("run " + plain_exp).status == 0);
  const auto none = flowlab_cmd("report " + s.file("plain.h5") + " --during");
  CHECK(none.status == 1);
  CHECK(none.err == "flowlab: error: --during: " + s.file("plain.h5") +
                        " holds no evaluations during training of a completed trial (set eval.every in the experiment)\n");
  const auto plain_text = flowlab_cmd("report " + s.file("plain.h5"));
  CHECK(plain_text.out.find("during training") == std::string::npos);

  // The plot: metric against training step, one line per run, the final evaluation as the last point.
  const auto plot = flowlab_cmd(fmt::format("plot {} --out {} --width 320 --height 240", out, s.file("plots")));
  INFO(plot.out << plot.err);
  REQUIRE(plot.status == 0);
  const std::string png = s.file("plots") + "/during_frechet.png";
  CHECK_THAT(plot.out, ContainsSubstring(png + "\n"));
  REQUIRE(fs::exists(png));
  CHECK(fs::file_size(png) > 1000);
  const std::string dat = read_text(s.file("plots") + "/during_frechet.dat");
  CHECK_THAT(dat, ContainsSubstring("# euler:steps=4\n10 "));
  CHECK_THAT(dat, ContainsSubstring(fmt::format("\n40 {} {} 2\n", curve.mean[0][3], curve.std[0][3])));
  CHECK_THAT(read_text(s.file("plots") + "/during_frechet.gp"), ContainsSubstring("set xlabel 'training step'"));
}

TEST_CASE("eval.every: a trial that diverges keeps the rows evaluated before it; the summary has none of them",
          "[evalevery][runner]") {
  Scratch s("diverged");
  // Adam without moments at lr 1000 (an update of 1000 per weight and step): the loss is NaN within a few steps.
  const std::string exp = s.file("div.yaml");
  std::ofstream(exp) << "name: div\noutput: " << s.file("div.h5") << R"(
devices: [cpu]
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 64, depth: 3}}
train: {steps: 400, batch_size: 64, lr: 1000, betas: [0.0, 0.0], log_every: 10, ema: 0}
eval:
  samples: 100
  every: 2
  solvers: [{solver: euler, steps: [2]}]
  metrics: [frechet]
)";
  const auto run = flowlab_cmd("run " + exp);
  INFO(run.out << run.err);
  CHECK(run.status == 1);
  const std::string out = s.file("div.h5");
  REQUIRE(flowlab::test::attr(out, "trials/seed=0", "status") == "diverged");
  const int64_t diverged = std::stoll(flowlab::test::attr(out, "trials/seed=0", "diverged_step"));
  REQUIRE(diverged >= 2);
  const auto res = flowlab::read_results(out);
  const auto& t = res.trial("seed=0");
  CHECK(t.eval.empty());
  REQUIRE(t.during.size() == size_t(diverged / 2));  // steps 2, 4, ... up to the step whose loss was NaN
  for (size_t i = 0; i < t.during.size(); ++i) {
    CHECK(t.during[i].train_step == int64_t(2 * (i + 1)));
    CHECK(t.during[i].label == "euler:steps=2");
  }
  CHECK(t.metric_names == std::vector<std::string>{"frechet"});
  CHECK(flowlab::read_array(out, "trials/seed=0/rows/000/samples").shape == std::vector<int64_t>{100, 2});
  CHECK(flowlab::read_array(out, "trials/seed=0/samples/x0").shape == std::vector<int64_t>{100, 2});
  CHECK(std::isnan(flowlab::test::table_column(out, "summary", "frechet@euler:steps=2").at(0)));
  CHECK_THAT(flowlab_cmd("report " + out).out, ContainsSubstring("\nno completed trial in the file\n"));
}

// Experiment files: every malformed file in tests/data/experiments/bad/ gets its exact message and location
// (the expected message is the file's first line), and sweeps expand to the right trials in the right order.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "flowlab/config.hpp"
#include "support.hpp"

using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

std::string write_yaml(const std::string& name, const std::string& text) {
  const fs::path p = flowlab::test::scratch_dir("flowlab_config_") / name;
  std::ofstream(p) << text;
  return p.string();
}

const char* kBase = R"(name: sweep_test
data: {dataset: ring_gaussians}
model:
  path: rectified
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: 5, batch_size: 8}
eval:
  samples: 16
  solvers:
    - {solver: euler, steps: [1, 2]}
    - {solver: dopri5, params: {rtol: [1.0e-3, 1.0e-5]}}
  metrics: [frechet]
)";

}  // namespace

TEST_CASE("every malformed experiment file gets its exact message and file:line:column", "[config][errors]") {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(std::string(FLOWLAB_TEST_DATA) + "/experiments/bad")) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 20);
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string first;
    std::getline(in, first);
    REQUIRE(first.rfind("# expect: ", 0) == 0);
    const std::string expected = f.string() + ":" + first.substr(10);
    INFO(f.filename().string());
    try {
      flowlab::load_experiment(f.string(), registry());
      FAIL("no error for " << f);
    } catch (const flowlab::ConfigError& e) {
      CHECK(std::string(e.what()) == expected);
    }
  }
}

TEST_CASE("a missing experiment file is reported", "[config][errors]") {
  try {
    flowlab::load_experiment("/nonexistent/exp.yaml", registry());
    FAIL("no error");
  } catch (const flowlab::ConfigError& e) {
    CHECK(std::string(e.what()) == "/nonexistent/exp.yaml: cannot read experiment file (No such file or directory)");
  }
}

TEST_CASE("grid x zip x seeds: trial count, order, ids and values", "[config][sweep]") {
  const std::string file = write_yaml("sweep.yaml", std::string(kBase) + R"(sweep:
  grid: {model.path: [rectified, cosine, lipman_ot], model.time_sampler: [uniform, logit_normal]}
  zip: {train.lr: [1.0e-3, 3.0e-4], train.batch_size: [256, 1024]}
  seeds: [0, 1, 2]
)");
  const auto ex = flowlab::load_experiment(file, registry());
  REQUIRE(ex.trials.size() == 36);  // 3 x 2 grid, 2 zipped pairs (not 4), 3 seeds
  CHECK(ex.trials[0].id == "path=rectified,time_sampler=uniform,lr=1.0e-3,batch_size=256,seed=0");
  CHECK(ex.trials[1].id == "path=rectified,time_sampler=uniform,lr=1.0e-3,batch_size=256,seed=1");
  CHECK(ex.trials[3].id == "path=rectified,time_sampler=uniform,lr=3.0e-4,batch_size=1024,seed=0");
  CHECK(ex.trials[6].id == "path=rectified,time_sampler=logit_normal,lr=1.0e-3,batch_size=256,seed=0");
  CHECK(ex.trials[12].id == "path=cosine,time_sampler=uniform,lr=1.0e-3,batch_size=256,seed=0");
  CHECK(ex.trials[35].id == "path=lipman_ot,time_sampler=logit_normal,lr=3.0e-4,batch_size=1024,seed=2");
  const auto& t = ex.trials[3];
  CHECK(t.train.lr == 3.0e-4);
  CHECK(t.train.batch_size == 1024);
  CHECK(t.path.name == "rectified");
  CHECK(ex.trials[35].path.params.real("sigma_min") == 1e-4);  // defaults resolved
  CHECK(ex.trials[35].resolved_yaml.find("sigma_min: 0.0001") != std::string::npos);
  CHECK(t.swept == std::vector<std::pair<std::string, std::string>>{
                       {"model.path", "rectified"}, {"model.time_sampler", "uniform"}, {"train.lr", "3.0e-4"}, {"train.batch_size", "1024"}});
  std::set<std::string> ids;
  for (const auto& tr : ex.trials) ids.insert(tr.id);
  CHECK(ids.size() == 36);
  // Ids are stable: loading again gives the same ones in the same order.
  const auto again = flowlab::load_experiment(file, registry());
  for (size_t i = 0; i < 36; ++i) CHECK(again.trials[i].id == ex.trials[i].id);
  // Evaluation runs: euler at 1 and 2 steps, dopri5 at two tolerances.
  REQUIRE(t.eval.runs.size() == 4);
  CHECK(t.eval.runs[1].steps == 2);
  CHECK(t.eval.runs[3].solver.params.real("rtol") == 1.0e-5);
}

TEST_CASE("plugin parameters can be swept, and a bare plugin name takes parameters", "[config][sweep]") {
  const std::string file = write_yaml("params.yaml", std::string(kBase) + R"(sweep:
  grid: {model.architecture.params.width: [16, 32], model.path.params.sigma_min: [0.0, 0.1]}
)");
  // model.path is the bare name "rectified", which has no sigma_min: the error names the sweep value.
  try {
    flowlab::load_experiment(file, registry());
    FAIL("no error");
  } catch (const flowlab::ConfigError& e) {
    CHECK_THAT(std::string(e.what()), Catch::Matchers::StartsWith(file + ":14:"));
    CHECK_THAT(std::string(e.what()), Catch::Matchers::ContainsSubstring(
                                          "model.path.params.sigma_min: path/rectified: parameter 'sigma_min' is unknown"));
  }
  const std::string ok = write_yaml("params_ok.yaml", std::string(kBase) + R"(sweep:
  grid: {model.architecture.params.width: [16, 32], model.path.name: [lipman_ot]}
)");
  const auto ex = flowlab::load_experiment(ok, registry());
  REQUIRE(ex.trials.size() == 2);
  CHECK(ex.trials[1].architecture.params.integer("width") == 32);
  CHECK(ex.trials[1].id == "width=32,name=lipman_ot,seed=0");
  CHECK(ex.trials[1].path.name == "lipman_ot");
}

TEST_CASE("a sweep creates each distinct plugin configuration once, however many trials share it", "[config][sweep]") {
  std::string seeds = "[";
  for (int i = 0; i < 50; ++i) seeds += (i ? ", " : "") + std::to_string(i);
  seeds += "]";
  auto checked = [&](const std::string& name, const std::string& sweep, size_t trials) {
    const auto ex = flowlab::load_experiment(write_yaml(name, std::string(kBase) + sweep), registry());
    CHECK(ex.trials.size() == trials);
    return ex.plugins_checked;
  };
  const size_t one = checked("one.yaml", "", 1);
  CHECK(one >= 8);  // dataset, path, weighting, time sampler, noise, architecture, coupling, solvers, metric
  CHECK(checked("seeds.yaml", "sweep: {seeds: " + seeds + "}\n", 50) == one);
  CHECK(checked("paths.yaml", "sweep: {grid: {model.path: [rectified, cosine]}, seeds: " + seeds + "}\n", 100) == one + 1);
  CHECK(checked("widths.yaml", "sweep: {grid: {model.architecture.params.width: [16, 32, 64], train.lr: [0.1, 0.2]}}\n", 6) ==
        one + 2);
  // validate skips the documents (resolved and source YAML) and nothing else: the same trials and settings.
  const std::string file = write_yaml("docs.yaml", std::string(kBase) + "sweep: {grid: {model.path: [rectified, cosine]}, seeds: [0, 1]}\n");
  const auto full = flowlab::load_experiment(file, registry());
  const auto lean = flowlab::load_experiment(file, registry(), /*documents=*/false);
  REQUIRE(lean.trials.size() == full.trials.size());
  for (size_t i = 0; i < full.trials.size(); ++i) {
    CHECK(lean.trials[i].id == full.trials[i].id);
    CHECK(lean.trials[i].path.name == full.trials[i].path.name);
    CHECK(lean.trials[i].resolved_yaml.empty());
    CHECK_FALSE(full.trials[i].resolved_yaml.empty());
  }
  // A trial's document, read back as a worker reads its snapshot, resolves to the same configuration.
  const auto snapshot = write_yaml("trial.yaml", flowlab::trial_snapshot(full.trials[3]));
  CHECK(flowlab::load_trial_snapshot(snapshot, registry()).resolved_yaml == full.trials[3].resolved_yaml);
}

TEST_CASE("nearest suggests close names only", "[config]") {
  CHECK(flowlab::nearest("rectifed", {"cosine", "rectified"}) == "rectified");
  CHECK(flowlab::nearest("lrr", {"lr", "steps"}) == "lr");
  CHECK(flowlab::nearest("transformer", {"mlp", "dit", "unet"}).empty());
}

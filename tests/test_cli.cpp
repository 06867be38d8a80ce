// The flowlab CLI: listing, describe, help, version, bad usage (exit codes and exact messages), validate's checks of
// what cannot run, and devices checked before the first trial.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include <sys/resource.h>

#include "flowlab/worker.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;

namespace {

using Run = flowlab::test::CommandResult;

Run run(const std::string& args) {
  return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args);
}

/// `args` with the variables `env` ("A=1 B=2") set and FLOWLAB_TEST_FAKE_GPUS and CUDA_VISIBLE_DEVICES unset unless
/// `env` sets them.
Run run_env(const std::string& env, const std::string& args) {
  return flowlab::test::run_command(std::string("env -u FLOWLAB_TEST_FAKE_GPUS -u CUDA_VISIBLE_DEVICES FLOWLAB_PLUGIN_PATH= ") +
                                    env + " " + FLOWLAB_CLI + " " + args);
}

const std::string kGood = std::string("--plugin-path ") + FLOWLAB_TEST_PLUGIN_ROOT + "/good";

// Whether one line of `text` matches `pattern` whole. Line by line: libstdc++'s std::regex executor recurses once per
// character, so a pattern such as "(.|\n)*..." over a whole listing overflows the stack (it did under ASan).
bool has_line(const std::string& text, const std::string& pattern) {
  const std::regex re(pattern);
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, re)) return true;
  return false;
}

}  // namespace

TEST_CASE("flowlab plugins prints a table with kind, name, version, description and file", "[cli]") {
  const Run r = run(kGood + " plugins noise");
  CHECK(r.status == 0);
  CHECK(std::regex_match(r.out.substr(0, r.out.find('\n')), std::regex("KIND +NAME +VERSION +DESCRIPTION +FILE")));
  CHECK(has_line(r.out, "noise +test_const +0\\.3\\.1 +constant noise for tests +" + std::string(FLOWLAB_TEST_PLUGIN_ROOT) +
                            "/good/libtest_good\\.so"));
  // Columns line up: every row has its name where the header has NAME.
  const auto header_end = r.out.find('\n');
  const auto name_col = r.out.find("NAME");
  const auto row = r.out.find("test_const");
  const auto row_start = r.out.rfind('\n', row) + 1;
  CHECK(row - row_start == name_col);
  CHECK(r.out.find("DESCRIPTION") < header_end);
  CHECK_THAT(r.out, ContainsSubstring("noise  gaussian"));
  CHECK(r.out.find("solver") == std::string::npos);
  const Run all = run("plugins");
  CHECK(has_line(all.out, "solver +rk4 +1\\.0\\.0 +classic Runge-Kutta, order 4, 4 NFE per step +.*/libflowlab_solvers\\.so"));
  CHECK_FALSE(has_line(all.out, "solver +rk4 +9\\.9\\.9 .*"));  // the helper can fail
}

TEST_CASE("flowlab describe prints each parameter with type, default and doc", "[cli]") {
  const Run r = run(kGood + " describe noise/test_const");
  CHECK(r.status == 0);
  CHECK(r.out == "noise/test_const 0.3.1: constant noise for tests\n"
                 "file: " + std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/good/libtest_good.so\n"
                 "parameters:\n"
                 "  NAME     TYPE             DEFAULT    DOC\n"
                 "  value    float            1.5        the constant\n"
                 "  count    int              2          a multiplier\n"
                 "  flag     bool             false      a flag\n"
                 "  mode     enum(fast|slow)  fast       a choice\n"
                 "  label    string           hello      a string\n"
                 "  sizes    int_list         1,2,2      a list of ints\n"
                 "  weights  float_list       0.5, 0.25  a list of floats\n");
  const Run none = run(kGood + " describe solver/test_double");
  CHECK_THAT(none.out, ContainsSubstring("parameters: none\n"));
}

TEST_CASE("bad usage gives a one-line error on stderr and a non-zero exit", "[cli]") {
  Run r = run("describe solver/rk5");
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: unknown solver 'rk5' (valid: adams_bashforth, adaptive_heun, bosh3, dopri5, dopri8, dpmpp_2m, euler, euler_maruyama, fehlberg2, few_step, heun, heun3, midpoint, rk4, tsit5, unipc)\n");
  r = run("plugins solvers");
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: unknown plugin kind 'solvers' (valid: path, weighting, time_sampler, noise, "
                 "architecture, solver, dataset, metric, coupling, time_grid, objective)\n");
  r = run("describe rk4");
  CHECK(r.err == "flowlab: error: expected KIND/NAME, got 'rk4' (e.g. solver/rk4)\n");
  r = run("");
  CHECK(r.status == 2);
  CHECK(r.err == "flowlab: error: A subcommand is required (see 'flowlab --help')\n");
  r = run("plugins --frobnicate");
  CHECK(r.status == 2);
  CHECK(r.err == "flowlab: error: The following argument was not expected: --frobnicate (see 'flowlab --help')\n");
}

TEST_CASE("--help on every subcommand and --version", "[cli]") {
  CHECK_THAT(run("--version").out, StartsWith("flowlab 0."));
  for (const char* sub : {"plugins", "describe"}) {
    const Run r = run(std::string(sub) + " --help");
    CHECK(r.status == 0);
    CHECK_THAT(r.out, ContainsSubstring("Usage:"));
  }
}

TEST_CASE("scan problems are warnings on stderr, listing goes on", "[cli]") {
  const Run r = run(kGood + " --plugin-path /nonexistent/dir plugins noise");
  CHECK(r.status == 0);
  CHECK(r.err == "flowlab: warning: /nonexistent/dir: plugin directory does not exist\n");
  CHECK_THAT(r.out, ContainsSubstring("test_const"));
}

TEST_CASE("run --devices cuda:N beyond what is visible fails before the first trial", "[cli][devices]") {
  // What this machine has, from the same probe the runner uses; cuda:<number of GPUs> is never there.
  const Run probe = run("_devices");
  REQUIRE(probe.status == 0);
  flowlab::worker::DeviceInfo d;
  REQUIRE(flowlab::worker::parse_devices(probe.out.substr(0, probe.out.find('\n')), d));
  const std::string dev = "cuda:" + std::to_string(d.gpus);
  const std::string expected = !d.cuda ? dev + " requested, but this LibTorch has no CUDA"
                               : d.gpus == 0 ? dev + " requested, but no GPU is visible"
                               : d.gpus == 1 ? dev + " requested, but only 1 GPU is visible"
                                             : dev + " requested, but only " + std::to_string(d.gpus) + " GPUs are visible";
  const std::string out = (std::filesystem::temp_directory_path() / ("flowlab_cli_dev_" + std::to_string(::getpid()) + ".h5")).string();
  const Run r = run("run " + std::string(FLOWLAB_TEST_DATA) + "/experiments/layout.yaml --out " + out + " --devices " + dev);
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: " + expected + "\n");
  CHECK(r.out.empty());
  CHECK_FALSE(std::filesystem::exists(out));
  CHECK_FALSE(std::filesystem::exists(out + ".trials"));
}

TEST_CASE("devices auto with a fake device list: one GPU per worker, Slurm's CUDA_VISIBLE_DEVICES mapped through",
          "[cli][devices]") {
  const std::string exp = std::string(FLOWLAB_TEST_DATA) + "/experiments/layout.yaml";
  const std::string out = (std::filesystem::temp_directory_path() / ("flowlab_cli_fake_" + std::to_string(::getpid()) + ".h5")).string();
  const auto dry = [&](const std::string& env, const std::string& args) {
    return run_env(env, "run " + exp + " --out " + out + " --dry-run --devices auto " + args);
  };
  const std::string table = "   0  lr=1.0e-2,seed=0  (train 23 steps, 6 eval runs)\n   1  lr=1.0e-3,seed=0  (train 23 steps, 6 eval runs)\n";
  // Four GPUs, nothing selected: four workers, GPUs 0..3.
  Run r = dry("FLOWLAB_TEST_FAKE_GPUS=4", "--workers 1");
  CHECK(r.status == 0);
  CHECK(r.out == "layout: 2 trials on 4 slots (cuda:0, cuda:1, cuda:2, cuda:3), 1 thread each -> " + out + "\n"
                 "workers' CUDA_VISIBLE_DEVICES: 0, 1, 2, 3 (one GPU each, in slot order)\n" + table);
  // Slurm gave this task GPUs 3 and 1: exactly those, in that order; two workers on each only when asked for.
  r = dry("FLOWLAB_TEST_FAKE_GPUS=4 CUDA_VISIBLE_DEVICES=3,1", "--workers 1");
  CHECK(r.out == "layout: 2 trials on 2 slots (cuda:0, cuda:1), 1 thread each -> " + out + "\n"
                 "workers' CUDA_VISIBLE_DEVICES: 3, 1 (one GPU each, in slot order; this process has "
                 "CUDA_VISIBLE_DEVICES=3,1)\n" + table);
  r = dry("FLOWLAB_TEST_FAKE_GPUS=4 CUDA_VISIBLE_DEVICES=3,1", "");  // the YAML's workers_per_device: 2
  CHECK(r.out == "layout: 2 trials on 4 slots (cuda:0, cuda:0, cuda:1, cuda:1), 1 thread each -> " + out + "\n"
                 "workers' CUDA_VISIBLE_DEVICES: 3, 3, 1, 1 (one GPU each, in slot order; this process has "
                 "CUDA_VISIBLE_DEVICES=3,1)\n" + table);
  // A GPU listed twice is refused before anything runs.
  r = dry("FLOWLAB_TEST_FAKE_GPUS=4 CUDA_VISIBLE_DEVICES=3,1", "--devices cuda:1");
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: devices: cuda:1 is listed twice (auto and cuda:1, and auto is every visible GPU): "
                 "each GPU gets its own workers; for several workers on one GPU set workers_per_device (or --workers)\n");
  // A bad fake value stops the probe, and the run says so.
  r = dry("FLOWLAB_TEST_FAKE_GPUS=lots", "");
  CHECK(r.status == 1);
  CHECK_THAT(r.err, ContainsSubstring("FLOWLAB_TEST_FAKE_GPUS='lots': expected a number of GPUs from 1 to 999\n"));
  CHECK_THAT(r.err, ContainsSubstring("flowlab: error: cannot probe the devices: "));
  // CPU: unchanged, except that a GPU list this build cannot use is pointed out.
  r = run_env("", "run " + exp + " --out " + out + " --dry-run");
  CHECK(r.out == "layout: 2 trials on 2 slots (cpu, cpu), 1 thread each -> " + out + "\n" + table);
  const Run probe = run_env("CUDA_VISIBLE_DEVICES=0", "_devices");
  flowlab::worker::DeviceInfo d;
  REQUIRE(flowlab::worker::parse_devices(probe.out.substr(0, probe.out.find('\n')), d));
  if (d.gpus == 0) {
    r = dry("CUDA_VISIBLE_DEVICES=0", "--workers 1");
    CHECK(r.out == "layout: 2 trials on 1 slot (cpu), 1 thread each -> " + out + "\n"
                   "note: CUDA_VISIBLE_DEVICES=0 is set, but " +
                   (d.cuda ? "no GPU is visible" : "this LibTorch has no CUDA") + ": devices auto runs on cpu\n" + table);
  }
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("validate counts in words and refuses an output name that cannot work", "[cli]") {
  const auto dir = std::filesystem::temp_directory_path() / ("flowlab_cli_validate_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string file = (dir / "one.yaml").string();
  const std::string body = "data: {dataset: ring_gaussians}\nmodel: {architecture: mlp}\ntrain: {steps: 5}\n"
                           "eval: {samples: 8, solvers: [{solver: euler, steps: [1]}], metrics: [frechet]}\n";
  std::ofstream(file) << "name: one\n" << body;
  const Run ok = run("validate " + file);
  CHECK(ok.status == 0);
  CHECK(ok.out == file + ": OK (1 trial)\n");
  const std::string long_out = (dir / (std::string(250, 'r') + ".h5")).string();
  std::ofstream(file) << "name: one\noutput: " << long_out << "\n" << body;
  const Run bad = run("validate " + file);
  CHECK(bad.status == 1);
  CHECK(bad.err == "flowlab: error: " + long_out +
                       ": the output's file name is 253 characters long, at most 248 can work (flowlab adds '.trials' to it)\n");
  std::filesystem::remove_all(dir);
}

TEST_CASE("validate refuses a sweep of 4*10^9 trials with its count, without building them", "[cli][config]") {
  // Before the count was computed up front, the expansion grew at 330 MB/s until std::bad_alloc at 4-6 GB.
  const std::string file = std::string(FLOWLAB_TEST_DATA) + "/experiments/bad/52_too_many_trials.yaml";
  const Run r = run("validate " + file);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, StartsWith("flowlab: error: " + file + ":7:3: sweep: 4096000000 trials (40 (train.log_every) x "));
  CHECK_THAT(r.err, ContainsSubstring("x 1 (seeds)) is more than limits.trials (100000): shrink the sweep, or raise "
                                      "limits.trials\n"));
  rusage children{};
  REQUIRE(::getrusage(RUSAGE_CHILDREN, &children) == 0);
  CHECK(children.ru_maxrss < 1024 * 1024);  // KB: the largest child (of this process) stayed under 1 GB
}

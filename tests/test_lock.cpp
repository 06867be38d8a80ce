// One runner per output (flowlab::OutputLock, files.hpp): a second `run`, `run --resume` or `merge` on an output in
// use is refused at once, naming the holder; a lock left by a dead runner is taken over; nothing is left behind.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "flowlab/errors.hpp"
#include "flowlab/files.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;

namespace {

std::string hostname() {
  char host[256] = "?";
  ::gethostname(host, sizeof host - 1);
  return host;
}

std::string write_experiment(const flowlab::test::ScratchDir& s) {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: lock_test\noutput: " << s.file("out.h5") << R"(
devices: [cpu]
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 10, batch_size: 16}
eval: {samples: 16, solvers: [{solver: euler, steps: [2]}], metrics: []}
)";
  return path;
}

std::string cli(const std::string& args) { return std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args; }

}  // namespace

TEST_CASE("OutputLock: a second holder is refused with the first one's pid, host and command", "[lock]") {
  const flowlab::test::ScratchDir s("flowlab_lock_unit");
  const std::string out = s.file("out.h5");
  {
    const flowlab::OutputLock first(out, "test holder");
    CHECK(fs::exists(out + ".lock"));
    std::string message;
    try {
      const flowlab::OutputLock second(out, "second");
      FAIL("the second lock was granted");
    } catch (const flowlab::Error& e) {
      message = e.what();
    }
    CHECK_THAT(message, StartsWith(out + " is in use by another flowlab process (pid " + std::to_string(::getpid()) +
                                   " on host " + hostname() + " since "));
    CHECK_THAT(message, ContainsSubstring("Z (test holder)): wait for it to end, or choose another --out"));
  }
  CHECK_FALSE(fs::exists(out + ".lock"));  // released and removed
  const flowlab::OutputLock again(out, "after");  // and free again
}

TEST_CASE("a second runner on an output in use is refused at once and writes nothing", "[lock][runner]") {
  const flowlab::test::ScratchDir s("flowlab_lock_cli");
  const std::string exp = write_experiment(s), out = s.file("out.h5");
  const flowlab::OutputLock held(out, "another runner");
  fs::create_directories(s.file("shards.trials"));  // merge's input: an existing (empty) trial directory
  for (const std::string& args :
       {"run " + exp, "run " + exp + " --resume", "merge " + out + " " + s.file("shards.trials") + " --experiment " + exp}) {
    INFO(args);
    const auto r = flowlab::test::run_command(cli(args));
    CHECK(r.status == 1);
    CHECK_THAT(r.err, StartsWith("flowlab: error: " + out + " is in use by another flowlab process (pid " +
                                 std::to_string(::getpid()) + " on host " + hostname() + " since "));
    CHECK_THAT(r.err, ContainsSubstring("(another runner)): wait for it to end, or choose another --out\n"));
    CHECK_FALSE(fs::exists(out));
    CHECK_FALSE(fs::exists(out + ".trials"));
  }
}

TEST_CASE("a lock file left by a dead runner is taken over, and no lock file stays after a run", "[lock][runner]") {
  const flowlab::test::ScratchDir s("flowlab_lock_stale");
  const std::string exp = write_experiment(s), out = s.file("out.h5");
  std::ofstream(out + ".lock") << "pid 999999 on host gone since 2026-01-01T00:00:00Z (flowlab run)\n";
  const auto r = flowlab::test::run_command(cli("run " + exp));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(fs::exists(out));
  CHECK_FALSE(fs::exists(out + ".lock"));
  // --resume on the finished output takes and gives back the lock too.
  const auto again = flowlab::test::run_command(cli("run " + exp + " --resume"));
  CHECK(again.status == 0);
  CHECK_FALSE(fs::exists(out + ".lock"));
}

TEST_CASE("resuming never replaces a file that is not this experiment's results", "[lock][runner]") {
  const flowlab::test::ScratchDir s("flowlab_lock_foreign");
  const std::string exp = write_experiment(s), out = s.file("out.h5");
  auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  // Not HDF5 at all.
  std::ofstream(out) << "someone else's notes\n";
  auto r = flowlab::test::run_command(cli("run " + exp + " --resume"));
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: " + out +
                     " exists and is not a flowlab results file: --resume would replace it; choose another --out\n");
  CHECK(bytes(out) == "someone else's notes\n");
  CHECK_FALSE(fs::exists(out + ".trials"));
  // The results of another experiment.
  fs::remove(out);
  const std::string other = s.file("other.yaml");
  {
    std::ifstream in(exp);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    text.replace(text.find("name: lock_test"), 15, "name: other_exp");
    std::ofstream(other) << text;
  }
  REQUIRE(flowlab::test::run_command(cli("run " + other)).status == 0);
  const std::string before = bytes(out);
  r = flowlab::test::run_command(cli("run " + exp + " --resume"));
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: " + out + " holds the results of experiment 'other_exp', not 'lock_test': --resume "
                     "would replace them; choose another --out\n");
  CHECK(bytes(out) == before);
  // Its own results resume as before.
  REQUIRE(flowlab::test::run_command(cli("run " + other + " --resume")).status == 0);
}

TEST_CASE("two runners on one output, started together or one while the other resumes: one is refused, the result "
          "equals an uninterrupted run's", "[lock][runner]") {
  const flowlab::test::ScratchDir s("flowlab_lock_race");
  // Long enough (2 trials of 400 steps, one worker) that the second runner starts while the first one runs.
  const std::string exp = s.file("race.yaml");
  std::ofstream(exp) << R"(name: race
devices: [cpu]
workers_per_device: 1
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 32, depth: 2}}}
train: {steps: 400, batch_size: 64}
eval: {samples: 64, solvers: [{solver: euler, steps: [4]}], metrics: [frechet]}
sweep: {seeds: [0, 1]}
)";
  const std::string ref = s.file("ref.h5");
  REQUIRE(flowlab::test::run_command(cli("run " + exp + " --out " + ref)).status == 0);
  auto loss = [](const std::string& file, const char* id) {
    return flowlab::test::table_column(file, std::string("trials/") + id + "/eval", "frechet");
  };
  const std::vector<std::pair<std::string, std::string>> orders = {
      {"run", "run"}, {"run", "run --resume"}, {"run --resume", "run"}, {"run --resume", "run --resume"}};
  const std::vector<double> delays = {0, 0.5};  // started together, or the second once the first is running
  int case_no = 0;
  for (const auto& [a, b] : orders)
    for (double delay : delays) {
      const std::string out = s.file(fmt::format("out{}.h5", case_no++));
      INFO(a << " then " << b << " after " << delay << " s");
      const std::string first = cli(a + " " + exp + " --out " + out), second = cli(b + " " + exp + " --out " + out);
      const auto r = flowlab::test::run_command(fmt::format(
          "({} > {}.a.log 2>&1; echo $? > {}.a.rc) & sleep {}; ({} > {}.b.log 2>&1; echo $? > {}.b.rc) & wait; "
          "cat {}.a.rc {}.b.rc",
          first, out, out, delay, second, out, out, out, out));
      REQUIRE(r.status == 0);
      // Exactly one of them exits 0; the other is refused by the lock, with the holder named.
      const bool a_won = r.out == "0\n1\n", b_won = r.out == "1\n0\n";
      REQUIRE((a_won || b_won));
      std::ifstream in(out + (a_won ? ".b.log" : ".a.log"));
      const std::string refused((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      CHECK_THAT(refused, StartsWith("flowlab: error: " + out + " is in use by another flowlab process (pid "));
      CHECK_THAT(refused, ContainsSubstring("wait for it to end, or choose another --out\n"));
      for (const char* id : {"seed=0", "seed=1"}) CHECK(loss(out, id) == loss(ref, id));
      CHECK_FALSE(fs::exists(out + ".lock"));
    }
}

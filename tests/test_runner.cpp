// The runner, end to end through the flowlab binary: fault isolation (a segfaulting and a throwing plugin),
// divergence, --retry-failed, --fail-fast, refusing to overwrite, and resume after SIGKILL of the runner.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>
#include <signal.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "flowlab/results.hpp"
#include "flowlab/worker.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name) : dir(fs::temp_directory_path() / ("flowlab_runner_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::string experiment(const Scratch& s, const std::string& sweep, int64_t steps = 20,
                       const std::string& arch = "{name: mlp, params: {width: 16, depth: 1}}") {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: runner_test\noutput: " << s.file("out.h5") << R"(
devices: [cpu]
workers_per_device: 2
data: {dataset: ring_gaussians}
model:
  architecture: )" << arch << R"(
train: {steps: )" << steps << R"(, batch_size: 32, log_every: 5, checkpoint_every: 100}
eval:
  samples: 64
  solvers: [{solver: euler, steps: [2]}]
  metrics: [frechet]
sweep:
)" << sweep;
  return path;
}

flowlab::test::CommandResult flowlab_cmd(const std::string& args) {
  return flowlab::test::run_command(std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " --plugin-path " +
                                    FLOWLAB_TEST_PLUGIN_ROOT + "/runner " + args);
}

std::string attr(const std::string& file, const std::string& group, const char* name) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t a = H5Aopen_by_name(f, group.c_str(), name, H5P_DEFAULT, H5P_DEFAULT);
  REQUIRE(a >= 0);
  const hid_t type = H5Aget_type(a);
  std::string out;
  if (H5Tget_class(type) == H5T_STRING) {
    char* v = nullptr;
    H5Aread(a, type, &v);
    out = v ? v : "";
    H5free_memory(v);
  } else {
    int64_t v = 0;
    H5Aread(a, H5T_NATIVE_INT64, &v);
    out = std::to_string(v);
  }
  H5Tclose(type), H5Aclose(a), H5Fclose(f);
  return out;
}

hsize_t rows(const std::string& file, const char* dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  H5Sclose(s), H5Dclose(d), H5Fclose(f);
  return n;
}

hsize_t groups(const std::string& file) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  H5G_info_t info;
  const hid_t g = H5Gopen2(f, "trials", H5P_DEFAULT);
  H5Gget_info(g, &info);
  H5Gclose(g), H5Fclose(f);
  return info.nlinks;
}

ino_t inode(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("a segfaulting and a throwing plugin fail their trials only; NaN marks divergence", "[runner]") {
  Scratch s("faults");
  const std::string exp = experiment(s, "  grid: {model.architecture: [mlp, test_crash, test_throw, test_nan]}\n", 20, "mlp");
  const auto r = flowlab_cmd("run " + exp);
  CHECK(r.status == 1);
  const std::string out = s.file("out.h5");
  CHECK(groups(out) == 4);
  CHECK(rows(out, "summary") == 4);
  CHECK(attr(out, "trials/architecture=mlp,seed=0", "status") == "completed");
  CHECK(attr(out, "trials/architecture=test_crash,seed=0", "status") == "failed");
  CHECK_THAT(attr(out, "trials/architecture=test_crash,seed=0", "error"),
             Catch::Matchers::StartsWith("worker killed by signal 11 (Segmentation fault)"));
  CHECK(attr(out, "trials/architecture=test_throw,seed=0", "status") == "failed");
  CHECK(attr(out, "trials/architecture=test_throw,seed=0", "error") == "test_throw: forward is broken on purpose");
  CHECK(attr(out, "trials/architecture=test_nan,seed=0", "status") == "diverged");
  CHECK(attr(out, "trials/architecture=test_nan,seed=0", "diverged_step") == "0");
  CHECK(attr(out, "trials/architecture=test_nan,seed=0", "error") == "loss is nan at step 0");
  CHECK(rows(out, "trials/architecture=mlp,seed=0/eval") == 1);
  CHECK(rows(out, "trials/architecture=mlp,seed=0/train/loss") == 5);  // steps 0, 5, 10, 15 and the last, 19

  SECTION("--resume --retry-failed reruns only the failed trials") {
    const auto done = inode(flowlab::worker::trial_file_path(out, "architecture=mlp,seed=0"));
    const auto diverged = inode(flowlab::worker::trial_file_path(out, "architecture=test_nan,seed=0"));
    const auto crashed = inode(flowlab::worker::trial_file_path(out, "architecture=test_crash,seed=0"));
    const auto again = flowlab_cmd("run --resume --retry-failed " + exp);
    CHECK(again.status == 1);
    CHECK_THAT(again.out, ContainsSubstring("runner_test: 4 trials, 2 to run"));
    CHECK(inode(flowlab::worker::trial_file_path(out, "architecture=mlp,seed=0")) == done);
    CHECK(inode(flowlab::worker::trial_file_path(out, "architecture=test_nan,seed=0")) == diverged);
    CHECK(inode(flowlab::worker::trial_file_path(out, "architecture=test_crash,seed=0")) != crashed);
    CHECK(groups(out) == 4);
  }
  SECTION("running again without --resume is refused, nothing is touched") {
    const auto before = inode(out);
    const auto again = flowlab_cmd("run " + exp);
    CHECK(again.status == 1);
    CHECK(again.err == "flowlab: error: " + out + " already exists: use --resume to finish that sweep, or choose another --out\n");
    CHECK(inode(out) == before);
  }
}

TEST_CASE("fail-fast: the --fail-fast flag stops at the first failure", "[runner]") {
  Scratch s("failfast");
  const std::string exp = experiment(s, "  grid: {model.architecture: [test_throw, mlp]}\n  seeds: [0]\n", 20, "mlp");
  // one worker, so the throwing trial runs first and alone
  const auto r = flowlab_cmd("run --workers 1 --fail-fast " + exp);
  CHECK(r.status == 1);
  CHECK_THAT(r.out, ContainsSubstring("0      failed     architecture=test_throw,seed=0\n1      not run    architecture=mlp,seed=0"));
}

TEST_CASE("dry run: --dry-run prints the trial table and writes nothing", "[runner]") {
  Scratch s("dry");
  const std::string exp = experiment(s, "  grid: {train.lr: [0.01, 0.001]}\n  seeds: [0, 1]\n");
  const auto r = flowlab_cmd("run --dry-run --workers 3 " + exp);
  CHECK(r.status == 0);
  CHECK(r.out == "runner_test: 4 trials on 3 slots (cpu, cpu, cpu), 1 thread each -> " + s.file("out.h5") + "\n"
                 "   0  lr=0.01,seed=0  (train 20 steps, 1 eval run)\n"
                 "   1  lr=0.01,seed=1  (train 20 steps, 1 eval run)\n"
                 "   2  lr=0.001,seed=0  (train 20 steps, 1 eval run)\n"
                 "   3  lr=0.001,seed=1  (train 20 steps, 1 eval run)\n");
  CHECK_FALSE(fs::exists(s.file("out.h5")));
}

TEST_CASE("after SIGKILL of the runner the file stays readable and --resume finishes without redoing trials", "[runner][resume]") {
  Scratch s("resume");
  const std::string exp = experiment(s, "  seeds: [0, 1, 2, 3]\n", 600);
  const std::string out = s.file("out.h5");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("FLOWLAB_PLUGIN_PATH", "", 1);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::execl(FLOWLAB_CLI, FLOWLAB_CLI, "run", "--workers", "1", exp.c_str(), (char*)nullptr);
    ::_exit(127);
  }
  // Kill the runner as soon as the first trial is done.
  const std::string first = flowlab::worker::trial_file_path(out, "seed=0");
  for (int i = 0; i < 600 && !fs::exists(first); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(first));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let it get into the next trial
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFSIGNALED(wstatus));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the worker dies with its parent

  // The experiment file is readable; it holds the trials merged before the kill, which may lag the trial files.
  const hsize_t before = groups(out);
  std::map<std::string, ino_t> done;
  for (const char* id : {"seed=0", "seed=1", "seed=2", "seed=3"})
    if (flowlab::trial_file_status(flowlab::worker::trial_file_path(out, id))) done[id] = inode(flowlab::worker::trial_file_path(out, id));
  CHECK(done.size() >= 1);
  CHECK(done.size() < 4);
  CHECK(before <= done.size());

  const auto r = flowlab_cmd("run --resume --workers 1 " + exp);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring(fmt::format("runner_test: 4 trials, {} to run", 4 - done.size())));
  CHECK(groups(out) == 4);
  CHECK(rows(out, "summary") == 4);
  for (const char* id : {"seed=0", "seed=1", "seed=2", "seed=3"})
    CHECK(attr(out, std::string("trials/") + id, "status") == "completed");
  for (const auto& [id, ino] : done) CHECK(inode(flowlab::worker::trial_file_path(out, id)) == ino);  // not rerun
  for (const auto& e : fs::directory_iterator(out + ".trials")) CHECK(e.path().extension() != ".ckpt");  // cleaned up
}

// The runner, end to end through the flowlab binary: fault isolation (a segfaulting and a throwing plugin),
// divergence, --retry-failed, --fail-fast, refusing to overwrite, resume after SIGKILL of the runner, SIGINT and a
// second SIGINT, the per-trial time limit, resume after a configuration edit, HDF5 errors, long trial ids; and the
// pieces underneath: device slots, the worker protocol, merging, bounded file names, counted().
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
#include <regex>
#include <sstream>
#include <thread>

#include "flowlab/config.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/results.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/trial_files.hpp"
#include "flowlab/worker.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;

namespace {

using flowlab::test::attr;
using flowlab::test::table_column;

struct Scratch : flowlab::test::ScratchDir {
  explicit Scratch(const std::string& name) : ScratchDir("flowlab_runner_" + name) {}
};

std::string experiment(const Scratch& s, const std::string& sweep, int64_t steps = 20,
                       const std::string& arch = "{name: mlp, params: {width: 16, depth: 1}}",
                       const std::string& top = "", int64_t checkpoint_every = 100) {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: runner_test\noutput: " << s.file("out.h5") << "\n" << top << R"(devices: [cpu]
workers_per_device: 2
data: {dataset: ring_gaussians}
model:
  architecture: )" << arch << R"(
train: {steps: )" << steps << R"(, batch_size: 32, log_every: 5, checkpoint_every: )" << checkpoint_every << R"(}
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

template <class T>
std::vector<T> column(const std::string& file, const std::string& dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t s = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(s, &n, nullptr);
  std::vector<T> v(n);
  if (n) H5Dread(d, std::is_integral<T>::value ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(s), H5Dclose(d), H5Fclose(f);
  return v;
}


/// Replaces a string attribute (a result written under another configuration, as far as the runner can tell).
void set_attr(const std::string& file, const std::string& group, const char* name, const std::string& value) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
  REQUIRE(H5Adelete(g, name) >= 0);
  const hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, H5T_VARIABLE);
  const hid_t space = H5Screate(H5S_SCALAR);
  const hid_t a = H5Acreate2(g, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  const char* p = value.c_str();
  REQUIRE(H5Awrite(a, type, &p) >= 0);
  H5Aclose(a), H5Sclose(space), H5Tclose(type), H5Gclose(g), H5Fclose(f);
}

std::string read_text(const std::string& path) {
  std::stringstream ss;
  ss << std::ifstream(path).rdbuf();
  return ss.str();
}

std::string last_line(const std::string& text) {
  const auto end = text.size() && text.back() == '\n' ? text.size() - 1 : text.size();
  const auto start = text.rfind('\n', end ? end - 1 : 0);
  return text.substr(start == std::string::npos ? 0 : start + 1);
}

/// Starts `flowlab run ARGS...` in the background, stdout and stderr to `log`; returns its pid.
pid_t start_runner(const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> argv = {FLOWLAB_CLI, "--plugin-path", std::string(FLOWLAB_TEST_PLUGIN_ROOT) + "/runner", "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> ptrs;
  for (auto& a : argv) ptrs.push_back(a.data());
  ptrs.push_back(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::setenv("FLOWLAB_PLUGIN_PATH", "", 1);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
    ::execv(FLOWLAB_CLI, ptrs.data());
    ::_exit(127);
  }
  return pid;
}

/// Waits until `ready()` holds (polling every 20 ms, for at most `seconds`).
template <class F>
bool wait_for(F ready, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!ready()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::vector<std::string> files_ending(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() >= suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) out.push_back(n);
  }
  return out;
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
    const auto done = inode(flowlab::trial_file_path(out, "architecture=mlp,seed=0"));
    const auto diverged = inode(flowlab::trial_file_path(out, "architecture=test_nan,seed=0"));
    const auto crashed = inode(flowlab::trial_file_path(out, "architecture=test_crash,seed=0"));
    const auto again = flowlab_cmd("run --resume --retry-failed " + exp);
    CHECK(again.status == 1);
    CHECK_THAT(again.out, ContainsSubstring("runner_test: 4 trials, 2 to run"));
    CHECK(inode(flowlab::trial_file_path(out, "architecture=mlp,seed=0")) == done);
    CHECK(inode(flowlab::trial_file_path(out, "architecture=test_nan,seed=0")) == diverged);
    CHECK(inode(flowlab::trial_file_path(out, "architecture=test_crash,seed=0")) != crashed);
    CHECK(groups(out) == 4);
  }
  SECTION("running again without --resume is refused, nothing is touched") {
    const auto before = inode(out);
    const auto again = flowlab_cmd("run " + exp);
    CHECK(again.status == 1);
    CHECK(again.err == "flowlab: error: " + out + " already exists: use --resume to finish that sweep, or choose another --out\n");
    CHECK(inode(out) == before);
  }
  SECTION("without the results file, its trial files left behind are named, and nothing is touched") {
    const auto trial = inode(flowlab::trial_file_path(out, "architecture=mlp,seed=0"));
    fs::remove(out);
    const auto again = flowlab_cmd("run " + exp);
    CHECK(again.status == 1);
    CHECK(again.err == "flowlab: error: " + out + ".trials already exists (the trial files of a sweep to " + out +
                           "): use --resume to finish that sweep, remove it, or choose another --out\n");
    CHECK(inode(flowlab::trial_file_path(out, "architecture=mlp,seed=0")) == trial);
    CHECK_FALSE(fs::exists(out));
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
  // stdout to a file: every line is flushed as it is written, so the log survives the kill.
  const pid_t pid = start_runner({"--workers", "1", exp}, s.file("run.log"));
  // Kill the runner as soon as the first trial is done.
  const std::string first = flowlab::trial_file_path(out, "seed=0");
  for (int i = 0; i < 600 && !fs::exists(first); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(fs::exists(first));
  // The runner logs the trial once its worker has exited; wait for that line (however loaded the machine is), then
  // a little more to let it get into the next trial.
  for (int i = 0; i < 600 && read_text(s.file("run.log")).find("completed seed=0") == std::string::npos; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ::kill(pid, SIGKILL);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFSIGNALED(wstatus));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the worker dies with its parent

  // The experiment file is readable; it holds the trials merged before the kill, which may lag the trial files.
  const hsize_t before = groups(out);
  std::map<std::string, ino_t> done;
  for (const char* id : {"seed=0", "seed=1", "seed=2", "seed=3"})
    if (flowlab::trial_file_status(flowlab::trial_file_path(out, id))) done[id] = inode(flowlab::trial_file_path(out, id));
  CHECK(done.size() >= 1);
  CHECK(done.size() < 4);
  CHECK(before <= done.size());
  const std::string log = read_text(s.file("run.log"));
  CHECK_THAT(log, StartsWith("runner_test: 4 trials, 4 to run on 1 slot (cpu)\n[cpu] start seed=0\n"));
  CHECK_THAT(log, ContainsSubstring("\n[cpu] completed seed=0 ("));

  const auto r = flowlab_cmd("run --resume --workers 1 " + exp);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring(fmt::format("runner_test: 4 trials, {} to run", 4 - done.size())));
  CHECK(groups(out) == 4);
  CHECK(rows(out, "summary") == 4);
  for (const char* id : {"seed=0", "seed=1", "seed=2", "seed=3"})
    CHECK(attr(out, std::string("trials/") + id, "status") == "completed");
  for (const auto& [id, ino] : done) CHECK(inode(flowlab::trial_file_path(out, id)) == ino);  // not rerun
  for (const auto& e : fs::directory_iterator(out + ".trials")) CHECK(e.path().extension() != ".ckpt");  // cleaned up
}

TEST_CASE("counted: '1 trial', '2 trials', '0 trials'", "[runner]") {
  CHECK(flowlab::counted(1, "trial") == "1 trial");
  CHECK(flowlab::counted(2, "slot") == "2 slots");
  CHECK(flowlab::counted(0, "thread") == "0 threads");
}

TEST_CASE("device slots: cuda:N is checked against what the probe saw, before any trial", "[runner][devices]") {
  using flowlab::worker::DeviceInfo;
  const DeviceInfo none{false, 0}, one{true, 1}, two{true, 2}, cuda_no_gpu{true, 0};
  CHECK(flowlab::device_slots({"auto"}, 2, none) == std::vector<std::string>{"cpu", "cpu"});
  CHECK(flowlab::device_slots({"auto"}, 1, two) == std::vector<std::string>{"cuda:0", "cuda:1"});
  CHECK(flowlab::device_slots({"cpu", "cuda:1"}, 1, two) == std::vector<std::string>{"cpu", "cuda:1"});
  using flowlab::test::message_of;
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:0"}, 1, none); }) ==
        "cuda:0 requested, but this LibTorch has no CUDA");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:1"}, 1, one); }) ==
        "cuda:1 requested, but only 1 GPU is visible");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:0", "cuda:2"}, 1, two); }) ==
        "cuda:2 requested, but only 2 GPUs are visible");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:0"}, 1, cuda_no_gpu); }) ==
        "cuda:0 requested, but no GPU is visible");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"gpu0"}, 1, two); }) ==
        "unknown device 'gpu0' (valid: auto, cpu, cuda:N)");
}

TEST_CASE("device slots: auto gives each worker exactly one GPU, shared only with workers_per_device", "[runner][devices]") {
  using flowlab::worker::DeviceInfo;
  using flowlab::test::message_of;
  const DeviceInfo none{false, 0}, cpu_only{true, 0}, four{true, 4};
  // CPU: unchanged, one slot per worker.
  CHECK(flowlab::device_slots({"auto"}, 1, none) == std::vector<std::string>{"cpu"});
  CHECK(flowlab::device_slots({"auto"}, 3, cpu_only) == std::vector<std::string>{"cpu", "cpu", "cpu"});
  CHECK(flowlab::device_slots({"cpu", "cpu"}, 1, none) == std::vector<std::string>{"cpu", "cpu"});
  // GPUs: every visible one, once per worker.
  CHECK(flowlab::device_slots({"auto"}, 1, four) == std::vector<std::string>{"cuda:0", "cuda:1", "cuda:2", "cuda:3"});
  CHECK(flowlab::device_slots({"auto"}, 2, DeviceInfo{true, 2}) ==
        std::vector<std::string>{"cuda:0", "cuda:0", "cuda:1", "cuda:1"});
  CHECK(flowlab::device_slots({"cuda:2", "cpu"}, 2, four) == std::vector<std::string>{"cuda:2", "cuda:2", "cpu", "cpu"});
  // Never one GPU twice by listing it twice.
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:1", "cuda:1"}, 1, four); }) ==
        "devices: cuda:1 is listed twice (cuda:1 and cuda:1): each GPU gets its own workers; for several workers on "
        "one GPU set workers_per_device (or --workers)");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"auto", "cuda:3"}, 1, four); }) ==
        "devices: cuda:3 is listed twice (auto and cuda:3, and auto is every visible GPU): each GPU gets its own "
        "workers; for several workers on one GPU set workers_per_device (or --workers)");
  CHECK(message_of<flowlab::Error>([&] { flowlab::device_slots({"cuda:0", "auto"}, 1, four); }) ==
        "devices: cuda:0 is listed twice (cuda:0 and auto, and auto is every visible GPU): each GPU gets its own "
        "workers; for several workers on one GPU set workers_per_device (or --workers)");

  // Each worker's CUDA_VISIBLE_DEVICES: one GPU, from this process's list when it has one (Slurm's gres).
  const auto visible_of = [](const std::vector<std::string>& slots, const char* env) {
    std::vector<std::string> out;
    for (const auto& slot : slots) out.push_back(flowlab::worker_cuda_visible_devices(slot, env));
    return out;
  };
  const auto two_each = flowlab::device_slots({"auto"}, 2, DeviceInfo{true, 2});
  CHECK(visible_of(two_each, nullptr) == std::vector<std::string>{"0", "0", "1", "1"});
  CHECK(visible_of(two_each, "") == std::vector<std::string>{"0", "0", "1", "1"});
  CHECK(visible_of(two_each, "5,3") == std::vector<std::string>{"5", "5", "3", "3"});
  CHECK(visible_of(flowlab::device_slots({"auto"}, 1, four), "GPU-a,GPU-b,GPU-c,GPU-d") ==
        std::vector<std::string>{"GPU-a", "GPU-b", "GPU-c", "GPU-d"});
  CHECK(visible_of({"cpu", "cpu"}, "2") == std::vector<std::string>{"", ""});
  CHECK(message_of<flowlab::Error>([&] { flowlab::worker_cuda_visible_devices("cuda:2", "4,6"); }) ==
        "cuda:2 requested, but CUDA_VISIBLE_DEVICES=4,6 lists 2 GPUs");
}

TEST_CASE("on GPUs: devices auto runs one worker per GPU, each trial completes on its own GPU", "[cuda][devices]") {
  const auto probe = flowlab::test::run_command(std::string("env -u FLOWLAB_TEST_FAKE_GPUS ") + FLOWLAB_CLI + " _devices");
  flowlab::worker::DeviceInfo d;
  REQUIRE(flowlab::worker::parse_devices(probe.out.substr(0, probe.out.find('\n')), d));
  if (d.gpus == 0) SKIP("no GPU is visible (" << probe.out.substr(0, probe.out.find('\n')) << ")");
  Scratch s("cuda");
  const std::string exp = experiment(s, "  seeds: [0, 1, 2, 3]\n", 50);
  const auto r = flowlab::test::run_command(std::string("env -u FLOWLAB_TEST_FAKE_GPUS FLOWLAB_PLUGIN_PATH= ") +
                                            FLOWLAB_CLI + " run " + exp + " --devices auto --workers 1");
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  std::string slots;
  for (int64_t i = 0; i < d.gpus; ++i) slots += (i ? ", cuda:" : "cuda:") + std::to_string(i);
  CHECK_THAT(r.out, StartsWith(fmt::format("runner_test: 4 trials, 4 to run on {} ({})\n", flowlab::counted(d.gpus, "slot"),
                                           slots)));
  CHECK_THAT(r.out, ContainsSubstring("\nworkers' CUDA_VISIBLE_DEVICES: "));
  for (const char* id : {"seed=0", "seed=1", "seed=2", "seed=3"}) {
    const std::string g = std::string("trials/") + id;
    CHECK(attr(s.file("out.h5"), g, "status") == "completed");
    CHECK(attr(s.file("out.h5"), g, "device") == "cuda:0");  // as the worker sees its one GPU
  }
}

TEST_CASE("the fake device probe for tests: FLOWLAB_TEST_FAKE_GPUS=N, narrowed by CUDA_VISIBLE_DEVICES as CUDA does",
          "[runner][devices]") {
  using flowlab::worker::fake_devices;
  const auto gpus = [](const std::string& n, const char* env) {
    const auto d = fake_devices(n, env);
    CHECK(d.cuda);
    return d.gpus;
  };
  CHECK(gpus("4", nullptr) == 4);
  CHECK(gpus("4", "") == 0);
  CHECK(gpus("4", "2") == 1);
  CHECK(gpus("4", "3,1") == 2);
  CHECK(gpus("4", "1,7,2") == 1);  // CUDA stops at the first invalid entry
  CHECK(gpus("4", "1,1") == 1);
  CHECK(gpus("2", "x") == 0);
  using flowlab::test::message_of;
  for (const char* bad : {"", "0", "-1", "1000", "two"})
    CHECK(message_of<flowlab::Error>([&] { fake_devices(bad, nullptr); }) ==
          std::string("FLOWLAB_TEST_FAKE_GPUS='") + bad + "': expected a number of GPUs from 1 to 999");
}

TEST_CASE("the worker protocol: progress lines read back exactly, the devices line, bounded file names", "[runner]") {
  namespace w = flowlab::worker;
  flowlab::Progress p{7, 20, 0.1 + 0.2, std::nan(""), 1e-300}, q;
  REQUIRE(w::parse_progress(w::progress_line(p), q));
  CHECK(q.step == 7);
  CHECK(q.total == 20);
  CHECK(q.loss == p.loss);
  CHECK(std::isnan(q.grad_norm));
  CHECK(q.lr == p.lr);
  CHECK_FALSE(w::parse_progress("PROGRESS 1 2 3", q));
  CHECK_FALSE(w::parse_progress("flowlab: trial x failed", q));
  w::DeviceInfo d;
  REQUIRE(w::parse_devices(w::devices_line({true, 3}), d));
  CHECK((d.cuda && d.gpus == 3));
  CHECK(w::devices_line({false, 0}) == "DEVICES cuda=0 gpus=0");
  CHECK_FALSE(w::parse_devices("DEVICES cuda=1 gpus=2 extra", d));
  int64_t step = 0, total = 0;
  CHECK(w::resume_line(120, 400) == "RESUME 120 400");
  REQUIRE(w::parse_resume(w::resume_line(120, 400), step, total));
  CHECK((step == 120 && total == 400));
  CHECK_FALSE(w::parse_resume("RESUME 1 2 3", step, total));
  CHECK_FALSE(w::parse_resume("PROGRESS 1 2 0.5 0.1 0.001", step, total));
  flowlab::Progress unused;
  CHECK_FALSE(w::parse_progress(w::resume_line(1, 2), unused));
  // Long ids: a readable prefix of 80 characters (unsafe characters replaced) and a hash of the whole id.
  const std::string id = "path=a b/c," + std::string(300, 'x');
  const std::string stem = flowlab::trial_file_stem(id);
  CHECK(stem.size() == 80 + 9);
  CHECK_THAT(stem, StartsWith("path=a_b_c,xxxx"));
  CHECK(flowlab::trial_file_stem(id + "y") != stem);
  CHECK(flowlab::trial_file_stem("seed=0") == flowlab::trial_file_stem("seed=0"));
  CHECK_THAT(flowlab::trial_file_path("/r/out.h5", "seed=0"), StartsWith("/r/out.h5.trials/seed=0-"));
  CHECK_THAT(flowlab::checkpoint_path("/r/out.h5", "seed=0", "0123456789abcdef"),
             Catch::Matchers::EndsWith(".0123456789abcdef.ckpt"));
}

TEST_CASE("check_trial_files: two trials sharing a result file and an output name too long are errors", "[runner]") {
  // Ids that agree on their first 80 characters and whose hashes collide (a birthday search over 32 bits).
  std::map<std::string, std::string> seen;
  std::string a, b;
  const std::string prefix = "lr=" + std::string(100, '1');
  for (int i = 0; i < 2000000 && a.empty(); ++i) {
    const std::string id = prefix + "," + std::to_string(i);
    const auto [it, added] = seen.emplace(flowlab::trial_file_stem(id), id);
    if (!added) a = it->second, b = id;
  }
  REQUIRE_FALSE(a.empty());
  flowlab::Experiment ex;
  ex.file = "exp.yaml";
  ex.trials.resize(2);
  ex.trials[0].id = a, ex.trials[1].id = b;
  using flowlab::test::message_of;
  CHECK(message_of<flowlab::Error>([&] { flowlab::check_trial_files(ex, "out.h5"); }) ==
        "exp.yaml: trials '" + a + "' and '" + b + "' would share the result file " +
            flowlab::trial_file_stem(a) +
            ".h5 (their ids agree on the first 80 characters and on the hash); change a swept value of one of them");
  ex.trials.resize(1);
  CHECK_NOTHROW(flowlab::check_trial_files(ex, "out.h5"));
  const std::string long_name = "/tmp/" + std::string(249, 'o') + ".h5";
  CHECK(message_of<flowlab::Error>([&] { flowlab::check_trial_files(ex, long_name); }) ==
        long_name + ": the output's file name is 252 characters long, at most 248 can work (flowlab adds '.trials' to it)");
}

TEST_CASE("a trial over max_trial_seconds is stopped and recorded as timeout with its training log", "[runner][timeout]") {
  Scratch s("timeout");
  const std::string exp =
      experiment(s, "  grid: {model.architecture: [test_hang, mlp]}\n", 20, "mlp", "max_trial_seconds: 6\n");
  const auto r = flowlab_cmd("run " + exp);
  CHECK(r.status == 1);
  CHECK_THAT(r.out, ContainsSubstring("\n[cpu] architecture=test_hang,seed=0 exceeded max_trial_seconds (6 s): stopping it\n"));
  CHECK_THAT(r.out, ContainsSubstring("\n[cpu] completed architecture=mlp,seed=0 ("));
  CHECK_THAT(r.out, ContainsSubstring("0      timeout    architecture=test_hang,seed=0\n1      completed  architecture=mlp,seed=0\n"));
  CHECK(last_line(r.out) == "2 trials: 1 completed, 1 timed out\n");
  const std::string out = s.file("out.h5");
  const std::string hang = "trials/architecture=test_hang,seed=0";
  CHECK(attr(out, hang, "status") == "timeout");
  CHECK(attr(out, hang, "error") == "exceeded max_trial_seconds (6 s) at step 11/20");
  // The log so far, from the worker's progress lines: steps 0, 5 and 10 (the plugin hangs in step 11).
  CHECK(column<int64_t>(out, hang + "/train/step") == std::vector<int64_t>{0, 5, 10});
  const auto loss = column<double>(out, hang + "/train/loss");
  REQUIRE(loss.size() == 3);
  for (double l : loss) CHECK(std::isfinite(l));
  CHECK(column<double>(out, hang + "/train/lr").size() == 3);
  CHECK(attr(out, "trials/architecture=mlp,seed=0", "status") == "completed");
  CHECK(rows(out, "summary") == 2);
}

TEST_CASE("SIGINT: workers checkpoint and stop, the run exits 130, --resume finishes with the same numbers",
          "[runner][signals]") {
  Scratch s("sigint");
  const std::string exp = experiment(s, "  seeds: [0, 1]\n", 300, "{name: mlp, params: {width: 16, depth: 1}}", "", 50);
  const std::string out = s.file("out.h5"), trials = out + ".trials";
  const auto reference = flowlab_cmd("run --workers 1 --out " + s.file("ref.h5") + " " + exp);
  REQUIRE(reference.status == 0);

  const pid_t pid = start_runner({"--workers", "1", exp}, s.file("run.log"));
  // Interrupt while seed=1 trains: seed=0 has its result and seed=1 has saved a checkpoint.
  const std::string first = flowlab::trial_file_path(out, "seed=0");
  const std::string second = flowlab::trial_file_stem("seed=1");
  REQUIRE(wait_for(
      [&] {
        for (const auto& f : files_ending(trials, ".ckpt"))
          if (f.rfind(second, 0) == 0) return fs::exists(first);
        return false;
      },
      120));
  ::kill(pid, SIGINT);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 130);
  const std::string log = read_text(s.file("run.log"));
  CHECK_THAT(log, ContainsSubstring("\nSIGINT: stopping: the workers save their checkpoints (at most 10 s; Ctrl-C again "
                                    "stops at once)\n"));
  CHECK_THAT(log, ContainsSubstring("\n[cpu] stopped seed=1 at step "));
  CHECK_THAT(log, ContainsSubstring("0      completed  seed=0\n1      not run    seed=1\n"));
  CHECK_THAT(log, ContainsSubstring("\ninterrupted by SIGINT: flowlab run --resume continues the sweep\n"));
  CHECK(last_line(log) == "2 trials: 1 completed, 1 not run\n");
  CHECK(files_ending(trials, ".tmp").empty());
  CHECK(files_ending(trials, ".ckpt").size() == 1);  // seed=1's, saved when it stopped
  CHECK_FALSE(fs::exists(flowlab::trial_file_path(out, "seed=1")));
  CHECK(groups(out) == 1);

  const auto resumed = flowlab_cmd("run --resume --workers 1 " + exp);
  CHECK(resumed.status == 0);
  CHECK_THAT(resumed.out, StartsWith("runner_test: 2 trials, 1 to run on 1 slot (cpu)\n"));
  CHECK(last_line(resumed.out) == "2 trials: 2 completed\n");
  CHECK(files_ending(trials, ".ckpt").empty());
  // The log says where it resumed: the step its checkpoint holds, at least the last step reported before the stop.
  std::smatch stopped, resumed_at;
  REQUIRE(std::regex_search(log, stopped, std::regex("\n\\[cpu\\] stopped seed=1 at step ([0-9]+)/300 ")));
  REQUIRE(std::regex_search(resumed.out, resumed_at,
                            std::regex("\n\\[cpu\\] seed=1 resumes from its checkpoint at step ([0-9]+)/300\n")));
  CHECK(std::stoi(resumed_at[1]) >= std::stoi(stopped[1]));
  CHECK(std::stoi(resumed_at[1]) > 0);
  CHECK(std::stoi(resumed_at[1]) < 300);
  CHECK(resumed.out.find("seed=0 resumes") == std::string::npos);
  for (const char* id : {"seed=0", "seed=1"}) {
    const std::string g = std::string("trials/") + id;
    CHECK(column<double>(out, g + "/train/loss") == column<double>(s.file("ref.h5"), g + "/train/loss"));
    CHECK(column<double>(out, g + "/train/grad_norm") == column<double>(s.file("ref.h5"), g + "/train/grad_norm"));
  }
  CHECK(table_column(out, "summary", "frechet@euler:steps=2") ==
        table_column(s.file("ref.h5"), "summary", "frechet@euler:steps=2"));
}

TEST_CASE("SIGTERM stops the run like Ctrl-C and exits 143", "[runner][signals]") {
  Scratch s("sigterm");
  const std::string exp = experiment(s, "  seeds: [0]\n", 100000, "{name: mlp, params: {width: 16, depth: 1}}", "", 20);
  const std::string trials = s.file("out.h5.trials");
  const pid_t pid = start_runner({exp}, s.file("run.log"));
  REQUIRE(wait_for([&] { return !files_ending(trials, ".ckpt").empty(); }, 60));
  ::kill(pid, SIGTERM);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 143);
  const std::string log = read_text(s.file("run.log"));
  CHECK_THAT(log, ContainsSubstring("\nSIGTERM: stopping: the workers save their checkpoints (at most 10 s; a second "
                                    "SIGTERM stops at once)\n"));
  CHECK_THAT(log, ContainsSubstring("\n[cpu] stopped seed=0 at step "));
  CHECK_THAT(log, ContainsSubstring("\ninterrupted by SIGTERM: flowlab run --resume continues the sweep\n"));
  CHECK(last_line(log) == "1 trial: 1 not run\n");
  CHECK(files_ending(trials, ".ckpt").size() == 1);
  CHECK(files_ending(trials, ".tmp").empty());
}

TEST_CASE("a second SIGINT kills a worker that does not stop, at once", "[runner][signals]") {
  Scratch s("sigint2");
  const std::string exp = experiment(s, "  grid: {model.architecture: [test_hang]}\n", 20, "mlp");
  const std::string log_file = s.file("run.log");
  const pid_t pid = start_runner({exp}, log_file);
  // The plain progress line comes 5 s after the start, by then the plugin hangs in step 11.
  REQUIRE(wait_for([&] { return read_text(log_file).find("step 11/20") != std::string::npos; }, 60));
  ::kill(pid, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  int wstatus = 0;
  CHECK(::waitpid(pid, &wstatus, WNOHANG) == 0);  // still waiting for the worker to stop (up to 10 s)
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGINT);
  ::waitpid(pid, &wstatus, 0);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(3));
  REQUIRE(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 130);
  const std::string log = read_text(log_file);
  CHECK_THAT(log, ContainsSubstring("\n[cpu] stopped architecture=test_hang,seed=0 at step 11/20 ("));
  CHECK(last_line(log) == "1 trial: 1 not run\n");
  CHECK(files_ending(s.file("out.h5.trials"), ".h5").empty());
}

TEST_CASE("resume after a configuration edit: the changed trials run again, and the runner says so", "[runner][resume]") {
  Scratch s("edit");
  std::string exp = experiment(s, "  seeds: [0, 1]\n", 20);
  const std::string out = s.file("out.h5");
  REQUIRE(flowlab_cmd("run " + exp).status == 0);

  SECTION("a result written under another configuration: exactly that trial runs again") {
    const std::string edited = flowlab::trial_file_path(out, "seed=0");
    set_attr(edited, "trials/seed=0", "config_hash", "0123456789abcdef");
    // As if written so: its checksum follows (a file changed after its checksum is set aside: test_integrity).
    std::ofstream(edited + ".sha256") << flowlab::sha256_file(edited) << "  " << fs::path(edited).filename().string()
                                      << "\n";
    const auto kept = inode(flowlab::trial_file_path(out, "seed=1"));
    const auto r = flowlab_cmd("run --resume " + exp);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, StartsWith("seed=0: its configuration changed since its result was written: it runs again\n"
                                 "runner_test: 2 trials, 1 to run on 2 slots (cpu, cpu)\n"));
    CHECK(inode(flowlab::trial_file_path(out, "seed=1")) == kept);
    const auto ex = flowlab::load_experiment(exp, flowlab::test::registry());
    CHECK(attr(out, "trials/seed=0", "config_hash") == flowlab::config_hash(ex.trials[0].resolved_yaml));
    CHECK(groups(out) == 2);
  }
  SECTION("an edit of the base configuration: every trial runs again, its old checkpoint is dropped") {
    exp = experiment(s, "  seeds: [0, 1]\n", 25);
    const std::string stale = flowlab::checkpoint_path(out, "seed=1", "0123456789abcdef");
    std::ofstream(stale) << "a checkpoint of the old configuration";
    const auto r = flowlab_cmd("run --resume " + exp);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, StartsWith("seed=0: its configuration changed since its result was written: it runs again\n"
                                 "seed=1: its configuration changed since its result was written: it runs again\n"
                                 "seed=1: its checkpoint was written for another configuration: it starts over\n"
                                 "runner_test: 2 trials, 2 to run on 2 slots (cpu, cpu)\n"));
    CHECK_FALSE(fs::exists(stale));
    CHECK(column<int64_t>(out, "trials/seed=0/train/step") == std::vector<int64_t>{0, 5, 10, 15, 20, 24});
    CHECK(column<int64_t>(out, "trials/seed=1/train/step") == std::vector<int64_t>{0, 5, 10, 15, 20, 24});
  }
}

TEST_CASE("a worker that dies after writing its completed result keeps it", "[runner]") {
  Scratch s("keep");
  const std::string exp = experiment(s, "  grid: {model.architecture: [test_crash_at_exit]}\n", 20, "mlp");
  const auto r = flowlab_cmd("run " + exp);
  CHECK(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring("\n[cpu] completed architecture=test_crash_at_exit,seed=0 ("));
  CHECK(last_line(r.out) == "1 trial: 1 completed\n");
  CHECK(attr(s.file("out.h5"), "trials/architecture=test_crash_at_exit,seed=0", "status") == "completed");
  CHECK(rows(s.file("out.h5"), "trials/architecture=test_crash_at_exit,seed=0/eval") == 1);
}

TEST_CASE("an error while writing one trial's result fails that trial, with the system's message, not the sweep",
          "[runner][hdf5]") {
  Scratch s("hdf5");
  const std::string exp = experiment(s, "  seeds: [0, 1]\n", 20);
  const std::string out = s.file("out.h5");
  // A directory where seed=0's temporary file goes: the file cannot be created (not a full disk: the trial fails).
  const std::string blocked = flowlab::trial_file_path(out, "seed=0") + ".tmp";
  fs::create_directories(blocked);
  const auto r = flowlab_cmd("run --resume " + exp);
  CHECK(r.status == 1);
  CHECK_THAT(r.out, ContainsSubstring("\n[cpu] failed seed=0 ("));
  CHECK_THAT(r.out, ContainsSubstring(" s): its completed result could not be written: Is a directory (EISDIR) "
                                      "creating " + blocked + "\n"));
  CHECK_THAT(r.out, ContainsSubstring("0      failed     seed=0\n1      completed  seed=1\n"));
  CHECK(last_line(r.out) == "2 trials: 1 completed, 1 failed\n");
  CHECK(attr(out, "trials/seed=1", "status") == "completed");
  // The worker recorded the failure once the temporary name was free again (it removes its failed temporary).
  CHECK(attr(out, "trials/seed=0", "status") == "failed");
  CHECK(attr(out, "trials/seed=0", "error") ==
        "its completed result could not be written: Is a directory (EISDIR) creating " + blocked);
  CHECK(rows(out, "summary") == 2);
}

TEST_CASE("merging leaves out an unreadable trial file and names it; no HDF5 handle stays open", "[runner][hdf5]") {
  Scratch s("merge");
  const auto ex = flowlab::load_experiment(experiment(s, "  seeds: [0, 1]\n", 20), flowlab::test::registry());
  const std::string out = s.file("out.h5");
  flowlab::TrialResult res;
  res.id = "seed=0", res.status = "completed", res.device = "cpu";
  res.train.step = {0, 5}, res.train.loss = {2.0, 1.5}, res.train.grad_norm = {1, 1}, res.train.lr = {1e-3, 1e-3};
  const std::string good = flowlab::trial_file_path(out, "seed=0");
  const std::string bad = flowlab::trial_file_path(out, "seed=1");
  flowlab::write_trial_file(good, ex.trials[0], res);
  std::ofstream(bad) << "not an HDF5 file";
  const auto problems = flowlab::merge_experiment(out, ex, {good, bad});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].file == bad);
  CHECK_THAT(problems[0].error, StartsWith("HDF5: opening " + bad + ": unable to open file"));
  CHECK(rows(out, "summary") == 1);
  CHECK(table_column(out, "summary", "final_loss") == std::vector<double>{1.5});
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);

  // Writing where the temporary file cannot be created throws the system's message and leaves nothing open either.
  fs::create_directories(good + ".tmp");
  CHECK(flowlab::test::message_of<flowlab::Error>([&] { flowlab::write_trial_file(good, ex.trials[0], res); }) ==
        "Is a directory (EISDIR) creating " + good + ".tmp");
  CHECK(H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL) == 0);
}

TEST_CASE("a 250-character swept value: the trial file has a bounded name, the full id is inside", "[runner]") {
  Scratch s("longid");
  const std::string v1 = "0.001" + std::string(244, '0') + "1", v2 = "0.001" + std::string(244, '0') + "2";
  const std::string exp = experiment(s, "  grid: {train.lr: [" + v1 + ", " + v2 + "]}\n", 10);
  CHECK(flowlab_cmd("validate " + exp).out == exp + ": OK (2 trials)\n");
  const auto r = flowlab_cmd("run " + exp);
  CHECK(r.status == 0);
  const std::string out = s.file("out.h5");
  for (const auto& v : {v1, v2}) {
    const std::string id = "lr=" + v + ",seed=0";
    const std::string name = fs::path(flowlab::trial_file_path(out, id)).filename().string();
    CHECK(name.size() == 80 + 9 + 3);
    CHECK_THAT(name, StartsWith("lr=0.00100000"));
    CHECK(attr(flowlab::trial_file_path(out, id), "trials/" + id, "status") == "completed");
    CHECK(attr(out, "trials/" + id, "status") == "completed");
  }
  CHECK(rows(out, "summary") == 2);
}

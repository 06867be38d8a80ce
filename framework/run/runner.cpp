// The runner: a queue of trials, one child process per running trial (fork + exec of `flowlab _trial`), progress
// over a pipe, failures recorded with their reason, the experiment file re-merged after every trial. SIGINT and
// SIGTERM stop it cleanly (a second one at once), and a trial over max_trial_seconds is stopped and recorded as
// `timeout`. The parent never touches CUDA: the devices are probed by a `flowlab _devices` child.
#include "flowlab/runner.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/report.hpp"
#include "flowlab/results.hpp"
#include "flowlab/trial_files.hpp"

extern char** environ;

namespace fs = std::filesystem;

namespace flowlab {
namespace {

using Clock = std::chrono::steady_clock;

/// Set by the SIGINT/SIGTERM handler: the last signal and how many arrived.
volatile std::sig_atomic_t g_signal = 0;
volatile std::sig_atomic_t g_signal_count = 0;
extern "C" void on_runner_signal(int sig) {
  g_signal = sig;
  g_signal_count = g_signal_count + 1;
}

/// Installs the runner's SIGINT/SIGTERM handler for its lifetime and restores the previous ones after. Without
/// SA_RESTART, so that poll() returns at once.
class SignalScope {
 public:
  SignalScope() {
    g_signal = 0, g_signal_count = 0;
    struct sigaction sa {};
    sa.sa_handler = on_runner_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_int_);
    ::sigaction(SIGTERM, &sa, &old_term_);
    ::sigaction(SIGUSR1, &sa, &old_usr1_);  // Slurm's warning before a time limit (sbatch --signal=USR1@T)
  }
  ~SignalScope() {
    ::sigaction(SIGINT, &old_int_, nullptr);
    ::sigaction(SIGTERM, &old_term_, nullptr);
    ::sigaction(SIGUSR1, &old_usr1_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction old_int_ {
  }, old_term_{}, old_usr1_{};
};

/// A file descriptor closed on destruction.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// argv and envp of a child, built before fork (the child only calls async-signal-safe functions).
struct ExecArgs {
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  ExecArgs(std::vector<std::string> a, const std::map<std::string, std::string>& set_env) : args(std::move(a)) {
    for (char** e = environ; e && *e; ++e) {
      const std::string kv = *e;
      if (!set_env.count(kv.substr(0, kv.find('=')))) env.push_back(kv);
    }
    for (const auto& [k, v] : set_env) env.push_back(k + "=" + v);
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

/// In the child after fork: writes "cannot run <file>: <reason>" to stderr and exits with kExitExecFailed.
[[noreturn]] void exec_or_die(const ExecArgs& a) {
  ::execve(a.argv[0], a.argv.data(), a.envp.data());
  const char* why = ::strerrordesc_np(errno);  // unlike strerror, never translates or allocates
  if (!why) why = "unknown error";
  for (const char* s : {"cannot run ", static_cast<const char*>(a.argv[0]), ": ", why, "\n"})
    if (::write(STDERR_FILENO, s, std::strlen(s)) < 0) break;
  ::_exit(worker::kExitExecFailed);
}

struct Running {
  pid_t pid = -1;
  size_t trial = 0;
  std::string slot, hash;
  int out_fd = -1, err_fd = -1;
  std::string out_buf, err_buf;
  std::string write_error;  ///< from a WRITE_ERROR line: the disk error that ended the worker
  Progress progress;
  int64_t reported_step = -1;  ///< the step of the last progress line printed (not a tty): each step once
  TrainLog log;                ///< from the PROGRESS lines: what a `timeout` record holds
  ino_t file_before = 0;       ///< the inode of the trial's result file at launch (0: none), to tell a new one
  Clock::time_point started;
  bool stopping = false, killed = false, timed_out = false;
  Clock::time_point stop_sent;
};

std::string signal_name(int sig) {
  const char* d = strsignal(sig);
  return fmt::format("signal {} ({})", sig, d ? d : "unknown");
}

std::string tail_lines(const std::string& s, size_t n) {
  std::vector<std::string> lines;
  std::stringstream ss(s);
  std::string l;
  while (std::getline(ss, l))
    if (!l.empty()) lines.push_back(l);
  const size_t from = lines.size() > n ? lines.size() - n : 0;
  std::string out;
  for (size_t i = from; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

ino_t inode_of(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

using Emit = std::function<void(const std::string&)>;

/// A damaged file's problem: "" when `path` is not a regular file or cannot be read (no damage seen: what uses it
/// reports that), else file_problem's.
std::string damage(const std::string& path, FileKind kind) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return "";
  const std::string problem = file_problem(path, kind);
  return problem.rfind("cannot", 0) == 0 ? "" : problem;
}

/// --resume: each existing trial file of `mine` is verified (integrity.hpp); a damaged one is set aside as
/// FILE.corrupt-N, never deleted, and its trial runs again.
void set_aside_damaged_trial_files(const Experiment& ex, const std::vector<size_t>& mine, const std::string& output,
                                   const Emit& emit) {
  for (size_t i : mine) {
    const std::string file = trial_file_path(output, ex.trials[i].id);
    const std::string problem = damage(file, FileKind::trial);
    if (problem.empty()) continue;
    const std::string aside = set_aside(file);
    emit(fmt::format("{} {}: set aside as {}; trial {} runs again\n", file, problem, aside, ex.trials[i].id));
  }
}

/// --resume: an experiment file that flowlab wrote (it has a checksum, or its .trials is beside it) but that is
/// damaged is set aside as OUTPUT.corrupt-N and rebuilt from the trial files. Anything else is left to the checks of
/// a foreign output. True when it was set aside.
bool set_aside_damaged_output(const std::string& output, const Emit& emit) {
  std::error_code ec;
  if (!fs::exists(checksum_path(output), ec) && !fs::is_directory(trial_dir(output), ec)) return false;
  const std::string problem = damage(output, FileKind::experiment);
  if (problem.empty() || problem.rfind("is not", 0) == 0) return false;
  const std::string aside = set_aside(output);
  emit(fmt::format("{} {}: set aside as {}; it is rebuilt from {}\n", output, problem, aside, trial_dir(output)));
  return true;
}

/// A checkpoint that fails verification is set aside as CKPT.corrupt-N and its trial starts over: never trained on,
/// never failed for it.
void set_aside_damaged_checkpoint(const std::string& checkpoint, const std::string& id, const Emit& emit) {
  if (checkpoint.empty()) return;
  const std::string problem = damage(checkpoint, FileKind::checkpoint);
  if (problem.empty()) return;
  const std::string aside = set_aside(checkpoint);
  emit(fmt::format("{} {}: set aside as {}; trial {} starts over\n", checkpoint, problem, aside, id));
}

/// Removes the temporary files (`*.tmp`) a killed writer left in `dir`; returns how many.
size_t remove_temporaries(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const auto& p = it->path();
    std::error_code ec2;
    if (p.extension() == ".tmp" && it->is_regular_file(ec2) && fs::remove(p, ec2)) ++n;
  }
  return n;
}

void drain(int fd, std::string& buf) {
  char tmp[4096];
  ssize_t n;
  while (fd >= 0 && (n = ::read(fd, tmp, sizeof tmp)) > 0) buf.append(tmp, static_cast<size_t>(n));
}

const char* kStatusOrder[] = {"completed", "diverged", "failed", "timeout"};

const char* stop_signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGUSR1 ? "SIGUSR1" : "SIGTERM"; }

/// Removes the temporaries (`*.tmp`) of the given file stems in `dir`: a shard cleans up after its own trials only,
/// never those another shard is writing in the same directory.
void remove_own_temporaries(const std::string& dir, const std::set<std::string>& stems) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (it->path().extension() != ".tmp") continue;
    for (const auto& stem : stems)  // stems may hold dots: compare prefixes
      if (name.size() > stem.size() && name.compare(0, stem.size(), stem) == 0 && name[stem.size()] == '.') {
        std::error_code ec2;
        fs::remove(it->path(), ec2);
        break;
      }
  }
}

/// Writes `text` to `path` atomically (a temporary of this process, then rename): readers see the old or the new.
/// A full disk is a WriteError naming the file (write_file).
void write_atomically(const std::string& path, const std::string& text) {
  write_file(path, text, fmt::format("{}.{}.tmp", path, ::getpid()));
}

/// What a run stopped by a full or failing disk prints last: the error, what is kept, and how to go on.
std::string resume_advice(const std::string& error, const Experiment& ex, const RunOptions& opt,
                          const std::string& output, int64_t kept) {
  const std::string shard = opt.shard_count > 0 ? fmt::format(" --shard {}/{}", opt.shard_index, opt.shard_count) : "";
  const std::string kept_text = kept == 0 ? "no trial had finished"
                                          : fmt::format("the {} kept in {}/",
                                                        kept == 1 ? std::string("1 finished trial is")
                                                                  : fmt::format("{} finished trials are", kept),
                                                        trial_dir(output));
  return fmt::format("{}; {}; free space and run: flowlab run {} --out {}{} --resume", error, kept_text, ex.file,
                     output, shard);
}

/// The entries of a CUDA_VISIBLE_DEVICES value ("3,5" -> {"3", "5"}).
std::vector<std::string> split_devices(const std::string& value) {
  std::vector<std::string> ids;
  std::stringstream ss(value);
  std::string id;
  while (std::getline(ss, id, ',')) ids.push_back(id);
  return ids;
}

}  // namespace

std::vector<size_t> shard_trials(size_t n, int64_t index, int64_t count) {
  if (count < 1 || index < 0 || index >= count)
    throw Error(fmt::format("shard {}/{}: expected 0 <= index < count", index, count));
  std::vector<size_t> out;
  for (size_t i = static_cast<size_t>(index); i < n; i += static_cast<size_t>(count)) out.push_back(i);
  return out;
}

namespace {
/// A non-negative decimal integer, the whole of `s`; false otherwise (no sign, no spaces, no overflow).
bool parse_count(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoll(s);
  return true;
}
}  // namespace

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  Shard sh;
  const auto bad = [&](const std::string& why) {
    return Error(fmt::format("--shard expects I/N with 0 <= I < N, as in 0/4 (I is 0-based, like SLURM_ARRAY_TASK_ID): "
                             "got '{}'{}",
                             text, why.empty() ? "" : " (" + why + ")"));
  };
  if (slash == std::string::npos || !parse_count(text.substr(0, slash), sh.index) ||
      !parse_count(text.substr(slash + 1), sh.count))
    throw bad("");
  if (sh.count < 1) throw bad("N must be at least 1");
  if (sh.index >= sh.count)
    throw bad(fmt::format("I must be below N; the last shard of {} is {}/{}", sh.count, sh.count - 1, sh.count));
  return sh;
}

Shard shard_from_env(const std::function<const char*(const char*)>& getenv) {
  const auto get = [&](const char* name, int64_t& out) {
    const char* v = getenv(name);
    if (!v) return false;
    if (!parse_count(v, out))
      throw Error(fmt::format("{}='{}' is not a non-negative integer: pass --shard I/N", name, v));
    return true;
  };
  Shard sh;
  int64_t id = 0, min = 0, max = 0, count = 0;
  if (!get("SLURM_ARRAY_TASK_ID", id)) return sh;
  const bool has_min = get("SLURM_ARRAY_TASK_MIN", min), has_max = get("SLURM_ARRAY_TASK_MAX", max);
  const bool has_count = get("SLURM_ARRAY_TASK_COUNT", count);
  if (!has_count && !(has_min && has_max))
    throw Error("SLURM_ARRAY_TASK_ID is set, but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN and _MAX: "
                "pass --shard I/N");
  if (has_min && has_max && max < min)
    throw Error(
        fmt::format("SLURM_ARRAY_TASK_MAX ({}) is below SLURM_ARRAY_TASK_MIN ({}): pass --shard I/N", max, min));
  if (has_min && has_max && has_count && count != max - min + 1)
    throw Error(fmt::format("the array is not a contiguous range ({} tasks between {} and {}): pass --shard I/N "
                            "(flowlab slurm's scripts do)",
                            count, min, max));
  sh.index = id - (has_min ? min : 0);
  sh.count = has_count ? count : max - min + 1;
  if (sh.index < 0 || sh.index >= sh.count)
    throw Error(fmt::format("SLURM_ARRAY_TASK_ID {} is outside the array's {} tasks{}: pass --shard I/N", id, sh.count,
                            has_min ? fmt::format(" from {}", min) : ""));
  return sh;
}

std::vector<std::string> device_slots(const std::vector<std::string>& devices, int64_t workers,
                                      const worker::DeviceInfo& visible) {
  std::vector<std::string> names;
  std::map<std::string, std::string> gpu_from;  // cuda:N -> the entry of `devices` that gave it
  const auto add_gpu = [&](const std::string& name, const std::string& from) {
    const auto [it, added] = gpu_from.emplace(name, from);
    if (!added)
      throw Error(fmt::format("devices: {} is listed twice ({}{}): each GPU gets its own workers; for several "
                              "workers on one GPU set workers_per_device (or --workers)",
                              name, it->second == from ? from + " and " + from : it->second + " and " + from,
                              it->second == "auto" || from == "auto" ? ", and auto is every visible GPU" : ""));
    names.push_back(name);
  };
  for (const auto& d : devices) {
    if (d == "auto") {
      if (visible.gpus == 0) names.push_back("cpu");
      for (int64_t i = 0; i < visible.gpus; ++i) add_gpu(fmt::format("cuda:{}", i), "auto");
    } else if (d == "cpu") {
      names.push_back(d);
    } else if (d.rfind("cuda:", 0) == 0 && d.size() > 5 && d.size() < 12 &&
               d.find_first_not_of("0123456789", 5) == std::string::npos) {
      const int64_t index = std::stoll(d.substr(5));
      if (!visible.cuda) throw Error(fmt::format("{} requested, but this LibTorch has no CUDA", d));
      if (visible.gpus == 0) throw Error(fmt::format("{} requested, but no GPU is visible", d));
      if (index >= visible.gpus)
        throw Error(fmt::format("{} requested, but only {} {} visible", d, counted(visible.gpus, "GPU"),
                                visible.gpus == 1 ? "is" : "are"));
      add_gpu(d, d);
    } else {
      throw Error(fmt::format("unknown device '{}' (valid: auto, cpu, cuda:N)", d));
    }
  }
  std::vector<std::string> slots;
  for (const auto& n : names)
    for (int64_t w = 0; w < std::max<int64_t>(1, workers); ++w) slots.push_back(n);
  return slots;
}

std::string worker_cuda_visible_devices(const std::string& slot, const char* cuda_visible_devices) {
  if (slot.rfind("cuda:", 0) != 0) return "";
  const int64_t index = std::stoll(slot.substr(5));
  if (!cuda_visible_devices || !*cuda_visible_devices) return std::to_string(index);
  const auto ids = split_devices(cuda_visible_devices);
  if (index >= static_cast<int64_t>(ids.size()))
    throw Error(fmt::format("{} requested, but CUDA_VISIBLE_DEVICES={} lists {}", slot, cuda_visible_devices,
                            counted(static_cast<int64_t>(ids.size()), "GPU")));
  return ids[static_cast<size_t>(index)];
}

worker::DeviceInfo probe_devices(const std::string& self) {
  if (self.empty()) throw Error("cannot probe the devices: the flowlab executable is not known");
  const ExecArgs exec(worker::devices_command_line(self), {});
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  Fd read_end(p[0]), write_end(p[1]);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(fmt::format("cannot start {} _devices: {}", self, std::strerror(errno)));
  if (pid == 0) {
    ::dup2(p[1], STDOUT_FILENO);
    exec_or_die(exec);
  }
  ::close(write_end.fd), write_end.fd = -1;
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(read_end.fd, buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
  std::stringstream lines(out);
  std::string line;
  worker::DeviceInfo info;
  while (std::getline(lines, line))
    if (worker::parse_devices(line, info) && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) return info;
  throw Error(fmt::format("cannot probe the devices: {} _devices {}", self,
                          WIFSIGNALED(wstatus) ? "was killed by " + signal_name(WTERMSIG(wstatus))
                                               : fmt::format("exited with status {}", WEXITSTATUS(wstatus))));
}

void check_trial_files(const Experiment& ex, const std::string& output) {
  std::map<std::string, std::string> owner;  // file stem -> trial id
  for (const auto& t : ex.trials) {
    const std::string stem = trial_file_stem(t.id);
    const auto [it, added] = owner.emplace(stem, t.id);
    if (!added)
      throw Error(fmt::format("{}: trials '{}' and '{}' would share the result file {}.h5 (their ids agree on the "
                              "first {} characters and on the hash); change a swept value of one of them",
                              ex.file, it->second, t.id, stem, kFileIdPrefix));
  }
  // The runner adds ".trials" (the trial directory) and ".tmp" to the output's file name.
  const std::string name = fs::path(output).filename().string();
  constexpr size_t kMax = NAME_MAX - 7;
  if (name.size() > kMax)
    throw Error(fmt::format("{}: the output's file name is {} characters long, at most {} can work (flowlab adds "
                            "'.trials' to it)",
                            output, name.size(), kMax));
}

// What the sweep learned, for the end of `flowlab run`: the report's steps-to-quality summary of the results file
// (its default grouping and metric). A file the report cannot read gives a line saying so; the run's outcome is not
// changed by it.
static std::string quality_summary(const std::string& output) {
  try {
    std::ostringstream out;
    write_quality_summary(build_report(read_results(output), ReportOptions{}), out);
    return out.str().empty() ? std::string() : "\n" + out.str();
  } catch (const std::exception& e) {
    return fmt::format("\nno steps-to-quality summary: {}\n", e.what());
  }
}

namespace {

/// One `flowlab run`: its slots, its trials' queue and statuses, the running workers and the experiment file's
/// merges. run() is the whole life: resolve the devices, check and prepare the output, then launch, watch and finish
/// workers until the queue is done or a signal, --fail-fast or a full disk stops it, and summarise.
class Scheduler {
 public:
  Scheduler(const Experiment& ex, const RunOptions& opt, std::ostream& log)
      : ex_(ex),
        opt_(opt),
        log_(log),
        output_(opt.out.empty() ? ex.output : opt.out),
        trial_dir_(flowlab::trial_dir(output_)),
        sharded_(opt.shard_count > 0),
        threads_(opt.threads > 0 ? opt.threads : ex.threads),
        tty_(::isatty(STDOUT_FILENO)) {}

  int run();

 private:
  // Setting up.
  void resolve_devices();  // slots_, slot_gpu_ and device_note_
  int dry_run();           // the trial table, nothing written
  void check_output();     // takes the lock, picks this run's trials, refuses what it must not overwrite
  void plan_queue();       // hashes, statuses of kept results, the queue
  void prepare_trial_dir();
  // The log and the experiment file.
  void emit(const std::string& text);
  void clear_block();
  bool disk_failed(const WriteError& e);
  void merge();
  void merge_if_due();
  // Workers.
  void launch(size_t slot, size_t trial);
  void read_lines(Running& r);
  void record(const TrialConfig& t, const TrialResult& res, const std::string& file);
  void finish(size_t slot, int wstatus);
  void stop_all_for_fail_fast();
  void report();
  void handle_signals();
  void launch_free_slots();
  bool watch_workers();  // one poll of the running workers; false when none runs
  int summarize();

  const Experiment& ex_;
  const RunOptions& opt_;
  std::ostream& log_;
  const std::string output_, trial_dir_;
  const bool sharded_;
  const int64_t threads_;
  const bool tty_;

  std::vector<std::string> slots_, slot_gpu_;  // each slot's device, and its worker's CUDA_VISIBLE_DEVICES
  std::string device_note_;
  std::optional<OutputLock> lock_;
  std::vector<size_t> mine_;         // this run's trials: all, or its shard's share
  std::set<std::string> my_stems_;   // their file stems
  std::vector<std::string> hash_;    // config_hash per trial (of mine_)
  std::vector<std::string> status_;  // per trial: its result's status; "" for none (not run, or stopped)
  std::deque<size_t> queue_;

  int log_errno_ = 0;               // the first failed write of the log
  std::set<std::string> reported_;  // merge problems already reported
  bool merge_error_ = false;
  // The first full or failing disk (ENOSPC, EIO, ...) met by the runner or a worker: nothing more is launched, the
  // trials finished so far stay in their files, and the run ends with the message and how to resume.
  std::string write_failure_;
  bool stop_ = false;  // no more launches (--fail-fast, a signal or a full disk)
  bool merge_pending_ = false;
  Clock::time_point last_merge_ = Clock::now();
  double last_merge_seconds_ = 0;

  std::optional<Fd> dev_null_;  // the children's stdin: never the terminal (they run in their own process group)
  int interrupted_ = 0;         // the signal that stopped the run
  std::vector<Running> running_;
  Clock::time_point last_report_ = Clock::now();
  size_t drawn_ = 0;  // lines of the live block on the terminal, redrawn in place
};

int Scheduler::run() {
  resolve_devices();
  check_trial_files(ex_, output_);
  if (opt_.dry_run) return dry_run();
  check_output();
  plan_queue();
  prepare_trial_dir();
  merge();
  dev_null_.emplace(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const SignalScope signals;
  running_.resize(slots_.size());
  for (;;) {
    handle_signals();
    launch_free_slots();
    if (!watch_workers()) break;
    merge_if_due();
    report();
  }
  if (interrupted_) {
    if (sharded_) remove_own_temporaries(trial_dir_, my_stems_);
    else remove_temporaries(trial_dir_);
  }
  if (merge_pending_) merge();
  return summarize();
}

void Scheduler::resolve_devices() {
  const auto& devices = opt_.devices.empty() ? ex_.devices : opt_.devices;
  bool need_probe = false, want_auto = false;
  for (const auto& d : devices) need_probe = need_probe || d != "cpu", want_auto = want_auto || d == "auto";
  const worker::DeviceInfo visible = need_probe ? probe_devices(opt_.self) : worker::DeviceInfo();
  slots_ = device_slots(devices, opt_.workers > 0 ? opt_.workers : ex_.workers_per_device, visible);
  // What each worker's CUDA_VISIBLE_DEVICES will be: one GPU each, from this process's own list (Slurm's gres).
  const char* cuda_env = std::getenv("CUDA_VISIBLE_DEVICES");
  for (const auto& s : slots_) slot_gpu_.push_back(worker_cuda_visible_devices(s, cuda_env));
  // The devices, where a log must show them: the GPU of each slot, or why `auto` found none despite a GPU list.
  std::vector<std::string> gpus_of_slots;
  for (const auto& g : slot_gpu_)
    if (!g.empty()) gpus_of_slots.push_back(g);
  if (!gpus_of_slots.empty())
    device_note_ = fmt::format(
        "workers' CUDA_VISIBLE_DEVICES: {} (one GPU each, in slot order{})\n", fmt::join(gpus_of_slots, ", "),
        cuda_env && *cuda_env ? fmt::format("; this process has CUDA_VISIBLE_DEVICES={}", cuda_env) : "");
  else if (want_auto && visible.gpus == 0 && cuda_env && *cuda_env)
    device_note_ = fmt::format("note: CUDA_VISIBLE_DEVICES={} is set, but {}: devices auto runs on cpu\n", cuda_env,
                               visible.cuda ? "no GPU is visible" : "this LibTorch has no CUDA");
}

int Scheduler::dry_run() {
  emit(fmt::format("{}: {} on {} ({}), {} each -> {}\n", ex_.name, counted(ex_.trials.size(), "trial"),
                   counted(slots_.size(), "slot"), fmt::join(slots_, ", "), counted(threads_, "thread"), output_));
  emit(device_note_);
  for (size_t i = 0; i < ex_.trials.size(); ++i) {
    if (sharded_ && static_cast<int64_t>(i % static_cast<size_t>(opt_.shard_count)) != opt_.shard_index) continue;
    const auto& t = ex_.trials[i];
    std::string stages;
    if (t.reflow.rounds > 0)
      stages += fmt::format(" + {} of {}", counted(t.reflow.rounds, "reflow round"), t.reflow.train.steps);
    if (t.distill.enabled) stages += fmt::format(" + distill {}", t.distill.train.steps);
    const std::string during =
        t.eval.every > 0
            ? fmt::format(" ({} every {} steps)",
                          t.eval.during.empty() ? std::string("all") : std::to_string(t.eval.during.size()),
                          t.eval.every)
            : "";
    emit(fmt::format("{:>4}  {}  (train {}{}, {}{})\n", i, t.id, counted(t.train.steps, "step"), stages,
                     counted(t.eval.runs.size(), "eval run"), during));
  }
  return 0;
}

void Scheduler::check_output() {
  // One runner per output (files.hpp): a shard locks its own share, since shards of one sweep run at once.
  lock_.emplace(sharded_ ? fmt::format("{}.shard{}of{}", output_, opt_.shard_index, opt_.shard_count) : output_,
                sharded_ ? fmt::format("flowlab run, shard {}/{}", opt_.shard_index, opt_.shard_count)
                         : std::string(opt_.resume ? "flowlab run --resume" : "flowlab run"));
  // Shards write their trial files into the same directory (each its own files) and never the experiment file,
  // which `flowlab merge` builds from them.
  if (sharded_) {
    mine_ = shard_trials(ex_.trials.size(), opt_.shard_index, opt_.shard_count);
  } else {
    for (size_t i = 0; i < ex_.trials.size(); ++i) mine_.push_back(i);
  }
  for (size_t i : mine_) my_stems_.insert(trial_file_stem(ex_.trials[i].id));
  if (!opt_.resume && !sharded_ && fs::exists(output_))
    throw Error(fmt::format("{} already exists: use --resume to finish that sweep, or choose another --out", output_));
  if (!opt_.resume && !sharded_ && fs::exists(trial_dir_))
    throw Error(fmt::format("{} already exists (the trial files of a sweep to {}): use --resume to finish that sweep, "
                            "remove it, or choose another --out",
                            trial_dir_, output_));
  // --resume rewrites the experiment file: never over a file that is not this experiment's results.
  const Emit emit_line = [this](const std::string& line) { emit(line); };
  if (opt_.resume && !sharded_ && fs::exists(output_) && !set_aside_damaged_output(output_, emit_line)) {
    const auto name = experiment_file_name(output_);
    if (!name)
      throw Error(fmt::format("{} exists and is not a flowlab results file: --resume would replace it; choose another "
                              "--out",
                              output_));
    if (*name != ex_.name)
      throw Error(fmt::format("{} holds the results of experiment '{}', not '{}': --resume would replace them; choose "
                              "another --out",
                              output_, *name, ex_.name));
  }
  if (!opt_.resume && sharded_)
    for (size_t i : mine_)
      if (fs::exists(trial_file_path(output_, ex_.trials[i].id)))
        throw Error(fmt::format("{} already exists (trial {} of shard {}/{}): use --resume to finish that shard, or "
                                "choose another --out",
                                trial_file_path(output_, ex_.trials[i].id), ex_.trials[i].id, opt_.shard_index,
                                opt_.shard_count));
}

void Scheduler::plan_queue() {
  hash_.resize(ex_.trials.size());
  status_.resize(ex_.trials.size());
  for (size_t i : mine_) hash_[i] = config_hash(ex_.trials[i].resolved_yaml);
  if (opt_.resume) set_aside_damaged_trial_files(ex_, mine_, output_, [this](const std::string& line) { emit(line); });
  for (size_t i : mine_) {
    const auto& t = ex_.trials[i];
    const auto info = read_trial_file(trial_file_path(output_, t.id));
    if (info && info->id == t.id && info->config_hash != hash_[i]) {
      emit(fmt::format("{}: its configuration changed since its result was written: it runs again\n", t.id));
    } else if (info && info->id == t.id) {
      status_[i] = info->status;
      if (info->status == "completed" || info->status == "diverged" || !opt_.retry_failed) continue;
      status_[i].clear();
    }
    queue_.push_back(i);
  }
}

void Scheduler::prepare_trial_dir() {
  std::error_code ec;
  fs::create_directories(trial_dir_);
  if (sharded_) remove_own_temporaries(trial_dir_, my_stems_);  // left by a killed run of this shard
  else remove_temporaries(trial_dir_);                          // left by a killed run
  // The experiment's text next to the trial files: `flowlab merge OUT DIR.trials` finds the experiment there.
  try {
    write_atomically(trial_dir_ + "/experiment.yaml", ex_.text);
  } catch (const WriteError& e) {
    if (!e.disk_full_or_failing()) throw;
    int64_t kept = 0;
    for (size_t i : mine_) kept += status_[i].empty() ? 0 : 1;
    throw Error(resume_advice(e.what(), ex_, opt_, output_, kept));
  }
  for (size_t i : queue_)
    for (const auto& stale : stale_checkpoints(output_, ex_.trials[i].id, hash_[i])) {
      fs::remove(checksum_path(stale), ec);
      if (fs::remove(stale, ec) && stale.size() > 5 && stale.compare(stale.size() - 5, 5, ".ckpt") == 0)
        emit(fmt::format("{}: its checkpoint was written for another configuration: it starts over\n",
                         ex_.trials[i].id));
    }
  if (sharded_)
    emit(fmt::format("{}: {}, shard {}/{}: {}, {} to run on {} ({})\n", ex_.name, counted(ex_.trials.size(), "trial"),
                     opt_.shard_index, opt_.shard_count, counted(mine_.size(), "trial"), queue_.size(),
                     counted(slots_.size(), "slot"), fmt::join(slots_, ", ")));
  else
    emit(fmt::format("{}: {}, {} to run on {} ({})\n", ex_.name, counted(ex_.trials.size(), "trial"), queue_.size(),
                     counted(slots_.size(), "slot"), fmt::join(slots_, ", ")));
  emit(device_note_);
}

// Every line is flushed: a log on a pipe or a file (Slurm) keeps what was written when the run is killed. A log that
// cannot be written (its disk is full) ends the run like any other write error, at the end.
void Scheduler::emit(const std::string& text) {
  errno = 0;
  log_ << text;
  log_.flush();
  if (!log_) {
    if (!log_errno_) log_errno_ = errno ? errno : EIO;
    log_.clear();
  }
}

void Scheduler::clear_block() {
  if (tty_ && drawn_ > 0) log_ << fmt::format("\x1b[{}F\x1b[J", drawn_);
  drawn_ = 0;
}

bool Scheduler::disk_failed(const WriteError& e) {
  if (!e.disk_full_or_failing()) return false;
  if (write_failure_.empty()) write_failure_ = e.what();
  stop_ = true;
  return true;
}

void Scheduler::merge() {
  merge_pending_ = false;
  if (sharded_) return;  // a shard writes its trial files only
  struct Timed {
    Clock::time_point start;
    double& seconds;
    Clock::time_point& end;
    ~Timed() { end = Clock::now(), seconds = std::chrono::duration<double>(end - start).count(); }
  } timed{Clock::now(), last_merge_seconds_, last_merge_};
  std::vector<std::string> files;
  for (const auto& t : ex_.trials)
    if (fs::exists(trial_file_path(output_, t.id))) files.push_back(trial_file_path(output_, t.id));
  auto report_once = [this](const std::string& line) {
    if (reported_.insert(line).second) emit(line);
  };
  try {
    for (const auto& p : merge_experiment(output_, ex_, files)) {
      for (size_t i = 0; i < ex_.trials.size(); ++i)
        if (ex_.trials[i].id == p.id) status_[i] = "failed";  // its result cannot be read: the trial failed
      report_once(fmt::format("{}: cannot merge {}: {}\n", p.id.empty() ? "merge" : p.id, p.file, p.error));
    }
  } catch (const WriteError& e) {
    // The experiment file is left as it was; the next run rebuilds it from the trial files.
    merge_error_ = true;
    disk_failed(e);
    report_once(fmt::format("{}\n", e.what()));
  } catch (const std::exception& e) {
    merge_error_ = true;
    report_once(fmt::format("cannot write {}: {}\n", output_, e.what()));
  }
}

// The experiment file is rebuilt in batches: at most every opt.merge_every seconds, and at least 4 times the last
// rebuild's duration apart (rebuilding reads every trial file: after every trial it made a sweep O(n^2)).
void Scheduler::merge_if_due() {
  if (!merge_pending_) return;
  const double since = std::chrono::duration<double>(Clock::now() - last_merge_).count();
  if (opt_.merge_every <= 0 || since >= std::max(opt_.merge_every, 4 * last_merge_seconds_)) merge();
}

void Scheduler::launch(size_t slot, size_t trial) {
  const auto& t = ex_.trials[trial];
  worker::Job job;
  job.self = opt_.self, job.plugin_paths = opt_.plugin_paths, job.experiment_file = ex_.file, job.id = t.id;
  job.config_hash = hash_[trial], job.device = slots_[slot], job.threads = threads_;
  job.out = trial_file_path(output_, t.id), job.checkpoint = checkpoint_path(output_, t.id, hash_[trial]);
  job.tensorboard = ex_.tensorboard;
  std::map<std::string, std::string> env;
  if (!slot_gpu_[slot].empty())  // pinned: sees one GPU, ours (Slurm's) numbering mapped through
    env["CUDA_VISIBLE_DEVICES"] = slot_gpu_[slot], job.device = "cuda:0";
  // The worker reads its own trial's snapshot, not the whole experiment: its start-up is O(1) in the sweep size.
  job.snapshot = trial_snapshot_path(output_, t.id);
  write_atomically(job.snapshot, trial_snapshot(t));
  set_aside_damaged_checkpoint(job.checkpoint, t.id, [this](const std::string& line) { clear_block(), emit(line); });
  const ExecArgs exec(worker::command_line(job), env);
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ::close(out_pipe[0]), ::close(out_pipe[1]);
    throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    throw Error(fmt::format("cannot start a worker: {}", std::strerror(errno)));
  }
  if (pid == 0) {
    // Its own process group: a Ctrl-C on the terminal reaches the runner only, which stops the workers itself.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed runner takes its workers with it; --resume redoes their trials
    if (::getppid() != parent) ::_exit(worker::kExitCannotStart);  // the runner died before prctl took effect
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGINT, &dfl, nullptr), ::sigaction(SIGTERM, &dfl, nullptr);
    if (dev_null_ && dev_null_->fd >= 0) ::dup2(dev_null_->fd, STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO), ::dup2(err_pipe[1], STDERR_FILENO);  // dup2 clears O_CLOEXEC
    exec_or_die(exec);
  }
  ::close(out_pipe[1]), ::close(err_pipe[1]);
  ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK), ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
  Running r;
  r.pid = pid, r.trial = trial, r.slot = slots_[slot], r.hash = hash_[trial];
  r.out_fd = out_pipe[0], r.err_fd = err_pipe[0];
  r.progress.total = t.total_steps(), r.started = Clock::now(), r.file_before = inode_of(job.out);
  running_[slot] = std::move(r);
  if (!tty_) emit(fmt::format("[{}] start {}\n", slots_[slot], t.id));
}

void Scheduler::read_lines(Running& r) {
  drain(r.out_fd, r.out_buf), drain(r.err_fd, r.err_buf);
  size_t nl;
  while ((nl = r.out_buf.find('\n')) != std::string::npos) {
    Progress p;
    if (worker::parse_progress(r.out_buf.substr(0, nl), p)) {
      r.progress = p;
      r.log.step.push_back(p.step - 1), r.log.loss.push_back(p.loss);
      r.log.grad_norm.push_back(p.grad_norm), r.log.lr.push_back(p.lr);
    } else if (worker::parse_write_error(r.out_buf.substr(0, nl), r.write_error)) {
    } else if (worker::parse_resume(r.out_buf.substr(0, nl), p.step, p.total)) {
      r.progress.step = p.step, r.progress.total = p.total;
      clear_block();
      emit(fmt::format("[{}] {} resumes from its checkpoint at step {}/{}\n", r.slot, ex_.trials[r.trial].id, p.step,
                       p.total));
    }
    r.out_buf.erase(0, nl + 1);
  }
}

// Records `res` as the trial's result unless the worker wrote one; an HDF5 error fails the trial, not the sweep.
void Scheduler::record(const TrialConfig& t, const TrialResult& res, const std::string& file) {
  try {
    write_trial_file(file, t, res);
  } catch (const WriteError& e) {
    if (!disk_failed(e)) emit(fmt::format("{}: cannot record its result: {}\n", t.id, e.what()));
  } catch (const std::exception& e) {
    emit(fmt::format("{}: cannot record its result: {}\n", t.id, e.what()));
  }
}

void Scheduler::finish(size_t slot, int wstatus) {
  Running& r = running_[slot];
  read_lines(r);
  ::close(r.out_fd), ::close(r.err_fd);
  const auto& t = ex_.trials[r.trial];
  const std::string file = trial_file_path(output_, t.id);
  const double secs = std::chrono::duration<double>(Clock::now() - r.started).count();
  // A result this worker wrote for this configuration is kept whatever happened next (a completed result is
  // never overwritten).
  const auto info = inode_of(file) != r.file_before ? read_trial_file(file) : std::nullopt;
  const bool written = info && info->id == t.id && info->config_hash == r.hash;
  const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  std::string st, detail;
  if (written) {
    st = info->status;
    if (st == "failed") detail = info->error;
  } else if (r.timed_out) {
    TrialResult res;
    res.id = t.id, res.seed = t.seed, res.device = r.slot, res.status = st = "timeout";
    res.error = detail = fmt::format("exceeded max_trial_seconds ({} s) at step {}/{}", ex_.max_trial_seconds,
                                     r.progress.step, r.progress.total);
    res.train = r.log, res.train_seconds = secs;
    record(t, res, file);
  } else if (code == worker::kExitWriteFailed) {
    // A full or failing disk: no result (it would be lost); --resume reruns the trial once there is space.
    st = "";
    detail = r.write_error.empty() ? tail_lines(r.err_buf, 1) : r.write_error;
    if (write_failure_.empty()) write_failure_ = detail;
    stop_ = true;
  } else if (code == worker::kExitInterrupted || (r.stopping && WIFSIGNALED(wstatus))) {
    // A worker exits kExitInterrupted only when a signal asked it to stop: ours, or one sent to every process of
    // the job (Slurm's preemption, scancel).
    st = "";  // stopped on request: --resume continues it (from its checkpoint, when it saved one)
  } else {
    TrialResult res;
    res.id = t.id, res.seed = t.seed, res.device = r.slot, res.status = st = "failed";
    res.error = WIFSIGNALED(wstatus) ? fmt::format("worker killed by {}", signal_name(WTERMSIG(wstatus)))
                                     : fmt::format("worker exited with status {}", code);
    const std::string err = tail_lines(r.err_buf, 3);
    if (!err.empty()) res.error += ": " + err;
    res.train = r.log;
    detail = res.error;
    record(t, res, file);
  }
  status_[r.trial] = st;
  merge_pending_ = true;
  merge_if_due();
  clear_block();
  if (st.empty())
    emit(fmt::format("[{}] stopped {} at step {}/{} ({:.1f} s){}\n", r.slot, t.id, r.progress.step, r.progress.total,
                     secs, detail.empty() ? "" : ": " + detail));
  else emit(fmt::format("[{}] {} {} ({:.1f} s){}\n", r.slot, st, t.id, secs, detail.empty() ? "" : ": " + detail));
  r.pid = -1;
  if (status_[r.trial] == "failed" && opt_.fail_fast && !stop_) stop_all_for_fail_fast();
}

void Scheduler::stop_all_for_fail_fast() {
  stop_ = true;
  for (auto& o : running_)
    if (o.pid > 0 && !o.stopping) {
      ::kill(o.pid, SIGTERM), o.stopping = true, o.stop_sent = Clock::now();
      emit(fmt::format("[{}] stopping {} (--fail-fast)\n", o.slot, ex_.trials[o.trial].id));
    }
}

void Scheduler::report() {
  if (tty_) {
    clear_block();
    for (size_t i = 0; i < running_.size(); ++i) {
      const auto& r = running_[i];
      if (r.pid > 0) {
        const double secs = std::chrono::duration<double>(Clock::now() - r.started).count();
        const double rate = r.progress.step / std::max(1e-9, secs);
        log_ << fmt::format("worker {} [{}] {}  step {}/{}  loss {:.4g}  {:.0f} it/s  ETA {:.0f} s\n", i, r.slot,
                            ex_.trials[r.trial].id, r.progress.step, r.progress.total, r.progress.loss, rate,
                            rate > 0 ? (r.progress.total - r.progress.step) / rate : 0.0);
      } else {
        log_ << fmt::format("worker {} [{}] idle\n", i, slots_[i]);
      }
      ++drawn_;
    }
    log_.flush();
  } else if (Clock::now() - last_report_ > std::chrono::seconds(5)) {
    for (auto& r : running_)
      if (r.pid > 0 && r.progress.step != r.reported_step) {  // evaluation after the last step: no repeats
        emit(fmt::format("[{}] {} step {}/{} loss {:.4g}\n", r.slot, ex_.trials[r.trial].id, r.progress.step,
                         r.progress.total, r.progress.loss));
        r.reported_step = r.progress.step;
      }
    last_report_ = Clock::now();
  }
}

void Scheduler::handle_signals() {
  if (g_signal_count > 0 && !interrupted_) {
    // First signal: launch nothing more; ask every worker to checkpoint and stop.
    interrupted_ = g_signal, stop_ = true;
    clear_block();
    emit(fmt::format(
        "{}: stopping: the workers save their checkpoints (at most {} s; {} stops at once)\n",
        stop_signal_name(interrupted_), worker::kStopGraceSeconds,
        interrupted_ == SIGINT ? "Ctrl-C again" : fmt::format("a second {}", stop_signal_name(interrupted_))));
    for (auto& r : running_)
      if (r.pid > 0 && !r.stopping) ::kill(r.pid, SIGTERM), r.stopping = true, r.stop_sent = Clock::now();
  }
  if (g_signal_count > 1)
    for (auto& r : running_)
      if (r.pid > 0 && !r.killed) ::kill(r.pid, SIGKILL), r.killed = true;
}

void Scheduler::launch_free_slots() {
  for (size_t s = 0; s < slots_.size() && !stop_; ++s)
    if (running_[s].pid < 0 && !queue_.empty()) {
      const size_t next = queue_.front();
      queue_.pop_front();
      try {
        launch(s, next);
      } catch (const WriteError& e) {
        if (!disk_failed(e)) throw;  // its snapshot could not be written: the trial is not run
        clear_block();
        emit(fmt::format("{}\n", e.what()));
      }
    }
}

bool Scheduler::watch_workers() {
  bool any = false;
  for (const auto& r : running_) any = any || r.pid > 0;
  if (!any) return false;
  std::vector<pollfd> fds;
  for (const auto& r : running_)
    if (r.pid > 0) fds.push_back({r.out_fd, POLLIN, 0}), fds.push_back({r.err_fd, POLLIN, 0});
  ::poll(fds.data(), fds.size(), 200);  // a signal interrupts it
  const auto now = Clock::now();
  for (size_t s = 0; s < running_.size(); ++s) {
    Running& r = running_[s];
    if (r.pid < 0) continue;
    read_lines(r);
    int wstatus = 0;
    if (::waitpid(r.pid, &wstatus, WNOHANG) == r.pid) {
      finish(s, wstatus);
      continue;
    }
    if (ex_.max_trial_seconds > 0 && !r.stopping &&
        std::chrono::duration<double>(now - r.started).count() > ex_.max_trial_seconds) {
      r.timed_out = r.stopping = true, r.stop_sent = now;
      ::kill(r.pid, SIGTERM);
      clear_block();
      emit(fmt::format("[{}] {} exceeded max_trial_seconds ({} s): stopping it\n", r.slot, ex_.trials[r.trial].id,
                       ex_.max_trial_seconds));
    }
    if (r.stopping && !r.killed && now - r.stop_sent > std::chrono::seconds(worker::kStopGraceSeconds))
      ::kill(r.pid, SIGKILL), r.killed = true;  // it did not stop in time
  }
  return true;
}

// The final summary table, then the counts (the last line); the exit status, or the error of a full disk.
int Scheduler::summarize() {
  clear_block();
  std::map<std::string, int64_t> count;
  std::string table = fmt::format("\n{:<6} {:<10} {}\n", "#", "STATUS", "TRIAL");
  for (size_t i : mine_) {
    const std::string st = status_[i].empty() ? "not run" : status_[i];
    ++count[st];
    table += fmt::format("{:<6} {:<10} {}\n", i, st, ex_.trials[i].id);
  }
  emit(table);
  if (!sharded_ && count["completed"] > 0 && !merge_error_) emit(quality_summary(output_));
  if (sharded_)
    emit(fmt::format("results: {} (shard {}/{}; flowlab merge {} {} builds the experiment file)\n", trial_dir_,
                     opt_.shard_index, opt_.shard_count, output_, trial_dir_));
  else emit(fmt::format("results: {}\n", output_));
  if (interrupted_)
    emit(fmt::format("interrupted by {}: flowlab run --resume continues the {}\n", stop_signal_name(interrupted_),
                     sharded_ ? "shard" : "sweep"));
  std::vector<std::string> parts;
  for (const char* st : kStatusOrder)
    if (count[st] > 0)
      parts.push_back(fmt::format("{} {}", count[st], std::string(st) == "timeout" ? "timed out" : st));
  if (count["not run"] > 0) parts.push_back(fmt::format("{} not run", count["not run"]));
  emit(fmt::format("{}: {}\n", counted(static_cast<int64_t>(mine_.size()), "trial"), fmt::join(parts, ", ")));
  if (interrupted_) return 128 + interrupted_;
  if (write_failure_.empty() && log_errno_)  // the run went on without its log
    throw Error(fmt::format("{}; the run went on: its results are in {}",
                            WriteError("the run's log (its standard output)", log_errno_).what(), output_));
  if (!write_failure_.empty()) {
    int64_t kept = 0;
    for (size_t i : mine_)
      kept += status_[i].empty() || !fs::exists(trial_file_path(output_, ex_.trials[i].id)) ? 0 : 1;
    throw Error(resume_advice(write_failure_, ex_, opt_, output_, kept));  // the last line: what happened, what next
  }
  const bool bad = count["failed"] + count["diverged"] + count["timeout"] + count["not run"] > 0 || merge_error_;
  return bad ? 1 : 0;
}

}  // namespace

int run_experiment(const Experiment& ex, const RunOptions& opt, std::ostream& log) {
  return Scheduler(ex, opt, log).run();
}

}  // namespace flowlab

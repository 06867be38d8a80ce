// The runner: a queue of trials, one child process per running trial (fork + exec of `flowlab _trial`), progress
// over a pipe, failures recorded with their reason, the experiment file re-merged after every trial.
#include "flowlab/runner.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <torch/cuda.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <sstream>

#include "flowlab/results.hpp"
#include "flowlab/worker.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

using worker::trial_file_path;

using Clock = std::chrono::steady_clock;

struct Running {
  pid_t pid = -1;
  size_t trial = 0;
  std::string slot;
  int out_fd = -1, err_fd = -1;
  std::string out_buf, err_buf;
  int64_t step = 0, total = 0;
  double loss = 0;
  Clock::time_point started;
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

}  // namespace

std::vector<std::string> device_slots(const std::vector<std::string>& devices, int64_t workers) {
  std::vector<std::string> names;
  for (const auto& d : devices) {
    if (d == "auto") {
      const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
      if (n == 0) names.push_back("cpu");
      for (int64_t i = 0; i < n; ++i) names.push_back(fmt::format("cuda:{}", i));
    } else {
      names.push_back(d);
    }
  }
  std::vector<std::string> slots;
  for (const auto& n : names)
    for (int64_t w = 0; w < std::max<int64_t>(1, workers); ++w) slots.push_back(n);
  return slots;
}

int run_experiment(const Experiment& ex, const RunOptions& opt, std::ostream& log) {
  const std::string output = opt.out.empty() ? ex.output : opt.out;
  const auto slots = device_slots(opt.devices.empty() ? ex.devices : opt.devices,
                                  opt.workers > 0 ? opt.workers : ex.workers_per_device);
  const int64_t threads = opt.threads > 0 ? opt.threads : ex.threads;

  if (opt.dry_run) {
    log << fmt::format("{}: {} trials on {} slots ({}), {} threads each -> {}\n", ex.name, ex.trials.size(), slots.size(),
                       fmt::join(slots, ", "), threads, output);
    for (size_t i = 0; i < ex.trials.size(); ++i) {
      const auto& t = ex.trials[i];
      log << fmt::format("{:>4}  {}  (train {} steps, {} eval runs)\n", i, t.id, t.train.steps, t.eval.runs.size());
    }
    return 0;
  }

  const std::string trial_dir = worker::trial_dir(output);
  if (!opt.resume && (fs::exists(output) || fs::exists(trial_dir)))
    throw Error(fmt::format("{} already exists: use --resume to finish that sweep, or choose another --out", output));

  std::deque<size_t> queue;
  std::vector<std::string> status(ex.trials.size());
  for (size_t i = 0; i < ex.trials.size(); ++i) {
    const auto st = trial_file_status(trial_file_path(output, ex.trials[i].id));
    status[i] = st.value_or("");
    if (st && (*st != "failed" || !opt.retry_failed)) continue;
    queue.push_back(i);
  }
  log << fmt::format("{}: {} trials, {} to run on {} slots ({})\n", ex.name, ex.trials.size(), queue.size(),
                     slots.size(), fmt::join(slots, ", "));
  auto existing_files = [&] {
    std::vector<std::string> files;
    for (const auto& t : ex.trials)
      if (fs::exists(trial_file_path(output, t.id))) files.push_back(trial_file_path(output, t.id));
    return files;
  };
  fs::create_directories(trial_dir);
  merge_experiment(output, ex, existing_files());

  std::vector<Running> running(slots.size());
  bool stop = false;
  int failures = 0;
  const bool tty = ::isatty(STDOUT_FILENO);
  auto last_report = Clock::now();
  size_t drawn = 0;  // lines of the live block on the terminal, redrawn in place
  auto clear_block = [&] {
    if (tty && drawn > 0) log << fmt::format("\x1b[{}F\x1b[J", drawn);
    drawn = 0;
  };

  auto launch = [&](size_t slot_index, size_t trial) {
    int out_pipe[2], err_pipe[2];
    if (::pipe(out_pipe) || ::pipe(err_pipe)) throw Error(fmt::format("cannot create a pipe: {}", std::strerror(errno)));
    const auto& t = ex.trials[trial];
    worker::Job job;
    job.self = opt.self, job.plugin_paths = opt.plugin_paths, job.experiment_file = ex.file, job.id = t.id;
    job.device = slots[slot_index], job.threads = threads;
    job.out = trial_file_path(output, t.id), job.checkpoint = worker::checkpoint_path(output, t.id);
    std::string cuda_visible;
    if (job.device.rfind("cuda:", 0) == 0) cuda_visible = job.device.substr(5), job.device = "cuda:0";  // pinned: sees one GPU
    std::vector<std::string> args = worker::command_line(job);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(fmt::format("cannot start a worker: {}", std::strerror(errno)));
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed runner takes its workers with it; --resume redoes their trials
      if (::getppid() != parent) ::_exit(worker::kExitCannotStart);  // the runner died before prctl took effect
      ::dup2(out_pipe[1], STDOUT_FILENO), ::dup2(err_pipe[1], STDERR_FILENO);
      ::close(out_pipe[0]), ::close(err_pipe[0]), ::close(out_pipe[1]), ::close(err_pipe[1]);
      if (!cuda_visible.empty()) ::setenv("CUDA_VISIBLE_DEVICES", cuda_visible.c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(opt.self.c_str(), argv.data());
      std::fprintf(stderr, "cannot run %s: %s\n", opt.self.c_str(), std::strerror(errno));
      ::_exit(worker::kExitExecFailed);
    }
    ::close(out_pipe[1]), ::close(err_pipe[1]);
    ::fcntl(out_pipe[0], F_SETFL, O_NONBLOCK), ::fcntl(err_pipe[0], F_SETFL, O_NONBLOCK);
    Running r;
    r.pid = pid, r.trial = trial, r.slot = slots[slot_index], r.out_fd = out_pipe[0], r.err_fd = err_pipe[0];
    r.total = t.train.steps, r.started = Clock::now();
    running[slot_index] = r;
    if (!tty) log << fmt::format("[{}] start {}\n", r.slot, t.id);
  };

  auto drain = [](int fd, std::string& buf) {
    char tmp[4096];
    ssize_t n;
    while (fd >= 0 && (n = ::read(fd, tmp, sizeof tmp)) > 0) buf.append(tmp, static_cast<size_t>(n));
  };

  auto finish = [&](size_t slot_index, int wstatus) {
    Running& r = running[slot_index];
    drain(r.out_fd, r.out_buf), drain(r.err_fd, r.err_buf);
    ::close(r.out_fd), ::close(r.err_fd);
    const auto& t = ex.trials[r.trial];
    const std::string file = trial_file_path(output, t.id);
    std::string st = trial_file_status(file).value_or("");
    const bool clean_exit = WIFEXITED(wstatus) && (WEXITSTATUS(wstatus) == worker::kExitDone || WEXITSTATUS(wstatus) == worker::kExitTrialFailed);
    if (!clean_exit || st.empty()) {
      // The worker died without writing its result: record the failure here.
      TrialResult res;
      res.id = t.id, res.seed = t.seed, res.device = r.slot, res.status = "failed";
      res.error = WIFSIGNALED(wstatus)
                      ? fmt::format("worker killed by {}", signal_name(WTERMSIG(wstatus)))
                      : fmt::format("worker exited with status {}", WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
      const std::string err = tail_lines(r.err_buf, 3);
      if (!err.empty()) res.error += ": " + err;
      write_trial_file(file, t, res);
      st = "failed";
    }
    status[r.trial] = st;
    if (st == "failed") ++failures;
    merge_experiment(output, ex, existing_files());
    const double secs = std::chrono::duration<double>(Clock::now() - r.started).count();
    clear_block();
    log << fmt::format("[{}] {} {} ({:.1f} s)\n", r.slot, st, t.id, secs);
    r.pid = -1;
    if (st == "failed" && opt.fail_fast) stop = true;
  };

  auto report = [&] {
    if (tty) {
      clear_block();
      for (size_t i = 0; i < running.size(); ++i) {
        const auto& r = running[i];
        if (r.pid > 0) {
          const double secs = std::chrono::duration<double>(Clock::now() - r.started).count();
          const double rate = r.step / std::max(1e-9, secs);
          log << fmt::format("worker {} [{}] {}  step {}/{}  loss {:.4g}  {:.0f} it/s  ETA {:.0f} s\n", i, r.slot,
                             ex.trials[r.trial].id, r.step, r.total, r.loss, rate,
                             rate > 0 ? (r.total - r.step) / rate : 0.0);
        } else {
          log << fmt::format("worker {} [{}] idle\n", i, running[i].slot.empty() ? slots[i] : running[i].slot);
        }
        ++drawn;
      }
      log.flush();
    } else if (Clock::now() - last_report > std::chrono::seconds(5)) {
      for (const auto& r : running)
        if (r.pid > 0)
          log << fmt::format("[{}] {} step {}/{} loss {:.4g}\n", r.slot, ex.trials[r.trial].id, r.step, r.total, r.loss);
      last_report = Clock::now();
    }
  };

  for (;;) {
    for (size_t s = 0; s < slots.size() && !stop; ++s)
      if (running[s].pid < 0 && !queue.empty()) launch(s, queue.front()), queue.pop_front();
    bool any = false;
    for (const auto& r : running) any = any || r.pid > 0;
    if (!any) break;
    std::vector<pollfd> fds;
    for (const auto& r : running)
      if (r.pid > 0) fds.push_back({r.out_fd, POLLIN, 0}), fds.push_back({r.err_fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 200);
    for (size_t s = 0; s < running.size(); ++s) {
      Running& r = running[s];
      if (r.pid < 0) continue;
      drain(r.out_fd, r.out_buf), drain(r.err_fd, r.err_buf);
      size_t nl;
      while ((nl = r.out_buf.find('\n')) != std::string::npos) {
        worker::parse_progress(r.out_buf.substr(0, nl), r.step, r.total, r.loss);
        r.out_buf.erase(0, nl + 1);
      }
      int wstatus = 0;
      if (::waitpid(r.pid, &wstatus, WNOHANG) == r.pid) finish(s, wstatus);
    }
    if (stop) {
      for (auto& r : running)
        if (r.pid > 0) {
          ::kill(r.pid, SIGTERM);
          int w;
          ::waitpid(r.pid, &w, 0);
          ::close(r.out_fd), ::close(r.err_fd);
          log << fmt::format("[{}] stopped {} (--fail-fast)\n", r.slot, ex.trials[r.trial].id);
          r.pid = -1;
        }
      break;
    }
    report();
  }

  // Final summary table.
  clear_block();
  log << fmt::format("\n{:<6} {:<10} {}\n", "#", "STATUS", "TRIAL");
  for (size_t i = 0; i < ex.trials.size(); ++i)
    log << fmt::format("{:<6} {:<10} {}\n", i, status[i].empty() ? "not run" : status[i], ex.trials[i].id);
  log << fmt::format("results: {}\n", output);
  return failures > 0 ? 1 : 0;
}

}  // namespace flowlab

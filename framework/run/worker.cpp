// The worker side of `flowlab run` and the protocol shared with the runner (see worker.hpp).
#include "flowlab/worker.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <signal.h>
#include <torch/cuda.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>

#include "flowlab/build_info.hpp"
#include "flowlab/config.hpp"
#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/results.hpp"
#include "flowlab/runtime.hpp"
#include "flowlab/tensorboard_log.hpp"

namespace fs = std::filesystem;

namespace flowlab::worker {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;
extern "C" void on_stop_signal(int) { g_stop_requested = 1; }

/// A full or failing disk: no result is written (it would be lost or fail too); the runner stops the run with the
/// message and --resume reruns the trial once there is space.
int write_failed(const Job& job, const WriteError& e) {
  std::cout << write_error_line(e.what()) << std::endl;
  std::cerr << "flowlab: trial " << job.id << ": " << e.what() << "\n";
  return kExitWriteFailed;
}

/// Writes a `failed` result with `error` (and the training log so far, when given).
int record_failure(const Job& job, const TrialConfig& trial, const std::string& error,
                   const TrainLog* train = nullptr) {
  TrialResult failed;
  failed.id = trial.id, failed.seed = trial.seed, failed.device = job.device, failed.status = "failed";
  if (train) failed.train = *train;
  failed.error = error;
  try {
    write_trial_file(job.out, trial, failed);  // when this fails otherwise, the runner records the failure
  } catch (const WriteError& e) {
    if (e.disk_full_or_failing()) return write_failed(job, e);
    throw;
  }
  std::cerr << "flowlab: trial " << job.id << " failed: " << error << "\n";
  return kExitTrialFailed;
}

}  // namespace

std::string write_error_line(const std::string& message) {
  std::string one_line = message;
  for (char& c : one_line)
    if (c == '\n' || c == '\r') c = ' ';
  return "WRITE_ERROR " + one_line;
}

bool parse_write_error(const std::string& line, std::string& message) {
  if (line.rfind("WRITE_ERROR ", 0) != 0) return false;
  message = line.substr(12);
  return true;
}

std::vector<std::string> command_line(const Job& job) {
  std::vector<std::string> args = {job.self};
  for (const auto& p : job.plugin_paths) args.insert(args.end(), {"--plugin-path", p});
  args.push_back("_trial");
  if (job.snapshot.empty()) args.push_back(job.experiment_file);
  else args.insert(args.end(), {"--snapshot", job.snapshot});
  args.insert(args.end(),
              {"--id", job.id, "--device", job.device, "--threads", std::to_string(job.threads), "--out", job.out});
  if (!job.config_hash.empty()) args.insert(args.end(), {"--config-hash", job.config_hash});
  if (!job.checkpoint.empty()) args.insert(args.end(), {"--checkpoint", job.checkpoint});
  if (!job.tensorboard.empty()) args.insert(args.end(), {"--tensorboard", job.tensorboard});
  return args;
}

std::string progress_line(const Progress& p) {
  // {} writes the shortest representation that reads back to the same double.
  return fmt::format("PROGRESS {} {} {} {} {}", p.step, p.total, p.loss, p.grad_norm, p.lr);
}

bool parse_progress(const std::string& line, Progress& p) {
  std::istringstream in(line);
  std::string tag, loss, grad_norm, lr;
  Progress q;
  if (!(in >> tag) || tag != "PROGRESS") return false;
  if (!(in >> q.step >> q.total >> loss >> grad_norm >> lr)) return false;
  // strtod, unlike operator>>, reads "nan" and "inf".
  auto number = [](const std::string& s, double& out) {
    char* end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end && *end == '\0' && end != s.c_str();
  };
  if (!number(loss, q.loss) || !number(grad_norm, q.grad_norm) || !number(lr, q.lr)) return false;
  p = q;
  return true;
}

int run_worker(const Job& job, const Registry& registry) {
  // A stop request only sets a flag; training checks it between steps, saves its checkpoint and stops.
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1}) ::sigaction(sig, &sa, nullptr);

  set_threads(static_cast<int>(job.threads));
  // With a snapshot, only this trial is read and validated: start-up does not grow with the sweep.
  Experiment ex;
  const TrialConfig* trial = nullptr;
  const std::string source = job.snapshot.empty() ? job.experiment_file : job.snapshot;
  if (!job.snapshot.empty()) {
    ex.trials.push_back(load_trial_snapshot(job.snapshot, registry));
    if (ex.trials.front().id == job.id) trial = &ex.trials.front();
  } else {
    ex = load_experiment(job.experiment_file, registry);
    for (const auto& t : ex.trials)
      if (t.id == job.id) trial = &t;
  }
  if (!trial) throw Error(fmt::format("{}: no trial '{}'", source, job.id));
  if (!job.config_hash.empty() && config_hash(trial->resolved_yaml) != job.config_hash)
    throw Error(fmt::format("{}: the configuration of trial '{}' changed after the run started", source, job.id));
  int64_t start_step = 0;  // where training starts: 0, or the checkpoint's step
  if (!job.checkpoint.empty() && fs::exists(job.checkpoint)) {
    try {
      start_step = checkpoint_step(job.checkpoint, *trial);
      std::cout << resume_line(start_step, trial->total_steps()) << std::endl;
    } catch (const std::exception&) {
      // run_trial reads it again and fails the trial with the reason
    }
  }
  TrialResult result;
  try {
    std::unique_ptr<TensorBoardLog> tensorboard;
    TrialHooks hooks;
    if (!job.tensorboard.empty()) {
      tensorboard = std::make_unique<TensorBoardLog>(job.tensorboard, *trial, start_step);
      hooks = tensorboard->hooks();
    }
    result = run_trial(
        *trial, registry, job.device,
        [&](const Progress& p) {
          std::cout << progress_line(p) << std::endl;
          if (tensorboard) tensorboard->progress(p);
        },
        job.checkpoint, [] { return g_stop_requested != 0; }, hooks);
    if (tensorboard) tensorboard->flush();
  } catch (const Interrupted& e) {
    std::cerr << "flowlab: trial " << job.id << " stopped at step " << e.step() << "\n";
    return kExitInterrupted;
  } catch (const std::exception& e) {
    if (const auto* w = dynamic_cast<const WriteError*>(&e); w && w->disk_full_or_failing())
      return write_failed(job, *w);
    return record_failure(job, *trial, e.what());
  }
  try {
    write_trial_file(job.out, *trial, result);
  } catch (const std::exception& e) {
    if (const auto* w = dynamic_cast<const WriteError*>(&e); w && w->disk_full_or_failing())
      return write_failed(job, *w);
    // The result could not be written: record that instead, so the trial is failed with HDF5's or the system's message.
    return record_failure(job, *trial, fmt::format("its {} result could not be written: {}", result.status, e.what()),
                          &result.train);
  }
  if (!job.checkpoint.empty()) remove_checksummed(job.checkpoint);  // the result supersedes it
  return kExitDone;
}

std::string resume_line(int64_t step, int64_t total) { return fmt::format("RESUME {} {}", step, total); }

bool parse_resume(const std::string& line, int64_t& step, int64_t& total) {
  long long s = 0, t = 0;
  char tail = 0;
  if (std::sscanf(line.c_str(), "RESUME %lld %lld%c", &s, &t, &tail) < 2) return false;
  if (tail != 0 && tail != '\n') return false;
  step = s, total = t;
  return true;
}

std::vector<std::string> devices_command_line(const std::string& self) { return {self, "_devices"}; }

std::string devices_line(const DeviceInfo& info) {
  return fmt::format("DEVICES cuda={} gpus={}", info.cuda ? 1 : 0, info.gpus);
}

bool parse_devices(const std::string& line, DeviceInfo& info) {
  int cuda = 0;
  long long gpus = 0;
  char tail = 0;
  if (std::sscanf(line.c_str(), "DEVICES cuda=%d gpus=%lld%c", &cuda, &gpus, &tail) < 2) return false;
  if (tail != 0 && tail != '\n') return false;
  info.cuda = cuda != 0;
  info.gpus = gpus;
  return true;
}

DeviceInfo fake_devices(const std::string& fake_gpus, const char* cuda_visible_devices) {
  if (fake_gpus.empty() || fake_gpus.size() > 3 || fake_gpus.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(fake_gpus) < 1)
    throw Error(fmt::format("FLOWLAB_TEST_FAKE_GPUS='{}': expected a number of GPUs from 1 to 999", fake_gpus));
  const int64_t n = std::stoi(fake_gpus);
  DeviceInfo info;
  info.cuda = true;
  if (!cuda_visible_devices) {
    info.gpus = n;
    return info;
  }
  // CUDA's rule: the list up to the first entry that is not a valid, unused device index.
  std::set<int64_t> seen;
  std::stringstream ss(cuda_visible_devices);
  std::string id;
  while (std::getline(ss, id, ',')) {
    if (id.empty() || id.size() > 3 || id.find_first_not_of("0123456789") != std::string::npos) break;
    const int64_t k = std::stoi(id);
    if (k >= n || !seen.insert(k).second) break;
  }
  info.gpus = static_cast<int64_t>(seen.size());
  return info;
}

int run_devices() {
  if (const char* fake = std::getenv("FLOWLAB_TEST_FAKE_GPUS")) {
    std::cout << devices_line(fake_devices(fake, std::getenv("CUDA_VISIBLE_DEVICES"))) << std::endl;
    return 0;
  }
  DeviceInfo info;
  info.gpus = static_cast<int64_t>(torch::cuda::device_count());
  // A CUDA build (libtorch_cuda linked, as CMake found it), GPUs or not.
  info.cuda = info.gpus > 0 || build_info().cuda_build;
  std::cout << devices_line(info) << std::endl;
  // For people: what the line means, and what this binary was built with.
  std::cout << fmt::format("flowlab: a {} that sees {} GPU{}; {}", info.cuda ? "CUDA build" : "CPU-only build",
                           info.gpus, info.gpus == 1 ? "" : "s", build_info_line())
            << std::endl;
  return 0;
}

}  // namespace flowlab::worker

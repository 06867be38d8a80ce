// The worker side of `flowlab run` and the protocol shared with the runner (see worker.hpp).
#include "flowlab/worker.hpp"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/engine.hpp"
#include "flowlab/results.hpp"

namespace flowlab::worker {

std::vector<std::string> command_line(const Job& job) {
  std::vector<std::string> args = {job.self};
  for (const auto& p : job.plugin_paths) args.insert(args.end(), {"--plugin-path", p});
  args.insert(args.end(), {"_trial", job.experiment_file, "--id", job.id, "--device", job.device, "--threads",
                           std::to_string(job.threads), "--out", job.out});
  if (!job.checkpoint.empty()) args.insert(args.end(), {"--checkpoint", job.checkpoint});
  return args;
}

std::string progress_line(int64_t step, int64_t total, double loss) {
  return fmt::format("PROGRESS {} {} {}", step, total, loss);
}

bool parse_progress(const std::string& line, int64_t& step, int64_t& total, double& loss) {
  std::istringstream in(line);
  std::string tag;
  if (!(in >> tag) || tag != "PROGRESS") return false;
  return static_cast<bool>(in >> step >> total >> loss);
}

std::string trial_dir(const std::string& output) { return output + ".trials"; }

std::string trial_file_path(const std::string& output, const std::string& id) {
  return trial_dir(output) + "/" + id + ".h5";
}

std::string checkpoint_path(const std::string& output, const std::string& id) {
  return trial_dir(output) + "/" + id + ".ckpt";
}

int run_worker(const Job& job, const Registry& registry) {
  at::set_num_threads(static_cast<int>(job.threads));
  const auto ex = load_experiment(job.experiment_file, registry);
  const TrialConfig* trial = nullptr;
  for (const auto& t : ex.trials)
    if (t.id == job.id) trial = &t;
  if (!trial) throw Error(fmt::format("{}: no trial '{}'", job.experiment_file, job.id));
  TrialResult result;
  try {
    result = run_trial(*trial, registry, job.device, [](const Progress& p) {
      std::cout << progress_line(p.step, p.total, p.loss) << std::endl;
    }, job.checkpoint);
  } catch (const std::exception& e) {
    result = TrialResult();
    result.id = trial->id, result.seed = trial->seed, result.device = job.device;
    result.status = "failed";
    result.error = e.what();
    write_trial_file(job.out, *trial, result);
    std::cerr << "flowlab: trial " << job.id << " failed: " << e.what() << "\n";
    return kExitTrialFailed;
  }
  write_trial_file(job.out, *trial, result);
  if (!job.checkpoint.empty()) std::filesystem::remove(job.checkpoint);  // the result supersedes it
  return kExitDone;
}

}  // namespace flowlab::worker

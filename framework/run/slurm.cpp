// Merging shards' trial files and writing Slurm array scripts (see slurm.hpp).
#include "flowlab/slurm.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/trial_files.hpp"
#include "flowlab/worker.hpp"

namespace fs = std::filesystem;

namespace flowlab {
namespace {

bool has_result(const std::string& status) { return status == "completed" || status == "diverged"; }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::vector<std::string> trial_files_in(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> here;
      for (fs::directory_iterator it(in, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code ec2;
        if (it->path().extension() == ".h5" && it->is_regular_file(ec2)) here.push_back(it->path().string());
      }
      if (ec) throw Error(fmt::format("{}: cannot list the directory: {}", in, ec.message()));
      std::sort(here.begin(), here.end());
      files.insert(files.end(), here.begin(), here.end());
    } else if (fs::is_regular_file(in, ec)) {
      files.push_back(in);
    } else {
      throw Error(fmt::format("{}: no such trial file or directory", in));
    }
  }
  return files;
}

std::string stored_experiment(const std::vector<std::string>& inputs) {
  std::string text, from;
  for (const auto& in : inputs) {
    const std::string path = (fs::path(in) / "experiment.yaml").string();
    std::error_code ec;
    if (!fs::is_directory(in, ec) || !fs::is_regular_file(path, ec)) continue;
    const std::string t = read_text(path);
    if (!from.empty() && t != text)
      throw Error(fmt::format("{} and {} hold different experiments: pass --experiment EXP.yaml", from, path));
    text = t, from = path;
  }
  return from;
}

MergeReport merge_trial_files(const std::string& output, const Experiment& ex, const std::vector<std::string>& inputs) {
  const OutputLock lock(output, "flowlab merge");  // never while a runner writes the same output
  MergeReport report;
  const auto files = trial_files_in(inputs);
  report.files = files.size();
  std::map<std::string, const TrialConfig*> trial_of;
  for (const auto& t : ex.trials) trial_of[t.id] = &t;

  struct Found {
    std::string path, hash, status;
  };
  std::map<std::string, Found> chosen;  // id -> the file merged for it
  for (const auto& f : files) {
    // Verified first (integrity.hpp): a damaged file is never merged, and the problem says what is wrong with it.
    const std::string problem = file_problem(f, FileKind::trial);
    const auto info = problem.empty() ? read_trial_file(f) : std::nullopt;
    if (!info) {
      report.problems.push_back({f, "", problem.empty() ? "not a readable flowlab trial file" : "it " + problem});
      continue;
    }
    const auto [it, added] = chosen.emplace(info->id, Found{f, info->config_hash, info->status});
    if (added) continue;
    if (it->second.hash != info->config_hash)
      throw Error(fmt::format("trial '{}' is in {} (config_hash {}) and in {} (config_hash {}): two different "
                              "configurations; merge the shards of one experiment, or remove one of them",
                              info->id, it->second.path, it->second.hash, f, info->config_hash));
    if (!has_result(it->second.status) && has_result(info->status))
      it->second = Found{f, info->config_hash, info->status};
  }

  std::vector<std::string> merge_files;
  for (const auto& [id, found] : chosen) {
    const auto t = trial_of.find(id);
    if (t == trial_of.end()) {
      report.notes.push_back(fmt::format("{}: trial '{}' is not in {}: left out", found.path, id, ex.file));
      continue;
    }
    const std::string want = config_hash(t->second->resolved_yaml);
    if (found.hash != want) {
      report.notes.push_back(fmt::format("{}: trial '{}' was run with another configuration (config_hash {}, the "
                                         "experiment's is {}): left out",
                                         found.path, id, found.hash, want));
      continue;
    }
    merge_files.push_back(found.path);
  }
  const auto problems = merge_experiment(output, ex, merge_files);
  report.problems.insert(report.problems.end(), problems.begin(), problems.end());
  std::map<std::string, bool> bad;
  for (const auto& p : problems)
    if (!p.id.empty()) bad[p.id] = true;
  for (const auto& t : ex.trials) {
    const auto it = chosen.find(t.id);
    const bool ok = it != chosen.end() && it->second.hash == config_hash(t.resolved_yaml) && !bad.count(t.id);
    if (ok) ++report.merged;
    else report.missing.push_back(t.id);
  }
  return report;
}

std::string array_ranges(const std::vector<int64_t>& indices) {
  std::string out;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += j == i ? fmt::format("{}", indices[i]) : fmt::format("{}-{}", indices[i], indices[j]);
    i = j + 1;
  }
  return out;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./=:,+@%") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string sbatch_script(const SlurmOptions& o) {
  std::vector<int64_t> indices = o.indices;
  if (indices.empty())
    for (int64_t i = 0; i < o.tasks; ++i) indices.push_back(i);
  std::string s = "#!/bin/bash\n";
  s += fmt::format("# Written by flowlab slurm for {}: array task I runs shard I/{} of the sweep.\n", o.experiment,
                   o.tasks);
  s += fmt::format("#SBATCH --job-name={}\n", o.name);
  s += fmt::format("#SBATCH --array={}{}\n", array_ranges(indices),
                   o.max_parallel > 0 ? fmt::format("%{}", o.max_parallel) : "");
  s += fmt::format("#SBATCH --output={}/%A_%a.log\n", o.log_dir);
  s += fmt::format("#SBATCH --open-mode=append\n");
  s += fmt::format("#SBATCH --chdir={}\n", o.workdir);
  s += "#SBATCH --ntasks=1\n";
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  if (!o.account.empty()) s += fmt::format("#SBATCH --account={}\n", o.account);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", o.time);
  if (o.cpus_per_task > 0) s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  if (o.gpus_per_task > 0) s += fmt::format("#SBATCH --gres=gpu:{}\n", o.gpus_per_task);
  if (o.requeue) s += fmt::format("#SBATCH --requeue\n#SBATCH --signal=B:USR1@{}\n", o.signal_seconds);
  for (const auto& a : o.sbatch_args) s += fmt::format("#SBATCH {}\n", a);

  std::string cmd = shell_quote(o.flowlab);
  for (const auto& p : o.plugin_paths) cmd += " --plugin-path " + shell_quote(p);
  cmd += fmt::format(" run {} --out {} --shard \"${{SLURM_ARRAY_TASK_ID}}/{}\" --resume{} --devices {}",
                     shell_quote(o.experiment), shell_quote(o.output), o.tasks, o.retry_failed ? " --retry-failed" : "",
                     o.gpus_per_task > 0 ? "auto" : "cpu");
  s += "\n# SIGTERM (preemption, scancel, the time limit) reaches every process of the task: flowlab saves its\n"
       "# checkpoints and exits; a requeued or resubmitted task resumes from them (--resume).\n";
  if (o.requeue)
    s += fmt::format(
        "# SIGUSR1, {} s before the time limit and to this shell only, does the same and requeues the task.\n"
        "requeue=0\n"
        "trap 'requeue=1; kill -TERM \"$pid\" 2>/dev/null' USR1\n",
        o.signal_seconds);
  s += "trap ':' TERM\n";
  s += cmd + " &\n";
  s += "pid=$!\n"
       "while :; do\n"
       "  wait \"$pid\"\n"
       "  rc=$?\n"
       "  kill -0 \"$pid\" 2>/dev/null || break\n"
       "done\n";
  if (o.requeue)
    s += "if [ \"$requeue\" = 1 ]; then\n"
         "  scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"\n"
         "fi\n";
  s += "exit \"$rc\"\n";
  return s;
}

std::string sbatch_job_id(const std::string& output) {
  std::stringstream lines(output);
  std::string line, id;
  while (std::getline(lines, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    const std::string first = line.substr(0, line.find(';'));
    if (!first.empty() && first.find_first_not_of("0123456789") == std::string::npos) id = first;
  }
  return id;
}

std::vector<int64_t> unfinished_shards(const Experiment& ex, const std::string& output, int64_t tasks) {
  std::vector<int64_t> out;
  for (int64_t s = 0; s < tasks; ++s)
    for (size_t i : shard_trials(ex.trials.size(), s, tasks)) {
      const auto& t = ex.trials[i];
      const auto info = read_trial_file(trial_file_path(output, t.id));
      if (!info || info->id != t.id || info->config_hash != config_hash(t.resolved_yaml) || !has_result(info->status)) {
        out.push_back(s);
        break;
      }
    }
  return out;
}

}  // namespace flowlab

// `flowlab slurm EXP.yaml [--submit]`: an sbatch array script whose task I runs shard I/N of the sweep.
#include <fmt/format.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/files.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/slurm.hpp"
#include "scaleout.hpp"

namespace fs = std::filesystem;

namespace flowlab::cli {
namespace {

CLI::Validator positive(const std::string& option, int64_t min) {
  return CLI::Validator(
      [option, min](std::string& value) -> std::string {
        try {
          size_t used = 0;
          const long long v = std::stoll(value, &used);
          if (used == value.size() && v >= min) return "";
        } catch (const std::exception&) {
        }
        return fmt::format("{} must be at least {} (got '{}')", option, min, value);
      },
      fmt::format("INT >= {}", min));
}

/// Runs `sbatch --parsable SCRIPT`; returns the job id, and passes sbatch's other lines (warnings) on to stderr.
/// Throws flowlab::Error with sbatch's output when it fails or prints no job id.
std::string submit(const std::string& script) {
  FILE* p = ::popen(fmt::format("sbatch --parsable {} 2>&1", shell_quote(script)).c_str(), "r");
  if (!p) throw Error("cannot run sbatch");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int st = ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
    throw Error(fmt::format("sbatch not found: is Slurm installed here? (the script is {})", script));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    throw Error(fmt::format("sbatch {} failed: {}", script, out.empty() ? "no output" : out));
  const std::string id = sbatch_job_id(out);  // "<job id>[;<cluster>]", after any warnings
  if (id.empty()) throw Error(fmt::format("sbatch {} printed no job id: {}", script, out.empty() ? "no output" : out));
  std::stringstream lines(out);
  std::string line;
  while (std::getline(lines, line))
    if (line.substr(0, line.find(';')) != id) std::cerr << line << "\n";
  return id;
}

}  // namespace

Command add_slurm_command(CLI::App& app, std::function<std::string()> self,
                          const std::vector<std::string>& plugin_paths) {
  struct Args {
    std::string experiment, out, script;
    SlurmOptions o;
    int64_t tasks = 0;
    bool submit = false, only_failed = false;
  };
  auto a = std::make_shared<Args>();
  Command c;
  c.app =
      app.add_subcommand("slurm", "write (and with --submit, submit) an sbatch array script: task I runs shard I/N");
  auto* s = c.app;
  s->add_option("experiment", a->experiment, "the experiment YAML")->required();
  s->add_flag("--submit", a->submit, "submit the script with sbatch");
  s->add_option("--tasks", a->tasks, "array tasks N (shards; default: one per trial)")->check(positive("--tasks", 1));
  s->add_option("--out", a->out, "the HDF5 file, overriding the YAML's output");
  s->add_option("--script", a->script, "where to write the script (default: OUT.slurm/array.sbatch)");
  s->add_option("--partition", a->o.partition, "#SBATCH --partition");
  s->add_option("--time", a->o.time, "#SBATCH --time (per task), e.g. 2:00:00");
  s->add_option("--account", a->o.account, "#SBATCH --account");
  s->add_option("--gpus-per-task", a->o.gpus_per_task, "GPUs per task (--gres=gpu:G); 0: CPU only")
      ->check(positive("--gpus-per-task", 0));
  s->add_option("--cpus-per-task", a->o.cpus_per_task, "#SBATCH --cpus-per-task")
      ->check(positive("--cpus-per-task", 1));
  s->add_option("--max-parallel", a->o.max_parallel, "at most K tasks at once (--array=...%K)")
      ->check(positive("--max-parallel", 1));
  s->add_option("--sbatch-arg", a->o.sbatch_args, "an extra #SBATCH argument, verbatim (repeatable)");
  s->add_flag("--requeue", a->o.requeue,
              "requeue on preemption, and on SIGUSR1 before the time limit: the trial checkpoints and resumes");
  s->add_option("--signal-seconds", a->o.signal_seconds, "with --requeue: SIGUSR1 this many seconds before the limit")
      ->check(positive("--signal-seconds", 1));
  s->add_flag("--only-failed", a->only_failed,
              "submit only the array indices whose trials failed or have no result (same --tasks as before)");
  c.run = [a, self, &plugin_paths](const Registry& registry) {
    const auto ex = load_experiment(a->experiment, registry);
    const std::string output = fs::absolute(a->out.empty() ? ex.output : a->out).lexically_normal().string();
    check_trial_files(ex, output);
    const int64_t trials = static_cast<int64_t>(ex.trials.size());
    SlurmOptions o = a->o;
    o.tasks = a->tasks > 0 ? a->tasks : trials;
    if (o.tasks > trials)
      throw Error(fmt::format("--tasks {} is more than the experiment's {}: at most one task per trial", o.tasks,
                              counted(trials, "trial")));
    o.flowlab = self();
    for (const auto& p : plugin_paths) o.plugin_paths.push_back(fs::absolute(p).lexically_normal().string());
    o.experiment = fs::absolute(a->experiment).lexically_normal().string();
    o.name = ex.name;
    o.output = output;
    o.workdir = fs::current_path().string();
    o.log_dir = output + ".slurm";
    o.retry_failed = a->only_failed;
    if (a->only_failed) {
      o.indices = unfinished_shards(ex, output, o.tasks);
      if (o.indices.empty()) {
        std::cout << fmt::format("{}: every trial has a result in {}.trials: nothing to resubmit\n", ex.name, output);
        return 0;
      }
    }
    const std::string script =
        a->script.empty() ? o.log_dir + (a->only_failed ? "/only-failed.sbatch" : "/array.sbatch") : a->script;
    fs::create_directories(o.log_dir);
    if (fs::path(script).has_parent_path()) fs::create_directories(fs::path(script).parent_path());
    if (fs::path(output).has_parent_path()) fs::create_directories(fs::path(output).parent_path());
    write_file(script, sbatch_script(o));  // a full disk: a WriteError naming the script
    fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
    const size_t n = o.indices.empty() ? static_cast<size_t>(o.tasks) : o.indices.size();
    std::cout << fmt::format("{}: wrote {}: {} of {} (array {}), task I runs shard I/{}; logs in {}\n", ex.name, script,
                             n == 1 ? "1 task" : fmt::format("{} tasks", n), o.tasks,
                             o.indices.empty() ? fmt::format("0-{}", o.tasks - 1) : array_ranges(o.indices), o.tasks,
                             o.log_dir);
    if (a->submit) {
      const std::string job = submit(script);
      std::cout << fmt::format("submitted array job {}; when it is done: flowlab merge {} {}.trials\n", job, output,
                               output);
    }
    std::cout.flush();
    return 0;
  };
  return c;
}

}  // namespace flowlab::cli

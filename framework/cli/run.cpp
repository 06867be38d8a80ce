// `flowlab run EXP.yaml [options]` and the internal `_trial` (one trial in a worker process) that it starts.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>
#include <memory>

#include "flowlab/config.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/worker.hpp"
#include "scaleout.hpp"

namespace flowlab::cli {

namespace {

// A range check that says what it wants in words ("--workers must be at least 1").
CLI::Validator at_least_one(const std::string& option) {
  return CLI::Validator(
      [option](std::string& value) -> std::string {
        try {
          size_t used = 0;
          const long long v = std::stoll(value, &used);
          if (used == value.size() && v >= 1) return "";
        } catch (const std::exception&) {
        }
        return fmt::format("{} must be at least 1 (got '{}')", option, value);
      },
      "INT >= 1");
}

// --shard I/N, checked as it is parsed; CLI11 puts "--shard: " before the message, so ours loses its own.
CLI::Validator shard_check() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        try {
          parse_shard(v);
          return "";
        } catch (const std::exception& e) {
          const std::string m = e.what();
          return m.rfind("--shard ", 0) == 0 ? m.substr(8) : m;
        }
      },
      "");
}

}  // namespace

Command add_run_command(CLI::App& app, std::function<std::string()> self,
                        const std::vector<std::string>& plugin_paths) {
  struct Args {
    std::string experiment, shard;
    RunOptions options;
  };
  auto args = std::make_shared<Args>();
  RunOptions& o = args->options;
  Command c;
  c.app = app.add_subcommand("run", "run an experiment's sweep and write its HDF5 results");
  c.app->add_option("experiment", args->experiment, "the experiment YAML")->required();
  c.app->add_flag("--dry-run", o.dry_run, "print the trial table and run nothing");
  c.app->add_option("--devices", o.devices, "devices, overriding the YAML: auto, cpu, cuda:N (repeatable)");
  c.app->add_option("--workers", o.workers, "workers per device")->check(at_least_one("--workers"));
  c.app->add_option("--threads", o.threads, "threads per worker")->check(at_least_one("--threads"));
  c.app->add_option("--out", o.out, "the HDF5 file, overriding the YAML's output");
  c.app->add_flag("--resume", o.resume, "finish an interrupted sweep without redoing finished trials");
  c.app->add_flag("--retry-failed", o.retry_failed, "with --resume: rerun the failed trials too");
  c.app->add_flag("--fail-fast", o.fail_fast, "stop at the first failed trial");
  c.app
      ->add_option("--shard", args->shard,
                   "run only shard I of N (0-based: trials i with i % N == I); default from SLURM_ARRAY_TASK_ID and "
                   "SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX) when set")
      ->type_name("I/N")
      ->check(shard_check());
  c.app
      ->add_option("--merge-every", o.merge_every,
                   "rebuild the experiment file at most every S seconds (and at the end); 0: after every trial")
      ->type_name("S")
      ->check(CLI::NonNegativeNumber);
  c.run = [args, self = std::move(self), &plugin_paths](const Registry& registry) {
    RunOptions& opt = args->options;
    if (opt.retry_failed && !opt.resume) throw Error("--retry-failed needs --resume");
    opt.self = self();
    opt.plugin_paths = plugin_paths;
    // A shard: --shard I/N, else the Slurm array task's (SLURM_ARRAY_TASK_ID, ...), else the whole sweep.
    const auto sh = !args->shard.empty() ? parse_shard(args->shard)
                                         : shard_from_env([](const char* n) -> const char* { return std::getenv(n); });
    opt.shard_index = sh.index, opt.shard_count = sh.count;
    const auto ex = load_experiment(args->experiment, registry);
    return run_experiment(ex, opt, std::cout);
  };
  return c;
}

Command add_trial_command(CLI::App& app) {
  auto job = std::make_shared<worker::Job>();  // the protocol is in flowlab/worker.hpp
  Command c;
  c.app = app.add_subcommand("_trial", "");
  c.app->group("");
  c.app->add_option("experiment", job->experiment_file);
  c.app->add_option("--snapshot", job->snapshot);
  c.app->add_option("--id", job->id)->required();
  c.app->add_option("--device", job->device);
  c.app->add_option("--threads", job->threads);
  c.app->add_option("--out", job->out)->required();
  c.app->add_option("--checkpoint", job->checkpoint);
  c.app->add_option("--tensorboard", job->tensorboard);
  c.app->add_option("--config-hash", job->config_hash);
  c.run = [job](const Registry& registry) {
    if (job->snapshot.empty() && job->experiment_file.empty()) throw Error("_trial: give --snapshot or EXP");
    return worker::run_worker(*job, registry);
  };
  return c;
}

}  // namespace flowlab::cli

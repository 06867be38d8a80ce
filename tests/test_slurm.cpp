// Scale-out: sharding (every trial in exactly one shard), --shard and its Slurm defaults, shards + merge equal a local
// run bit for bit on CPU, merge refusing conflicting duplicates and naming missing trials, trial snapshots, and the
// sbatch script text of `flowlab slurm`.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/results.hpp"
#include "flowlab/runner.hpp"
#include "flowlab/slurm.hpp"
#include "flowlab/trial_files.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;

namespace {

using flowlab::test::attr;
using flowlab::test::table_column;

struct Scratch : flowlab::test::ScratchDir {
  explicit Scratch(const std::string& name) : ScratchDir("flowlab_slurm_" + name) {}
};

/// A small CPU experiment: `sweep` below `sweep:`.
std::string experiment(const Scratch& s, const std::string& sweep, int64_t steps = 20) {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: shard_test\noutput: " << s.file("out.h5") << R"(
devices: [cpu]
workers_per_device: 2
data: {dataset: ring_gaussians}
model:
  architecture: {name: mlp, params: {width: 16, depth: 1}}
train: {steps: )" << steps << R"(, batch_size: 32, log_every: 5}
eval:
  samples: 64
  solvers: [{solver: euler, steps: [2, 4]}, {solver: rk4, steps: [2]}]
  metrics: [frechet]
sweep:
)" << sweep;
  return path;
}

flowlab::test::CommandResult flowlab_cmd(const std::string& args) {
  return flowlab::test::run_command(std::string("env -u SLURM_ARRAY_TASK_ID FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI +
                                    " " + args);
}


std::vector<double> column(const std::string& file, const std::string& dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  REQUIRE(d >= 0);
  const hid_t sp = H5Dget_space(d);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(sp, &n, nullptr);
  std::vector<double> v(n);
  if (n) H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Sclose(sp), H5Dclose(d), H5Fclose(f);
  return v;
}


std::vector<std::string> group_names(const std::string& file, const std::string& group) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
  REQUIRE(g >= 0);
  std::vector<std::string> names;
  H5Literate(
      g, H5_INDEX_NAME, H5_ITER_INC, nullptr,
      [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
        static_cast<std::vector<std::string>*>(data)->push_back(name);
        return 0;
      },
      &names);
  H5Gclose(g), H5Fclose(f);
  return names;
}

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

std::string last_line(const std::string& text) {
  const auto end = text.size() && text.back() == '\n' ? text.size() - 1 : text.size();
  const auto start = text.rfind('\n', end ? end - 1 : 0);
  return text.substr(start == std::string::npos ? 0 : start + 1);
}

/// Every result of `id` that must agree bit for bit between two runs on CPU.
void check_same_trial(const std::string& a, const std::string& b, const std::string& id) {
  const std::string g = "trials/" + id;
  INFO(id);
  CHECK(attr(a, g, "config") == attr(b, g, "config"));
  CHECK(attr(a, g, "config_hash") == attr(b, g, "config_hash"));
  CHECK(attr(a, g, "seed") == attr(b, g, "seed"));
  CHECK(attr(a, g, "status") == "completed");
  CHECK(attr(b, g, "status") == "completed");
  for (const char* d : {"train/step", "train/loss", "train/grad_norm", "train/lr"})
    CHECK(column(a, g + "/" + d) == column(b, g + "/" + d));
  for (const char* c : {"steps", "nfe", "network_calls", "straightness", "frechet"})
    CHECK(table_column(a, g + "/eval", c) == table_column(b, g + "/eval", c));
}

}  // namespace

TEST_CASE("shard_trials: N shards cover every trial exactly once, for every N from 1 to the trial count + 3", "[shard]") {
  for (size_t n : {0, 1, 2, 5, 12, 37}) {
    for (int64_t count = 1; count <= static_cast<int64_t>(n) + 3; ++count) {
      std::vector<int> seen(n, 0);
      size_t largest = 0, smallest = n + 1;
      for (int64_t index = 0; index < count; ++index) {
        const auto mine = flowlab::shard_trials(n, index, count);
        largest = std::max(largest, mine.size()), smallest = std::min(smallest, mine.size());
        for (size_t i = 0; i < mine.size(); ++i) {
          REQUIRE(mine[i] < n);
          CHECK(static_cast<int64_t>(mine[i] % static_cast<size_t>(count)) == index);
          if (i) CHECK(mine[i] > mine[i - 1]);
          ++seen[mine[i]];
        }
      }
      for (size_t i = 0; i < n; ++i) CHECK(seen[i] == 1);
      CHECK(largest - smallest <= 1);  // balanced
    }
  }
  CHECK_THROWS_AS(flowlab::shard_trials(4, 2, 2), flowlab::Error);
  CHECK_THROWS_AS(flowlab::shard_trials(4, 0, 0), flowlab::Error);
}

TEST_CASE("parse_shard and shard_from_env: I/N is 0-based; the Slurm variables; clear errors", "[shard]") {
  CHECK(flowlab::parse_shard("0/1").index == 0);
  CHECK(flowlab::parse_shard("3/4").index == 3);
  CHECK(flowlab::parse_shard("3/4").count == 4);
  using flowlab::test::message_of;
  CHECK(message_of<flowlab::Error>([] { flowlab::parse_shard("4/4"); }) ==
        "--shard expects I/N with 0 <= I < N, as in 0/4 (I is 0-based, like SLURM_ARRAY_TASK_ID): got '4/4' (I must be "
        "below N; the last shard of 4 is 3/4)");
  CHECK(message_of<flowlab::Error>([] { flowlab::parse_shard("0/0"); }) ==
        "--shard expects I/N with 0 <= I < N, as in 0/4 (I is 0-based, like SLURM_ARRAY_TASK_ID): got '0/0' (N must be "
        "at least 1)");
  for (const char* bad : {"", "1", "a/b", "-1/4", "1/4/2", "1 /4", "1/", "/4", "99999999999999/4"})
    CHECK_THAT(message_of<flowlab::Error>([&] { flowlab::parse_shard(bad); }),
               StartsWith(fmt::format("--shard expects I/N with 0 <= I < N, as in 0/4 (I is 0-based, like "
                                      "SLURM_ARRAY_TASK_ID): got '{}'", bad)));

  std::map<std::string, std::string> env;
  const auto from = [&] {
    return flowlab::shard_from_env([&](const char* n) -> const char* {
      const auto it = env.find(n);
      return it == env.end() ? nullptr : it->second.c_str();
    });
  };
  CHECK(from().count == 0);  // not an array task
  env = {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "5"}};
  CHECK((from().index == 2 && from().count == 5));
  env = {{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_MAX", "4"}};
  CHECK((from().index == 2 && from().count == 4));  // an array 1-4: task 3 is shard 2/4
  env = {{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_COUNT", "2"}, {"SLURM_ARRAY_TASK_MIN", "0"},
         {"SLURM_ARRAY_TASK_MAX", "1"}};
  CHECK((from().index == 0 && from().count == 2));
  env = {{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_COUNT", "2"}, {"SLURM_ARRAY_TASK_MIN", "3"},
         {"SLURM_ARRAY_TASK_MAX", "7"}};
  CHECK(message_of<flowlab::Error>(from) ==
        "the array is not a contiguous range (2 tasks between 3 and 7): pass --shard I/N (flowlab slurm's scripts do)");
  env = {{"SLURM_ARRAY_TASK_ID", "3"}};
  CHECK(message_of<flowlab::Error>(from) ==
        "SLURM_ARRAY_TASK_ID is set, but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN and _MAX: pass --shard I/N");
  env = {{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "2"}};
  CHECK(message_of<flowlab::Error>(from) == "SLURM_ARRAY_TASK_ID='x' is not a non-negative integer: pass --shard I/N");
  env = {{"SLURM_ARRAY_TASK_ID", "5"}, {"SLURM_ARRAY_TASK_COUNT", "2"}};
  CHECK(message_of<flowlab::Error>(from) == "SLURM_ARRAY_TASK_ID 5 is outside the array's 2 tasks: pass --shard I/N");
}

TEST_CASE("trial snapshots: a worker's one-trial view has the same resolved configuration as the whole experiment",
          "[shard][snapshot]") {
  Scratch s("snapshot");
  const std::string exp = experiment(
      s, "  grid: {model.path: [rectified, cosine], model.architecture.params.width: [8, 16]}\n"
         "  zip: {train.lr: [1.0e-3, 3.0e-4]}\n  seeds: [0, 7]\n");
  for (const std::string& file : {exp, std::string(FLOWLAB_TEST_DATA) + "/experiments/layout.yaml"}) {
    const auto ex = flowlab::load_experiment(file, flowlab::test::registry());
    REQUIRE(ex.trials.size() > 1);
    for (const auto& t : ex.trials) {
      const std::string path = s.file("t.trial.yaml");
      std::ofstream(path) << flowlab::trial_snapshot(t);
      const auto back = flowlab::load_trial_snapshot(path, flowlab::test::registry());
      CHECK(back.id == t.id);
      CHECK(back.seed == t.seed);
      CHECK(back.swept == t.swept);
      CHECK(back.resolved_yaml == t.resolved_yaml);
      CHECK(flowlab::config_hash(back.resolved_yaml) == flowlab::config_hash(t.resolved_yaml));
    }
  }
  std::ofstream(s.file("bad.trial.yaml")) << "name: x\n";
  CHECK_THAT(flowlab::test::message_of<flowlab::Error>(
                 [&] { flowlab::load_trial_snapshot(s.file("bad.trial.yaml"), flowlab::test::registry()); }),
             ContainsSubstring("not a flowlab trial snapshot"));
}

TEST_CASE("2 shards + merge equal a local run bit for bit on CPU; merge is idempotent", "[shard][merge]") {
  Scratch s("e2e");
  const std::string exp = experiment(s, "  grid: {model.path: [rectified, cosine]}\n  seeds: [0, 1, 2]\n");
  const auto local = flowlab_cmd("run " + exp + " --out " + s.file("local.h5"));
  REQUIRE(local.status == 0);

  const std::string out = s.file("sharded.h5");
  const auto a = flowlab_cmd("run " + exp + " --out " + out + " --shard 0/2 --workers 1");
  INFO(a.out << a.err);
  REQUIRE(a.status == 0);
  CHECK_THAT(a.out, StartsWith("shard_test: 6 trials, shard 0/2: 3 trials, 3 to run on 1 slot (cpu)\n"));
  CHECK_THAT(a.out, ContainsSubstring("\n0      completed  path=rectified,seed=0\n2      completed  path=rectified,seed=2\n"
                                      "4      completed  path=cosine,seed=1\n"));
  CHECK_THAT(a.out, ContainsSubstring(fmt::format("\nresults: {}.trials (shard 0/2; flowlab merge {} {}.trials builds "
                                                  "the experiment file)\n", out, out, out)));
  CHECK(last_line(a.out) == "3 trials: 3 completed\n");
  CHECK_FALSE(fs::exists(out));  // a shard never writes the experiment file
  // The second shard from the Slurm array variables, in the same directory.
  const auto b = flowlab::test::run_command(fmt::format(
      "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 FLOWLAB_PLUGIN_PATH= {} run {} --out {} --workers 1", FLOWLAB_CLI,
      exp, out));
  INFO(b.out << b.err);
  REQUIRE(b.status == 0);
  CHECK_THAT(b.out, StartsWith("shard_test: 6 trials, shard 1/2: 3 trials, 3 to run on 1 slot (cpu)\n"));
  CHECK_FALSE(fs::exists(out));
  // A worker read its snapshot only.
  CHECK(fs::exists(flowlab::trial_snapshot_path(out, "path=cosine,seed=2")));

  // Running a shard again is refused without --resume; with it, nothing is left to run.
  const auto again = flowlab_cmd("run " + exp + " --out " + out + " --shard 1/2");
  CHECK(again.status == 1);
  CHECK_THAT(again.err, ContainsSubstring("already exists (trial path=rectified,seed=1 of shard 1/2): use --resume"));
  const auto resumed = flowlab_cmd("run " + exp + " --out " + out + " --shard 1/2 --resume");
  CHECK(resumed.status == 0);
  CHECK_THAT(resumed.out, StartsWith("shard_test: 6 trials, shard 1/2: 3 trials, 0 to run on 2 slots (cpu, cpu)\n"));

  // Merge (the experiment is found in the .trials directory) equals the local run.
  const std::string merged = s.file("merged.h5");
  const auto m = flowlab_cmd("merge " + merged + " " + out + ".trials");
  INFO(m.out << m.err);
  REQUIRE(m.status == 0);
  CHECK(m.out == fmt::format("merged 6 of 6 trials into {} (from 6 trial files)\n", merged));
  const auto ids = group_names(s.file("local.h5"), "trials");
  REQUIRE(ids.size() == 6);
  CHECK(group_names(merged, "trials") == ids);
  for (const auto& id : ids) check_same_trial(s.file("local.h5"), merged, id);
  CHECK(table_column(merged, "summary", "frechet@rk4:steps=2") ==
        table_column(s.file("local.h5"), "summary", "frechet@rk4:steps=2"));
  CHECK(table_column(merged, "summary", "final_loss") == table_column(s.file("local.h5"), "summary", "final_loss"));

  // Idempotent: the same inputs again (and the same files twice) give the same trials.
  const auto m2 = flowlab_cmd("merge " + merged + " " + out + ".trials " + out + ".trials --experiment " + exp);
  CHECK(m2.status == 0);
  CHECK(m2.out == fmt::format("merged 6 of 6 trials into {} (from 12 trial files)\n", merged));
  for (const auto& id : ids) check_same_trial(s.file("local.h5"), merged, id);
}

TEST_CASE("merge names the missing trials and refuses the same trial with two configurations", "[shard][merge]") {
  Scratch s("conflict");
  const std::string exp = experiment(s, "  seeds: [0, 1, 2, 3]\n", 10);
  const std::string out = s.file("out.h5");
  REQUIRE(flowlab_cmd("run " + exp + " --shard 0/2").status == 0);

  const auto partial = flowlab_cmd("merge " + s.file("m.h5") + " " + out + ".trials");
  CHECK(partial.status == 1);
  CHECK(partial.out == fmt::format("merged 2 of 4 trials into {} (from 2 trial files)\nmissing 2 trials: seed=1, seed=3\n",
                                   s.file("m.h5")));
  CHECK(group_names(s.file("m.h5"), "trials") == std::vector<std::string>{"seed=0", "seed=2"});

  // The same trial, run with another configuration, in a second directory.
  fs::create_directories(s.file("other"));
  const std::string copy = s.file("other/seed=0.h5");
  fs::copy_file(flowlab::trial_file_path(out, "seed=0"), copy);
  set_attr(copy, "trials/seed=0", "config_hash", "0123456789abcdef");
  const auto conflict = flowlab_cmd("merge " + s.file("c.h5") + " " + out + ".trials " + s.file("other") +
                                    " --experiment " + exp);
  CHECK(conflict.status == 1);
  CHECK(conflict.err == fmt::format("flowlab: error: trial 'seed=0' is in {} (config_hash {}) and in {} (config_hash "
                                    "0123456789abcdef): two different configurations; merge the shards of one "
                                    "experiment, or remove one of them\n",
                                    flowlab::trial_file_path(out, "seed=0"),
                                    attr(flowlab::trial_file_path(out, "seed=0"), "trials/seed=0", "config_hash"),
                                    copy));
  CHECK_FALSE(fs::exists(s.file("c.h5")));

  // Alone, the stale copy is left out with a note.
  const auto stale = flowlab_cmd("merge " + s.file("d.h5") + " " + copy + " --experiment " + exp);
  CHECK(stale.status == 1);
  CHECK_THAT(stale.out, ContainsSubstring(fmt::format("note: {}: trial 'seed=0' was run with another configuration "
                                                      "(config_hash 0123456789abcdef, the experiment's is ", copy)));
  CHECK_THAT(stale.out, ContainsSubstring("missing 4 trials: seed=0, seed=1, seed=2, seed=3\n"));

  const auto none = flowlab_cmd("merge " + s.file("e.h5") + " " + s.file("nowhere"));
  CHECK(none.status == 1);
  CHECK(none.err == fmt::format("flowlab: error: {}: no such trial file or directory\n", s.file("nowhere")));
  const auto no_exp = flowlab_cmd("merge " + s.file("e.h5") + " " + copy);
  CHECK(no_exp.status == 1);
  CHECK_THAT(no_exp.err, ContainsSubstring("no experiment to merge for: pass --experiment EXP.yaml"));
}

TEST_CASE("run --shard: bad values are usage errors that say what is expected", "[shard]") {
  Scratch s("badshard");
  const std::string exp = experiment(s, "  seeds: [0, 1]\n");
  for (const char* bad : {"2/2", "x", "1/0", "-1/2"}) {
    const auto r = flowlab_cmd(fmt::format("run {} --dry-run --shard={}", exp, bad));
    INFO(bad);
    CHECK(r.status == 2);
    CHECK_THAT(r.err, StartsWith(fmt::format("flowlab: error: --shard: expects I/N with 0 <= I < N, as in 0/4 (I is "
                                             "0-based, like SLURM_ARRAY_TASK_ID): got '{}'", bad)));
  }
  const auto sparse = flowlab::test::run_command(fmt::format(
      "SLURM_ARRAY_TASK_ID=7 SLURM_ARRAY_TASK_COUNT=2 SLURM_ARRAY_TASK_MIN=3 SLURM_ARRAY_TASK_MAX=7 FLOWLAB_PLUGIN_PATH= "
      "{} run {} --dry-run", FLOWLAB_CLI, exp));
  CHECK(sparse.status == 1);
  CHECK(sparse.err == "flowlab: error: the array is not a contiguous range (2 tasks between 3 and 7): pass --shard I/N "
                      "(flowlab slurm's scripts do)\n");
  const auto dry = flowlab_cmd(fmt::format("run {} --dry-run --shard 1/2", exp));
  CHECK(dry.status == 0);
  CHECK_THAT(dry.out, ContainsSubstring("\n   1  seed=1  ("));
  CHECK_THAT(dry.out, !ContainsSubstring("seed=0"));
}

TEST_CASE("sbatch_script: the exact text, with requeue, throttle, gres and extra arguments", "[slurm]") {
  flowlab::SlurmOptions o;
  o.flowlab = "/opt/flowlab/bin/flowlab";
  o.plugin_paths = {"/home/me/my plugins"};
  o.experiment = "/home/me/exp.yaml";
  o.name = "sweep";
  o.output = "/home/me/results/sweep.h5";
  o.workdir = "/home/me";
  o.log_dir = "/home/me/results/sweep.h5.slurm";
  o.tasks = 10;
  o.max_parallel = 4;
  o.partition = "gpu";
  o.time = "2:00:00";
  o.account = "lab";
  o.gpus_per_task = 1;
  o.cpus_per_task = 8;
  o.sbatch_args = {"--mem=16G", "--constraint=a100"};
  o.requeue = true;
  CHECK(flowlab::sbatch_script(o) == R"(#!/bin/bash
# Written by flowlab slurm for /home/me/exp.yaml: array task I runs shard I/10 of the sweep.
#SBATCH --job-name=sweep
#SBATCH --array=0-9%4
#SBATCH --output=/home/me/results/sweep.h5.slurm/%A_%a.log
#SBATCH --open-mode=append
#SBATCH --chdir=/home/me
#SBATCH --ntasks=1
#SBATCH --partition=gpu
#SBATCH --account=lab
#SBATCH --time=2:00:00
#SBATCH --cpus-per-task=8
#SBATCH --gres=gpu:1
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --mem=16G
#SBATCH --constraint=a100

# SIGTERM (preemption, scancel, the time limit) reaches every process of the task: flowlab saves its
# checkpoints and exits; a requeued or resubmitted task resumes from them (--resume).
# SIGUSR1, 120 s before the time limit and to this shell only, does the same and requeues the task.
requeue=0
trap 'requeue=1; kill -TERM "$pid" 2>/dev/null' USR1
trap ':' TERM
/opt/flowlab/bin/flowlab --plugin-path '/home/me/my plugins' run /home/me/exp.yaml --out /home/me/results/sweep.h5 --shard "${SLURM_ARRAY_TASK_ID}/10" --resume --devices auto &
pid=$!
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
if [ "$requeue" = 1 ]; then
  scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
fi
exit "$rc"
)");

  flowlab::SlurmOptions c;  // CPU, no requeue, only some indices (--only-failed)
  c.flowlab = "/bin/flowlab";
  c.experiment = "/e's.yaml";
  c.name = "e";
  c.output = "/r/e.h5";
  c.workdir = "/r";
  c.log_dir = "/r/e.h5.slurm";
  c.tasks = 12;
  c.indices = {1, 2, 3, 7, 10, 11};
  c.retry_failed = true;
  CHECK(flowlab::sbatch_script(c) == R"(#!/bin/bash
# Written by flowlab slurm for /e's.yaml: array task I runs shard I/12 of the sweep.
#SBATCH --job-name=e
#SBATCH --array=1-3,7,10-11
#SBATCH --output=/r/e.h5.slurm/%A_%a.log
#SBATCH --open-mode=append
#SBATCH --chdir=/r
#SBATCH --ntasks=1

# SIGTERM (preemption, scancel, the time limit) reaches every process of the task: flowlab saves its
# checkpoints and exits; a requeued or resubmitted task resumes from them (--resume).
trap ':' TERM
/bin/flowlab run '/e'\''s.yaml' --out /r/e.h5 --shard "${SLURM_ARRAY_TASK_ID}/12" --resume --retry-failed --devices cpu &
pid=$!
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
exit "$rc"
)");
  CHECK(flowlab::array_ranges({}) == "");
  CHECK(flowlab::array_ranges({5}) == "5");
  CHECK(flowlab::array_ranges({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7");
}

TEST_CASE("flowlab slurm writes the array script; --only-failed picks exactly the unfinished indices", "[slurm]") {
  Scratch s("slurmcli");
  const std::string exp = experiment(s, "  seeds: [0, 1, 2, 3, 4]\n", 10);
  const std::string out = s.file("out.h5");
  const auto w = flowlab_cmd(fmt::format("slurm {} --tasks 3 --max-parallel 2 --partition cpu", exp));
  INFO(w.out << w.err);
  REQUIRE(w.status == 0);
  const std::string script = out + ".slurm/array.sbatch";
  CHECK(w.out == fmt::format("shard_test: wrote {}: 3 tasks of 3 (array 0-2), task I runs shard I/3; logs in {}.slurm\n",
                             script, out));
  std::stringstream text;
  text << std::ifstream(script).rdbuf();
  CHECK_THAT(text.str(), ContainsSubstring("\n#SBATCH --array=0-2%2\n"));
  CHECK_THAT(text.str(), ContainsSubstring("\n#SBATCH --partition=cpu\n"));
  CHECK_THAT(text.str(), ContainsSubstring(fmt::format(" run {} --out {} --shard \"${{SLURM_ARRAY_TASK_ID}}/3\" --resume "
                                                       "--devices cpu &\n", exp, out)));

  // Run the array's tasks by hand, as Slurm would: shard 1/3 fails one trial (its result made a failure).
  for (int i = 0; i < 3; ++i)
    REQUIRE(flowlab_cmd(fmt::format("run {} --shard {}/3 --workers 1", exp, i)).status == 0);
  CHECK(flowlab_cmd(fmt::format("slurm {} --tasks 3 --only-failed", exp)).out ==
        fmt::format("shard_test: every trial has a result in {}.trials: nothing to resubmit\n", out));
  set_attr(flowlab::trial_file_path(out, "seed=4"), "trials/seed=4", "status", "failed");  // shard 1
  const auto ex = flowlab::load_experiment(exp, flowlab::test::registry());
  CHECK(flowlab::unfinished_shards(ex, out, 3) == std::vector<int64_t>{1});
  fs::remove(flowlab::trial_file_path(out, "seed=2"));  // shard 2: missing
  CHECK(flowlab::unfinished_shards(ex, out, 3) == std::vector<int64_t>{1, 2});
  CHECK(flowlab::unfinished_shards(ex, out, 5) == std::vector<int64_t>{2, 4});
  const auto f = flowlab_cmd(fmt::format("slurm {} --tasks 3 --only-failed", exp));
  CHECK(f.out == fmt::format("shard_test: wrote {}.slurm/only-failed.sbatch: 2 tasks of 3 (array 1-2), task I runs shard "
                             "I/3; logs in {}.slurm\n", out, out));
  std::stringstream only;
  only << std::ifstream(out + ".slurm/only-failed.sbatch").rdbuf();
  CHECK_THAT(only.str(), ContainsSubstring("\n#SBATCH --array=1-2\n"));
  CHECK_THAT(only.str(), ContainsSubstring("--resume --retry-failed --devices cpu &\n"));

  const auto too_many = flowlab_cmd(fmt::format("slurm {} --tasks 6", exp));
  CHECK(too_many.status == 1);
  CHECK(too_many.err == "flowlab: error: --tasks 6 is more than the experiment's 5 trials: at most one task per trial\n");
  if (flowlab::test::run_command("command -v sbatch").status != 0) {
    const auto sub = flowlab_cmd(fmt::format("slurm {} --submit", exp));
    CHECK(sub.status == 1);
    CHECK_THAT(sub.err, ContainsSubstring("flowlab: error: sbatch not found: is Slurm installed here? (the script is "));
  }
}

TEST_CASE("flowlab slurm --submit: the job id after sbatch's warnings, and sbatch's errors in full", "[slurm]") {
  CHECK(flowlab::sbatch_job_id("42\n") == "42");
  CHECK(flowlab::sbatch_job_id("42;cluster\n") == "42");
  CHECK(flowlab::sbatch_job_id("sbatch: warning: something odd\n43\n") == "43");
  CHECK(flowlab::sbatch_job_id("") == "");
  CHECK(flowlab::sbatch_job_id("Submitted batch job 5\n") == "");

  // A stand-in sbatch in PATH: what flowlab passes it, and what it makes of sbatch's output.
  Scratch s("submit");
  const std::string exp = experiment(s, "  seeds: [0, 1]\n", 10);
  const std::string out = s.file("out.h5"), script = out + ".slurm/array.sbatch";
  fs::create_directories(s.file("bin"));
  const auto fake_sbatch = [&](const std::string& body) {
    const std::string path = s.file("bin/sbatch");
    std::ofstream(path) << "#!/bin/sh\necho \"$*\" > " << s.file("sbatch_args") << "\n" << body;
    fs::permissions(path, fs::perms::owner_all);
  };
  const auto submit = [&] {
    return flowlab::test::run_command(fmt::format("PATH={}:$PATH FLOWLAB_PLUGIN_PATH= {} slurm {} --submit",
                                                  s.file("bin"), FLOWLAB_CLI, exp));
  };
  fake_sbatch("echo 'sbatch: warning: a warning of sbatch' >&2\necho '77;testcluster'\n");
  auto r = submit();
  CHECK(r.status == 0);
  CHECK(r.out == fmt::format("shard_test: wrote {}: 2 tasks of 2 (array 0-1), task I runs shard I/2; logs in {}.slurm\n"
                             "submitted array job 77; when it is done: flowlab merge {} {}.trials\n",
                             script, out, out, out));
  CHECK(r.err == "sbatch: warning: a warning of sbatch\n");
  std::stringstream args;
  args << std::ifstream(s.file("sbatch_args")).rdbuf();
  CHECK(args.str() == "--parsable " + script + "\n");

  fake_sbatch("echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\nexit 1\n");
  r = submit();
  CHECK(r.status == 1);
  CHECK(r.err == fmt::format("flowlab: error: sbatch {} failed: sbatch: error: Batch job submission failed: Invalid "
                             "partition name specified\n", script));
  fake_sbatch("exit 0\n");
  r = submit();
  CHECK(r.status == 1);
  CHECK(r.err == fmt::format("flowlab: error: sbatch {} printed no job id: no output\n", script));
}

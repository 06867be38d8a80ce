// Full disks and write errors end cleanly (issue 30, part 3): a run whose disk fills up, while a worker writes a
// checkpoint or its result or while the runner writes the experiment file, exits 1 with one message that names the
// file and the errno and says how to resume; nothing crashes; the finished trials stay in their files; and
// `--resume` after space is freed gives the same data, bit for bit, as an uninterrupted run.
// Two ways to fill the disk: FLOWLAB_TEST_FAIL_WRITE (files.hpp: flowlab's own write helper fails the writes of one
// file), which always runs, and a real 2 MB tmpfs where this process may mount one (root in a container that allows
// it; the test SKIPs elsewhere).
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>
#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "flowlab/config.hpp"
#include "flowlab/files.hpp"
#include "flowlab/results.hpp"
#include "flowlab/trial_files.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
namespace fs = std::filesystem;
using flowlab::trial_file_path;

namespace {

const char* const kIds[] = {"seed=0", "seed=1", "seed=2"};

std::string write_experiment(const flowlab::test::ScratchDir& s) {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: fulldisk_test\noutput: " << s.file("unused.h5") << R"(
devices: [cpu]
workers_per_device: 1
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: 20, batch_size: 32, log_every: 5, checkpoint_every: 10}
eval: {samples: 64, solvers: [{solver: euler, steps: [2]}], metrics: [frechet]}
sweep:
  seeds: [0, 1, 2]
)";
  return path;
}

flowlab::test::CommandResult flowlab_run(const std::string& env, const std::string& args) {
  return flowlab::test::run_command(env + " FLOWLAB_PLUGIN_PATH= " + FLOWLAB_CLI + " run --merge-every 0 " + args);
}

std::string last_line(const std::string& text) {
  const auto end = text.size() > 1 ? text.rfind('\n', text.size() - 2) : std::string::npos;
  return end == std::string::npos ? text : text.substr(end + 1);
}

/// Every dataset under `group` of `file` that is not a compound table (those hold timings), as raw bytes.
std::map<std::string, std::string> dataset_bytes(const std::string& file, const std::string& group) {
  std::map<std::string, std::string> out;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  const hid_t g = H5Gopen2(f, group.c_str(), H5P_DEFAULT);
  REQUIRE(g >= 0);
  auto visit = [](hid_t obj, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type != H5O_TYPE_DATASET) return 0;
    const hid_t d = H5Dopen2(obj, name, H5P_DEFAULT);
    const hid_t t = H5Dget_type(d);
    if (H5Tget_class(t) != H5T_COMPOUND) {
      std::string bytes(H5Dget_storage_size(d), '\0');
      if (!bytes.empty()) H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data());
      (*static_cast<std::map<std::string, std::string>*>(data))[name] = bytes;
    }
    H5Tclose(t), H5Dclose(d);
    return 0;
  };
#if H5_VERSION_GE(1, 12, 0)
  H5Ovisit3(g, H5_INDEX_NAME, H5_ITER_INC, visit, &out, H5O_INFO_BASIC);
#else
  H5Ovisit2(g, H5_INDEX_NAME, H5_ITER_INC, visit, &out, H5O_INFO_BASIC);
#endif
  H5Gclose(g), H5Fclose(f);
  return out;
}

hsize_t trial_groups(const std::string& file) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  H5G_info_t info{};
  const hid_t g = H5Gopen2(f, "trials", H5P_DEFAULT);
  H5Gget_info(g, &info);
  H5Gclose(g), H5Fclose(f);
  return info.nlinks;
}

std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> tmp;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".tmp") tmp.push_back(it->path().string());
  return tmp;
}

/// An uninterrupted run of the experiment into `ref`: what every recovery must equal.
void reference_run(const std::string& exp, const std::string& ref) {
  const auto r = flowlab_run("", "--out " + ref + " " + exp);
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
}

/// --resume with space again: every trial completes and holds exactly the reference's data.
void check_recovery(const std::string& exp, const std::string& out, const std::string& ref) {
  const auto r = flowlab_run("", "--out " + out + " --resume " + exp);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());
  CHECK(last_line(r.out) == "3 trials: 3 completed\n");
  CHECK(trial_groups(out) == 3);
  for (const char* id : kIds) {
    INFO(id);
    CHECK(flowlab::test::attr(out, std::string("trials/") + id, "status") == "completed");
    const auto got = dataset_bytes(out, std::string("trials/") + id);
    CHECK(got.size() >= 5);  // train/*, samples, rows, weights
    CHECK(got == dataset_bytes(ref, std::string("trials/") + id));
  }
  for (const char* col : {"final_loss", "frechet@euler:steps=2"})
    CHECK(flowlab::test::table_column(out, "summary", col) == flowlab::test::table_column(ref, "summary", col));
  CHECK(temporaries(out + ".trials").empty());
}

std::string advice(const std::string& exp, const std::string& out, const std::string& kept) {
  return kept + "; free space and run: flowlab run " + exp + " --out " + out + " --resume\n";
}

}  // namespace

TEST_CASE("full disk while a worker writes its result: exit 1, the file and ENOSPC named, --resume recovers",
          "[fulldisk][runner]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_result");
  const std::string exp = write_experiment(s), out = s.file("out.h5"), ref = s.file("ref.h5");
  reference_run(exp, ref);
  const std::string second = trial_file_path(out, "seed=1");
  const std::string suffix = fs::path(second).filename().string();
  const auto r = flowlab_run("FLOWLAB_TEST_FAIL_WRITE=/" + suffix + ":ENOSPC", "--out " + out + " " + exp);
  INFO(r.out);
  CHECK(r.status == 1);  // not a crash (-1) and not a signal's 128+N
  CHECK(r.err == "flowlab: error: No space left on device (ENOSPC) writing " + second + "; " +
                     advice(exp, out, "the 1 finished trial is kept in " + out + ".trials/"));
  CHECK_THAT(r.out, ContainsSubstring("\n[cpu] stopped seed=1 at step "));
  CHECK_THAT(r.out, ContainsSubstring(" s): No space left on device (ENOSPC) writing " + second + "\n"));
  CHECK_THAT(r.out, ContainsSubstring("\n0      completed  seed=0\n1      not run    seed=1\n2      not run    seed=2\n"));
  CHECK(last_line(r.out) == "3 trials: 1 completed, 2 not run\n");
  // Kept: seed=0's file, and the experiment file that holds it; seed=1 is not recorded as failed (nor lost).
  CHECK(flowlab::trial_file_status(trial_file_path(out, "seed=0")) == std::optional<std::string>("completed"));
  CHECK_FALSE(fs::exists(second));
  CHECK(trial_groups(out) == 1);
  CHECK(temporaries(out + ".trials").empty());
  check_recovery(exp, out, ref);
  // The run's own log on a full disk (/dev/full: every write fails with ENOSPC): the run goes on, then says so.
  const auto log = flowlab_run("", "--out " + out + " --resume " + exp + " >/dev/full");
  CHECK(log.status == 1);
  CHECK(log.err == "flowlab: error: No space left on device (ENOSPC) writing the run's log (its standard output); the "
                   "run went on: its results are in " + out + "\n");
  CHECK(trial_groups(out) == 3);
}

TEST_CASE("EIO while a worker writes its checkpoint: the checkpoint named, no LibTorch abort, --resume recovers",
          "[fulldisk][runner]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_ckpt");
  const std::string exp = write_experiment(s), out = s.file("out.h5"), ref = s.file("ref.h5");
  reference_run(exp, ref);
  const auto ex = flowlab::load_experiment(exp, flowlab::test::registry());
  const std::string ckpt =
      flowlab::checkpoint_path(out, "seed=0", flowlab::config_hash(ex.trials.at(0).resolved_yaml));
  const auto r = flowlab_run("FLOWLAB_TEST_FAIL_WRITE=.ckpt:EIO", "--out " + out + " " + exp);
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: Input/output error (EIO) writing " + ckpt + "; " +
                     advice(exp, out, "no trial had finished"));
  CHECK_THAT(r.out, ContainsSubstring(" s): Input/output error (EIO) writing " + ckpt + "\n"));
  CHECK(r.out.find("PyTorchStreamWriter") == std::string::npos);
  CHECK(last_line(r.out) == "3 trials: 3 not run\n");
  CHECK_FALSE(fs::exists(trial_file_path(out, "seed=0")));
  CHECK_FALSE(fs::exists(ckpt));
  CHECK(temporaries(out + ".trials").empty());
  check_recovery(exp, out, ref);
}

TEST_CASE("full disk while the runner writes the experiment file: the good file untouched, trials kept, --resume "
          "rebuilds it", "[fulldisk][runner]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_merge");
  const std::string exp = write_experiment(s), out = s.file("out.h5"), ref = s.file("ref.h5");
  reference_run(exp, ref);
  // The runner writes out.h5 at the start and after each trial (--merge-every 0): the third write fails.
  const auto r = flowlab_run("FLOWLAB_TEST_FAIL_WRITE=/out.h5:ENOSPC:2", "--out " + out + " " + exp);
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: No space left on device (ENOSPC) writing " + out + "; " +
                     advice(exp, out, "the 2 finished trials are kept in " + out + ".trials/"));
  CHECK_THAT(r.out, ContainsSubstring("\nNo space left on device (ENOSPC) writing " + out + "\n"));
  CHECK(last_line(r.out) == "3 trials: 2 completed, 1 not run\n");
  for (const char* id : {"seed=0", "seed=1"})
    CHECK(flowlab::trial_file_status(trial_file_path(out, id)) == std::optional<std::string>("completed"));
  CHECK(trial_groups(out) == 1);  // the last good file, as it was
  CHECK_FALSE(fs::exists(out + ".tmp"));
  CHECK(temporaries(out + ".trials").empty());
  check_recovery(exp, out, ref);
}

TEST_CASE("full disk during flowlab merge: exit 1, the file and ENOSPC named, nothing written", "[fulldisk][merge]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_mergecmd");
  const std::string exp = write_experiment(s), ref = s.file("ref.h5"), merged = s.file("merged.h5");
  reference_run(exp, ref);
  const std::string merge = std::string(FLOWLAB_CLI) + " merge " + merged + " " + ref + ".trials";
  const auto r = flowlab::test::run_command("FLOWLAB_TEST_FAIL_WRITE=/merged.h5:ENOSPC FLOWLAB_PLUGIN_PATH= " + merge);
  CHECK(r.status == 1);
  CHECK(r.err == "flowlab: error: No space left on device (ENOSPC) writing " + merged + "; nothing was written to " +
                     merged + " and the trial files are untouched: free space and run this merge again\n");
  CHECK_FALSE(fs::exists(merged));
  CHECK(temporaries(s.dir.string()).empty());
  const auto again = flowlab::test::run_command("FLOWLAB_PLUGIN_PATH= " + merge);
  INFO(again.out << again.err);
  CHECK(again.status == 0);
  for (const char* id : kIds)
    CHECK(dataset_bytes(merged, std::string("trials/") + id) == dataset_bytes(ref, std::string("trials/") + id));
}

TEST_CASE("full disk during flowlab plot: exit 1 with the data file and ENOSPC named, not a gnuplot error",
          "[fulldisk][plot]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_plot");
  const std::string exp = write_experiment(s), ref = s.file("ref.h5"), plots = s.file("plots");
  reference_run(exp, ref);
  const std::string plot = std::string(FLOWLAB_CLI) + " plot " + ref + " --out " + plots;
  const auto r = flowlab::test::run_command("FLOWLAB_TEST_FAIL_WRITE=/training.dat:ENOSPC FLOWLAB_PLUGIN_PATH= " + plot);
  CHECK(r.status == 1);
  // The last line: gnuplot may warn on stderr about the plots drawn before (one NFE value: an empty x range).
  CHECK(last_line(r.err) == "flowlab: error: No space left on device (ENOSPC) writing " + plots + "/training.dat\n");
  CHECK_FALSE(fs::exists(plots + "/training.png"));
  const auto script = flowlab::test::run_command("FLOWLAB_TEST_FAIL_WRITE=/training.gp:EIO FLOWLAB_PLUGIN_PATH= " + plot);
  CHECK(script.status == 1);
  CHECK(last_line(script.err) == "flowlab: error: Input/output error (EIO) writing " + plots + "/training.gp\n");
  const auto again = flowlab::test::run_command("FLOWLAB_PLUGIN_PATH= " + plot);
  INFO(again.err);
  CHECK(again.status == 0);
  CHECK(fs::exists(plots + "/training.png"));
}

TEST_CASE("write_file: ENOSPC and EIO name the file, the old file stays, no temporary is left", "[fulldisk]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_unit");
  const std::string path = s.file("a.yaml");
  flowlab::write_file(path, std::string("old\n"));
  ::setenv("FLOWLAB_TEST_FAIL_WRITE", "/a.yaml:ENOSPC", 1);
  const std::string m = flowlab::test::message_of<flowlab::WriteError>([&] { flowlab::write_file(path, std::string("new\n")); });
  ::setenv("FLOWLAB_TEST_FAIL_WRITE", "/a.yaml:EIO", 1);
  const std::string m2 = flowlab::test::message_of<flowlab::WriteError>([&] { flowlab::write_file(path, std::string("new\n")); });
  ::unsetenv("FLOWLAB_TEST_FAIL_WRITE");
  CHECK(m == "No space left on device (ENOSPC) writing " + path);
  CHECK(m2 == "Input/output error (EIO) writing " + path);
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  CHECK(text.str() == "old\n");
  CHECK_FALSE(fs::exists(path + ".tmp"));
  flowlab::write_file(path, std::string("new\n"));
  text.str("");
  text << std::ifstream(path).rdbuf();
  CHECK(text.str() == "new\n");
}

TEST_CASE("a real full disk: --out on a 2 MB tmpfs exits 1 naming the file and ENOSPC, --resume recovers once it "
          "grows", "[fulldisk][runner][tmpfs]") {
  const flowlab::test::ScratchDir s("flowlab_fulldisk_tmpfs");
  const std::string exp = write_experiment(s), ref = s.file("ref.h5"), mnt = s.file("small");
  reference_run(exp, ref);
  fs::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=2m") != 0)
    SKIP("cannot mount a tmpfs here (" << std::strerror(errno) << "; it needs root where mounts are allowed): the "
         "FLOWLAB_TEST_FAIL_WRITE tests cover the same write paths");
  struct Unmount {
    std::string dir;
    ~Unmount() { ::umount2(dir.c_str(), MNT_DETACH); }
  } unmount{mnt};
  // Leave room for 4.5 trial files: the first trial, its checkpoints and merges fit, a later write does not (with
  // 3.0 the first checkpoint fails, with 7.0 the last merge).
  const std::string out = mnt + "/out.h5";
  const auto trial_size = fs::file_size(trial_file_path(ref, "seed=0"));
  {
    const auto free_now = fs::space(mnt).available;
    REQUIRE(free_now > 5 * trial_size);
    std::ofstream filler(mnt + "/filler", std::ios::binary);
    filler << std::string(free_now - 9 * trial_size / 2, 'x');
    REQUIRE(filler.good());
  }
  const auto r = flowlab_run("", "--out " + out + " " + exp);
  INFO(r.out);
  CHECK(r.status == 1);
  CHECK_THAT(r.err, StartsWith("flowlab: error: No space left on device (ENOSPC) writing " + mnt + "/"));
  CHECK_THAT(r.err, ContainsSubstring("; free space and run: flowlab run " + exp + " --out " + out + " --resume\n"));
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  // Whatever finished is kept, readable and complete; nothing half-written is left behind.
  size_t kept = 0;
  for (const char* id : kIds)
    if (fs::exists(trial_file_path(out, id))) {
      ++kept;
      CHECK(flowlab::trial_file_status(trial_file_path(out, id)) == std::optional<std::string>("completed"));
    }
  CHECK(kept >= 1);
  CHECK_THAT(r.err, ContainsSubstring(kept == 1 ? "; the 1 finished trial is kept in " + out + ".trials/;"
                                                : "; the " + std::to_string(kept) + " finished trials are kept in " + out + ".trials/;"));
  CHECK(temporaries(mnt).empty());
  fs::remove(mnt + "/filler");  // space freed
  check_recovery(exp, out, ref);
}

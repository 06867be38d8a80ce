// Integrity you can check (integrity.hpp): SHA-256 checksums beside trial files, experiment files and checkpoints;
// --resume sets a damaged trial file or checkpoint aside (never deleted) and reruns its trial, with results
// bit-identical to an uninterrupted run's; `flowlab verify` names each damaged file; report, plot and sample on a
// truncated or non-HDF5 file name it and say what it looks like.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <fcntl.h>
#include <fmt/format.h>
#include <hdf5.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "flowlab/integrity.hpp"
#include "flowlab/trial_files.hpp"
#include "h5_support.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

std::string write_experiment(const flowlab::test::ScratchDir& s, int64_t steps, int64_t checkpoint_every) {
  const std::string path = s.file("exp.yaml");
  std::ofstream(path) << "name: integrity_test\noutput: " << s.file("out.h5") << R"(
devices: [cpu]
workers_per_device: 1
data: {dataset: ring_gaussians}
model: {architecture: {name: mlp, params: {width: 16, depth: 1}}}
train: {steps: )" << steps << R"(, batch_size: 32, log_every: 5, checkpoint_every: )" << checkpoint_every << R"(}
eval: {samples: 64, solvers: [{solver: euler, steps: [2]}], metrics: [frechet]}
sweep:
  seeds: [0, 1]
)";
  return path;
}

std::string cli(const std::string& args) { return std::string("FLOWLAB_PLUGIN_PATH= ") + FLOWLAB_CLI + " " + args; }

std::string bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& b) { std::ofstream(path, std::ios::binary) << b; }

/// Flips every bit of the byte in the middle of `path`.
void flip_middle_byte(const std::string& path) {
  std::string b = bytes(path);
  REQUIRE(b.size() > 100);
  b[b.size() / 2] = static_cast<char>(~b[b.size() / 2]);
  write_bytes(path, b);
}

/// Every plain (non-compound) dataset under /trials as its raw bytes, and the summary's final_loss and metric: the
/// numbers of a results file, without the timing columns that differ from run to run.
std::map<std::string, std::string> data_of(const std::string& file) {
  std::map<std::string, std::string> out;
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  REQUIRE(f >= 0);
  auto op = [](hid_t root, const char* name, const H5O_info_t* info, void* data) -> herr_t {
    if (info->type != H5O_TYPE_DATASET) return 0;
    const hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    const hid_t t = H5Dget_type(d), s = H5Dget_space(d);
    if (H5Tget_class(t) != H5T_COMPOUND) {
      std::string buf(size_t(H5Sget_simple_extent_npoints(s)) * H5Tget_size(t), '\0');
      if (!buf.empty()) H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data());
      (*static_cast<std::map<std::string, std::string>*>(data))[name] = buf;
    }
    H5Sclose(s), H5Tclose(t), H5Dclose(d);
    return 0;
  };
  REQUIRE(H5Ovisit(f, H5_INDEX_NAME, H5_ITER_NATIVE, op, &out) >= 0);
  H5Fclose(f);
  for (const char* col : {"final_loss", "frechet@euler:steps=2"}) {
    const auto v = flowlab::test::table_column(file, "summary", col);
    out[std::string("summary:") + col] = std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
  }
  return out;
}

/// Every line of `text` that starts with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  return out;
}

/// Runs `flowlab run EXP` in the background (output to `log`) and returns its pid.
pid_t start_runner(const std::string& args, const std::string& log) {
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, STDOUT_FILENO), ::dup2(fd, STDERR_FILENO);
    ::setenv("FLOWLAB_PLUGIN_PATH", "", 1);
    ::execl(FLOWLAB_CLI, FLOWLAB_CLI, "run", args.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
}

}  // namespace

TEST_CASE("sha256: the FIPS 180-4 test vectors, and a checksum file in sha256sum's format", "[integrity]") {
  CHECK(flowlab::sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(flowlab::sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(flowlab::sha256_hex(two_blocks.data(), two_blocks.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  CHECK(flowlab::sha256_hex(million.data(), million.size()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

  const flowlab::test::ScratchDir s("flowlab_integrity_sha");
  write_bytes(s.file("x.tmp"), "abc");
  flowlab::publish_checksummed(s.file("x.tmp"), s.file("x.bin"));
  CHECK_FALSE(fs::exists(s.file("x.tmp")));
  CHECK(bytes(s.file("x.bin")) == "abc");
  CHECK(bytes(s.file("x.bin.sha256")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  x.bin\n");
  CHECK(flowlab::checksum_problem(s.file("x.bin")) == "");
  write_bytes(s.file("x.bin"), "abd");
  CHECK(flowlab::checksum_problem(s.file("x.bin")) == "is corrupt: its content does not match its checksum in x.bin.sha256");
  CHECK(flowlab::set_aside(s.file("x.bin")) == s.file("x.bin.corrupt-1"));
  CHECK(bytes(s.file("x.bin.corrupt-1")) == "abd");
  CHECK(fs::exists(s.file("x.bin.corrupt-1.sha256")));
  CHECK_FALSE(fs::exists(s.file("x.bin")));
  CHECK_FALSE(fs::exists(s.file("x.bin.sha256")));
  write_bytes(s.file("x.bin"), "again");
  CHECK(flowlab::set_aside(s.file("x.bin")) == s.file("x.bin.corrupt-2"));
}

TEST_CASE("a trial file with a byte flipped: verify names it, --resume sets it aside and reruns its trial, bit-identical",
          "[integrity][runner][resume]") {
  const flowlab::test::ScratchDir s("flowlab_integrity_trial");
  const std::string exp = write_experiment(s, 20, 0), out = s.file("out.h5"), ref = s.file("ref.h5");
  REQUIRE(flowlab::test::run_command(cli("run " + exp + " --out " + ref)).status == 0);
  REQUIRE(flowlab::test::run_command(cli("run " + exp)).status == 0);
  CHECK(fs::exists(out + ".sha256"));
  const std::string tf = flowlab::trial_file_path(out, "seed=1");
  const std::string name = fs::path(tf).filename().string();
  REQUIRE(fs::exists(tf + ".sha256"));
  CHECK(flowlab::test::run_command(cli("verify " + out)).out == out + ": OK (3 files checked)\n");
  flip_middle_byte(tf);
  const std::string damaged = bytes(tf);

  auto v = flowlab::test::run_command(cli("verify " + out));
  CHECK(v.status == 1);
  CHECK(v.out == tf + " (trial seed=1) is corrupt: its content does not match its checksum in " + name + ".sha256\n" +
                     out + ": 1 problem in 3 files checked\n");
  // merge leaves it out and says why.
  const auto m = flowlab::test::run_command(cli("merge " + s.file("merged.h5") + " " + out + ".trials"));
  CHECK(m.status == 1);
  CHECK_THAT(m.out, ContainsSubstring("merge: cannot merge " + tf + ": it is corrupt: its content does not match its "
                                      "checksum in " + name + ".sha256\n"));

  const auto r = flowlab::test::run_command(cli("run --resume " + exp));
  CHECK(r.status == 0);
  CHECK_THAT(r.out, ContainsSubstring(tf + " is corrupt: its content does not match its checksum in " + name +
                                      ".sha256: set aside as " + tf + ".corrupt-1; trial seed=1 runs again\n" +
                                      "integrity_test: 2 trials, 1 to run on 1 slot (cpu)\n"));
  CHECK_THAT(r.out, ContainsSubstring("\n2 trials: 2 completed\n"));
  CHECK(bytes(tf + ".corrupt-1") == damaged);  // kept as it was
  CHECK(fs::exists(tf + ".corrupt-1.sha256"));
  CHECK(data_of(out) == data_of(ref));
  CHECK(data_of(out).size() > 10);
  CHECK(flowlab::test::run_command(cli("verify " + out)).out == out + ": OK (3 files checked)\n");

  // report reads an experiment file that does not match its checksum, but says so first.
  const std::string good = bytes(out);
  flip_middle_byte(out);
  CHECK_THAT(flowlab::test::run_command(cli("report " + out)).err,
             Catch::Matchers::StartsWith("flowlab: warning: " + out + " is corrupt: its content does not match its "
                                         "checksum in out.h5.sha256; check it with: flowlab verify " + out + "\n"));
  // A truncated experiment file of flowlab's (its checksum and .trials beside it) is set aside and rebuilt.
  write_bytes(out, good.substr(0, good.size() / 2));
  const auto again = flowlab::test::run_command(cli("run --resume " + exp));
  CHECK(again.status == 0);
  CHECK_THAT(again.out, ContainsSubstring(fmt::format("{} looks truncated: it has {} bytes, but its HDF5 superblock "
                                                      "says the file ends at byte {}: set aside as {}.corrupt-1; it is "
                                                      "rebuilt from {}.trials\n",
                                                      out, good.size() / 2, good.size(), out, out)));
  CHECK(bytes(out + ".corrupt-1") == good.substr(0, good.size() / 2));
  CHECK(data_of(out) == data_of(ref));
}

TEST_CASE("a truncated, empty or flipped checkpoint: verify names it, --resume sets it aside and retrains, bit-identical",
          "[integrity][runner][resume]") {
  const flowlab::test::ScratchDir s("flowlab_integrity_ckpt");
  const std::string exp = write_experiment(s, 3000, 50), out = s.file("out.h5"), ref = s.file("ref.h5");
  REQUIRE(flowlab::test::run_command(cli("run " + exp + " --out " + ref)).status == 0);
  // An interrupted run: seed=0 finished, seed=1 stopped by SIGINT after its first checkpoint.
  const std::string trials = out + ".trials", first = flowlab::trial_file_path(out, "seed=0");
  const std::string stem = flowlab::trial_file_stem("seed=1");
  const pid_t pid = start_runner(exp, s.file("run.log"));
  std::string ckpt;
  for (int i = 0; i < 6000 && ckpt.empty(); ++i) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(trials, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(stem, 0) == 0 && n.size() > 5 && n.compare(n.size() - 5, 5, ".ckpt") == 0 && fs::exists(first))
        ckpt = e.path().string();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE_FALSE(ckpt.empty());
  ::kill(pid, SIGINT);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  REQUIRE(WIFEXITED(wstatus));
  REQUIRE(WEXITSTATUS(wstatus) == 130);
  REQUIRE(fs::exists(ckpt));
  REQUIRE(fs::exists(ckpt + ".sha256"));
  const std::string good = bytes(ckpt), good_sum = bytes(ckpt + ".sha256");
  const std::string tf = flowlab::trial_file_path(out, "seed=1");
  REQUIRE_FALSE(fs::exists(tf));

  struct Case {
    const char* what;
    std::string content;
    bool with_checksum;
    std::string problem;
  };
  std::string flipped = good;
  flipped[flipped.size() / 2] = static_cast<char>(~flipped[flipped.size() / 2]);
  const std::vector<Case> cases = {
      {"truncated", good.substr(0, good.size() / 2), false,
       "is corrupt: LibTorch cannot read it: PytorchStreamReader failed reading zip archive: failed finding central "
       "directory"},
      {"empty", "", true, "is empty (0 bytes)"},
      {"flipped", flipped, true,
       "is corrupt: its content does not match its checksum in " + fs::path(ckpt).filename().string() + ".sha256"},
  };
  int n = 0;
  for (const auto& c : cases) {
    ++n;
    INFO(c.what);
    // The state of the interrupted run, with the checkpoint damaged.
    flowlab::remove_checksummed(tf);
    write_bytes(ckpt, c.content);
    if (c.with_checksum) write_bytes(ckpt + ".sha256", good_sum);
    else fs::remove(ckpt + ".sha256");
    const auto v = flowlab::test::run_command(cli("verify " + out));
    CHECK(v.status == 1);
    const auto found = lines_starting(v.out, ckpt);
    REQUIRE(found.size() == 1);
    CHECK(found[0] == ckpt + " (trial seed=1) " + c.problem);

    const auto r = flowlab::test::run_command(cli("run --resume " + exp));
    CHECK(r.status == 0);
    const std::string aside = ckpt + ".corrupt-" + std::to_string(n);
    CHECK_THAT(r.out, ContainsSubstring("\n" + ckpt + " " + c.problem + ": set aside as " + aside +
                                        "; trial seed=1 starts over\n"));
    CHECK(r.out.find("resumes from its checkpoint") == std::string::npos);
    CHECK_THAT(r.out, ContainsSubstring("\n2 trials: 2 completed\n"));
    CHECK(bytes(aside) == c.content);
    CHECK_FALSE(fs::exists(ckpt));
    CHECK_FALSE(fs::exists(ckpt + ".sha256"));
    CHECK(data_of(out) == data_of(ref));
  }
}

TEST_CASE("report, plot and sample on a truncated or a non-HDF5 file name it and say what it looks like",
          "[integrity][cli]") {
  const flowlab::test::ScratchDir s("flowlab_integrity_damaged");
  const std::string exp = write_experiment(s, 10, 0), out = s.file("out.h5");
  REQUIRE(flowlab::test::run_command(cli("run " + exp)).status == 0);
  const std::string whole = bytes(out);
  const std::string truncated = s.file("truncated.h5"), notes = s.file("notes.h5");
  write_bytes(truncated, whole.substr(0, whole.size() / 2));
  write_bytes(notes, "someone else's notes\n");
  const std::string truncated_msg =
      fmt::format("{} looks truncated: it has {} bytes, but its HDF5 superblock says the file ends at byte {}; check "
                  "it with: flowlab verify {}",
                  truncated, whole.size() / 2, whole.size(), truncated);
  const std::string notes_msg = notes + " is not an HDF5 file (no HDF5 signature): it is not a flowlab results file";
  for (const auto& [file, msg] : {std::pair{truncated, truncated_msg}, std::pair{notes, notes_msg}}) {
    for (const std::string& cmd : {"report " + file, "plot " + file + " --out " + s.file("plots"),
                                   "sample " + file + " --trial seed=0 --steps 2 --out " + s.file("x.csv")}) {
      INFO(cmd);
      const auto r = flowlab::test::run_command(cli(cmd));
      CHECK(r.status == 1);
      CHECK(r.err == "flowlab: error: " + msg + "\n");
    }
  }
  const auto v = flowlab::test::run_command(cli("verify " + truncated));
  CHECK(v.status == 1);
  CHECK(v.out == fmt::format("{} looks truncated: it has {} bytes, but its HDF5 superblock says the file ends at byte "
                             "{}\n{}: 1 problem in 1 file checked\n",
                             truncated, whole.size() / 2, whole.size(), truncated));
}

// Helpers shared by the Catch2 tests: the default registry, exception messages, tensor norms.
#pragma once

#include <catch2/catch_test_macros.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <array>
#include <cstdio>
#include <filesystem>
#include <vector>
#include <fstream>
#include <sstream>
#include <string>

#include "flowlab/registry.hpp"

namespace flowlab::test {

/// The registry over the build's plugin directory, scanned once per test process.
inline const Registry& registry() {
  static const Registry reg;
  return reg;
}

/// The message of the E that f throws; fails the test if it throws nothing.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception");
  return "";
}

/// A directory under the system's temporary directory, named `prefix` + this process's id, created on first use and
/// removed (with everything in it) when the test process exits.
inline std::filesystem::path scratch_dir(const std::string& prefix) {
  struct Owner {
    std::vector<std::filesystem::path> dirs;
    ~Owner() {
      for (const auto& d : dirs) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    }
  };
  static Owner owner;
  const auto d = std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()));
  if (std::find(owner.dirs.begin(), owner.dirs.end(), d) == owner.dirs.end()) owner.dirs.push_back(d);
  std::filesystem::create_directories(d);
  return d;
}

/// A fresh directory under the system's temporary directory (`name` + this process's id), removed with everything
/// in it when the object goes.
struct ScratchDir {
  std::filesystem::path dir;
  explicit ScratchDir(const std::string& name)
      : dir(std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  std::string file(const std::string& name) const { return (dir / name).string(); }
};

/// What a shell command printed and how it exited.
struct CommandResult {
  int status;  ///< exit status, or -1 if it did not exit normally
  std::string out, err;
};

/// Runs `command` through the shell, capturing stdout and stderr separately.
inline CommandResult run_command(const std::string& command) {
  static int calls = 0;
  const std::string err_file =
      "/tmp/flowlab_test_stderr." + std::to_string(::getpid()) + "." + std::to_string(calls++) + ".txt";
  CommandResult r;
  FILE* p = ::popen((command + " 2>" + err_file).c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::stringstream ss;
  ss << std::ifstream(err_file).rdbuf();
  r.err = ss.str();
  std::remove(err_file.c_str());
  return r;
}

/// max |a| over all elements.
inline double max_abs(const at::Tensor& a) { return a.abs().max().item<double>(); }

/// The largest |a - b| over all entries.
inline double max_error(const at::Tensor& a, const at::Tensor& b) { return max_abs(a - b); }

/// Least-squares slope of log(err) against log(h): the measured order of convergence.
inline double slope(const std::vector<double>& h, const std::vector<double>& err) {
  double mx = 0, my = 0;
  for (size_t i = 0; i < h.size(); ++i) mx += std::log(h[i]), my += std::log(err[i]);
  mx /= double(h.size()), my /= double(h.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < h.size(); ++i) {
    num += (std::log(h[i]) - mx) * (std::log(err[i]) - my);
    den += (std::log(h[i]) - mx) * (std::log(h[i]) - mx);
  }
  return num / den;
}

}  // namespace flowlab::test

// Test architectures for the runner's fault isolation: one segfaults, one throws, one returns NaN, one hangs,
// one crashes its process at exit (after the worker wrote its result).
#include <dlfcn.h>

#include <chrono>
#include <csignal>
#include <stdexcept>
#include <thread>

#include "flowlab/architecture.hpp"

namespace {

/// A linear layer so the optimiser has parameters; forward() misbehaves as each subclass says.
class FaultyBase : public flowlab::Architecture {
 public:
  void build(const flowlab::ArchitectureSpec&) override { w_ = register_parameter("w", at::zeros({1})); }

 protected:
  at::Tensor w_;
};

class CrashArchitecture final : public FaultyBase {
 public:
  explicit CrashArchitecture(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor&, const flowlab::Tensor&, const flowlab::Condition&) override {
    std::raise(SIGSEGV);  // what a null dereference inside a plugin does to its process
    return {};
  }
};

class ThrowArchitecture final : public FaultyBase {
 public:
  explicit ThrowArchitecture(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor&, const flowlab::Tensor&, const flowlab::Condition&) override {
    throw std::runtime_error("test_throw: forward is broken on purpose");
  }
};

class NanArchitecture final : public FaultyBase {
 public:
  explicit NanArchitecture(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor& x, const flowlab::Tensor&, const flowlab::Condition&) override {
    return x * w_ + NAN;
  }
};

/// Trains normally for kHangAfter steps (one forward call per training step), then sleeps forever inside forward,
/// as a plugin stuck in a system call or a deadlock does: it never reaches the point where a stop request is seen.
class HangArchitecture final : public FaultyBase {
 public:
  static constexpr int kHangAfter = 11;  ///< steps 0..10 finish, so steps 0, 5 and 10 are logged (log_every: 5)
  explicit HangArchitecture(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor& x, const flowlab::Tensor&, const flowlab::Condition&) override {
    if (calls_++ >= kHangAfter)
      for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
    return x * w_;
  }

 private:
  int calls_ = 0;
};

/// Set once a CrashAtExitArchitecture has trained: the process then dies of SIGSEGV while exiting.
bool g_crash_at_exit = false;
struct CrashAtExit {
  ~CrashAtExit() {
    if (g_crash_at_exit) std::raise(SIGSEGV);
  }
} g_crash_at_exit_guard;

/// Trains normally; its worker writes a `completed` result and then dies at exit, as a worker killed between
/// writing its result and exiting does.
class CrashAtExitArchitecture final : public FaultyBase {
 public:
  explicit CrashAtExitArchitecture(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor& x, const flowlab::Tensor&, const flowlab::Condition&) override {
    if (!g_crash_at_exit) {  // only ever called in the worker that trains it
      g_crash_at_exit = true;
      // Keep this library loaded until the process exits (the registry unloads a plugin with its last object), so
      // that the guard's destructor runs at exit, after the result was written.
      Dl_info self;
      if (::dladdr(&g_crash_at_exit, &self) && self.dli_fname) ::dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE);
    }
    return x * w_;
  }
};

}  // namespace

FLOWLAB_PLUGIN(architecture, test_crash_at_exit, CrashAtExitArchitecture, "1.0.0", "dies of SIGSEGV at exit")
FLOWLAB_PLUGIN(architecture, test_hang, HangArchitecture, "1.0.0", "hangs in forward after 11 steps")
FLOWLAB_PLUGIN(architecture, test_crash, CrashArchitecture, "1.0.0", "raises SIGSEGV in forward")
FLOWLAB_PLUGIN(architecture, test_throw, ThrowArchitecture, "1.0.0", "throws in forward")
FLOWLAB_PLUGIN(architecture, test_nan, NanArchitecture, "1.0.0", "returns NaN")

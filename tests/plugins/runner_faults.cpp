// Test architectures for the runner's fault isolation: one segfaults, one throws, one returns NaN.
#include <csignal>
#include <stdexcept>

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

}  // namespace

FLOWLAB_PLUGIN(architecture, test_crash, CrashArchitecture, "1.0.0", "raises SIGSEGV in forward")
FLOWLAB_PLUGIN(architecture, test_throw, ThrowArchitecture, "1.0.0", "throws in forward")
FLOWLAB_PLUGIN(architecture, test_nan, NanArchitecture, "1.0.0", "returns NaN")

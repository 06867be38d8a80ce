// Test plugins for the evaluation tests: a time sampler that returns exactly 0 and 1, and fields with known
// straightness (a constant field, whose trajectories are straight, and a rotation, whose are circular arcs).
#include "flowlab/architecture.hpp"
#include "flowlab/time_sampler.hpp"

namespace {

/// Alternates t = 0 and t = 1 exactly: the ends where singular paths are undefined.
class EndsSampler final : public flowlab::TimeSampler {
 public:
  explicit EndsSampler(const flowlab::Params&) {}
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    return at::arange(n, o.dtype(at::kLong)).remainder(2).to(o.dtype());
  }
  double cdf(double t) const override { return t < 1 ? 0.5 : 1.0; }
};

/// A parameter so the optimiser has something to hold; the field ignores it (0 * w keeps it in the graph).
class ProbeBase : public flowlab::Architecture {
 public:
  void build(const flowlab::ArchitectureSpec&) override { w_ = register_parameter("w", at::zeros({1})); }

 protected:
  at::Tensor w_;
};

/// v(x, t) = (1, 2): every trajectory is a straight line.
class ConstantField final : public ProbeBase {
 public:
  explicit ConstantField(const flowlab::Params&) {}
  flowlab::Tensor forward(const flowlab::Tensor& x, const flowlab::Tensor&, const flowlab::Condition&) override {
    return at::tensor({1.0, 2.0}, x.options()).expand_as(x) + 0 * w_;
  }
};

/// v(x, t) = omega J x with J the rotation by 90 degrees: x(t) = R(omega t) x0, a circular arc.
class RotationField final : public ProbeBase {
 public:
  explicit RotationField(const flowlab::Params& p) : omega_(p.real("omega")) {}
  flowlab::Tensor forward(const flowlab::Tensor& x, const flowlab::Tensor&, const flowlab::Condition&) override {
    return omega_ * at::stack({-x.select(1, 1), x.select(1, 0)}, 1) + 0 * w_;
  }

 private:
  double omega_;
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, test_ends, EndsSampler, "1.0.0", "exactly 0 and 1, alternating")
FLOWLAB_PLUGIN(architecture, test_constant, ConstantField, "1.0.0", "v = (1, 2) everywhere")
FLOWLAB_PLUGIN(architecture, test_rotation, RotationField, "1.0.0", "v = omega J x (2D rotation)",
               FLOWLAB_PARAM(omega, float, "1.0", "angular speed"))

// Test plugins: two in one library, with every parameter type, for the registry and CLI tests.
#include "flowlab/noise.hpp"
#include "flowlab/solver.hpp"

namespace {

/// A noise that fills with a constant, echoing its parameters so tests can check resolution.
class ConstNoise final : public flowlab::Noise {
 public:
  explicit ConstNoise(const flowlab::Params& p)
      : value_(p.real("value")), count_(p.integer("count")), flag_(p.boolean("flag")), mode_(p.str("mode")),
        label_(p.str("label")), sizes_(p.int_list("sizes")), weights_(p.float_list("weights")) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override {
    return at::full(shape, value_ * static_cast<double>(count_), o);
  }
  double value_;
  int64_t count_;
  bool flag_;
  std::string mode_, label_;
  std::vector<int64_t> sizes_;
  std::vector<double> weights_;
};

/// A solver that returns 2 * x0 after one field evaluation.
class DoubleSolver final : public flowlab::Solver {
 public:
  explicit DoubleSolver(const flowlab::Params&) : Solver("solver/test_double") {}

 protected:
  void integrate(const flowlab::Tensor& x0, flowlab::Field& field, const flowlab::SampleOptions&,
                 flowlab::SampleResult& out) const override {
    field(x0, 0.0);
    out.x = 2 * x0;
  }
};

}  // namespace

FLOWLAB_PLUGIN(noise, test_const, ConstNoise, "0.3.1", "constant noise for tests",
               FLOWLAB_PARAM(value, float, "1.5", "the constant")
               FLOWLAB_PARAM(count, int, "2", "a multiplier")
               FLOWLAB_PARAM(flag, bool, "false", "a flag")
               FLOWLAB_PARAM(mode, enum(fast|slow), "fast", "a choice")
               FLOWLAB_PARAM(label, string, "hello", "a string")
               FLOWLAB_PARAM(sizes, int_list, "1,2,2", "a list of ints")
               FLOWLAB_PARAM(weights, float_list, "0.5, 0.25", "a list of floats"))
FLOWLAB_PLUGIN(solver, test_double, DoubleSolver, "2.0.0", "doubles x0 for tests")

// Polynomial convex schedule (Meta flow_matching's PolynomialConvexScheduler): alpha = t^n, sigma = 1 - t^n.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/path.hpp"

namespace {

using flowlab::Tensor;

/// Options of path/polynomial.
struct PolynomialOptions {
  double n;  ///< exponent, > 0
  explicit PolynomialOptions(const flowlab::Params& p) : n(p.real("n")) {
    if (!(n > 0)) throw flowlab::ParamError(p.owner(), "n", fmt::format("must be > 0, got {}", n));
  }
};

class PolynomialPath final : public flowlab::AffinePath {
 public:
  explicit PolynomialPath(const flowlab::Params& p) : opt_(p) {}
  flowlab::TimeDomain domain() const override { return {opt_.n < 1, false}; }  // t^(n-1) at t = 0
  flowlab::Schedule schedule(const Tensor& t) const override {
    const Tensor alpha = at::pow(t, opt_.n);
    const Tensor d_alpha = opt_.n * at::pow(t, opt_.n - 1);
    return {alpha, 1 - alpha, d_alpha, -d_alpha};
  }

 private:
  PolynomialOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(path, polynomial, PolynomialPath, "1.1.0", "polynomial: alpha = t^n, sigma = 1 - t^n",
               FLOWLAB_PARAM(n, float, "2", "exponent n > 0"))

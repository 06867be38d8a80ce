// 2-Rectified Flow++'s U-shaped time distribution (Lee, Lin & Fanti 2024, "Improving the Training of Rectified Flows",
// arXiv 2405.20320; its code sangyun884/rfpp t_dist.py): the even mixture of p_a(t) = a e^{a t} / (e^a - 1) and
// p_a(1 - t), i.e. density a cosh(a (t - 1/2)) / (2 sinh(a / 2)) on [0, 1], which puts more training at both ends,
// where the 2-rectified flow's velocity is hardest to learn. Their commands use a = 4.
// CDF: (sinh(a (t - 1/2)) + sinh(a / 2)) / (2 sinh(a / 2)); drawn by inverting it: t = 1/2 + asinh((2u - 1) sinh(a/2))
// / a. The density is symmetric in t -> 1 - t, so the paper's data-at-0 convention needs no mapping.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/time_sampler.hpp"

namespace {

class UShapedTimeSampler final : public flowlab::TimeSampler {
 public:
  explicit UShapedTimeSampler(const flowlab::Params& p) : a_(p.real("a")) {
    if (!(a_ > 0 && a_ <= 50)) throw flowlab::ParamError(p.owner(), "a", fmt::format("must be in (0, 50], got {}", a_));
  }
  flowlab::Tensor sample(int64_t n, const at::TensorOptions& o) const override {
    const auto d = o.dtype(at::kDouble);
    const flowlab::Tensor u = at::rand({n}, d);
    return (0.5 + at::asinh((2 * u - 1) * std::sinh(a_ / 2)) / a_).clamp(0, 1).to(o.dtype());
  }
  double cdf(double t) const override {
    if (t <= 0) return 0;
    if (t >= 1) return 1;
    return (std::sinh(a_ * (t - 0.5)) + std::sinh(a_ / 2)) / (2 * std::sinh(a_ / 2));
  }

 private:
  double a_;
};

}  // namespace

FLOWLAB_PLUGIN(time_sampler, u_shaped, UShapedTimeSampler, "1.0.0",
               "2-RF++'s U-shaped t: density proportional to cosh(a (t - 1/2))",
               FLOWLAB_PARAM(a, float, "4", "how strongly the ends are favoured (> 0; 2-RF++ uses 4)"))

// The quantiles of the logit-normal distribution (SD3's training-time density, Esser et al. 2024, eq. 19):
// t_i = sigmoid(m + s Phi^-1(i / N)), so that each step holds the same share of the training times drawn by
// time_sampler/logit_normal with the same m and s. Phi^-1(p) = sqrt(2) erfinv(2p - 1); t_0 = 0 and t_N = 1.
#include <fmt/format.h>

#include <cmath>

#include <ATen/ATen.h>

#include "flowlab/time_grid.hpp"

namespace {

class LogitNormalGrid final : public flowlab::TimeGrid {
 public:
  explicit LogitNormalGrid(const flowlab::Params& p) : TimeGrid(p.owner()), m_(p.real("m")), s_(p.real("s")) {
    if (!(s_ > 0)) throw flowlab::ParamError(p.owner(), "s", fmt::format("must be > 0, got {}", s_));
  }

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path*) const override {
    const at::Tensor p = at::arange(1, n, at::kDouble) / double(n);
    const at::Tensor q = at::sigmoid(m_ + s_ * std::sqrt(2.0) * at::erfinv(2 * p - 1)).contiguous();
    std::vector<double> t(static_cast<size_t>(n) + 1);
    for (int64_t i = 1; i < n; ++i) t[static_cast<size_t>(i)] = q[i - 1].item<double>();
    t.front() = 0.0;
    t.back() = 1.0;
    return t;
  }

 private:
  double m_, s_;
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, logit_normal, LogitNormalGrid, "1.0.0", "quantiles of sigmoid(m + s z), z ~ N(0, 1)",
               FLOWLAB_PARAM(m, float, "0", "location in logit space")
                   FLOWLAB_PARAM(s, float, "1", "scale in logit space, > 0"))

// EDM's rho grid (Karras et al. 2022, arXiv 2206.00364, eq. 5): noise levels
//   sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,  i = 0 .. N-1,
// then sigma_N = 0, mapped to flowlab's t through the trial's affine path: t_i is where sigma_t / alpha_t = sigma_i
// (on the rectified path t = 1 / (1 + sigma), as Meta flow_matching's get_time_discretization). flowlab starts from
// pure noise, so t_0 = 0 takes the place of t(sigma_max) (1/81 on the rectified path with sigma_max = 80); N = 1 is
// the single step [0, 1].
#include <fmt/format.h>

#include <cmath>

#include "flowlab/time_grid.hpp"

namespace {

/// Options of time_grid/edm.
struct EdmOptions {
  double rho, sigma_min, sigma_max;
  explicit EdmOptions(const flowlab::Params& p)
      : rho(p.real("rho")), sigma_min(p.real("sigma_min")), sigma_max(p.real("sigma_max")) {
    if (!(rho > 0)) throw flowlab::ParamError(p.owner(), "rho", fmt::format("must be > 0, got {}", rho));
    if (!(sigma_min > 0))
      throw flowlab::ParamError(p.owner(), "sigma_min", fmt::format("must be > 0, got {}", sigma_min));
    if (!(sigma_max > sigma_min) || !std::isfinite(sigma_max))
      throw flowlab::ParamError(p.owner(), "sigma_max",
                                fmt::format("must be finite and > sigma_min ({}), got {}", sigma_min, sigma_max));
  }
};

class EdmGrid final : public flowlab::TimeGrid {
 public:
  explicit EdmGrid(const flowlab::Params& p) : TimeGrid(p.owner()), opt_(p) {}

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path* path) const override {
    std::vector<double> t(static_cast<size_t>(n) + 1);
    const double hi = std::pow(opt_.sigma_max, 1 / opt_.rho), lo = std::pow(opt_.sigma_min, 1 / opt_.rho);
    for (int64_t i = 1; i < n; ++i) {
      const double sigma = std::pow(hi + double(i) / double(n - 1) * (lo - hi), opt_.rho);
      t[static_cast<size_t>(i)] = flowlab::time_at_noise_to_signal(path, sigma, owner());
    }
    if (n == 1) flowlab::noise_to_signal(path, 0.5, owner());  // the same path checks for every N
    t.front() = 0.0;
    t.back() = 1.0;
    return t;
  }

 private:
  EdmOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, edm, EdmGrid, "1.0.0", "EDM's rho grid of noise levels, mapped through the path",
               FLOWLAB_PARAM(rho, float, "7", "the exponent rho (larger: more steps near the data)")
                   FLOWLAB_PARAM(sigma_min, float, "0.002",
                                 "the smallest noise level sigma_t / alpha_t before the last step")
                       FLOWLAB_PARAM(sigma_max, float, "80", "the largest noise level, where the first step ends"))

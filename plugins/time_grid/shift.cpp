// The timestep shift of SD3 (Esser et al. 2024, arXiv 2403.03206, sec. 5.3.2) and Flux: on the rectified path, in
// the data-at-0 convention (tau = 1 - t), tau' = s tau / (1 + (s - 1) tau), which multiplies the noise-to-signal
// ratio tau / (1 - tau) by s (Flux's dynamic shift is s = e^mu). flowlab takes it as that ratio: the uniform grid's
// rectified noise levels (1 - u_i) / u_i times s, mapped to t through the trial's affine path (t_i where
// sigma_t / alpha_t = s (1 - u_i) / u_i). On the rectified path t_i = u_i / (u_i + s (1 - u_i)), which is SD3's
// formula; s > 1 spends more steps near the noise, s = 1 is the uniform grid.
#include <fmt/format.h>

#include "flowlab/time_grid.hpp"

namespace {

class ShiftGrid final : public flowlab::TimeGrid {
 public:
  explicit ShiftGrid(const flowlab::Params& p) : TimeGrid(p.owner()), s_(p.real("s")) {
    if (!(s_ > 0)) throw flowlab::ParamError(p.owner(), "s", fmt::format("must be > 0, got {}", s_));
  }

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path* path) const override {
    std::vector<double> t(static_cast<size_t>(n) + 1);
    for (int64_t i = 1; i < n; ++i) {
      const double u = double(i) / double(n);
      t[static_cast<size_t>(i)] = flowlab::time_at_noise_to_signal(path, s_ * (1 - u) / u, owner());
    }
    if (n == 1) flowlab::noise_to_signal(path, 0.5, owner());  // the same path checks for every N
    t.front() = 0.0;
    t.back() = 1.0;
    return t;
  }

 private:
  double s_;
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, shift, ShiftGrid, "1.0.0",
               "SD3's timestep shift s of the noise level, mapped through the path",
               FLOWLAB_PARAM(s, float, "3", "the shift: noise-to-signal ratios times s (SD3 uses 3; 1 is uniform)"))

// The cosine grid t_i = (1 - cos(pi i / N)) / 2: Chebyshev-Gauss-Lobatto points on [0, 1], dense at both ends
// (the noise end, where the field turns towards the modes, and the data end, where it sharpens them).
#include <cmath>

#include "flowlab/time_grid.hpp"

namespace {

class CosineGrid final : public flowlab::TimeGrid {
 public:
  explicit CosineGrid(const flowlab::Params& p) : TimeGrid(p.owner()) {}

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path*) const override {
    std::vector<double> t(static_cast<size_t>(n) + 1);
    for (int64_t i = 0; i <= n; ++i) t[static_cast<size_t>(i)] = 0.5 * (1 - std::cos(M_PI * double(i) / double(n)));
    t.front() = 0.0;
    t.back() = 1.0;
    return t;
  }
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, cosine, CosineGrid, "1.0.0", "t_i = (1 - cos(pi i / N)) / 2, dense at both ends")

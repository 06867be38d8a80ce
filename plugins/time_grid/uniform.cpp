// The uniform grid t_i = i / N: what every fixed-step solver uses without a grid.
#include "flowlab/time_grid.hpp"

namespace {

class UniformGrid final : public flowlab::TimeGrid {
 public:
  explicit UniformGrid(const flowlab::Params& p) : TimeGrid(p.owner()) {}

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path*) const override {
    std::vector<double> t(static_cast<size_t>(n) + 1);
    for (int64_t i = 0; i <= n; ++i) t[static_cast<size_t>(i)] = double(i) / double(n);
    return t;
  }
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, uniform, UniformGrid, "1.0.0", "uniform times t_i = i / N")

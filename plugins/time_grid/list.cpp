// An explicit grid: the times 0 = t_0 < ... < t_N = 1 as given (a tuned grid from flowlab tune-grid, or a published
// one such as Align Your Steps'). Its length fixes N: a run asking for another step count is refused.
#include <fmt/format.h>

#include <cmath>

#include "flowlab/time_grid.hpp"

namespace {

class ListGrid final : public flowlab::TimeGrid {
 public:
  explicit ListGrid(const flowlab::Params& p) : TimeGrid(p.owner()), t_(p.float_list("times")) {
    auto bad = [&p](const std::string& what) { return flowlab::ParamError(p.owner(), "times", what); };
    if (t_.size() < 2) throw bad(fmt::format("needs at least 2 times (0 and 1), got {}", t_.size()));
    for (size_t i = 0; i < t_.size(); ++i)
      if (!(t_[i] >= 0 && t_[i] <= 1)) throw bad(fmt::format("times[{}] = {} is outside [0, 1]", i, t_[i]));
    if (t_.front() != 0.0) throw bad(fmt::format("times[0] = {} must be 0 (the noise)", t_.front()));
    if (t_.back() != 1.0) throw bad(fmt::format("times[{}] = {} must be 1 (the data)", t_.size() - 1, t_.back()));
    for (size_t i = 1; i < t_.size(); ++i)
      if (!(t_[i] > t_[i - 1]))
        throw bad(fmt::format("times[{}] = {} is not above times[{}] = {}: the times must increase strictly", i, t_[i],
                              i - 1, t_[i - 1]));
  }
  /// The step count the list stands for.
  int64_t steps() const { return static_cast<int64_t>(t_.size()) - 1; }

 protected:
  std::vector<double> make(int64_t n, const flowlab::Path*) const override {
    if (n != steps())
      throw flowlab::ParamError(
          owner(), "times",
          fmt::format("has {} times, which is {} steps, but the run asks for {} steps", t_.size(), steps(), n));
    return t_;
  }

 private:
  std::vector<double> t_;
};

}  // namespace

FLOWLAB_PLUGIN(time_grid, list, ListGrid, "1.0.0", "explicit times 0 = t_0 < ... < t_N = 1",
               FLOWLAB_PARAM(times, float_list, "", "the times, from 0 to 1, strictly increasing"))

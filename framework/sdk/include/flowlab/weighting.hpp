// Loss weightings w(t) in E[w(t) |v(x_t, t) - u_t|^2].
#pragma once

#include "flowlab/path.hpp"

namespace flowlab {

class FLOWLAB_API Weighting : public Plugin {
 public:
  /// w(t) for times t [B], shaped [B]. `path` gives the schedule for SNR-based weightings.
  virtual Tensor weight(const Tensor& t, const Path& path) const = 0;
};

namespace kinds {
using weighting = Weighting;
}

}  // namespace flowlab

// Checkerboard (FFJORD): uniform on the 8 dark squares of a 4 x 4 board on [-4, 4]^2. Label: square index 0..7;
// attribute: |x|.
#include "flowlab/dataset.hpp"

namespace {

class Checkerboard final : public flowlab::Dataset {
 public:
  explicit Checkerboard(const flowlab::Params&) {}
  std::vector<int64_t> event_shape() const override { return {2}; }
  int64_t num_classes() const override { return 8; }
  int64_t attr_dim() const override { return 1; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    // column c in 0..3, row r in 0..3 with (r + c) even: pick c and one of the two rows of matching parity.
    const at::Tensor c = at::randint(4, {n}, o.dtype(at::kLong));
    const at::Tensor pair = at::randint(2, {n}, o.dtype(at::kLong));
    const at::Tensor r = 2 * pair + c.remainder(2);
    const at::Tensor x = (c.to(o.dtype()) + at::rand({n}, o)) * 2 - 4;
    const at::Tensor y = (r.to(o.dtype()) + at::rand({n}, o)) * 2 - 4;
    return flowlab::planar_batch(at::stack({x, y}, 1), c * 2 + pair);
  }
};

}  // namespace

FLOWLAB_PLUGIN(dataset, checkerboard, Checkerboard, "1.0.0", "uniform on the dark squares of a 4x4 board on [-4,4]^2")

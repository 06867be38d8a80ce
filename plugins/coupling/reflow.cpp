// Reflow (Liu et al.'s rectified flow): every training pair of rounds >= 1 is (x0, x1_hat), where x1_hat is the
// previous round's EMA model integrated from x0 with reflow.teacher_solver; the mixing schedule does not apply (all
// pairs from the teacher, p = 1). Round 0 has no teacher and trains on independent pairs. The engine draws the
// pairs (they are stored per round); this plugin only says that the coupling needs them.
#include <fmt/format.h>

#include "flowlab/coupling.hpp"

namespace {

class ReflowCoupling final : public flowlab::Coupling {
 public:
  explicit ReflowCoupling(const flowlab::Params& p) : owner_(p.owner()) {}
  flowlab::Pairing pair(const flowlab::Tensor&, const flowlab::Tensor&) const override {
    throw flowlab::Error(
        fmt::format("{}: pairs come from the previous reflow round's model, not from a data batch", owner_));
  }
  bool needs_teacher() const override { return true; }

 private:
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(
    coupling, reflow, ReflowCoupling, "1.0.0",
    "rounds >= 1 train only on (x0, x1_hat) pairs from the previous round's model (needs reflow.rounds >= 1)")

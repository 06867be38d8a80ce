// Few-step sampling with the model's average velocity (models trained by objective/meanflow or objective/shortcut):
// x_{k+1} = x_k + h_k u(x_k, t_k, h_k), h_k = t_{k+1} - t_k, on `steps` uniform steps or a time grid. One network
// call per step, so NFE = steps exactly. MeanFlow's one-step sampler (Geng et al. 2025, eq. 12 with r = 0, t = 1 in
// its time; here x1 = x0 + u(x0, 0, 1)) and the shortcut model's (Frans et al. 2024, sec. 3: x <- x + s(x, t, d) d,
// d = 1/N) are both this loop. Models without a step input are refused by the configuration (Field::jump throws).
#include "flowlab/solver.hpp"

namespace {

using flowlab::Tensor;

class FewStepSolver final : public flowlab::Solver {
 public:
  explicit FewStepSolver(const flowlab::Params& p) : Solver(p.owner()), steps_(p.integer("steps")) {
    if (steps_ <= 0) throw flowlab::ParamError(p.owner(), "steps", "must be > 0, got " + std::to_string(steps_));
  }
  bool uses_step_field() const override { return true; }

 protected:
  void integrate(const Tensor& x0, flowlab::Field& field, const flowlab::SampleOptions& opt,
                 flowlab::SampleResult& out) const override {
    const std::vector<double> grid = flowlab::step_grid(opt, steps_, owner());
    std::vector<Tensor> states;
    if (opt.return_trajectory) states.push_back(x0);
    opt.report(grid[0], x0);
    Tensor x = x0;
    for (size_t i = 0; i + 1 < grid.size(); ++i) {
      const double h = grid[i + 1] - grid[i];
      field.set_step(static_cast<int64_t>(i));
      x = x.add(field.jump(x, grid[i], h), h);
      if (opt.return_trajectory) states.push_back(x);
      opt.report(grid[i + 1], x);
    }
    out.x = x;
    out.accepted_steps = static_cast<int64_t>(grid.size()) - 1;
    if (opt.return_trajectory) {
      out.trajectory = at::stack(states, 1);
      out.times = at::tensor(grid, at::TensorOptions().dtype(at::kDouble));
    }
  }

 private:
  int64_t steps_;
};

}  // namespace

FLOWLAB_PLUGIN(solver, few_step, FewStepSolver, "1.0.0",
               "x <- x + h u(x, t, h) with the model's average velocity (meanflow, shortcut models); 1 NFE per step",
               FLOWLAB_PARAM(steps, int, "1", "number of uniform steps on [0, 1]"))

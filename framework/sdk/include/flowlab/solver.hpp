// ODE solvers for dx/dt = v(x, t) from t0 = 0 (noise) to t1 = 1 (data), and the counted field they see.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "flowlab/plugin.hpp"
#include "flowlab/tensor.hpp"

namespace flowlab {

class Path;

/// The velocity field: x [B, ...] and t [B] give v shaped like x. Solvers pass t as one time broadcast to [B] (a
/// stride-0 view; see shared_time() in architecture.hpp): read it, do not write into it.
using VelocityField = std::function<Tensor(const Tensor& x, const Tensor& t)>;

/// The average velocity of a model with a step input (a few-step objective: objective/meanflow, objective/shortcut):
/// x [B, ...], t [B] and the step d [B] give u(x, t, d), shaped like x, such that x + d u(x, t, d) approximates the
/// flow's state at t + d. Passed like VelocityField's t (one value broadcast to [B]).
using StepField = std::function<Tensor(const Tensor& x, const Tensor& t, const Tensor& d)>;

/// The field as a solver sees it. The framework wraps the user's VelocityField in it, so the NFE is counted
/// here, once, for every solver, and a NaN/Inf output stops the solve with the step and t in the message.
class FLOWLAB_API Field {
 public:
  /// Wraps `v` for the solver named `solver` ("solver/<name>", for messages).
  Field(const VelocityField& v, std::string solver);
  /// v(x, t) with t broadcast to [B]. Throws SolverError when the result holds NaN or Inf.
  Tensor operator()(const Tensor& x, double t);
  /// u(x, t, d), the model's average velocity over [t, t + d] (SampleOptions::step_field), counted as one
  /// evaluation like operator(). Throws SolverError when the model has no step input.
  Tensor jump(const Tensor& x, double t, double d);
  /// The step field jump() evaluates (null: none).
  void set_step_field(const StepField* f) { step_field_ = f; }
  /// Field evaluations so far.
  int64_t nfe() const { return nfe_; }
  /// The step being taken (0-based), for messages.
  void set_step(int64_t step) { step_ = step; }
  /// Off: no NaN/Inf check per evaluation (each is a device-to-host sync, which a CUDA graph capture cannot hold);
  /// the caller checks the result instead.
  void set_check_finite(bool on) { check_finite_ = on; }

 private:
  const VelocityField& v_;
  const StepField* step_field_ = nullptr;
  std::string solver_;
  int64_t nfe_ = 0;
  int64_t step_ = 0;
  bool check_finite_ = true;
};

/// Per-call overrides, as in FlowMatching.sample(return_all_steps, inference_step).
struct SampleOptions {
  std::optional<int64_t> steps;    ///< overrides the solver's `steps` for this call (fixed-step solvers)
  Tensor grid;                     ///< a custom increasing time grid [T+1] (fixed-step solvers)
  bool return_trajectory = false;  ///< also return the states at every grid point / accepted step
  double t0 = 0.0;                 ///< start time (noise)
  double t1 = 1.0;                 ///< end time (data)
  /// The path the field was trained on, for solvers that use its schedule (data-prediction multistep solvers,
  /// which convert the velocity to an x1 prediction through Path::velocity_to_x1). Null when the caller has none;
  /// such a solver then refuses with a SolverError.
  const Path* path = nullptr;
  /// Check every evaluation of the field for NaN/Inf (a host sync each). Off under CUDA graph capture, where the
  /// engine checks the samples instead.
  bool check_finite = true;
  /// Called with every state the method produces: x0 at t0, then the state after each (accepted) step, in order.
  /// The engine builds straightness, speed and stored trajectories on it. Solvers call it through
  /// SampleOptions::report(); time spent in it belongs to the caller.
  std::function<void(double t, const Tensor& x)> on_state;
  /// The seed of a stochastic solver's own random stream (euler_maruyama's Brownian increments): drawn on the CPU
  /// from a generator seeded with it, then moved to x's device, so a seeded solve is bit-for-bit reproducible on
  /// the CPU and does not touch torch's global generators. Unset: torch's default CPU generator. Deterministic
  /// solvers ignore it.
  std::optional<uint64_t> seed;
  /// The model's average velocity u(x, t, d) over a step, for models trained with a step input (few-step
  /// objectives); empty otherwise. Solvers that need it (Solver::uses_step_field) read it through Field::jump.
  StepField step_field;
  /// What `path` is, "path/<name>", for messages; empty when the caller does not know.
  std::string path_name;
  /// The base distribution x0 comes from ("noise/gaussian", "noise/matched", "dataset/moons"), for solvers that
  /// assume one (the score from the velocity assumes x0 ~ N(0, I)); empty when the caller does not know.
  std::string noise_name;
  /// Passes the state x at time t to on_state, when set.
  void report(double t, const Tensor& x) const {
    if (on_state) on_state(t, x);
  }
};

/// What a solve returns: the final state, the optional trajectory and the step counts.
struct SampleResult {
  Tensor x;                    ///< the state at t1, shaped like the initial x
  Tensor trajectory;           ///< [B, T+1, ...] when return_trajectory, including the initial state
  Tensor times;                ///< [T+1] float64, when return_trajectory
  int64_t nfe = 0;             ///< evaluations of the field, counted by the framework
  int64_t accepted_steps = 0;  ///< steps taken (adaptive solvers: accepted ones)
  int64_t rejected_steps = 0;  ///< adaptive solvers only
};

/// An ODE (or SDE) solver from noise at t0 to data at t1: the `solver` plugin kind. sample() wraps the field in
/// a Field that counts the NFE; a method implements integrate().
class FLOWLAB_API Solver : public Plugin {
 public:
  /// `owner` is "solver/<name>", used in messages.
  explicit Solver(std::string owner) : owner_(std::move(owner)) {}
  /// "solver/<name>", for messages.
  const std::string& owner() const { return owner_; }
  /// Whether the solver chooses its own steps (from tolerances such as rtol/atol). A solver that does not takes its
  /// step count as the parameter `steps`; an adaptive one takes no `steps`.
  virtual bool adaptive() const { return false; }
  /// Whether the solver draws random numbers (an SDE sampler; see SampleOptions::seed). A CUDA graph would replay
  /// its first draw, so such a solver samples eagerly; grid tuning against an ODE solution refuses it.
  virtual bool stochastic() const { return false; }
  /// Whether the solver steps with the model's average velocity u(x, t, d) (Field::jump), which only a model
  /// trained with a step input has (a few-step objective); the configuration refuses it for any other model.
  virtual bool uses_step_field() const { return false; }
  /// Integrates from x0 at opt.t0 to opt.t1. Non-virtual: it wraps `v` in a Field, which counts the NFE.
  SampleResult sample(const Tensor& x0, const VelocityField& v, const SampleOptions& opt = SampleOptions()) const;

 protected:
  /// The method itself: fills out.x, out.accepted_steps, out.rejected_steps and, when asked, the
  /// trajectory and times. It must evaluate the field only through `field`, and call opt.report(t, x) with the
  /// initial state and after every accepted step.
  virtual void integrate(const Tensor& x0, Field& field, const SampleOptions& opt, SampleResult& out) const = 0;

 private:
  std::string owner_;
};

/// The times of a fixed-step solve: SampleOptions::grid when given (checked: 1-D, at least 2 times, strictly
/// increasing; ParamError naming `owner` and `grid`), else `steps` uniform steps on [opt.t0, opt.t1] (opt.steps
/// overrides `steps`; ParamError unless > 0), the last time exactly opt.t1.
FLOWLAB_API std::vector<double> step_grid(const SampleOptions& opt, int64_t steps, const std::string& owner);

namespace kinds {
/// The base class of the `solver` plugin kind (FLOWLAB_PLUGIN(solver, ...)).
using solver = Solver;
}  // namespace kinds

}  // namespace flowlab

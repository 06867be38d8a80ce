// Euler-Maruyama sampling of a velocity model as an SDE, as SiT (Ma et al. 2024, "SiT: Exploring Flow and
// Diffusion-based Generative Models with Scalable Interpolant Transformers", arXiv:2401.08740, Sec. 2, the SDE
// sampler with a free diffusion coefficient w_t; code: willisma/SiT transport/transport.py Sampler.sample_sde,
// transport/integrators.py sde, transport/path.py compute_diffusion and get_score_from_velocity).
//
// Time. The paper puts data at t = 0 and noise at t = 1 and integrates its SDE backward; SiT's code runs forward
// from noise at t = 0 to data at t = 1 with x_t = alpha_t x1 + sigma_t x0 (its ICPlan: alpha_t = t), which is
// flowlab's convention, so with s = 1 - t the paper's backward SDE is the forward one below, term for term.
//
// For an affine path x_t = alpha_t x1 + sigma_t x0 with x0 ~ N(0, I), the score follows from the velocity through
// the path's own schedule (eliminate x1 from x_t and v = alpha'_t x1 + sigma'_t E[x0 | x_t], score = -E[x0 | x_t] /
// sigma_t; SiT's get_score_from_velocity, multiplied through by alpha'_t):
//   score(x, t) = (alpha_t v(x, t) - alpha'_t x) / (sigma_t (alpha'_t sigma_t - alpha_t sigma'_t)).
// The SDE with the same marginals as the flow, for any w(t) >= 0:
//   dX = [v(X, t) + w(t)/2 score(X, t)] dt + sqrt(w(t)) dW,
// and its Euler-Maruyama step on the grid t_0 < ... < t_N, with z ~ N(0, I):
//   x_{n+1} = x_n + h_n [v + w(t_n)/2 score](x_n, t_n) + sqrt(w(t_n) h_n) z_n.
// SiT's diffusion D(t) = compute_diffusion(form, norm) is w/2 (it adds sqrt(2 D) dW), and `diffusion`/`norm` are its
// forms, with D(t) =  constant: norm | SBDM: norm (alpha'_t / alpha_t sigma_t^2 - sigma_t sigma'_t) (the score-based
// diffusion model's own noise) | sigma: norm sigma_t | linear: norm (1 - t) | decreasing: (norm cos(pi t) + 1)^2 / 4
// (as SiT, norm scales the cosine: norm 0 is the constant 1/4) | increasing-decreasing: norm sin(pi t)^2.
//
// The ends (SiT's check_interval; SiT issue #22, NaN from the SDE where the coefficients divide by zero): SBDM's
// D(t) has alpha_t = 0 in a denominator at t = 0 (unless norm = 0), and a path open at 0 (polynomial n < 1) has an
// infinite alpha'_0, so there the steps start at t = `eps` (SiT's sample_eps, 1e-3) instead of 0, taking x0 as the
// state at eps; otherwise they start at t0. The
// score has sigma_t = 0 in a denominator at t = 1, where the field is never evaluated: the steps evaluate it at
// their left ends, and `last_step` (SiT's) ends the solve with one more evaluation at t1 - last_step_size:
//   mean:    x + last_step_size [v + w/2 score]  (the last step without noise)
//   euler:   x + last_step_size v                (the ODE's step)
//   tweedie: (x + sigma_t^2 score) / alpha_t     (E[x1 | x_t], Tweedie's formula; lands on the data directly)
//   none:    the steps run to t1 and end there.
// The `steps` steps (or SampleOptions::grid, mapped affinely) cover [t_start, t1 - last_step_size]. NFE = steps,
// plus 1 for a last step. Where w(t_n) = 0 the step is x + h v, the euler solver's bit for bit (no score, no draw).
#include <fmt/format.h>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <string>

#include "flowlab/path.hpp"
#include "flowlab/solver.hpp"

namespace {

using flowlab::Tensor;

/// Options of solver/euler_maruyama; the defaults are SiT's sample_sde command-line defaults.
struct EulerMaruyamaOptions {
  int64_t steps;          ///< Euler-Maruyama steps before the last step
  std::string diffusion;  ///< SiT's diffusion form
  double norm;            ///< SiT's diffusion_norm, >= 0
  std::string last_step;  ///< none, mean, tweedie or euler
  double last_step_size;  ///< in (0, 1) unless last_step is none
  double eps;             ///< start time where t = 0 is singular (SBDM, paths open at 0), in (0, 1)
  explicit EulerMaruyamaOptions(const flowlab::Params& p)
      : steps(p.integer("steps")),
        diffusion(p.str("diffusion")),
        norm(p.real("norm")),
        last_step(p.str("last_step")),
        last_step_size(p.real("last_step_size")),
        eps(p.real("eps")) {
    if (steps <= 0) throw flowlab::ParamError(p.owner(), "steps", fmt::format("must be > 0, got {}", steps));
    if (!(norm >= 0 && std::isfinite(norm)))
      throw flowlab::ParamError(p.owner(), "norm", fmt::format("must be finite and >= 0, got {}", norm));
    if (last_step != "none" && !(last_step_size > 0 && last_step_size < 1))
      throw flowlab::ParamError(p.owner(), "last_step_size",
                                fmt::format("must be in (0, 1) with last_step {}, got {}", last_step, last_step_size));
    if (!(eps > 0 && eps < 1))
      throw flowlab::ParamError(p.owner(), "eps", fmt::format("must be in (0, 1), got {}", eps));
  }
};

/// The schedule at one time, in double precision.
struct At {
  double a, s, da, ds;
};

class EulerMaruyamaSolver final : public flowlab::Solver {
 public:
  explicit EulerMaruyamaSolver(const flowlab::Params& p) : Solver(p.owner()), opt_(p) {}
  bool stochastic() const override { return true; }

 protected:
  void integrate(const Tensor& x0, flowlab::Field& field, const flowlab::SampleOptions& opt,
                 flowlab::SampleResult& out) const override {
    const flowlab::Path* path = checked_path(opt);
    const bool last = opt_.last_step != "none";
    double t_start = opt.t0;
    const bool singular_at_0 = (opt_.diffusion == "SBDM" && opt_.norm > 0) || path->domain().open_at_0;
    if (singular_at_0 && t_start < opt_.eps) t_start = opt_.eps;
    const double t_end = last ? opt.t1 - opt_.last_step_size : opt.t1;
    if (!(t_end > t_start))
      throw flowlab::ParamError(
          owner(), "last_step_size",
          fmt::format("leaves no time for the steps: they would run from t = {} to t = {}", t_start, t_end));
    std::vector<double> grid = flowlab::step_grid(opt, opt_.steps, owner());
    if (grid.front() != t_start || grid.back() != t_end) {  // onto [t_start, t_end], keeping the grid's shape
      const double g0 = grid.front(), span = grid.back() - grid.front();
      for (double& g : grid) g = t_start + (t_end - t_start) * ((g - g0) / span);
      grid.front() = t_start, grid.back() = t_end;
    }
    at::Generator gen = opt.seed ? at::detail::createCPUGenerator(*opt.seed) : at::detail::getDefaultCPUGenerator();
    const auto noise_type = x0.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;

    std::vector<Tensor> states;
    std::vector<double> times(grid);
    if (opt.return_trajectory) states.push_back(x0);
    opt.report(grid[0], x0);
    Tensor x = x0;
    for (size_t i = 0; i + 1 < grid.size(); ++i) {
      const double t = grid[i], h = grid[i + 1] - t;
      field.set_step(static_cast<int64_t>(i));
      const Tensor v = field(x, t);
      const double d = diffusion(t, *path);
      if (d == 0) {
        x = x.add(v, h);
      } else {
        const Tensor z =
            at::randn(x.sizes(), gen, at::TensorOptions().dtype(noise_type)).to(x.device(), x.scalar_type());
        x = x.add(sde_drift(x, v, t, d, *path), h).add_(z, std::sqrt(2 * d * h));
      }
      if (opt.return_trajectory) states.push_back(x);
      opt.report(grid[i + 1], x);
    }
    if (last) {
      field.set_step(static_cast<int64_t>(grid.size()) - 1);
      const Tensor v = field(x, t_end);
      if (opt_.last_step == "euler") {
        x = x.add(v, opt_.last_step_size);
      } else if (opt_.last_step == "mean") {
        const double d = diffusion(t_end, *path);
        x = d == 0 ? x.add(v, opt_.last_step_size) : x.add(sde_drift(x, v, t_end, d, *path), opt_.last_step_size);
      } else {  // tweedie: (x + sigma^2 score) / alpha
        const At c = schedule(t_end, *path);
        const auto [sv, sx] = score_coefficients(c, t_end);
        x = x.mul((1 + c.s * c.s * sx) / c.a).add_(v, c.s * c.s * sv / c.a);
      }
      times.push_back(opt.t1);
      if (opt.return_trajectory) states.push_back(x);
      opt.report(opt.t1, x);
    }
    out.x = x;
    out.accepted_steps = static_cast<int64_t>(times.size()) - 1;
    if (opt.return_trajectory) {
      out.trajectory = at::stack(states, 1);
      out.times = at::tensor(times, at::TensorOptions().dtype(at::kDouble));
    }
  }

 private:
  // The trained path, affine, with standard Gaussian noise where the caller says what the noise is.
  const flowlab::Path* checked_path(const flowlab::SampleOptions& opt) const {
    const std::string name = opt.path_name.empty() ? "the path" : opt.path_name;
    if (!opt.path)
      throw flowlab::SolverError(
          fmt::format("{}: needs the path the field was trained on (SampleOptions::path) to turn "
                      "the velocity into a score; none was given",
                      owner()));
    if (!opt.path->affine())
      throw flowlab::SolverError(fmt::format("{}: {} is not affine (x_t = alpha_t x1 + sigma_t x0): the score from the "
                                             "velocity needs its schedule",
                                             owner(), name));
    if (!opt.noise_name.empty() && opt.noise_name != "noise/gaussian")
      throw flowlab::SolverError(fmt::format("{}: the score from the velocity on {} assumes x0 ~ N(0, I) "
                                             "(noise/gaussian), but x0 comes from {}",
                                             owner(), name, opt.noise_name));
    return opt.path;
  }

  static At schedule(double t, const flowlab::Path& path) {
    const flowlab::Schedule s = path.schedule(at::full({1}, t, at::TensorOptions().dtype(at::kDouble)));
    return {s.alpha.item<double>(), s.sigma.item<double>(), s.d_alpha.item<double>(), s.d_sigma.item<double>()};
  }

  // score = sv v + sx x.
  std::pair<double, double> score_coefficients(const At& c, double t) const {
    const double den = c.s * (c.da * c.s - c.a * c.ds);
    const double sv = c.a / den, sx = -c.da / den;
    if (!std::isfinite(sv) || !std::isfinite(sx))
      throw flowlab::SolverError(fmt::format("{}: the score is not finite at t = {} (alpha = {}, sigma = {}, "
                                             "alpha' = {}, sigma' = {})",
                                             owner(), t, c.a, c.s, c.da, c.ds));
    return {sv, sx};
  }

  // v + D score, D = w / 2.
  Tensor sde_drift(const Tensor& x, const Tensor& v, double t, double d, const flowlab::Path& path) const {
    const auto [sv, sx] = score_coefficients(schedule(t, path), t);
    return v.mul(1 + d * sv).add_(x, d * sx);
  }

  // SiT's D(t) = w(t) / 2.
  double diffusion(double t, const flowlab::Path& path) const {
    const std::string& f = opt_.diffusion;
    const double n = opt_.norm;
    double d = 0;
    if (f == "constant") {
      d = n;
    } else if (f == "SBDM") {
      if (n == 0) return 0;
      const At c = schedule(t, path);
      d = n * (c.da / c.a * c.s * c.s - c.s * c.ds);
    } else if (f == "sigma") {
      d = n == 0 ? 0 : n * schedule(t, path).s;
    } else if (f == "linear") {
      d = n * (1 - t);
    } else if (f == "decreasing") {
      d = 0.25 * std::pow(n * std::cos(M_PI * t) + 1, 2);
    } else {  // increasing-decreasing
      d = n * std::pow(std::sin(M_PI * t), 2);
    }
    if (!std::isfinite(d) || d < 0)
      throw flowlab::SolverError(fmt::format("{}: the diffusion {} is {} at t = {}", owner(), f, d, t));
    return d;
  }

  EulerMaruyamaOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(
    solver, euler_maruyama, EulerMaruyamaSolver, "1.0.0",
    "Euler-Maruyama on the SDE dX = [v + w/2 score] dt + sqrt(w) dW of an affine path (SiT), stochastic",
    FLOWLAB_PARAM(steps, int, "250", "Euler-Maruyama steps, each 1 NFE (a last step adds 1)")
        FLOWLAB_PARAM(diffusion, enum(constant | SBDM | sigma | linear | decreasing | increasing - decreasing), "sigma",
                      "SiT's diffusion form D(t) = w(t)/2")
            FLOWLAB_PARAM(norm, float, "1.0", "SiT's diffusion_norm: the strength of D(t), >= 0")
                FLOWLAB_PARAM(last_step, enum(none | mean | tweedie | euler), "mean",
                              "the last step, at t1 - last_step_size: none, the noiseless SDE step, Tweedie's "
                              "E[x1 | x_t], or an ODE step")
                    FLOWLAB_PARAM(last_step_size, float, "0.04", "size of the last step, in (0, 1)")
                        FLOWLAB_PARAM(eps, float, "1e-3",
                                      "start time where t = 0 is singular (SBDM, paths open at 0): SiT's sample_eps"))

// eval.as_path's schedule transform (schedule_transform.hpp): with the exact field of a Gaussian-to-Gaussian flow,
// the transformed field carries the same noise to the same samples on every pair of affine paths; the identity
// transform is the field itself; a path that is not affine is refused.
#include <catch2/catch_test_macros.hpp>

#include <cmath>

#include "flowlab/errors.hpp"
#include "flowlab/path.hpp"
#include "flowlab/schedule_transform.hpp"
#include "flowlab/solver.hpp"
#include "support.hpp"

using flowlab::test::message_of;
using flowlab::test::registry;

namespace {

std::shared_ptr<flowlab::Path> path(const std::string& name) {
  return registry().create<flowlab::Path>("path", name, flowlab::Params());
}

// The marginal velocity of noise N(0, I) -> data N(mu, tau^2 I) on an affine path (x0, x1 independent):
// u(x, t) = alpha' mu + (alpha alpha' tau^2 + sigma sigma') / (alpha^2 tau^2 + sigma^2) (x - alpha mu).
flowlab::VelocityField gaussian_field(std::shared_ptr<flowlab::Path> p, double mu, double tau) {
  return [p, mu, tau](const at::Tensor& x, const at::Tensor& t) {
    const flowlab::Schedule s = p->schedule(p->clamp_to_domain(t.to(at::kDouble)));
    const at::Tensor a = s.alpha.view({-1, 1}), g = s.sigma.view({-1, 1}), da = s.d_alpha.view({-1, 1}),
                     dg = s.d_sigma.view({-1, 1});
    const at::Tensor gain = (a * da * tau * tau + g * dg) / (a * a * tau * tau + g * g);
    return (da * mu + gain * (x - a * mu)).to(x.scalar_type());
  };
}

}  // namespace

TEST_CASE("the schedule transform carries the same noise to the same samples on every pair of affine paths",
          "[schedule_transform]") {
  flowlab::Params tight;
  tight.set("rtol", 1e-10).set("atol", 1e-10);
  const auto dopri5 = registry().create<flowlab::Solver>("solver", "dopri5", tight);
  torch::manual_seed(0);
  const at::Tensor x0 = at::randn({64, 2}, at::kDouble);
  for (const std::string trained : {"rectified", "cosine", "polynomial", "vp_linear"}) {
    const auto pa = path(trained);
    const flowlab::VelocityField u = gaussian_field(pa, 1.5, 0.3);
    const at::Tensor original = dopri5->sample(x0, u).x;
    // The exact flow's end: mu + tau x0 on every path (the marginal flow of a Gaussian is affine in x0).
    CHECK((original - (1.5 + 0.3 * x0)).abs().max().item<double>() <= 1e-6);
    for (const std::string target : {"rectified", "cosine", "polynomial", "vp_linear"}) {
      INFO(trained << " sampled as " << target);
      const auto transformed = flowlab::schedule_transformed(u, pa, path(target), "test");
      const auto r = dopri5->sample(x0, transformed);
      CHECK((r.x - original).abs().max().item<double>() <= 1e-5);
    }
  }
}

TEST_CASE("the schedule transform onto the same path is the field itself", "[schedule_transform]") {
  const auto p = path("cosine");
  const flowlab::VelocityField u = gaussian_field(p, -0.5, 2.0);
  const auto same = flowlab::schedule_transformed(u, p, path("cosine"), "test");
  torch::manual_seed(1);
  const at::Tensor x = at::randn({8, 2}, at::kDouble);
  for (double t : {0.0, 0.1, 0.5, 0.9, 1.0}) {
    INFO("t = " << t);
    const at::Tensor tt = at::full({8}, t, at::kDouble);
    // Exact inside; at the ends the transform reads the field 1e-9 inside (schedule_transform.hpp).
    CHECK((same(x, tt) - u(x, tt)).abs().max().item<double>() <= (t == 0.0 || t == 1.0 ? 1e-7 : 1e-12));
  }
}

TEST_CASE("the schedule transform refuses a path that is not affine", "[schedule_transform][errors]") {
  const flowlab::VelocityField u = [](const at::Tensor& x, const at::Tensor&) { return x; };
  CHECK(message_of<flowlab::Error>([&] { flowlab::schedule_transformed(u, path("rectified"), path("bridge"), "eval.as_path"); }) ==
        "eval.as_path: the schedule transform needs affine paths (x_t = alpha_t x1 + sigma_t x0); the target path is not");
}

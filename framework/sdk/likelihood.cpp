// The instantaneous change of variables, integrated backward by any solver (see likelihood.hpp).
#include "flowlab/likelihood.hpp"

#include <fmt/format.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>

#include "flowlab/errors.hpp"

namespace flowlab {

Tensor divergence(const VelocityField& v, const Tensor& x, const Tensor& t, const Tensor& probes, Tensor* value) {
  const c10::AutoGradMode grad_on(true);
  const Tensor xg = x.detach().requires_grad_(true);
  const Tensor out = v(xg, t);
  if (value) *value = out.detach();
  const int64_t b = x.size(0), d = x.numel() / std::max<int64_t>(b, 1);
  Tensor div = at::zeros({b}, x.options().dtype(at::kDouble));
  if (!out.requires_grad()) return div;  // a field that does not depend on x (constant in x): divergence 0
  if (!probes.defined()) {
    // One vector-Jacobian product per dimension: e_i^T (dv/dx) gives row i of the Jacobian; its i-th entry is
    // dv_i/dx_i.
    const Tensor flat_out = out.reshape({b, d});
    for (int64_t i = 0; i < d; ++i) {
      Tensor e = at::zeros_like(flat_out);
      e.select(1, i).fill_(1);
      const Tensor g = torch::autograd::grad({out}, {xg}, {e.reshape(out.sizes())}, /*retain_graph=*/i + 1 < d)[0];
      div += g.reshape({b, d}).select(1, i).to(at::kDouble);
    }
    return div;
  }
  const int64_t k = probes.size(0);
  for (int64_t j = 0; j < k; ++j) {
    const Tensor eps = probes[j];
    const Tensor g = torch::autograd::grad({out}, {xg}, {eps}, /*retain_graph=*/j + 1 < k)[0];
    div += (g * eps).reshape({b, d}).sum(1).to(at::kDouble);
  }
  return div / double(k);
}

LikelihoodResult log_likelihood(const Solver& solver, const VelocityField& v, const Tensor& x1,
                                const std::function<Tensor(const Tensor&)>& log_p0, const LikelihoodOptions& o) {
  if (o.probe != "rademacher" && o.probe != "gaussian")
    throw Error(fmt::format("log_likelihood: unknown probe '{}' (valid: gaussian, rademacher)", o.probe));
  if (!o.exact && o.probes < 1) throw Error(fmt::format("log_likelihood: probes must be >= 1, got {}", o.probes));
  if (!x1.defined() || x1.dim() < 1 || x1.size(0) < 1)
    throw Error("log_likelihood: x1 must be a tensor [B, ...] with B >= 1");
  const int64_t b = x1.size(0), d = x1.numel() / b;
  const auto shape = x1.sizes().vec();
  Tensor probes;
  if (!o.exact) {
    std::vector<int64_t> pshape{o.probes};
    pshape.insert(pshape.end(), shape.begin(), shape.end());
    const auto cpu = x1.options().device(at::kCPU);
    probes = o.probe == "gaussian" ? at::randn(pshape, o.generator, cpu)
                                   : at::bernoulli(at::full(pshape, 0.5, cpu), o.generator) * 2 - 1;
    probes = probes.to(x1.device());
  }
  // The augmented state [x, a] as [B, d + 1] in x's dtype; s = 1 - t runs from 0 to 1, so dz/ds = -(v, div v).
  int64_t vjps = 0;
  const VelocityField augmented = [&](const Tensor& z, const Tensor& s) -> Tensor {
    const Tensor x = z.narrow(1, 0, d).reshape(shape);
    const Tensor t = (1 - s.narrow(0, 0, 1)).expand({b});  // one time, viewed as [B] (shared_time)
    Tensor value;
    const Tensor div = divergence(v, x, t, probes, &value);
    vjps += o.exact ? d : o.probes;
    return -at::cat({value.reshape({b, d}), div.to(z.scalar_type()).unsqueeze(1)}, 1);
  };
  const Tensor z1 = at::cat({x1.detach().reshape({b, d}), at::zeros({b, 1}, x1.options())}, 1);
  const SampleResult r = solver.sample(z1, augmented);
  LikelihoodResult out;
  out.x0 = r.x.narrow(1, 0, d).reshape(shape);
  // a(s = 1) = -int_0^1 div v dt
  out.divergence = -r.x.select(1, d).to(at::kDouble);
  out.log_p0 = log_p0(out.x0).to(at::kDouble).reshape({b});
  out.log_p = out.log_p0 - out.divergence;
  out.nfe = r.nfe;
  out.vjps = vjps;
  return out;
}

}  // namespace flowlab

// The shared pieces of training objectives: the weighted squared error and the Jacobian-vector product.
#include "flowlab/objective.hpp"

#include <torch/csrc/autograd/forward_grad.h>
#include <torch/csrc/jit/frontend/tracer.h>

#include <fmt/format.h>

namespace flowlab {

namespace {
thread_local bool tls_forward_mode = false;
}

bool forward_mode_ad() { return tls_forward_mode; }

bool aten_ops_only() { return tls_forward_mode || torch::jit::tracer::isTracing(); }

Tensor weighted_squared_error(const Tensor& pred, const Tensor& target, const Tensor& t, const ObjectiveContext& ctx) {
  const Tensor p = pred.scalar_type() != target.scalar_type() ? pred.to(target.scalar_type()) : pred;  // bf16 autocast
  // Uniform weighting (w = 1): the mean over all elements in one op (mse_loss), the same loss as the mean of the
  // rows' means (every row has the same size) up to the order of the float sums.
  if (ctx.uniform_weight) return at::mse_loss(p, target);
  return (ctx.weighting->weight(t, *ctx.path) * (p - target).pow(2).flatten(1).mean(1)).mean();
}

std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                              const std::vector<Tensor>& primals, const std::vector<Tensor>& tangents) {
  if (primals.size() != tangents.size())
    throw Error(fmt::format("jvp: {} primals but {} tangents", primals.size(), tangents.size()));
  const uint64_t level = torch::autograd::ForwardADLevel::get_next_idx();
  struct Exit {  // leaves the level and the flag however f returns
    uint64_t level;
    bool before;
    ~Exit() {
      tls_forward_mode = before;
      torch::autograd::ForwardADLevel::release_idx(level);
    }
  } exit{level, tls_forward_mode};
  tls_forward_mode = true;
  std::vector<Tensor> duals;
  duals.reserve(primals.size());
  for (size_t i = 0; i < primals.size(); ++i) {
    if (primals[i].sizes() != tangents[i].sizes())
      throw Error(fmt::format("jvp: tangent {} has shape {}, its primal {}", i, shape_string(tangents[i].sizes()),
                              shape_string(primals[i].sizes())));
    duals.push_back(at::_make_dual(primals[i], tangents[i].to(primals[i].options()), static_cast<int64_t>(level)));
  }
  const Tensor out = f(duals);
  auto unpacked = at::_unpack_dual(out, static_cast<int64_t>(level));
  Tensor value = std::get<0>(unpacked), tangent = std::get<1>(unpacked);
  if (!tangent.defined()) tangent = at::zeros_like(value);  // f does not depend on the primals
  return {value, tangent.detach()};
}

}  // namespace flowlab

// Shared pieces of the architectures: sinusoidal time features, the condition embedder, CFG.
#include "flowlab/architecture.hpp"

#include <torch/csrc/jit/frontend/tracer.h>

#include <fmt/format.h>

#include <map>
#include <utility>

#include <cmath>

#include "flowlab/dataset.hpp"
#include "flowlab/fused.hpp"

namespace flowlab {

namespace {

// The frequencies on t's device and dtype. On a GPU they are copied once per thread and kept (a copy from the host
// on every call costs a transfer, and a CUDA graph capture refuses it; the solver's warm-up fills the cache).
// Under a TorchScript trace (flowlab export) the tensor is made with tracing paused, so the trace holds its values as
// a constant: at::tensor's copy from host memory is not an op a trace can record.
Tensor frequencies_on(const std::vector<double>& f, const at::TensorOptions& o) {
  if (torch::jit::tracer::isTracing()) {
    const auto state = torch::jit::tracer::getTracingState();
    torch::jit::tracer::setTracingState(nullptr);
    Tensor out = at::tensor(f, at::TensorOptions().dtype(at::kDouble)).to(o);
    torch::jit::tracer::setTracingState(state);
    return out;
  }
  if (o.device().is_cpu()) return at::tensor(f, at::TensorOptions().dtype(at::kDouble)).to(o);
  thread_local std::map<std::pair<std::vector<double>, std::string>, Tensor> cache;
  const auto key = std::make_pair(f, o.device().str() + "/" + std::string(c10::toString(o.dtype().toScalarType())));
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() > 64) cache.clear();
    it = cache.emplace(key, at::tensor(f, at::TensorOptions().dtype(at::kDouble)).to(o)).first;
  }
  return it->second;
}

}  // namespace

Tensor Architecture::forward_step(const Tensor&, const Tensor&, const Tensor&, const Condition&) {
  throw Error("this architecture has no step input (Architecture::has_step_input is false)");
}

Tensor sinusoidal_embedding(const Tensor& t, int64_t dim, double max_frequency) {
  if (dim < 1) throw Error(fmt::format("sinusoidal_embedding: dim must be >= 1, got {}", dim));
  if (!(max_frequency >= M_PI))
    throw Error(fmt::format("sinusoidal_embedding: max_frequency must be >= pi, got {}", max_frequency));
  const int64_t half = dim / 2;
  // f_k = pi (max_frequency / pi)^(k / (half - 1)), computed in double and then cast.
  auto frequency = [&](int64_t k) {
    return half == 1 ? M_PI : M_PI * std::pow(max_frequency / M_PI, double(k) / double(half - 1));
  };
  if (t.scalar_type() == at::kFloat) {  // one pass on CPU (fused.hpp); otherwise ATen below
    std::vector<float> f(static_cast<size_t>(half));
    for (int64_t k = 0; k < half; ++k) f[static_cast<size_t>(k)] = static_cast<float>(frequency(k));
    Tensor out = sin_cos_features(t, f, dim % 2 != 0);
    if (out.defined()) return out;
  }
  const Tensor tt = t.reshape({-1, 1});
  std::vector<Tensor> parts;
  if (half > 0) {
    std::vector<double> f(static_cast<size_t>(half));
    for (int64_t k = 0; k < half; ++k) f[static_cast<size_t>(k)] = frequency(k);
    const Tensor args = tt * frequencies_on(f, t.options()).unsqueeze(0);
    parts.push_back(at::cos(args));
    parts.push_back(at::sin(args));
  }
  if (dim % 2) parts.push_back(2 * tt - 1);
  return at::cat(parts, 1);
}

ConditionEmbedderImpl::ConditionEmbedderImpl(int64_t num_classes, int64_t attr_dim, int64_t dim)
    : num_classes_(num_classes), attr_dim_(attr_dim), dim_(dim) {
  if (num_classes_ > 0) classes_ = register_module("classes", torch::nn::Embedding(num_classes_ + 1, dim_));
  if (attr_dim_ > 0) {
    attr_ = register_module("attr", torch::nn::Linear(attr_dim_, dim_));
    null_attr_ = register_parameter("null_attr", at::randn({1, dim_}) * 0.02);
  }
}

Tensor ConditionEmbedderImpl::forward(const Condition& cond, int64_t batch, const at::TensorOptions& options) {
  // The sum of the parts, without a zero tensor of `batch` rows to start from where there is a part: a TorchScript
  // trace of a label-conditioned network (flowlab export) then takes any batch. The same values (0 + e = e).
  Tensor out;
  auto add = [&](const Tensor& part) { out = out.defined() ? out + part : part; };
  // Likewise the given parts are shaped by -1 and the nulls broadcast, never by `batch`, which a trace would keep.
  const Tensor drop = cond.drop.defined() ? cond.drop.to(options.device()).to(at::kBool).reshape({-1, 1}) : Tensor();
  if (num_classes_ > 0) {
    Tensor labels = cond.label.defined() ? cond.label.to(options.device()).to(at::kLong)
                                         : at::full({batch}, num_classes_, options.dtype(at::kLong));
    if (drop.defined()) labels = at::where(drop.reshape({-1}), at::full_like(labels, num_classes_), labels);
    add(classes_->forward(labels));
  }
  if (attr_dim_ > 0) {
    Tensor a =
        cond.attr.defined()
            ? attr_->forward(cond.attr.to(options.device(), options.dtype().toScalarType()).reshape({-1, attr_dim_}))
            : null_attr_.expand({batch, dim_});
    if (drop.defined()) a = at::where(drop, null_attr_, a);
    add(a);
  }
  return out.defined() ? out : at::zeros({batch, dim_}, options);
}

Condition drop_condition(const Condition& cond, int64_t batch, double p_uncond, const at::TensorOptions& options) {
  Condition out = cond;
  out.drop = at::rand({batch}, options.dtype(at::kFloat)) < p_uncond;
  if (cond.drop.defined()) out.drop = out.drop | cond.drop.to(at::kBool);
  return out;
}

VelocityField guided_field(std::shared_ptr<Architecture> model, Condition cond, double w) {
  return [model = std::move(model), cond = std::move(cond), w](const Tensor& x, const Tensor& t) -> Tensor {
    if (w == 0.0) return model->forward(x, t, Condition());
    if (w == 1.0) return model->forward(x, t, cond);
    const Tensor vu = model->forward(x, t, Condition());
    const Tensor vc = model->forward(x, t, cond);
    return vu + w * (vc - vu);
  };
}

Batch Dataset::take(const Tensor&, const at::TensorOptions&) const {
  throw Error("this dataset is generative: it has no stored examples to take (size() == 0)");
}

}  // namespace flowlab

// MLP velocity field for vectors (any event shape, flattened): v = MLP([x, emb(t), emb(cond)]).
// Time embedding: sinusoidal features, or the textbook's small MLP on t (Linear(1, d), act, Linear(d, d)).
#include <fmt/format.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/container/modulelist.h>

#include <numeric>

#include "flowlab/architecture.hpp"

namespace {

using flowlab::Tensor;

/// Options of architecture/mlp.
struct MlpOptions {
  int64_t width;         ///< hidden width (default 256)
  int64_t depth;         ///< number of hidden layers (default 4)
  std::string act;       ///< silu, relu, gelu or selu (default silu)
  bool sinusoidal_time;  ///< time_embedding: sinusoidal (default) or mlp
  int64_t time_dim;      ///< width of the time embedding (default 64)
  int64_t cond_dim;      ///< width of the condition embedding (default 64)
  explicit MlpOptions(const flowlab::Params& p)
      : width(p.integer("width")), depth(p.integer("depth")), act(p.str("activation")),
        sinusoidal_time(p.str("time_embedding") == "sinusoidal"), time_dim(p.integer("time_dim")),
        cond_dim(p.integer("cond_dim")) {
    for (const char* name : {"width", "depth", "time_dim", "cond_dim"})
      if (p.integer(name) <= 0)
        throw flowlab::ParamError("architecture/mlp", name, fmt::format("must be > 0, got {}", p.integer(name)));
  }
};

Tensor activate(const std::string& act, const Tensor& x) {
  if (act == "relu") return at::relu(x);
  if (act == "gelu") return at::gelu(x);
  if (act == "selu") return at::selu(x);
  return at::silu(x);
}

class MlpArchitecture final : public flowlab::Architecture {
 public:
  explicit MlpArchitecture(const flowlab::Params& p) : opt_(p) {}

  void build(const flowlab::ArchitectureSpec& spec) override {
    shape_ = spec.event_shape;
    const int64_t d = std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<int64_t>());
    if (!opt_.sinusoidal_time) {
      time_in_ = register_module("time_in", torch::nn::Linear(1, opt_.time_dim));
      time_out_ = register_module("time_out", torch::nn::Linear(opt_.time_dim, opt_.time_dim));
    }
    cond_ = register_module("cond", flowlab::ConditionEmbedder(spec.num_classes, spec.attr_dim, opt_.cond_dim));
    int64_t in = d + opt_.time_dim + (cond_->empty() ? 0 : opt_.cond_dim);
    layers_ = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < opt_.depth; ++i, in = opt_.width) layers_->push_back(torch::nn::Linear(in, opt_.width));
    out_ = register_module("out", torch::nn::Linear(opt_.width, d));
  }

  Tensor forward(const Tensor& x, const Tensor& t, const flowlab::Condition& cond) override {
    const int64_t b = x.size(0);
    Tensor temb = opt_.sinusoidal_time
                      ? flowlab::sinusoidal_embedding(t.to(x.dtype()), opt_.time_dim)
                      : time_out_->forward(activate(opt_.act, time_in_->forward(t.to(x.dtype()).reshape({b, 1}))));
    std::vector<Tensor> parts = {x.reshape({b, -1}), temb};
    if (!cond_->empty()) parts.push_back(cond_->forward(cond, b, x.options()));
    Tensor h = at::cat(parts, 1);
    for (const auto& layer : *layers_) h = activate(opt_.act, layer->as<torch::nn::Linear>()->forward(h));
    return out_->forward(h).reshape(x.sizes());
  }

 private:
  MlpOptions opt_;
  std::vector<int64_t> shape_;
  torch::nn::Linear time_in_{nullptr}, time_out_{nullptr}, out_{nullptr};
  flowlab::ConditionEmbedder cond_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
};

}  // namespace

FLOWLAB_PLUGIN(architecture, mlp, MlpArchitecture, "1.1.0", "MLP on [x, emb(t), emb(cond)], any event shape",
               FLOWLAB_PARAM(width, int, "256", "hidden width")
               FLOWLAB_PARAM(depth, int, "4", "number of hidden layers")
               FLOWLAB_PARAM(activation, enum(silu|relu|gelu|selu), "silu", "activation function")
               FLOWLAB_PARAM(time_embedding, enum(sinusoidal|mlp), "sinusoidal",
                             "sinusoidal features of t, or a small MLP on t (the textbook's)")
               FLOWLAB_PARAM(time_dim, int, "64", "width of the time embedding")
               FLOWLAB_PARAM(cond_dim, int, "64", "width of the condition embedding"))

// MLP velocity field for vectors (any event shape, flattened): v = MLP([x, emb(t), emb(cond)]).
// Time embedding: sinusoidal features, the textbook's small MLP on t (Linear(1, d), act, Linear(d, d)), or raw: t
// itself as one more input, as TorchCFM's MLP (time_varying=True) takes it.
// The default is two sinusoidal features, (cos pi t, sin pi t), since 1.4.0, by measurement (issue 25; 10 seeds
// each, dopri5 at rtol = atol = 1e-5; numbers and experiment files in benchmarks/results/time_dim_2026-12-07.md).
// Against 1.3's 64 features up to 10 rad per unit t, on TorchCFM's four 2D tasks (benchmarks/time_dim_*.yaml):
// 80/46/133/51 NFE against 89/55/146/60 (TorchCFM's own MLP: 68/44/104/50), W2 within the seeds' spread on each; the
// main job's ring: the same W2 (0.53/0.52 against 0.50/0.52); a fitted constant field: dopri5's minimum, 20 NFE,
// against 38. Wider embeddings add curvature in t of their own (the k-th derivative of cos(f t) has amplitude f^k, and
// each feature is one more input the fit leaves a little of), which the step-size controller follows. On digits (mlp
// 256 x 3) the quality metrics disagree: Frechet 40.2 against 44.2 and pixel W2 better, KID 11.0 against 6.2 worse, at
// 45 NFE against 50. On reflow_rounds.yaml's recipe (3 seeds) it costs more, 68 NFE in round 2 against 54, at a better
// W2 (0.19 against 0.23). Raw t (t itself, TorchCFM's input) costs fewer NFE on the I-CFM tasks and more on the
// ring's cosine path (61 against 53), and its ring W2 is the worst of the six inputs measured (0.54 against 0.53 /
// 0.52 at width 2, 10 seeds). Before 1.2.0 the default was 64 features up to 1000 rad (DDPM's range): 6 to 10 times
// TorchCFM's NFE. max_frequency (default 10) sets the highest of time_dim / 2 frequencies geometric from pi, so it
// matters from time_dim 4; below that the one frequency is pi, and a max_frequency other than the default is refused.
// time_dim also sets the width of time_embedding mlp, whose textbook width is 64: set it with that embedding.
// With a step input (ArchitectureSpec::step_input, for few-step objectives) the input is [x, emb(t), emb(d),
// emb(cond)], emb(d) of the same kind as emb(t) with weights of its own, and forward(x, t) is forward_step(x, t, 0).
// When every row shares one t (a solver's step, flowlab::shared_time), the first layer takes emb(t) as a bias:
// W [x, emb(t), c] + b = W_x x + W_c c + (W_t emb(t) + b), with emb(t) computed once; the same function.
#include <fmt/format.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/container/modulelist.h>

#include <numeric>

#include "flowlab/architecture.hpp"
#include "flowlab/fused.hpp"

namespace {

using flowlab::Tensor;

// Rows per block when evaluating without autograd: a [512, 256] block of activations (512 KiB) stays in a core's
// L2 cache. Measured for 10 000 points through 4 x 256: 512 rows 22 NFE/s, 256 and 2048 rows 21, all at once 16.5.
constexpr int64_t kRowBlock = 512;

// The defaults of time_dim and max_frequency, in the plugin record (as text) and in the refusals below.
#define FLOWLAB_MLP_TIME_DIM 2
#define FLOWLAB_MLP_MAX_FREQUENCY 10
#define FLOWLAB_MLP_TEXT_(x) #x
#define FLOWLAB_MLP_TEXT(x) FLOWLAB_MLP_TEXT_(x)
constexpr int64_t kDefaultTimeDim = FLOWLAB_MLP_TIME_DIM;
constexpr int64_t kTimeDimBefore14 = 64;  // the default of mlp 1.2 and 1.3, in their results files
constexpr double kDefaultMaxFrequency = FLOWLAB_MLP_MAX_FREQUENCY;

/// Options of architecture/mlp.
struct MlpOptions {
  int64_t width;                   ///< hidden width
  int64_t depth;                   ///< number of hidden layers
  std::string act;                 ///< silu, relu, gelu or selu
  flowlab::Activation activation;  ///< as act
  bool sinusoidal_time;            ///< time_embedding: sinusoidal
  bool raw_time;                   ///< time_embedding: raw (t itself, one input)
  int64_t time_dim;                ///< width of the time embedding (1 when raw)
  double max_frequency;            ///< highest frequency of the sinusoidal features, radians per unit t
  int64_t cond_dim;                ///< width of the condition embedding
  explicit MlpOptions(const flowlab::Params& p)
      : width(p.integer("width")),
        depth(p.integer("depth")),
        act(p.str("activation")),
        activation(flowlab::activation_from_name(act)),
        sinusoidal_time(p.str("time_embedding") == "sinusoidal"),
        raw_time(p.str("time_embedding") == "raw"),
        time_dim(raw_time ? 1 : p.integer("time_dim")),
        max_frequency(p.real("max_frequency")),
        cond_dim(p.integer("cond_dim")) {
    // A width or frequency range the chosen embedding does not use is refused rather than ignored (before the
    // ranges, which would otherwise ask for a valid value of a parameter that is then refused). The values compared
    // are the FLOWLAB_PARAM defaults below, which every embedding accepts.
    // A results file of mlp 1.3 (raw t, whose time_dim then defaulted to 64) stores time_dim: 64, and its models are
    // rebuilt from those stored values (flowlab sample, export): 64 is accepted with raw t as well.
    const std::string& emb = p.str("time_embedding");
    if (raw_time && p.integer("time_dim") != kDefaultTimeDim && p.integer("time_dim") != kTimeDimBefore14)
      throw flowlab::ParamError(p.owner(), "time_dim",
                                fmt::format("is not used by time_embedding '{}' (t is one input), got {}; it sets the "
                                            "width of time_embedding 'sinusoidal' or 'mlp'",
                                            emb, p.integer("time_dim")));
    if (!sinusoidal_time && max_frequency != kDefaultMaxFrequency)
      throw flowlab::ParamError(p.owner(), "max_frequency",
                                fmt::format("is not used by time_embedding '{}', got {}; it sets the range of "
                                            "time_embedding 'sinusoidal'",
                                            emb, max_frequency));
    const int64_t td = p.integer("time_dim");
    if (sinusoidal_time && td >= 1 && td < 4 && max_frequency != kDefaultMaxFrequency)
      throw flowlab::ParamError(
          p.owner(), "max_frequency",
          fmt::format("is not used at time_dim {} ({}), got {}; it sets the highest of "
                      "time_dim / 2 frequencies from time_dim 4",
                      td, td == 1 ? "the one feature is 2t - 1" : "the one frequency is pi", max_frequency));
    for (const char* name : {"width", "depth", "time_dim", "cond_dim"})
      if (p.integer(name) <= 0)
        throw flowlab::ParamError(p.owner(), name, fmt::format("must be > 0, got {}", p.integer(name)));
    if (!(max_frequency >= M_PI))
      throw flowlab::ParamError(p.owner(), "max_frequency", fmt::format("must be >= pi, got {}", max_frequency));
  }
};

class MlpArchitecture final : public flowlab::Architecture {
 public:
  explicit MlpArchitecture(const flowlab::Params& p) : opt_(p) {}

  void build(const flowlab::ArchitectureSpec& spec) override {
    shape_ = spec.event_shape;
    const int64_t d = std::accumulate(shape_.begin(), shape_.end(), int64_t{1}, std::multiplies<int64_t>());
    if (!opt_.sinusoidal_time && !opt_.raw_time) {
      time_in_ = register_module("time_in", torch::nn::Linear(1, opt_.time_dim));
      time_out_ = register_module("time_out", torch::nn::Linear(opt_.time_dim, opt_.time_dim));
    }
    step_ = spec.step_input;
    if (step_ && !opt_.sinusoidal_time && !opt_.raw_time) {
      step_in_ = register_module("step_in", torch::nn::Linear(1, opt_.time_dim));
      step_out_ = register_module("step_out", torch::nn::Linear(opt_.time_dim, opt_.time_dim));
    }
    cond_ = register_module("cond", flowlab::ConditionEmbedder(spec.num_classes, spec.attr_dim, opt_.cond_dim));
    d_ = d;
    int64_t in = d + opt_.time_dim * (step_ ? 2 : 1) + (cond_->empty() ? 0 : opt_.cond_dim);
    layers_ = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < opt_.depth; ++i, in = opt_.width) layers_->push_back(torch::nn::Linear(in, opt_.width));
    out_ = register_module("out", torch::nn::Linear(opt_.width, d));
  }

  bool has_step_input() const override { return true; }

  Tensor forward_step(const Tensor& x, const Tensor& t, const Tensor& step, const flowlab::Condition& cond) override {
    if (!step_) throw flowlab::Error("architecture/mlp: built without a step input (ArchitectureSpec::step_input)");
    const int64_t b = x.size(0);
    auto embed = [&](const Tensor& s, torch::nn::Linear& in, torch::nn::Linear& out) {
      const Tensor ss = s.to(x.dtype());
      if (opt_.raw_time) return ss.reshape({-1, 1});
      return opt_.sinusoidal_time ? flowlab::sinusoidal_embedding(ss, opt_.time_dim, opt_.max_frequency)
                                  : out->forward(flowlab::activate(in->forward(ss.reshape({-1, 1})), opt_.activation));
    };
    std::vector<Tensor> parts = {x.flatten(1), embed(t, time_in_, time_out_), embed(step, step_in_, step_out_)};
    if (!cond_->empty()) parts.push_back(cond_->forward(cond, b, x.options()));
    std::vector<Tensor> params;
    for (const auto& layer : *layers_) {
      const auto& linear = layer->as<torch::nn::Linear>();
      params.push_back(linear->weight);
      params.push_back(linear->bias);
    }
    params.push_back(out_->weight);
    params.push_back(out_->bias);
    return flowlab::mlp_layers(at::cat(parts, 1), params, opt_.activation).reshape_as(x);
  }

  Tensor forward(const Tensor& x, const Tensor& t, const flowlab::Condition& cond) override {
    if (step_) return forward_step(x, t, at::zeros_like(t, x.options()), cond);
    const int64_t b = x.size(0);
    const bool shared = flowlab::shared_time(t);
    const Tensor ts = (shared ? t.narrow(0, 0, 1) : t).to(x.dtype());
    const Tensor temb =
        opt_.raw_time ? ts.reshape({-1, 1})
        : opt_.sinusoidal_time
            ? flowlab::sinusoidal_embedding(ts, opt_.time_dim, opt_.max_frequency)
            : time_out_->forward(flowlab::activate(time_in_->forward(ts.reshape({-1, 1})), opt_.activation));
    const Tensor xf = x.dim() == 2 ? x : x.flatten(1);  // flatten, not reshape({b, -1}): a trace takes any batch
    // The output in x's shape (no view op, nor its autograd node, when x is already [B, d]).
    auto as_x = [&](const Tensor& v) { return x.dim() == 2 ? v : v.reshape_as(x); };
    const Tensor c = cond_->empty() ? Tensor() : cond_->forward(cond, b, x.options());
    // Blocks of rows help a CPU's cache; on a GPU they would only multiply the kernel launches.
    const bool whole = at::GradMode::is_enabled() || b <= 2 * kRowBlock || !x.device().is_cpu();
    if (!shared && whole) {
      // Every layer after the concatenated input in one op (fused.hpp): one autograd node when training.
      std::vector<Tensor> parts = {xf, temb};
      if (c.defined()) parts.push_back(c);
      std::vector<Tensor> params;
      for (const auto& layer : *layers_) {
        const auto& linear = layer->as<torch::nn::Linear>();
        params.push_back(linear->weight);
        params.push_back(linear->bias);
      }
      params.push_back(out_->weight);
      params.push_back(out_->bias);
      return as_x(flowlab::mlp_layers(at::cat(parts, 1), params, opt_.activation));
    }
    const auto& first = layers_[0]->as<torch::nn::Linear>();
    const Tensor& w = first->weight;  // [width, d + time_dim (+ cond_dim)]: columns for x, emb(t), emb(cond)
    const Tensor bias = shared ? at::addmm(first->bias, temb, w.narrow(1, d_, opt_.time_dim).t()) : first->bias;
    // The hidden layers' output for rows [r, r + n).
    auto hidden = [&](int64_t r, int64_t n) {
      auto rows = [&](const Tensor& z) { return n == b ? z : z.narrow(0, r, n); };
      Tensor h;
      if (shared && !c.defined()) {
        h = flowlab::linear_activation(rows(xf), w.narrow(1, 0, d_), bias, opt_.activation);
      } else if (shared) {
        const Tensor wc = w.narrow(1, d_ + opt_.time_dim, opt_.cond_dim);
        h = flowlab::activate(at::addmm(at::addmm(bias, rows(c), wc.t()), rows(xf), w.narrow(1, 0, d_).t()),
                              opt_.activation);
      } else {
        std::vector<Tensor> parts = {rows(xf), rows(temb)};
        if (c.defined()) parts.push_back(rows(c));
        h = flowlab::linear_activation(at::cat(parts, 1), w, bias, opt_.activation);
      }
      for (size_t i = 1; i < layers_->size(); ++i) {
        const auto& layer = layers_[i]->as<torch::nn::Linear>();
        h = flowlab::linear_activation(h, layer->weight, layer->bias, opt_.activation);
      }
      return h;
    };
    if (whole) return as_x(out_->forward(hidden(0, b)));
    // Without autograd, many rows (a solver's step over a large sample): a block of rows at a time, so that each
    // layer's output is still in the core's cache when the activation and the next layer read it.
    Tensor out = at::empty({b, d_}, x.options());
    for (int64_t r = 0; r < b; r += kRowBlock) {
      const int64_t n = std::min(kRowBlock, b - r);
      Tensor o = out.narrow(0, r, n);
      const Tensor h = hidden(r, n);
      if (h.scalar_type() != o.scalar_type()) {  // autocast (bf16) casts addmm but not addmm_out
        o.copy_(out_->forward(h));
        continue;
      }
      at::addmm_out(o, out_->bias, h, out_->weight.t());
    }
    return as_x(out);
  }

 private:
  MlpOptions opt_;
  std::vector<int64_t> shape_;
  int64_t d_ = 0;      // flattened event size
  bool step_ = false;  // built with a step input
  torch::nn::Linear time_in_{nullptr}, time_out_{nullptr}, step_in_{nullptr}, step_out_{nullptr}, out_{nullptr};
  flowlab::ConditionEmbedder cond_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
};

}  // namespace

FLOWLAB_PLUGIN(
    architecture, mlp, MlpArchitecture, "1.4.0", "MLP on [x, emb(t), emb(cond)], any event shape",
    FLOWLAB_PARAM(width, int, "256", "hidden width") FLOWLAB_PARAM(depth, int, "4", "number of hidden layers")
        FLOWLAB_PARAM(activation, enum(silu | relu | gelu | selu), "silu", "activation function")
            FLOWLAB_PARAM(time_embedding, enum(sinusoidal | mlp | raw), "sinusoidal",
                          "sinusoidal features of t, a small MLP on t (the textbook's), or t itself (TorchCFM's MLP)")
                FLOWLAB_PARAM(time_dim, int, FLOWLAB_MLP_TEXT(FLOWLAB_MLP_TIME_DIM),
                              "width of the sinusoidal or mlp time embedding (2: cos pi t, sin pi t)")
                    FLOWLAB_PARAM(max_frequency, float, FLOWLAB_MLP_TEXT(FLOWLAB_MLP_MAX_FREQUENCY),
                                  "highest frequency of the sinusoidal time embedding (rad per unit t, >= pi)")
                        FLOWLAB_PARAM(cond_dim, int, "64", "width of the condition embedding"))

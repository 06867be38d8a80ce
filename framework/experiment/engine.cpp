// Training (the flow-matching loss from the path, weighting, time sampler and noise plugins; AdamW with warmup
// and cosine/constant schedule; EMA; gradient clipping) and evaluation (every solver run on the same noise).
#include "flowlab/engine.hpp"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/utils.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "flowlab/architecture.hpp"
#include "flowlab/coupling.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/features.hpp"
#include "flowlab/files.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/noise.hpp"
#include "flowlab/optimizer.hpp"
#include "flowlab/path.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/time_sampler.hpp"
#include "flowlab/weighting.hpp"

namespace flowlab {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Linear warmup to lr, then cosine decay to 0 or constant.
double learning_rate(const TrainConfig& c, int64_t step) {
  if (c.warmup > 0 && step < c.warmup) return c.lr * double(step + 1) / double(c.warmup);
  if (c.schedule == "constant") return c.lr;
  const double progress = double(step - c.warmup) / double(std::max<int64_t>(1, c.steps - c.warmup));
  return c.lr * 0.5 * (1 + std::cos(M_PI * std::min(1.0, progress)));
}

template <class T>
std::shared_ptr<T> make(const Registry& reg, const PluginChoice& p) {
  return reg.create<T>(p.kind, p.name, p.params);
}

at::Tensor as_tensor(const std::vector<double>& v) { return at::tensor(v, at::kDouble); }
at::Tensor as_tensor(const std::vector<int64_t>& v) { return at::tensor(v, at::kLong); }
template <class T>
std::vector<T> as_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<T>(c.data_ptr<T>(), c.data_ptr<T>() + c.numel());
}

// Everything that determines the rest of training: weights, EMA, optimizer state, the next step, the CPU RNG
// state and the log so far. Written to path.tmp, then renamed.
void save_checkpoint(const std::string& path, Architecture& model, const FlatEma& ema, const FlatAdamW& opt,
                     int64_t next_step, const TrainLog& log) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive, opt_archive;
  model.save(model_archive);
  opt.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  if (ema.defined()) ema.save(archive);
  archive.write("next_step", at::tensor({next_step}, at::kLong));
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng", gen.get_state());
  }
  archive.write("log_step", as_tensor(log.step));
  archive.write("log_loss", as_tensor(log.loss));
  archive.write("log_grad_norm", as_tensor(log.grad_norm));
  archive.write("log_lr", as_tensor(log.lr));
  archive.save_to(path + ".tmp");
  durable_rename(path + ".tmp", path);
}

int64_t load_checkpoint(const std::string& path, Architecture& model, FlatEma& ema, FlatAdamW& opt, TrainLog& log) {
  torch::serialize::InputArchive archive, model_archive, opt_archive;
  archive.load_from(path);
  archive.read("model", model_archive);
  archive.read("optimizer", opt_archive);
  model.load(model_archive);
  opt.load(opt_archive);  // after model.load, which replaced the parameters' storage: back into the flat buffer
  if (ema.defined()) ema.load(archive);
  // Each entry into a fresh tensor: reading into a defined one would set_() it in place.
  auto read = [&](const char* key) {
    at::Tensor x;
    archive.read(key, x);
    return x;
  };
  const int64_t next = read("next_step").item<int64_t>();
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(read("rng"));
  }
  log.step = as_vector<int64_t>(read("log_step"));
  log.loss = as_vector<double>(read("log_loss"));
  log.grad_norm = as_vector<double>(read("log_grad_norm"));
  log.lr = as_vector<double>(read("log_lr"));
  return next;
}

Array to_array(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  Array a;
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  a.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

// Follows a solve through SampleOptions::on_state: evaluates the field at each state (not counted as NFE) for the
// straightness and the mean speed, and keeps the first `keep` samples' states for the stored trajectories.
class StateRecorder {
 public:
  StateRecorder(const VelocityField& field, int64_t keep) : field_(field), keep_(keep) {}
  void add(double t, const at::Tensor& x) {
    const auto start = Clock::now();
    const at::Tensor v = field_(x, at::scalar_tensor(t, x.options()).expand({x.size(0)})).to(at::kDouble).flatten(1);
    const at::Tensor speed2 = v.pow(2).sum(1);
    if (!times_.empty()) {
      const double h = t - times_.back();
      integral_v_ += 0.5 * h * (v_prev_ + v);
      integral_v2_ += 0.5 * h * (speed2_prev_ + speed2);
    } else {
      integral_v_ = at::zeros_like(v);
      integral_v2_ = at::zeros_like(speed2);
    }
    v_prev_ = v;
    speed2_prev_ = speed2;
    times_.push_back(t);
    mean_speed_.push_back(speed2.sqrt().mean().item<double>());
    if (keep_ > 0) states_.push_back(x.slice(0, 0, keep_).to(at::kCPU, at::kFloat));
    seconds_ += seconds_since(start);
  }
  double straightness(const at::Tensor& x0, const at::Tensor& x1) const {
    const at::Tensor d = (x1 - x0).to(at::kDouble).flatten(1);
    return (d.pow(2).sum(1) - 2 * (d * integral_v_).sum(1) + integral_v2_).mean().item<double>();
  }
  at::Tensor trajectory() const { return at::stack(states_, 1); }
  const std::vector<double>& times() const { return times_; }
  const std::vector<double>& mean_speed() const { return mean_speed_; }
  double seconds() const { return seconds_; }

 private:
  const VelocityField& field_;
  int64_t keep_;
  std::vector<double> times_, mean_speed_;
  at::Tensor v_prev_, speed2_prev_, integral_v_, integral_v2_;
  std::vector<at::Tensor> states_;
  double seconds_ = 0;
};

}  // namespace

double ema_decay(double ema, int64_t updates) {
  return std::min(ema, (1.0 + double(updates)) / (10.0 + double(updates)));
}

Interrupted::Interrupted(int64_t step, TrainLog log)
    : Error(fmt::format("stopped at step {}", step)), step_(step), log_(std::move(log)) {}
Interrupted::~Interrupted() = default;

TrialResult run_trial(const TrialConfig& trial, const Registry& reg, const std::string& device, const ProgressFn& progress,
                      const std::string& checkpoint, const StopFn& should_stop) {
  TrialResult out;
  out.id = trial.id;
  out.seed = trial.seed;
  out.device = device;
  const torch::Device dev(device);
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(dev);
  torch::manual_seed(static_cast<uint64_t>(trial.seed));

  auto data = make<Dataset>(reg, trial.data);
  auto path = make<Path>(reg, trial.path);
  auto weighting = make<Weighting>(reg, trial.weighting);
  auto sampler = make<TimeSampler>(reg, trial.time_sampler);
  // The base distribution: a noise plugin, or any dataset (model.noise: {dataset: ...}) with the data's shape.
  std::shared_ptr<Noise> noise;
  if (trial.noise_dataset.name.empty()) {
    noise = make<Noise>(reg, trial.noise);
  } else {
    auto source = make<Dataset>(reg, trial.noise_dataset);
    if (source->event_shape() != data->event_shape())
      throw Error(fmt::format("model.noise: dataset/{} gives samples of shape [{}], but data (dataset/{}) gives [{}]",
                              trial.noise_dataset.name, fmt::join(source->event_shape(), ", "), trial.data.name,
                              fmt::join(data->event_shape(), ", ")));
    noise = noise_from_dataset(source);
  }
  auto model = make<Architecture>(reg, trial.architecture);
  auto coupling = trial.coupling.name.empty() ? nullptr : make<Coupling>(reg, trial.coupling);
  const bool independent = !coupling || trial.coupling.name == "independent";
  // Conditioning: the dataset's labels and/or continuous attributes.
  const bool use_label = trial.condition == "label" || trial.condition == "both";
  const bool use_attr = trial.condition == "attr" || trial.condition == "both";
  if (use_label && data->num_classes() == 0)
    throw Error(fmt::format("model.condition: {} needs class labels, but dataset/{} has none", trial.condition, trial.data.name));
  if (use_attr && data->attr_dim() == 0)
    throw Error(fmt::format("model.condition: {} needs continuous attributes, but dataset/{} has none", trial.condition,
                            trial.data.name));
  auto condition_of = [&](const Batch& b) {
    Condition cond;
    if (use_label) cond.label = b.label;
    if (use_attr) cond.attr = b.attr;
    return cond;
  };
  const bool conditioned = use_label || use_attr;
  model->build({data->event_shape(), use_label ? data->num_classes() : 0, use_attr ? data->attr_dim() : 0});
  model->to(dev);
  noise->fit(data->sample(std::min<int64_t>(10000, std::max<int64_t>(2, trial.train.batch_size * 4)), opts).x);

  const auto& c = trial.train;
  FlatAdamW opt(model->parameters(), FlatAdamWOptions{c.lr, c.beta1, c.beta2, 1e-8, c.weight_decay});
  FlatEma ema = c.ema > 0 ? FlatEma(opt.flat_parameters()) : FlatEma();

  const bool checkpoints = c.checkpoint_every > 0 && !checkpoint.empty();
  int64_t first_step = 0;
  if (!checkpoint.empty() && std::filesystem::exists(checkpoint))
    first_step = load_checkpoint(checkpoint, *model, ema, opt, out.train);

  // A weighting that is 1 at every probed time (weighting/uniform) leaves the loss a plain mean: probed once here,
  // so any plugin, whatever its name, is asked.
  const at::Tensor probe = path->clamp_to_domain(at::linspace(0, 1, 1001, opts));
  const bool uniform_weight = weighting->weight(probe, *path).eq(1).all().item<bool>();
  const auto t_train = Clock::now();
  for (int64_t step = first_step; step < c.steps; ++step) {
    if (should_stop && should_stop()) {
      if (checkpoints && step > first_step) save_checkpoint(checkpoint, *model, ema, opt, step, out.train);
      throw Interrupted(step, out.train);
    }
    const double lr = learning_rate(c, step);
    opt.set_lr(lr);
    Batch batch = data->sample(c.batch_size, opts);
    at::Tensor x0 = noise->sample(batch.x.sizes(), opts);
    if (!independent) {  // re-pair within the batch; labels and attributes follow their x1
      const Pairing p = coupling->pair(x0, batch.x);
      const at::Tensor i0 = p.i0.to(dev), i1 = p.i1.to(dev);
      x0 = x0.index_select(0, i0);
      batch.x = batch.x.index_select(0, i1);
      if (batch.label.defined()) batch.label = batch.label.index_select(0, i1);
      if (batch.attr.defined()) batch.attr = batch.attr.index_select(0, i1);
    }
    const at::Tensor& x1 = batch.x;
    const at::Tensor t = path->clamp_to_domain(sampler->sample(c.batch_size, opts));
    const PathSample s = path->sample(x0, x1, t);
    const Condition cond = conditioned ? drop_condition(condition_of(batch), c.batch_size, c.p_uncond, opts) : Condition();
    const at::Tensor v = model->forward(s.xt, t, cond);
    // Uniform weighting (w = 1): the mean over all elements in one op (mse_loss), the same loss as the mean of the
    // rows' means (every row has the same size) up to the order of the float sums.
    const at::Tensor loss = uniform_weight ? at::mse_loss(v, s.ut)
                                           : (weighting->weight(t, *path) * (v - s.ut).pow(2).flatten(1).mean(1)).mean();
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      out.status = "diverged";
      out.diverged_step = step;
      out.error = fmt::format("loss is {} at step {}", loss_value, step);
      out.train_seconds = seconds_since(t_train);
      return out;
    }
    opt.zero_grad();
    loss.backward();
    const double grad_norm = opt.clip_grad_norm(c.grad_clip);  // clips only when grad_clip > 0
    opt.step(&ema, ema_decay(c.ema, step));                     // and the EMA, when there is one
    if (step % c.log_every == 0 || step + 1 == c.steps) {
      out.train.step.push_back(step);
      out.train.loss.push_back(loss_value);
      out.train.grad_norm.push_back(grad_norm);
      out.train.lr.push_back(lr);
      if (progress) progress(Progress{step + 1, c.steps, loss_value, grad_norm, lr});
    }
    if (checkpoints && (step + 1) % c.checkpoint_every == 0 && step + 1 < c.steps)
      save_checkpoint(checkpoint, *model, ema, opt, step + 1, out.train);
  }
  // The trained state, before evaluation: a crash while evaluating does not retrain.
  if (!checkpoint.empty() && first_step < c.steps) save_checkpoint(checkpoint, *model, ema, opt, c.steps, out.train);
  out.train_seconds = seconds_since(t_train);

  // Evaluation on the EMA weights (by default), from noise fixed per trial so every solver sees the same x0,
  // against reference data the model never trained on (Dataset::reference, from a stream of its own seed).
  const auto t_eval = Clock::now();
  model->eval();
  at::NoGradGuard no_grad;
  if (trial.eval.use_ema && c.ema > 0) opt.assign(ema.flat());
  for (const auto& kv : model->named_parameters()) out.weights.emplace_back(kv.key(), to_array(kv.value()));
  for (const auto& kv : model->named_buffers()) out.weights.emplace_back(kv.key(), to_array(kv.value()));
  out.architecture = trial.architecture.name;
  for (const auto& [key, value] : trial.architecture.params.values()) out.architecture_params.emplace_back(key, to_string(value));
  out.event_shape = data->event_shape();
  out.condition = trial.condition;

  torch::manual_seed(static_cast<uint64_t>(trial.seed) + 0x5eedULL);
  const int64_t m = trial.eval.samples;
  std::vector<int64_t> shape = {m};
  for (auto s : data->event_shape()) shape.push_back(s);
  const at::Tensor x0 = noise->sample(shape, opts);
  // Conditioned models sample with conditions drawn like the training data's, guided with weight w.
  const Batch condition_batch = conditioned ? data->sample(m, opts) : Batch();
  torch::manual_seed(static_cast<uint64_t>(trial.seed) + 0x7ef5eedULL);
  const at::Tensor reference = data->reference(m, opts).x;
  out.reference_source = data->reference_source();
  out.reference_count = reference.size(0);

  const int64_t store = trial.eval.store_samples >= 0 ? trial.eval.store_samples
                        : data->event_shape().size() == 1 ? std::min<int64_t>(m, 10000)
                                                           : 64;
  out.x0 = to_array(x0.slice(0, 0, std::min(store, m)));
  out.reference = to_array(reference.slice(0, 0, std::min(store, reference.size(0))));

  // Metrics, each on the features its `features` parameter names (raw when it has none): one extractor per spec,
  // the reference's features computed once per spec, each row's once per spec.
  std::vector<std::shared_ptr<Metric>> metrics;
  std::vector<std::string> metric_spec;
  std::map<std::string, std::shared_ptr<FeatureExtractor>> extractors;
  std::map<std::string, at::Tensor> reference_features;
  for (size_t i = 0; i < trial.eval.metrics.size(); ++i) {
    const PluginChoice& mc = trial.eval.metrics[i];
    metrics.push_back(make<Metric>(reg, mc));
    out.metric_names.push_back(i < trial.eval.metric_labels.size() ? trial.eval.metric_labels[i] : mc.name);
    const std::string spec = mc.params.has("features") ? mc.params.str("features") : "raw";
    metric_spec.push_back(spec);
    if (spec != "raw" && !extractors.count(spec)) {
      extractors[spec] = make_feature_extractor(spec, reg, device);
      reference_features[spec] = extractors[spec]->features(reference);
    }
    out.metric_features.push_back(spec == "raw" ? "raw" : extractors[spec]->describe());
  }
  const double w = trial.eval.guidance;
  const VelocityField field =
      conditioned ? guided_field(model, condition_of(condition_batch), w)
                  : VelocityField([&](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); });
  const int64_t calls_per_evaluation = conditioned && w != 0.0 && w != 1.0 ? 2 : 1;
  const int64_t keep_paths = std::min(trial.eval.store_trajectories, m);

  for (const auto& run : trial.eval.runs) {
    EvalRow row;
    row.solver = run.solver.name;
    row.label = run.label.empty() ? run.solver.name : run.label;
    row.steps = run.steps;
    row.rtol = run.solver.params.has("rtol") ? run.solver.params.real("rtol") : std::nan("");
    row.atol = run.solver.params.has("atol") ? run.solver.params.real("atol") : std::nan("");
    // What the solver's states tell about the field (timed apart from the solve): straightness by the trapezoid
    // rule, with |d - v|^2 = |d|^2 - 2 d.v + |v|^2 so that d = x1_hat - x0, known only at the end, factors out:
    // V = int v dt and Q = int |v|^2 dt per sample.
    StateRecorder rec(field, keep_paths);
    SampleOptions so;
    so.on_state = [&](double t, const at::Tensor& x) { rec.add(t, x); };
    try {
      const auto t0 = Clock::now();
      auto solver = make<Solver>(reg, run.solver);
      SampleResult r;
      {
        const c10::InferenceMode inference;  // the solve only: feature extractors may train (with autograd)
        r = solver->sample(x0, field, so);
      }
      row.seconds = seconds_since(t0) - rec.seconds();
      row.samples_per_s = double(m) / row.seconds;
      row.nfe = r.nfe;
      row.network_calls = r.nfe * calls_per_evaluation;
      row.accepted = r.accepted_steps;
      row.rejected = r.rejected_steps;
      if (!at::isfinite(r.x).all().item<bool>())
        throw SolverError(fmt::format("solver/{}: the samples hold NaN or Inf", run.solver.name));
      row.straightness = rec.straightness(x0, r.x);
      row.times = rec.times();
      row.mean_speed = rec.mean_speed();
      row.samples = to_array(r.x.slice(0, 0, std::min(store, m)));
      if (keep_paths > 0) row.trajectory = to_array(rec.trajectory());
      std::map<std::string, at::Tensor> sample_features;
      for (size_t i = 0; i < metrics.size(); ++i) {
        const std::string& spec = metric_spec[i];
        if (spec == "raw") {
          row.metrics.push_back(metrics[i]->compute(r.x, reference));
          continue;
        }
        if (!sample_features.count(spec)) sample_features[spec] = extractors.at(spec)->features(r.x);
        row.metrics.push_back(metrics[i]->compute(sample_features[spec], reference_features.at(spec)));
      }
    } catch (const std::exception& e) {
      row.error = e.what();
      row.metrics.assign(metrics.size(), std::nan(""));
      row.straightness = std::nan("");
      ++out.failed_rows;
    }
    out.eval.push_back(std::move(row));
  }
  out.eval_seconds = seconds_since(t_eval);
  out.status = "completed";
  return out;
}

}  // namespace flowlab

// Training (the flow-matching loss from the path, weighting, time sampler and noise plugins; AdamW with warmup
// and cosine/constant schedule; EMA; gradient clipping) and evaluation (every solver run on the same noise).
#include "flowlab/engine.hpp"

#include <c10/core/InferenceMode.h>
#include <fmt/format.h>
#include <torch/utils.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "flowlab/architecture.hpp"
#include "flowlab/arrays.hpp"
#include "flowlab/coupling.hpp"
#include "flowlab/cuda_graph.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/features.hpp"
#include "flowlab/files.hpp"
#include "flowlab/integrity.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/noise.hpp"
#include "flowlab/optimizer.hpp"
#include "flowlab/path.hpp"
#include "flowlab/phema.hpp"
#include "flowlab/precision.hpp"
#include "flowlab/solver.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/schedule_transform.hpp"
#include "flowlab/time_grid.hpp"
#include "flowlab/time_sampler.hpp"
#include "flowlab/objective.hpp"
#include "flowlab/weighting.hpp"

namespace flowlab {

Array to_array(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  Array a;
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  a.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

at::Tensor to_tensor(const Array& a) {
  return at::from_blob(const_cast<float*>(a.values.data()), a.shape, at::kFloat).clone();
}

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

// Model weights as one list: the parameters, then the buffers (what a finished stage leaves behind).
std::vector<at::Tensor> weights_of(Architecture& model) {
  std::vector<at::Tensor> w;
  for (const auto& p : model.parameters()) w.push_back(p.detach().clone());
  for (const auto& b : model.buffers()) w.push_back(b.detach().clone());
  return w;
}

void load_weights(Architecture& model, const std::vector<at::Tensor>& w) {
  at::NoGradGuard no_grad;
  const auto params = model.parameters();
  const auto buffers = model.buffers();
  if (w.size() != params.size() + buffers.size())
    throw Error(
        fmt::format("internal: {} weight tensors for a model with {}", w.size(), params.size() + buffers.size()));
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(w[i]);
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].copy_(w[params.size() + i]);
}

std::vector<at::Tensor> weights_now(Architecture& model, const FlatEma& ema, bool use_ema);
/// The model's weights with the parameters that train taken from `flat` (FlatAdamW's order), the others and the
/// buffers as they are; all as they are where `flat` is null.
std::vector<at::Tensor> weights_with(Architecture& model, const at::Tensor* flat);

/// What a finished training stage leaves: its final weights, its EMA (the EMA'd parameters and the raw buffers;
/// empty without an EMA), the teacher pairs it trained on and its record.
struct Finished {
  std::vector<at::Tensor> raw, ema;
  std::vector<PhemaSnapshot> phema;  ///< its post-hoc EMA snapshots (train.phema); empty without
  at::Tensor pairs_x0, pairs_x1;
  RoundRecord record;
  /// The teacher of the next stage: the EMA model where there is one (the texts' EMA teacher).
  const std::vector<at::Tensor>& teacher() const { return ema.empty() ? raw : ema; }
};

/// Autoguidance's guide network of its own architecture (eval.guidance.guide.architecture), while round 0 trains it
/// beside the model on the same batches: its weights, optimizer and EMA.
struct GuideNet {
  std::shared_ptr<Architecture> model;
  std::unique_ptr<FlatAdamW> opt;
  FlatEma ema;
};

/// The state of the stage in progress, beside what Finished holds for the stages before it.
struct Carry {
  int64_t stage = 0;
  PowerEma phema;                 ///< the current stage's post-hoc EMA (train.phema); undefined without
  at::Tensor pairs_x0, pairs_x1;  ///< the current stage's teacher pairs
  double pair_seconds = 0;
  int64_t teacher_nfe = 0;
  std::vector<Finished> finished;
  /// The rows evaluated during training so far (eval.every), of every stage: kept in checkpoints, so that a resumed
  /// trial ends with the rows of an uninterrupted one.
  std::vector<EvalRow> during;
  /// Autoguidance's guide (eval.guidance.guide): the weights of round 0 (or of the guide network) at its step, once
  /// training passed it.
  std::vector<at::Tensor> guide;
  /// The guide network in training (eval.guidance.guide.architecture), until its weights are kept in `guide`.
  std::shared_ptr<GuideNet> guide_net;
};

void write_tensors(torch::serialize::OutputArchive& a, const std::string& prefix, const std::vector<at::Tensor>& v) {
  a.write(prefix + "n", at::tensor({int64_t(v.size())}, at::kLong));
  for (size_t i = 0; i < v.size(); ++i) a.write(prefix + std::to_string(i), v[i]);
}

// Reads into fresh tensors: reading into a defined one would set_() it in place.
at::Tensor read_tensor(torch::serialize::InputArchive& a, const std::string& key) {
  at::Tensor x;
  a.read(key, x);
  return x;
}

std::vector<at::Tensor> read_tensors(torch::serialize::InputArchive& a, const std::string& prefix) {
  std::vector<at::Tensor> v(size_t(read_tensor(a, prefix + "n").item<int64_t>()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = read_tensor(a, prefix + std::to_string(i));
  return v;
}

// A finished stage's post-hoc EMA snapshots: their steps and stds, then each flat tensor.
void write_phema(torch::serialize::OutputArchive& a, const std::string& prefix, const std::vector<PhemaSnapshot>& v) {
  std::vector<int64_t> steps;
  std::vector<double> stds;
  std::vector<at::Tensor> flats;
  for (const auto& s : v) steps.push_back(s.step), stds.push_back(s.std), flats.push_back(s.flat);
  a.write(prefix + "steps", at::tensor(steps, at::kLong));
  a.write(prefix + "stds", at::tensor(stds, at::kDouble));
  write_tensors(a, prefix, flats);
}

std::vector<PhemaSnapshot> read_phema(torch::serialize::InputArchive& a, const std::string& prefix) {
  at::Tensor steps;
  if (!a.try_read(prefix + "steps", steps)) return {};
  const at::Tensor stds = read_tensor(a, prefix + "stds");
  const std::vector<at::Tensor> flats = read_tensors(a, prefix);
  std::vector<PhemaSnapshot> v;
  for (size_t i = 0; i < flats.size(); ++i)
    v.push_back({steps[int64_t(i)].item<int64_t>(), stds[int64_t(i)].item<double>(), flats[i]});
  return v;
}

at::Tensor text_tensor(const std::string& s) { return at::tensor(std::vector<uint8_t>(s.begin(), s.end()), at::kByte); }
std::string text_of(const at::Tensor& t) {
  if (t.numel() == 0) return "";
  const at::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), size_t(c.numel()));
}

// The rows evaluated during training: their numbers in two tables, then each row's strings, metrics and arrays.
constexpr int64_t kRowInts = 7, kRowReals = 5;
void write_rows(torch::serialize::OutputArchive& a, const std::vector<EvalRow>& rows) {
  const int64_t n = int64_t(rows.size());
  a.write("during_n", at::tensor({n}, at::kLong));
  if (n == 0) return;
  std::vector<int64_t> ints;
  std::vector<double> reals;
  for (const auto& r : rows) {
    ints.insert(ints.end(), {r.round, r.train_step, r.steps, r.nfe, r.network_calls, r.accepted, r.rejected});
    reals.insert(reals.end(), {r.rtol, r.atol, r.seconds, r.samples_per_s, r.straightness});
  }
  a.write("during_ints", at::tensor(ints, at::kLong).view({n, kRowInts}));
  a.write("during_reals", at::tensor(reals, at::kDouble).view({n, kRowReals}));
  for (size_t i = 0; i < rows.size(); ++i) {
    const EvalRow& r = rows[i];
    const std::string p = fmt::format("during{}_", i);
    a.write(p + "solver", text_tensor(r.solver));
    a.write(p + "label", text_tensor(r.label));
    a.write(p + "error", text_tensor(r.error));
    a.write(p + "metrics", as_tensor(r.metrics));
    a.write(p + "times", as_tensor(r.times));
    a.write(p + "mean_speed", as_tensor(r.mean_speed));
    if (!r.samples.empty()) a.write(p + "samples", to_tensor(r.samples));
    if (!r.trajectory.empty()) a.write(p + "trajectory", to_tensor(r.trajectory));
  }
}

std::vector<EvalRow> read_rows(torch::serialize::InputArchive& a) {
  std::vector<EvalRow> rows;
  at::Tensor n;
  if (!a.try_read("during_n", n)) return rows;  // a checkpoint written before eval.every
  rows.resize(size_t(n.item<int64_t>()));
  if (rows.empty()) return rows;
  const at::Tensor ints = read_tensor(a, "during_ints").contiguous(),
                   reals = read_tensor(a, "during_reals").contiguous();
  const int64_t* ip = ints.data_ptr<int64_t>();
  const double* rp = reals.data_ptr<double>();
  for (size_t i = 0; i < rows.size(); ++i, ip += kRowInts, rp += kRowReals) {
    EvalRow& r = rows[i];
    r.round = ip[0], r.train_step = ip[1], r.steps = ip[2], r.nfe = ip[3], r.network_calls = ip[4], r.accepted = ip[5];
    r.rejected = ip[6];
    r.rtol = rp[0], r.atol = rp[1], r.seconds = rp[2], r.samples_per_s = rp[3], r.straightness = rp[4];
    const std::string p = fmt::format("during{}_", i);
    r.solver = text_of(read_tensor(a, p + "solver"));
    r.label = text_of(read_tensor(a, p + "label"));
    r.error = text_of(read_tensor(a, p + "error"));
    r.metrics = as_vector<double>(read_tensor(a, p + "metrics"));
    r.times = as_vector<double>(read_tensor(a, p + "times"));
    r.mean_speed = as_vector<double>(read_tensor(a, p + "mean_speed"));
    at::Tensor x;
    if (a.try_read(p + "samples", x)) r.samples = to_array(x);
    at::Tensor y;
    if (a.try_read(p + "trajectory", y)) r.trajectory = to_array(y);
  }
  return rows;
}

// Everything that determines the rest of training: weights, EMA, optimizer state, the next step, the CPU RNG
// state, the log so far, and the stages already finished (their weights, pairs and records) with the current
// stage's pairs; and the rows evaluated during training so far. Written to path.tmp, synced, then renamed
// (write_file).
// `ahead`, when not empty, holds the generator's state before each batch drawn ahead and not yet trained on: the
// first is written as the RNG state (instead of the generator's), the others as "rng_ahead".
void save_checkpoint(const std::string& path, Architecture& model, const FlatEma& ema, const FlatAdamW& opt,
                     int64_t next_step, const TrainLog& log, const Carry& carry,
                     const std::vector<at::Tensor>& ahead = {}) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive, opt_archive;
  model.save(model_archive);
  opt.save(opt_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", opt_archive);
  if (ema.defined()) ema.save(archive);
  if (carry.phema.defined()) carry.phema.save(archive);
  archive.write("next_step", at::tensor({next_step}, at::kLong));
  if (!ahead.empty()) {
    archive.write("rng", ahead.front());
    if (ahead.size() > 1) archive.write("rng_ahead", at::stack(at::TensorList(ahead).slice(1)));
  } else {
    auto gen = at::Generator(at::globalContext().defaultGenerator(at::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("rng", gen.get_state());
  }
  archive.write("log_round", as_tensor(log.round));
  archive.write("log_step", as_tensor(log.step));
  archive.write("log_loss", as_tensor(log.loss));
  archive.write("log_grad_norm", as_tensor(log.grad_norm));
  archive.write("log_lr", as_tensor(log.lr));
  archive.write("stage", at::tensor({carry.stage}, at::kLong));
  if (carry.pairs_x0.defined()) {
    archive.write("pairs_x0", carry.pairs_x0);
    archive.write("pairs_x1", carry.pairs_x1);
    archive.write("pair_info", at::tensor({carry.pair_seconds, double(carry.teacher_nfe)}, at::kDouble));
  }
  archive.write("finished", at::tensor({int64_t(carry.finished.size())}, at::kLong));
  for (size_t k = 0; k < carry.finished.size(); ++k) {
    const Finished& f = carry.finished[k];
    const std::string p = fmt::format("finished{}_", k);
    write_tensors(archive, p + "raw_", f.raw);
    write_tensors(archive, p + "ema_", f.ema);
    write_phema(archive, p + "phema_", f.phema);
    if (f.pairs_x0.defined()) {
      archive.write(p + "pairs_x0", f.pairs_x0);
      archive.write(p + "pairs_x1", f.pairs_x1);
    }
    archive.write(
        p + "record",
        at::tensor({f.record.train_seconds, f.record.pair_seconds, double(f.record.teacher_nfe)}, at::kDouble));
  }
  write_rows(archive, carry.during);
  if (!carry.guide.empty()) write_tensors(archive, "guide_", carry.guide);
  if (carry.guide_net) {
    torch::serialize::OutputArchive net, net_model, net_opt;
    carry.guide_net->model->save(net_model);
    carry.guide_net->opt->save(net_opt);
    net.write("model", net_model);
    net.write("optimizer", net_opt);
    if (carry.guide_net->ema.defined()) carry.guide_net->ema.save(net);
    archive.write("guide_net", net);
  }
  // Serialized in memory, where LibTorch's writer cannot fail (on a full disk its file writer threw from its
  // destructor and aborted the worker), then written and synced by write_file with PATH.sha256 beside it: ENOSPC
  // or EIO is a WriteError naming the checkpoint, and a damaged checkpoint is never trained on.
  std::ostringstream bytes(std::ios::out | std::ios::binary);
  archive.save_to(bytes);
  write_checksummed(path, bytes.str());
}

/// The stage the checkpoint at `path` is in (0 for checkpoints written before stages existed).
int64_t checkpoint_stage(const std::string& path) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  at::Tensor stage;
  return archive.try_read("stage", stage) ? stage.item<int64_t>() : 0;  // a fresh tensor: read once
}

/// Restores what save_checkpoint wrote; `carry.finished` records keep their configured fields (round, stage, ...)
/// and get their weights, pairs and measured numbers back. `ahead` gets the RNG states before the second and later
/// batches that were drawn ahead (empty when there were fewer than two).
int64_t load_checkpoint(const std::string& path, Architecture& model, FlatEma& ema, FlatAdamW& opt, TrainLog& log,
                        Carry& carry, std::vector<at::Tensor>& ahead) {
  torch::serialize::InputArchive archive, model_archive, opt_archive;
  archive.load_from(path);
  archive.read("model", model_archive);
  archive.read("optimizer", opt_archive);
  model.load(model_archive);
  opt.load(opt_archive);  // after model.load, which replaced the parameters' storage: back into the flat buffer
  if (ema.defined()) ema.load(archive);
  if (carry.phema.defined()) carry.phema.load(archive);
  const int64_t next = read_tensor(archive, "next_step").item<int64_t>();
  {
    auto gen = at::Generator(at::globalContext().defaultGenerator(at::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(read_tensor(archive, "rng"));
  }
  ahead.clear();
  at::Tensor more;
  if (archive.try_read("rng_ahead", more))
    for (int64_t k = 0; k < more.size(0); ++k) ahead.push_back(more[k].clone());
  log.step = as_vector<int64_t>(read_tensor(archive, "log_step"));
  log.loss = as_vector<double>(read_tensor(archive, "log_loss"));
  log.grad_norm = as_vector<double>(read_tensor(archive, "log_grad_norm"));
  log.lr = as_vector<double>(read_tensor(archive, "log_lr"));
  // Each optional entry into a fresh tensor too.
  auto try_read = [&](const std::string& key, at::Tensor& out) {
    at::Tensor x;
    if (!archive.try_read(key, x)) return false;
    out = x;
    return true;
  };
  at::Tensor x;
  log.round = try_read("log_round", x) ? as_vector<int64_t>(x) : std::vector<int64_t>(log.step.size(), 0);
  if (try_read("pairs_x0", carry.pairs_x0)) {
    carry.pairs_x1 = read_tensor(archive, "pairs_x1");
    const at::Tensor info = read_tensor(archive, "pair_info");
    carry.pair_seconds = info[0].item<double>();
    carry.teacher_nfe = static_cast<int64_t>(info[1].item<double>());
  }
  const int64_t finished = try_read("finished", x) ? x.item<int64_t>() : 0;
  for (int64_t k = 0; k < finished && size_t(k) < carry.finished.size(); ++k) {
    Finished& f = carry.finished[size_t(k)];
    const std::string p = fmt::format("finished{}_", k);
    f.raw = read_tensors(archive, p + "raw_");
    f.ema = read_tensors(archive, p + "ema_");
    f.phema = read_phema(archive, p + "phema_");
    if (try_read(p + "pairs_x0", f.pairs_x0)) {
      f.pairs_x1 = read_tensor(archive, p + "pairs_x1");
    }
    const at::Tensor rec = read_tensor(archive, p + "record");
    f.record.train_seconds = rec[0].item<double>();
    f.record.pair_seconds = rec[1].item<double>();
    f.record.teacher_nfe = static_cast<int64_t>(rec[2].item<double>());
  }
  carry.during = read_rows(archive);
  at::Tensor guide_n;
  if (archive.try_read("guide_n", guide_n)) carry.guide = read_tensors(archive, "guide_");
  torch::serialize::InputArchive net, net_model, net_opt;
  if (carry.guide_net && archive.try_read("guide_net", net)) {  // the guide network was still training
    net.read("model", net_model);
    net.read("optimizer", net_opt);
    carry.guide_net->model->load(net_model);
    carry.guide_net->opt->load(net_opt);
    if (carry.guide_net->ema.defined()) carry.guide_net->ema.load(net);
  }
  return next;
}

// The states of torch's default generators that a trial draws from: the CPU's and, on a GPU, that device's.
struct RngState {
  at::Tensor cpu, device;
  static RngState capture(const torch::Device& dev) {
    RngState s;
    s.cpu = state_of(at::globalContext().defaultGenerator(at::kCPU));
    if (dev.is_cuda()) s.device = state_of(at::globalContext().defaultGenerator(dev));
    return s;
  }
  void restore(const torch::Device& dev) const {
    set(at::globalContext().defaultGenerator(at::kCPU), cpu);
    if (dev.is_cuda() && device.defined()) set(at::globalContext().defaultGenerator(dev), device);
  }

 private:
  static at::Tensor state_of(const at::Generator& g) {
    at::Generator gen = g;
    std::lock_guard<std::mutex> lock(gen.mutex());
    return gen.get_state();
  }
  static void set(const at::Generator& g, const at::Tensor& state) {
    at::Generator gen = g;
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
};

/// Puts the generators back as they were when it was made: what runs in its scope leaves training's stream untouched.
class RngGuard {
 public:
  explicit RngGuard(const torch::Device& dev) : dev_(dev), saved_(RngState::capture(dev)) {}
  ~RngGuard() { saved_.restore(dev_); }
  RngGuard(const RngGuard&) = delete;
  RngGuard& operator=(const RngGuard&) = delete;

 private:
  torch::Device dev_;
  RngState saved_;
};

/// What every evaluation of a trial shares: the fixed noise (and, for conditioned models, conditions), the reference
/// samples, the metrics with their feature extractors and the reference's features.
struct EvalInputs {
  at::Tensor x0, reference;
  Batch condition_batch;
  std::vector<std::shared_ptr<Metric>> metrics;
  std::vector<std::string> metric_spec;  ///< per metric: the features it is computed on ("raw", ...)
  std::vector<std::string> metric_names, metric_features;
  std::map<std::string, std::shared_ptr<FeatureExtractor>> extractors;
  std::map<std::string, at::Tensor> reference_features;
  int64_t store = 0;       ///< samples kept per row
  int64_t keep_paths = 0;  ///< trajectories kept per row
};

/// The metrics of the model itself (ModelMetric, spec "model") at one set of weights: computed once and written to
/// every row evaluated on them. NaN elsewhere; `error` says why one failed.
struct ModelMetricValues {
  std::vector<double> values;
  std::string error;
};

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

int64_t checkpoint_step(const std::string& path, const TrialConfig& trial) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  at::Tensor next, stage;
  archive.read("next_step", next);
  const int64_t k = archive.try_read("stage", stage) ? stage.item<int64_t>() : 0;
  const auto stages = plan_stages(trial);
  int64_t before = 0;
  for (int64_t j = 0; j < k && size_t(j) < stages.size(); ++j) before += stages[size_t(j)].steps;
  return before + next.item<int64_t>();
}

namespace {

std::atomic<bool> pairing_ahead{true};

/// A batch drawn ahead, paired: x0 and the batch reordered by the coupling.
struct Paired {
  at::Tensor x0;
  Batch batch;
};

/// A thread that runs the engine's pairings in the order submitted: the couplings of the batches drawn ahead,
/// computed while the steps before them train.
class PairingThread {
 public:
  // The thread runs ATen ops (the cost matrix) with the creating thread's intra-op threads: OpenMP's count is per
  // thread, and a new one would start from the machine's core count.
  PairingThread()
      : thread_([this, threads = at::get_num_threads()] {
          at::set_num_threads(threads);
          loop();
        }) {}
  ~PairingThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  std::future<Paired> submit(std::packaged_task<Paired()> task) {
    std::future<Paired> result = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(std::move(task));
    }
    wake_.notify_one();
    return result;
  }

 private:
  void loop() {
    for (;;) {
      std::packaged_task<Paired()> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;  // stopped, every job run
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();  // an exception is kept in the future and rethrown where the pairing is used
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::packaged_task<Paired()>> jobs_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

/// One trial: the plugins, the stages' training and the evaluation of every stage.
class TrialRun {
 public:
  TrialRun(const TrialConfig& trial, const Registry& reg, const std::string& device, const ProgressFn& progress,
           const std::string& checkpoint, const StopFn& should_stop, const TrialHooks& hooks)
      : trial_(trial),
        reg_(reg),
        device_(device),
        progress_(progress),
        checkpoint_(checkpoint),
        should_stop_(should_stop),
        hooks_(hooks),
        dev_(device),
        opts_(at::TensorOptions().dtype(at::kFloat).device(dev_)),
        stages_(plan_stages(trial)) {}

  TrialResult run();
  /// evaluate_posthoc_ema: the rows of eval.ema_std, for `stds`, from a finished trial's stored weights and snapshots.
  TrialResult posthoc(const std::vector<std::pair<std::string, Array>>& weights, const PhemaRecord& phema,
                      const std::vector<double>& stds);

 private:
  void setup();
  std::shared_ptr<Architecture> new_model() const;
  /// A network of `architecture` for this trial's data and conditions.
  std::shared_ptr<Architecture> new_model(const PluginChoice& architecture) const;
  void condition_check() const;
  Condition condition_of(const Batch& b) const {
    Condition cond;
    if (use_label_) cond.label = b.label;
    if (use_attr_) cond.attr = b.attr;
    return cond;
  }
  /// N pairs (x0, x1_hat): x0 from the noise, x1_hat from the model (holding the teacher's weights) integrated
  /// with reflow.teacher_solver.
  void make_pairs(int64_t n);
  /// Trains stage `k` of stages_ from `first_step`; false when it diverged (out_ says how).
  bool train_stage(size_t k, int64_t first_step, FlatAdamW& opt, FlatEma& ema);
  /// The flow-matching loss of one batch; `more`: the steps of this stage after this one (batches may be drawn
  /// ahead for them).
  at::Tensor flow_matching_loss(const TrainConfig& c, double mix, int64_t more);
  /// A batch drawn for a later step, paired on the pairing thread (or at once, without one), and the generator's
  /// state before it was drawn (for checkpoints).
  struct Ahead {
    std::future<Paired> paired;
    at::Tensor rng_before;
  };
  void draw_ahead(int64_t b);
  /// Re-pairs x0 and the batch (labels and attributes follow their x1) by `p`.
  void apply_pairing(const Pairing& p, at::Tensor& x0, Batch& batch) const;
  /// The checkpoint's RNG states: those before the batches drawn ahead, when there are any.
  std::vector<at::Tensor> rng_for_checkpoint() const {
    std::vector<at::Tensor> states;
    for (const Ahead& a : ahead_) states.push_back(a.rng_before);
    return states;
  }
  at::Tensor distill_loss(const TrainConfig& c);
  /// RoundRecord::train_calls of a finished stage, from the configuration and its teacher's NFE.
  double train_calls(const RoundRecord& r) const {
    const TrainConfig& c = train_config(trial_, r.stage);
    const double per_row = r.stage == Stage::distill ? double(trial_.distill.steps) : objective_->calls_per_row();
    const int64_t pairs = r.stage == Stage::distill  ? trial_.distill.pairs
                          : r.stage == Stage::reflow ? trial_.reflow.pairs
                                                     : 0;
    return double(c.steps) * double(c.batch_size) * per_row + double(pairs) * double(r.teacher_nfe);
  }
  /// The evaluation's inputs, drawn from seeds of their own (the caller keeps training's stream apart).
  EvalInputs prepare_eval() const;
  /// The velocity field the evaluation integrates: `model`, guided for conditioned models, in the state's precision.
  VelocityField eval_field(const std::shared_ptr<Architecture>& model, const EvalInputs& in) const;
  /// One solver run on the fixed noise: its row (round and train_step left to the caller); an error is in the row.
  /// `index` is the run's place in eval.runs (it seeds a stochastic solver's noise: eval_run_seed).
  EvalRow evaluate_run(const EvalRun& run, size_t index, const EvalInputs& in, const VelocityField& field,
                       const StepField& step, const ModelMetricValues& model_values) const;
  /// The average velocity u(x, t, d) of `model` for few-step solvers (SampleOptions::step_field), guided as
  /// eval_field; empty when the objective trains no step input.
  StepField step_field(const std::shared_ptr<Architecture>& model, const EvalInputs& in) const;
  /// What a metric of the model sees of `model` (ModelAccess): its unguided field, the noise's density, solvers.
  ModelAccess model_access(const std::shared_ptr<Architecture>& model) const;
  /// The metrics of the model (ModelMetric) on `model`'s current weights.
  ModelMetricValues model_metrics(const EvalInputs& in, const std::shared_ptr<Architecture>& model) const;
  /// The final evaluation: every finished stage, every run; then, per stage, every run again on each post-hoc EMA
  /// of eval.ema_std.
  void evaluate();
  /// Every run on model_'s weights as stage `k`'s rows; `suffix` (",ema_std=S") ends their labels.
  void evaluate_runs(size_t k, const EvalInputs& in, const VelocityField& field, const StepField& jump,
                     const std::string& suffix);
  /// Stage `f`'s weights with its post-hoc EMA of relative std `std` (at its last step) in place of the trained
  /// parameters.
  std::vector<at::Tensor> phema_weights(const Finished& f, double std) const;
  /// What the results file keeps of a stage's snapshots (model_ names the parameters).
  PhemaRecord phema_record(const std::vector<PhemaSnapshot>& snapshots) const;
  /// The seed of the rows of stage `k` on its post-hoc EMA `std`: of their own, so that they do not depend on the
  /// other stds listed, and flowlab ema reproduces them.
  uint64_t phema_seed(size_t k, double std) const {
    return static_cast<uint64_t>(trial_.seed) + 0xe3a5ULL + 1000003ULL * uint64_t(k) +
           uint64_t(std::llround(std * 1e9));
  }
  /// The evaluation during training of stage `k` at `step` (eval.every): the runs of eval.during (all by default) on
  /// the weights the final evaluation would use (the EMA where eval.use_ema), in a model of its own and with the
  /// generators put back, so that training goes on bit for bit as without it. Its rows go to carry_.during; false
  /// (and no rows) when should_stop asked to stop before it was done.
  bool evaluate_during(size_t k, int64_t step, const FlatEma& ema);
  /// Keeps the weights the evaluation would use now (the EMA where eval.use_ema) as autoguidance's guide.
  /// With a guide network (eval.guidance.guide.architecture), its weights (its EMA where eval.use_ema); it trains no
  /// further.
  void keep_guide(const FlatEma& ema) {
    carry_.guide.clear();
    const bool net = carry_.guide_net != nullptr;
    for (const at::Tensor& w :
         weights_now(net ? *carry_.guide_net->model : *model_, net ? carry_.guide_net->ema : ema, trial_.eval.use_ema))
      carry_.guide.push_back(w.clone());
    carry_.guide_net.reset();
  }
  /// The guide network of eval.guidance.guide.architecture, initialised from a seed of its own with the generators
  /// put back (round 0's stream is as without it), with an optimizer and EMA as round 0's.
  std::shared_ptr<GuideNet> new_guide_net() const;
  /// One training step of the guide network on the batch the model just trained on (guide_batch_); false when its
  /// loss is not finite (out_ says so).
  bool train_guide(const TrainConfig& c, int64_t step, double lr);
  /// The batch of the step in progress, kept by flow_matching_loss for the guide network.
  struct GuideBatch {
    at::Tensor xt, t, ut;
    Condition cond;
  };
  GuideBatch guide_batch_;
  /// Autoguidance's guide model, from carry_.guide; SolverError when the snapshot is not taken yet.
  std::shared_ptr<Architecture> guide_model() const;
  /// Whether carry_.during holds the evaluation of stage `k` at `step`.
  bool evaluated_during(size_t k, int64_t step) const;
  /// The step over every stage of `row`'s weights (TrialHooks' count): its train_step after the stages before its
  /// round.
  int64_t trial_step(const EvalRow& row) const;
  /// The result of a trial whose stage `k` diverged: the stages so far and the rows evaluated during training.
  TrialResult diverged(size_t k);
  /// Keeps stage `k`'s trained state (raw weights, EMA, post-hoc EMA snapshots, teacher pairs) in carry_.finished.
  void finish_stage(size_t k, FlatAdamW& opt, const FlatEma& ema);
  /// Writes the checkpoint of the current stage at `next_step`, after telling hooks_ (checkpointing).
  void checkpoint(Architecture& model, const FlatEma& ema, const FlatAdamW& opt, int64_t next_step,
                  const std::vector<at::Tensor>& ahead = {});
  /// Sets what the results file says about the evaluation (noise, reference, metrics) from `in`.
  void describe_eval(const EvalInputs& in);

  const TrialConfig& trial_;
  const Registry& reg_;
  std::string device_;
  const ProgressFn& progress_;
  const std::string& checkpoint_;
  const StopFn& should_stop_;
  const TrialHooks& hooks_;
  const torch::Device dev_;
  const at::TensorOptions opts_;
  std::vector<RoundRecord> stages_;
  // Evaluations during training (eval.every): their inputs, drawn once, the generators' states right after them
  // (where the final evaluation's round 0 runs continue the stream), and the model they evaluate.
  std::unique_ptr<EvalInputs> during_inputs_;
  RngState during_rng_;
  std::shared_ptr<Architecture> eval_model_;
  int64_t steps_before_ = 0;  ///< training steps of the stages before the current one (for Progress)
  int64_t total_steps_ = 0;

  std::shared_ptr<Dataset> data_;
  std::shared_ptr<Path> path_;
  std::shared_ptr<Path> sampled_path_;  ///< the path evaluation samples on: eval.as_path, else path_
  std::shared_ptr<Weighting> weighting_;
  std::shared_ptr<TimeSampler> sampler_;
  std::shared_ptr<Noise> noise_;
  std::shared_ptr<Coupling> coupling_;
  std::shared_ptr<Objective> objective_;
  ObjectiveContext objective_ctx_;  ///< what objective_ reads: the path, time sampler and weighting
  bool independent_ = true, use_label_ = false, use_attr_ = false, conditioned_ = false;
  bool uniform_weight_ = false;  ///< the weighting is 1 at every probed time: the loss is a plain mean
  std::shared_ptr<Architecture> model_;
  Carry carry_;
  TrialResult out_;
  // Drawing ahead: with a coupling that draws no random numbers, on CPU, each step draws the batch of the step
  // kAhead steps later, after everything it draws itself (the first step of a stage draws its own batch first),
  // and the pairing thread pairs the batches drawn ahead while the steps before them train: with two in the
  // queue the thread never waits for the training thread to draw. The random stream is the same with or without
  // the thread (set_pairing_ahead) and across checkpoints, which store the states before the batches in the queue.
  static constexpr int64_t kAhead = 2;
  bool draw_ahead_ = false;
  std::deque<Ahead> ahead_;
  std::vector<at::Tensor> resume_ahead_;  ///< from a checkpoint: the states before its 2nd, 3rd, ... batch ahead
  std::unique_ptr<PairingThread> pairing_thread_;  // last: joined before the rest goes
};

void TrialRun::setup() {
  data_ = make<Dataset>(reg_, trial_.data);
  path_ = make<Path>(reg_, trial_.path);
  sampled_path_ = trial_.eval.as_path.name.empty() ? path_ : make<Path>(reg_, trial_.eval.as_path);
  weighting_ = make<Weighting>(reg_, trial_.weighting);
  sampler_ = make<TimeSampler>(reg_, trial_.time_sampler);
  // The base distribution: a noise plugin, or any dataset (model.noise: {dataset: ...}) with the data's shape.
  if (trial_.noise_dataset.name.empty()) {
    noise_ = make<Noise>(reg_, trial_.noise);
  } else {
    auto source = make<Dataset>(reg_, trial_.noise_dataset);
    if (source->event_shape() != data_->event_shape())
      throw Error(fmt::format("model.noise: dataset/{} gives samples of shape [{}], but data (dataset/{}) gives [{}]",
                              trial_.noise_dataset.name, fmt::join(source->event_shape(), ", "), trial_.data.name,
                              fmt::join(data_->event_shape(), ", ")));
    noise_ = noise_from_dataset(source);
  }
  coupling_ = trial_.coupling.name.empty() ? nullptr : make<Coupling>(reg_, trial_.coupling);
  objective_ =
      make<Objective>(reg_, trial_.objective.name.empty() ? PluginChoice{"objective", "flow_matching", "", Params()}
                                                          : trial_.objective);
  // A teacher coupling (reflow) pairs nothing within a batch: round 0 trains on independent pairs.
  independent_ = !coupling_ || coupling_->keeps_order() || coupling_->needs_teacher();
  draw_ahead_ = !independent_ && !coupling_->draws_random() && dev_.is_cpu();
  if (draw_ahead_ && pairing_ahead.load()) pairing_thread_ = std::make_unique<PairingThread>();
  // Conditioning: the dataset's labels and/or continuous attributes.
  use_label_ = trial_.condition == "label" || trial_.condition == "both";
  use_attr_ = trial_.condition == "attr" || trial_.condition == "both";
  condition_check();
  conditioned_ = use_label_ || use_attr_;
  model_ = new_model();
  noise_->fit(data_->sample(std::min<int64_t>(10000, std::max<int64_t>(2, trial_.train.batch_size * 4)), opts_).x);
  for (const auto& s : stages_) total_steps_ += s.steps;
  // A weighting that is 1 at every probed time (weighting/uniform) leaves the loss a plain mean: probed once here,
  // so any plugin, whatever its name, is asked.
  const at::Tensor probe = path_->clamp_to_domain(at::linspace(0, 1, 1001, opts_));
  uniform_weight_ = weighting_->weight(probe, *path_).eq(1).all().item<bool>();
  objective_ctx_ = ObjectiveContext{path_.get(), sampler_.get(), weighting_.get(), uniform_weight_, {}};
  if (const std::string spec = objective_->features(); !spec.empty()) {
    std::shared_ptr<FeatureExtractor> extractor = make_feature_extractor(spec, reg_, device_);
    objective_ctx_.features = [extractor](const at::Tensor& x) { return extractor->differentiable_features(x); };
  }
}

void TrialRun::condition_check() const {
  if (use_label_ && data_->num_classes() == 0)
    throw Error(fmt::format("model.condition: {} needs class labels, but dataset/{} has none", trial_.condition,
                            trial_.data.name));
  if (use_attr_ && data_->attr_dim() == 0)
    throw Error(fmt::format("model.condition: {} needs continuous attributes, but dataset/{} has none",
                            trial_.condition, trial_.data.name));
  if ((use_label_ || use_attr_) && stages_.size() > 1)
    throw Error(fmt::format("reflow/distill: a conditioned model (model.condition: {}) cannot be reflowed yet; "
                            "use model.condition: none",
                            trial_.condition));
}

std::shared_ptr<Architecture> TrialRun::new_model() const { return new_model(trial_.architecture); }

std::shared_ptr<Architecture> TrialRun::new_model(const PluginChoice& architecture) const {
  auto model = make<Architecture>(reg_, architecture);
  model->build({data_->event_shape(), use_label_ ? data_->num_classes() : 0, use_attr_ ? data_->attr_dim() : 0,
                objective_->step_input() && architecture.name == trial_.architecture.name});
  model->to(dev_);
  return model;
}

void TrialRun::make_pairs(int64_t n) {
  const auto t0 = Clock::now();
  at::NoGradGuard no_grad;
  model_->eval();
  std::vector<int64_t> shape = {n};
  for (auto s : data_->event_shape()) shape.push_back(s);
  const at::Tensor x0 = noise_->sample(shape, opts_);
  const VelocityField field = [&](const at::Tensor& x, const at::Tensor& t) { return model_->forward(x, t); };
  auto solver = make<Solver>(reg_, trial_.reflow.teacher.solver);
  // In chunks, so that large pair sets of images fit in memory; each chunk is an independent solve.
  const int64_t chunk = 4096;
  std::vector<at::Tensor> x1;
  int64_t nfe = 0;
  for (int64_t i = 0; i < n; i += chunk) {
    SampleResult r;
    {
      const c10::InferenceMode inference;
      SampleOptions so;
      so.path = path_.get();
      r = solver->sample(x0.slice(0, i, std::min(n, i + chunk)), field, so);
    }
    if (!at::isfinite(r.x).all().item<bool>())
      throw Error(
          fmt::format("reflow: the teacher's samples (solver/{}) hold NaN or Inf", trial_.reflow.teacher.solver.name));
    x1.push_back(r.x);
    nfe = r.nfe;
  }
  model_->train();
  carry_.pairs_x0 = x0;
  carry_.pairs_x1 = at::cat(x1, 0);
  carry_.teacher_nfe = nfe;
  carry_.pair_seconds = seconds_since(t0);
}

/// Whether `index` (int64, on the CPU) is 0, 1, ..., n - 1: gathering by it copies.
bool is_identity(const at::Tensor& index) {
  if (!index.device().is_cpu() || index.scalar_type() != at::kLong || !index.is_contiguous()) return false;
  const int64_t* k = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    if (k[i] != i) return false;
  return true;
}

void TrialRun::apply_pairing(const Pairing& p, at::Tensor& x0, Batch& batch) const {
  if (!is_identity(p.i0)) x0 = x0.index_select(0, p.i0.to(dev_));  // minibatch_ot keeps the noise's order
  const at::Tensor i1 = p.i1.to(dev_);
  batch.x = batch.x.index_select(0, i1);
  // Labels and attributes only where the model is conditioned on them (nothing else reads a training batch's).
  batch.label = use_label_ && batch.label.defined() ? batch.label.index_select(0, i1) : at::Tensor();
  batch.attr = use_attr_ && batch.attr.defined() ? batch.attr.index_select(0, i1) : at::Tensor();
}

void TrialRun::draw_ahead(int64_t b) {
  Ahead a;
  {
    auto gen = at::Generator(at::globalContext().defaultGenerator(at::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    a.rng_before = gen.get_state();
  }
  Paired drawn;
  drawn.batch = data_->sample(b, opts_);
  drawn.x0 = noise_->sample(drawn.batch.x.sizes(), opts_);
  // The pairing and its index_selects run on the thread; apply_pairing reads only members set before training.
  std::packaged_task<Paired()> job([this, d = std::move(drawn)]() mutable {
    apply_pairing(coupling_->pair(d.x0, d.batch.x), d.x0, d.batch);
    return std::move(d);
  });
  if (pairing_thread_) {
    a.paired = pairing_thread_->submit(std::move(job));
  } else {
    a.paired = job.get_future();
    job();
  }
  ahead_.push_back(std::move(a));
}

// One batch of the flow-matching loss. In reflow rounds each row is a teacher pair with probability `mix`
// (drawn row by row) and a (noise, data) pair, coupled by model.coupling, otherwise.
at::Tensor TrialRun::flow_matching_loss(const TrainConfig& c, double mix, int64_t more) {
  const int64_t b = c.batch_size;
  const bool ahead = draw_ahead_ && mix == 0;  // a mix draws the real/teacher split first: paired in order
  const int64_t n_teacher = mix > 0 ? (at::rand({b}, opts_) < mix).sum().item<int64_t>() : 0;
  const int64_t n_real = b - n_teacher;
  at::Tensor x0, x1;
  Batch batch;
  if (ahead) {
    if (ahead_.empty()) {  // the first step of the stage, or after a resume: the batches the checkpoint had ahead
      draw_ahead(b);
      for (const at::Tensor& state : resume_ahead_) {
        {
          auto gen = at::Generator(at::globalContext().defaultGenerator(at::kCPU));
          std::lock_guard<std::mutex> lock(gen.mutex());
          gen.set_state(state);
        }
        draw_ahead(b);
      }
      resume_ahead_.clear();
    }
    Paired p = ahead_.front().paired.get();
    ahead_.pop_front();
    batch = std::move(p.batch);
    x0 = std::move(p.x0);
    x1 = batch.x;
  } else if (n_real > 0) {
    batch = data_->sample(n_real, opts_);
    x0 = noise_->sample(batch.x.sizes(), opts_);
    if (!independent_) apply_pairing(coupling_->pair(x0, batch.x), x0, batch);  // re-pair within the batch
    x1 = batch.x;
  }
  if (n_teacher > 0) {
    const at::Tensor k = at::randint(carry_.pairs_x0.size(0), {n_teacher}, opts_.dtype(at::kLong));
    const at::Tensor t0 = carry_.pairs_x0.index_select(0, k), t1 = carry_.pairs_x1.index_select(0, k);
    x0 = n_real > 0 ? at::cat({x0, t0}, 0) : t0;
    x1 = n_real > 0 ? at::cat({x1, t1}, 0) : t1;
  }
  const ObjectiveDraw d = objective_->draw(x0, x1, objective_ctx_);  // the times and the path's noise
  const Condition cond = conditioned_ ? drop_condition(condition_of(batch), b, c.p_uncond, opts_) : Condition();
  if (ahead)  // after this step's draws
    while (int64_t(ahead_.size()) < std::min(kAhead, more)) draw_ahead(b);
  if (carry_.guide_net) guide_batch_ = GuideBatch{d.xt, d.t, d.target, cond};
  return objective_->loss(d, cond, *model_, objective_ctx_);
}

// InstaFlow's reconstruction objective: `distill.steps` Euler steps of the student from x0 should land on the
// teacher's x1_hat (l2: mean squared error, l1: mean absolute error, per element).
at::Tensor TrialRun::distill_loss(const TrainConfig& c) {
  const at::Tensor k = at::randint(carry_.pairs_x0.size(0), {c.batch_size}, opts_.dtype(at::kLong));
  at::Tensor x = carry_.pairs_x0.index_select(0, k);
  const at::Tensor target = carry_.pairs_x1.index_select(0, k);
  const int64_t n = trial_.distill.steps;
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor t = path_->clamp_to_domain(at::full({x.size(0)}, double(i) / double(n), opts_));
    x = x + model_->forward(x, t) * (1.0 / double(n));
  }
  const at::Tensor d = x - target;
  return trial_.distill.loss == "l1" ? d.abs().mean() : d.pow(2).mean();
}

int64_t TrialRun::trial_step(const EvalRow& row) const {
  int64_t before = 0;
  for (const auto& stage : stages_) {
    if (stage.round == row.round) break;
    before += stage.steps;
  }
  return before + row.train_step;
}

void TrialRun::checkpoint(Architecture& model, const FlatEma& ema, const FlatAdamW& opt, int64_t next_step,
                          const std::vector<at::Tensor>& ahead) {
  // The loggers first: once the checkpoint exists, a resume starts after what they hold, so that must be written.
  if (hooks_.checkpointing) hooks_.checkpointing();
  save_checkpoint(checkpoint_, model, ema, opt, next_step, out_.train, carry_, ahead);
}

bool TrialRun::train_stage(size_t k, int64_t first_step, FlatAdamW& opt, FlatEma& ema) {
  RoundRecord& stage = stages_[k];
  const TrainConfig& c = train_config(trial_, stage.stage);
  const bool checkpoints = c.checkpoint_every > 0 && !checkpoint_.empty();
  const int64_t every = trial_.eval.every;
  const auto t_train = Clock::now();
  double evaluating = 0;  // seconds of evaluations during training, left out of the stage's train_seconds
  auto evaluate_at = [&](int64_t at) {
    const auto t0 = Clock::now();
    evaluate_during(k, at, ema);
    evaluating += seconds_since(t0);
  };
  // Resumed from a checkpoint written at a step due for evaluation but without its rows (stopped while evaluating):
  // evaluated now, on the restored weights.
  if (every > 0 && first_step > 0 && first_step < c.steps && first_step % every == 0 &&
      !evaluated_during(k, first_step))
    evaluate_at(first_step);
  if (k == 0 && first_step == 0 && trial_.eval.guide_step == 0) keep_guide(ema);
  for (int64_t step = first_step; step < c.steps; ++step) {
    if (should_stop_ && should_stop_()) {
      if (checkpoints && step > first_step) checkpoint(*model_, ema, opt, step, rng_for_checkpoint());
      throw Interrupted(steps_before_ + step, out_.train);
    }
    const double lr = learning_rate(c, step);
    opt.set_lr(lr);
    at::Tensor loss;
    {
      const PrecisionScope precision(c.precision, dev_);  // the forward; the backward follows autocast's casts
      loss = stage.stage == Stage::distill ? distill_loss(c) : flow_matching_loss(c, stage.mix, c.steps - step - 1);
    }
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value)) {
      out_.status = "diverged";
      out_.diverged_step = steps_before_ + step;
      out_.error = stages_.size() > 1 ? fmt::format("loss is {} at step {} of round {} ({})", loss_value, step,
                                                    stage.round, stage_name(stage.stage))
                                      : fmt::format("loss is {} at step {}", loss_value, step);
      stage.train_seconds += seconds_since(t_train) - evaluating;
      return false;
    }
    opt.zero_grad();
    loss.backward();
    // The gradient norm is needed to clip (grad_clip > 0) and to log; otherwise it is not computed.
    const bool logged = step % c.log_every == 0 || step + 1 == c.steps;
    const double grad_norm = c.grad_clip > 0 || logged ? opt.clip_grad_norm(c.grad_clip) : 0.0;
    opt.step(&ema, ema_decay(c.ema, step));  // and the EMA, when there is one
    if (carry_.phema.defined()) carry_.phema.update(opt.flat_parameters(), step + 1);
    if (k == 0 && carry_.guide_net && !train_guide(c, step, lr)) {
      stage.train_seconds += seconds_since(t_train) - evaluating;
      return false;
    }
    if (k == 0 && step + 1 == trial_.eval.guide_step) keep_guide(ema);
    if (logged) {
      out_.train.round.push_back(stage.round);
      out_.train.step.push_back(step);
      out_.train.loss.push_back(loss_value);
      out_.train.grad_norm.push_back(grad_norm);
      out_.train.lr.push_back(lr);
      if (progress_) progress_(Progress{steps_before_ + step + 1, total_steps_, loss_value, grad_norm, lr});
    }
    // Before the checkpoint of the same step, which then holds its rows.
    if (every > 0 && (step + 1) % every == 0 && step + 1 < c.steps) evaluate_at(step + 1);
    if (checkpoints && (step + 1) % c.checkpoint_every == 0 && step + 1 < c.steps)
      checkpoint(*model_, ema, opt, step + 1, rng_for_checkpoint());
  }
  stage.train_seconds += seconds_since(t_train) - evaluating;
  return true;
}

TrialResult TrialRun::run() {
  out_.id = trial_.id;
  out_.seed = trial_.seed;
  out_.device = device_;
  out_.precision = applied_precision(trial_.train.precision, dev_);
  torch::manual_seed(static_cast<uint64_t>(trial_.seed));
  setup();

  // Which stage a checkpoint left off in: the stages before it are restored from it, not retrained.
  const bool resume = !checkpoint_.empty() && std::filesystem::exists(checkpoint_);
  const size_t resume_stage = resume ? size_t(checkpoint_stage(checkpoint_)) : 0;
  if (resume_stage >= stages_.size())
    throw Error(
        fmt::format("checkpoint {}: stage {} of a trial with {} stages", checkpoint_, resume_stage, stages_.size()));
  for (size_t k = 0; k < resume_stage; ++k) carry_.finished.push_back(Finished{{}, {}, {}, {}, {}, stages_[k]});

  for (size_t k = resume_stage; k < stages_.size(); ++k) {
    RoundRecord& stage = stages_[k];
    carry_.stage = int64_t(k);
    steps_before_ = 0;
    for (size_t j = 0; j < k; ++j) steps_before_ += stages_[j].steps;
    const TrainConfig& c = train_config(trial_, stage.stage);
    const bool resuming_here = resume && k == resume_stage;
    if (k > 0) {
      // A stage of its own seed: a new model (its initialisation drawn here), the previous stage's EMA model as
      // the teacher of its pairs, then warm (from the teacher) or fresh (from the new initialisation).
      torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0x9e3779b9ULL * uint64_t(k));
      model_ = new_model();
      if (!resuming_here) {
        const std::vector<at::Tensor> init = weights_of(*model_);
        load_weights(*model_, carry_.finished.back().teacher());
        make_pairs(stage.stage == Stage::distill ? trial_.distill.pairs : trial_.reflow.pairs);
        if (stage.stage == Stage::reflow && trial_.reflow.init == "fresh") load_weights(*model_, init);
      }
    }
    model_->train();
    if (k == 0 && !trial_.eval.guide_architecture.name.empty() && trial_.eval.guide_step >= 0)
      carry_.guide_net = new_guide_net();  // replaced by its checkpointed state, or dropped once kept
    FlatAdamW opt(model_->parameters(), FlatAdamWOptions{c.lr, c.beta1, c.beta2, 1e-8, c.weight_decay});
    FlatEma ema = c.ema > 0 ? FlatEma(opt.flat_parameters()) : FlatEma();
    carry_.phema = c.phema_stds.empty() ? PowerEma()
                                        : PowerEma(opt.flat_parameters(), c.phema_stds,
                                                   phema_snapshot_steps(c.steps, c.phema_snapshots));
    int64_t first_step = 0;
    if (resuming_here) {
      first_step = load_checkpoint(checkpoint_, *model_, ema, opt, out_.train, carry_, resume_ahead_);
      if (!carry_.guide.empty()) carry_.guide_net.reset();  // kept before the checkpoint: trained no further
      if (hooks_.evaluated)  // the checkpoint's rows from its step on, which a log resumed there drops
        for (const auto& row : carry_.during)
          if (trial_step(row) >= steps_before_ + first_step) hooks_.evaluated(trial_step(row), row);
    } else if (k > 0 && c.checkpoint_every > 0 && !checkpoint_.empty()) {
      checkpoint(*model_, ema, opt, 0);  // the stage's pairs, kept
    }
    stage.pair_seconds = carry_.pair_seconds;
    stage.teacher_nfe = carry_.teacher_nfe;

    if (!train_stage(k, first_step, opt, ema)) return diverged(k);
    // The trained state at the stage's end: a crash before the next stage's first checkpoint, or while
    // evaluating, does not retrain it.
    if (!checkpoint_.empty() && !(resuming_here && first_step >= c.steps)) checkpoint(*model_, ema, opt, c.steps);
    finish_stage(k, opt, ema);
  }
  for (const auto& f : carry_.finished) {
    out_.rounds.push_back(f.record);
    out_.rounds.back().train_calls = train_calls(f.record);
  }
  out_.train_seconds = 0;
  for (const auto& r : out_.rounds) out_.train_seconds += r.train_seconds + r.pair_seconds;
  evaluate();
  for (auto& row : carry_.during) out_.eval.push_back(std::move(row));  // after the final rows, which keep their places
  out_.status = "completed";
  return out_;
}

TrialResult TrialRun::diverged(size_t k) {
  for (size_t j = 0; j < k; ++j) out_.rounds.push_back(carry_.finished[j].record);
  out_.rounds.push_back(stages_[k]);
  // What was evaluated before it diverged is kept (the final evaluation's rows are none).
  if (!carry_.during.empty()) {
    if (!during_inputs_) {
      const RngGuard rng(dev_);
      at::NoGradGuard no_grad;
      during_inputs_ = std::make_unique<EvalInputs>(prepare_eval());
    }
    describe_eval(*during_inputs_);
    out_.eval = std::move(carry_.during);
  }
  return out_;
}

void TrialRun::finish_stage(size_t k, FlatAdamW& opt, const FlatEma& ema) {
  Finished f;
  f.raw = weights_of(*model_);
  if (ema.defined()) {  // the EMA as weights: assigned to the model, read, then the raw weights put back
    const at::Tensor raw = opt.flat_parameters().clone();
    opt.assign(ema.flat());
    f.ema = weights_of(*model_);
    opt.assign(raw);
  }
  f.phema = carry_.phema.snapshots();
  carry_.phema = PowerEma();
  f.pairs_x0 = carry_.pairs_x0;
  f.pairs_x1 = carry_.pairs_x1;
  f.record = stages_[k];
  carry_.finished.push_back(std::move(f));
  carry_.pairs_x0 = at::Tensor(), carry_.pairs_x1 = at::Tensor();
  carry_.pair_seconds = 0, carry_.teacher_nfe = 0;
}

// The evaluation's inputs: noise fixed per trial (every solver of every stage, and every evaluation during
// training, sees the same x0) and reference data the model never trained on (Dataset::reference, from a stream of
// its own seed); then the metrics, each on the features its `features` parameter names (raw when it has none): one
// extractor per spec, the reference's features computed once per spec.
EvalInputs TrialRun::prepare_eval() const {
  EvalInputs in;
  torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0x5eedULL);
  const int64_t m = trial_.eval.samples;
  std::vector<int64_t> shape = {m};
  for (auto s : data_->event_shape()) shape.push_back(s);
  in.x0 = noise_->sample(shape, opts_);
  // Conditioned models sample with conditions drawn like the training data's, guided with weight w.
  in.condition_batch = conditioned_ ? data_->sample(m, opts_) : Batch();
  torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0x7ef5eedULL);
  in.reference = data_->reference(m, opts_).x;
  in.store = trial_.eval.store_samples >= 0     ? trial_.eval.store_samples
             : data_->event_shape().size() == 1 ? std::min<int64_t>(m, 10000)
                                                : 64;
  in.keep_paths = std::min(trial_.eval.store_trajectories, m);
  for (size_t i = 0; i < trial_.eval.metrics.size(); ++i) {
    const PluginChoice& mc = trial_.eval.metrics[i];
    in.metrics.push_back(make<Metric>(reg_, mc));
    in.metric_names.push_back(i < trial_.eval.metric_labels.size() ? trial_.eval.metric_labels[i] : mc.name);
    if (const auto* mm = dynamic_cast<const ModelMetric*>(in.metrics.back().get())) {
      in.metric_spec.push_back("model");
      std::string what = mm->describe(model_access(nullptr));
      // The flow's density is what the likelihood measures; a coupling other than independent (or reflow stages on
      // teacher pairs) trains a field whose flow is not fitted to the data's density by the independent path.
      if (!independent_ || stages_.size() > 1)
        what += fmt::format("; warning: trained with coupling '{}'{}, not independent pairs: the value is the "
                            "likelihood of the flow's own density, which that training does not fit by maximum "
                            "likelihood of the independent path",
                            trial_.coupling.name.empty() ? std::string("independent") : trial_.coupling.name,
                            stages_.size() > 1 ? " and reflow/distill stages" : "");
      in.metric_features.push_back(what);
      continue;
    }
    const std::string spec = mc.params.has("features") ? mc.params.str("features") : "raw";
    in.metric_spec.push_back(spec);
    if (spec != "raw" && !in.extractors.count(spec)) in.extractors[spec] = make_feature_extractor(spec, reg_, device_);
    // The reference's features once per spec, and only for a metric that compares with them.
    if (spec != "raw" && in.metrics.back()->uses_reference() && !in.reference_features.count(spec))
      in.reference_features[spec] = in.extractors[spec]->features(in.reference);
    in.metric_features.push_back(spec == "raw" ? "raw" : in.extractors[spec]->describe());
  }
  return in;
}

void TrialRun::describe_eval(const EvalInputs& in) {
  const int64_t m = in.x0.size(0);
  out_.reference_source = data_->reference_source();
  out_.reference_count = in.reference.size(0);
  out_.x0 = to_array(in.x0.slice(0, 0, std::min(in.store, m)));
  out_.reference = to_array(in.reference.slice(0, 0, std::min(in.store, in.reference.size(0))));
  out_.metric_names = in.metric_names;
  out_.metric_features = in.metric_features;
}

// The guidance weight at time t (eval.guidance): constant, on an interval (the plain conditional field outside it),
// or a linear ramp.
double guidance_weight(const EvalConfig& e, double t) {
  if (e.guidance_schedule == "interval")
    return t >= e.guidance_interval[0] && t <= e.guidance_interval[1] ? e.guidance : 1.0;
  if (e.guidance_schedule == "up") return 1 + (e.guidance - 1) * t;
  if (e.guidance_schedule == "down") return 1 + (e.guidance - 1) * (1 - t);
  return e.guidance;
}

// Classifier-free guidance with w(t): guided_field's arithmetic at each time's weight (so the interval [0, 1] is
// constant guidance bit for bit), one network call where w(t) is 0 or 1.
VelocityField scheduled_guidance(std::shared_ptr<Architecture> model, Condition cond, const EvalConfig& e) {
  return [model = std::move(model), cond = std::move(cond), e](const at::Tensor& x, const at::Tensor& t) -> at::Tensor {
    const double w = guidance_weight(e, t.reshape(-1)[0].item<double>());
    if (w == 0.0) return model->forward(x, t, Condition());
    if (w == 1.0) return model->forward(x, t, cond);
    const at::Tensor vu = model->forward(x, t, Condition());
    const at::Tensor vc = model->forward(x, t, cond);
    return vu + w * (vc - vu);
  };
}

// Autoguidance (Karras et al. 2024, arXiv 2406.02507, eq. 2, D_w = D_0 + w (D_1 - D_0), on velocities): the guide
// is a weaker model of the same trial: round 0's weights at eval.guidance.guide.step, or a smaller network
// (eval.guidance.guide.architecture) trained beside round 0 on the same batches up to that step, as EDM2's guides
// are smaller and shorter-trained versions of the main model (ibid., sec. 3 and 5). Both see the same
// condition (none for unconditioned models); w(t) follows the guidance schedule; one network call where w(t) is 0
// (the guide) or 1 (the model), two otherwise.
VelocityField autoguided(std::shared_ptr<Architecture> model, std::shared_ptr<Architecture> guide, Condition cond,
                         const EvalConfig& e) {
  return [model = std::move(model), guide = std::move(guide), cond = std::move(cond), e](
             const at::Tensor& x, const at::Tensor& t) -> at::Tensor {
    if (!guide)
      throw SolverError(
          fmt::format("eval.guidance.guide: the guide, round 0's weights at step {}, is not kept yet", e.guide_step));
    const double w = guidance_weight(e, t.reshape(-1)[0].item<double>());
    if (w == 1.0) return model->forward(x, t, cond);
    if (w == 0.0) return guide->forward(x, t, cond);
    const at::Tensor vg = guide->forward(x, t, cond);
    return vg + w * (model->forward(x, t, cond) - vg);
  };
}

std::shared_ptr<GuideNet> TrialRun::new_guide_net() const {
  const TrainConfig& c = trial_.train;
  auto g = std::make_shared<GuideNet>();
  {
    const RngGuard rng(dev_);
    torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0x6a1de5ULL);
    g->model = new_model(trial_.eval.guide_architecture);
  }
  g->model->train();
  g->opt = std::make_unique<FlatAdamW>(g->model->parameters(),
                                       FlatAdamWOptions{c.lr, c.beta1, c.beta2, 1e-8, c.weight_decay});
  if (c.ema > 0) g->ema = FlatEma(g->opt->flat_parameters());
  return g;
}

// The guide network's step: the model's loss (same batch, times, targets, conditions and weighting) on the guide,
// its own AdamW at the model's learning rate, clipping and EMA. It draws no random numbers.
bool TrialRun::train_guide(const TrainConfig& c, int64_t step, double lr) {
  GuideNet& g = *carry_.guide_net;
  const GuideBatch b = std::move(guide_batch_);
  guide_batch_ = GuideBatch();
  at::Tensor loss;
  {
    const PrecisionScope precision(c.precision, dev_);
    loss = weighted_squared_error(g.model->forward(b.xt, b.t, b.cond), b.ut, b.t, objective_ctx_);
  }
  const double value = loss.item<double>();
  if (!std::isfinite(value)) {
    out_.status = "diverged";
    out_.diverged_step = step;
    out_.error = fmt::format("the guide's loss (eval.guidance.guide.architecture: {}) is {} at step {}",
                             trial_.eval.guide_architecture.name, value, step);
    return false;
  }
  g.opt->set_lr(lr);
  g.opt->zero_grad();
  loss.backward();
  if (c.grad_clip > 0) g.opt->clip_grad_norm(c.grad_clip);
  g.opt->step(&g.ema, ema_decay(c.ema, step));
  return true;
}

std::shared_ptr<Architecture> TrialRun::guide_model() const {
  if (carry_.guide.empty()) return nullptr;
  const RngGuard rng(dev_);  // its initialisation draws, put back: the evaluation's streams are as without a guide
  auto g =
      new_model(trial_.eval.guide_architecture.name.empty() ? trial_.architecture : trial_.eval.guide_architecture);
  load_weights(*g, carry_.guide);
  g->eval();
  return g;
}

VelocityField TrialRun::eval_field(const std::shared_ptr<Architecture>& model, const EvalInputs& in) const {
  const double w = trial_.eval.guidance;
  const bool scheduled = trial_.eval.guidance_schedule != "constant";
  const VelocityField model_field =
      trial_.eval.guide_step >= 0
          ? autoguided(model, guide_model(), conditioned_ ? condition_of(in.condition_batch) : Condition(), trial_.eval)
      : !conditioned_
          ? VelocityField([model](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); })
      : scheduled ? scheduled_guidance(model, condition_of(in.condition_batch), trial_.eval)
                  : guided_field(model, condition_of(in.condition_batch), w);
  // Under bf16 autocast the network answers in bf16; the solver's state stays in x's precision.
  VelocityField f = [model_field](const at::Tensor& x, const at::Tensor& t) {
    at::Tensor v = model_field(x, t);
    return v.scalar_type() == x.scalar_type() ? v : v.to(x.scalar_type());
  };
  if (sampled_path_ != path_) f = schedule_transformed(std::move(f), path_, sampled_path_, "eval.as_path");
  return f;
}

StepField TrialRun::step_field(const std::shared_ptr<Architecture>& model, const EvalInputs& in) const {
  if (!objective_->step_input()) return StepField();
  const Condition cond = conditioned_ ? condition_of(in.condition_batch) : Condition();
  const double w = trial_.eval.guidance;
  const bool guided = conditioned_ && w != 1.0;
  return [model, cond, w, guided](const at::Tensor& x, const at::Tensor& t, const at::Tensor& d) {
    auto call = [&](const Condition& c) {
      at::Tensor u = model->forward_step(x, t, d, c);
      return u.scalar_type() == x.scalar_type() ? u : u.to(x.scalar_type());  // bf16 autocast
    };
    if (!guided) return call(cond);
    Condition null = cond;  // classifier-free guidance on the average velocity, as guided_field on v
    null.drop = at::ones({x.size(0)}, x.options().dtype(at::kBool));
    if (w == 0.0) return call(null);
    const at::Tensor uu = call(null);
    return uu + w * (call(cond) - uu);
  };
}

ModelAccess TrialRun::model_access(const std::shared_ptr<Architecture>& model) const {
  ModelAccess a;
  if (model)
    a.field = [model](const at::Tensor& x, const at::Tensor& t) {
      at::Tensor v = model->forward(x, t);
      return v.scalar_type() == x.scalar_type() ? v : v.to(x.scalar_type());
    };
  a.noise_log_prob = [noise = noise_, name = trial_.noise.name](const at::Tensor& x) {
    at::Tensor lp = noise->log_prob(x);
    if (!lp.defined())
      throw Error(fmt::format("noise/{} has no log density, so no likelihood (noises with one: gaussian, matched, "
                              "uniform)",
                              name.empty() ? std::string("<dataset>") : name));
    return lp;
  };
  a.make_solver = [this](const std::string& name, const Params& params) {
    return reg_.create<Solver>("solver", name, params);
  };
  a.quantization_step = data_->quantization_step();
  return a;
}

ModelMetricValues TrialRun::model_metrics(const EvalInputs& in, const std::shared_ptr<Architecture>& model) const {
  ModelMetricValues out;
  out.values.assign(in.metrics.size(), std::nan(""));
  const ModelAccess access = model_access(model);
  for (size_t i = 0; i < in.metrics.size(); ++i) {
    if (in.metric_spec[i] != "model") continue;
    try {
      out.values[i] = static_cast<const ModelMetric&>(*in.metrics[i]).compute_model(access, in.reference);
    } catch (const std::exception& e) {
      out.error += (out.error.empty() ? "" : "; ") + fmt::format("metric/{}: {}", in.metric_names[i], e.what());
    }
  }
  return out;
}

// The seed of a stochastic solver's noise in eval run `index` (SampleOptions::seed): the trial's seed, the run's place
// in eval.runs and its step count, mixed by splitmix64 (Steele et al. 2014), and nothing else. So a run draws the
// same Brownian increments in every stage and at every evaluation during training (as it starts from the same x0:
// common random numbers, so rows differ by the model only), two runs of a trial give the same samples bit for bit
// on the CPU, and different runs or trial seeds draw independent streams. Deterministic solvers ignore it.
uint64_t eval_run_seed(int64_t trial_seed, size_t index, int64_t steps) {
  uint64_t h = 0x5de5eed0ULL;
  for (const uint64_t part :
       {static_cast<uint64_t>(trial_seed), static_cast<uint64_t>(index), static_cast<uint64_t>(steps)}) {
    h += part + 0x9e3779b97f4a7c15ULL;
    uint64_t z = h;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    h = z ^ (z >> 31);
  }
  return h;
}

EvalRow TrialRun::evaluate_run(const EvalRun& run, size_t index, const EvalInputs& in, const VelocityField& field,
                               const StepField& step, const ModelMetricValues& model_values) const {
  const at::Tensor& x0 = in.x0;
  const int64_t m = x0.size(0);
  const double w = trial_.eval.guidance;
  const bool graphs = trial_.eval.cuda_graph && dev_.is_cuda();
  const bool guided = conditioned_ || trial_.eval.guide_step >= 0;
  const int64_t calls_per_evaluation = guided && w != 0.0 && w != 1.0 ? 2 : 1;
  // Under a guidance schedule the calls depend on t: counted per evaluation the solver makes (the recorder's
  // evaluations of `field` below are not the solve's and are not counted).
  const bool scheduled = guided && trial_.eval.guidance_schedule != "constant";
  int64_t scheduled_calls = 0;
  const VelocityField counted = [&](const at::Tensor& x, const at::Tensor& t) {
    const double wt = guidance_weight(trial_.eval, t.reshape(-1)[0].item<double>());
    scheduled_calls += wt == 0.0 || wt == 1.0 ? 1 : 2;
    return field(x, t);
  };
  EvalRow row;
  row.solver = run.solver.name;
  row.label = run.label.empty() ? run.solver.name : run.label;
  row.steps = run.steps;
  row.rtol = run.solver.params.has("rtol") ? run.solver.params.real("rtol") : std::nan("");
  row.atol = run.solver.params.has("atol") ? run.solver.params.real("atol") : std::nan("");
  // What the solver's states tell about the field (timed apart from the solve): straightness by the trapezoid
  // rule, with |d - v|^2 = |d|^2 - 2 d.v + |v|^2 so that d = x1_hat - x0, known only at the end, factors out:
  // V = int v dt and Q = int |v|^2 dt per sample.
  StateRecorder rec(field, in.keep_paths);
  SampleOptions so;
  so.on_state = [&](double t, const at::Tensor& x) { rec.add(t, x); };
  so.path = sampled_path_.get();
  so.path_name = "path/" + (trial_.eval.as_path.name.empty() ? trial_.path.name : trial_.eval.as_path.name);
  so.noise_name =
      trial_.noise_dataset.name.empty() ? "noise/" + trial_.noise.name : "dataset/" + trial_.noise_dataset.name;
  so.seed = eval_run_seed(trial_.seed, index, run.steps);
  so.step_field = step;
  try {
    if (!run.grid.name.empty())
      so.grid = at::tensor(make<TimeGrid>(reg_, run.grid)->times(run.steps, sampled_path_.get()), at::kDouble);
    const auto t0 = Clock::now();
    auto solver = make<Solver>(reg_, run.solver);
    SampleResult r;
    double replay_seconds = -1;
    {
      const c10::InferenceMode inference;  // the solve only: feature extractors may train (with autograd)
      const PrecisionScope precision(trial_.train.precision, dev_);
      // Fixed-step runs; adaptive ones choose their steps on the host, and a replay would repeat a stochastic
      // solver's first draw.
      if (graphs && run.steps > 0 && !solver->stochastic())
        r = sample_with_cuda_graph(*solver, x0, field, so, replay_seconds);
      else r = solver->sample(x0, scheduled ? counted : field, so);
    }
    row.seconds = replay_seconds >= 0 ? replay_seconds : seconds_since(t0) - rec.seconds();
    row.samples_per_s = double(m) / row.seconds;
    row.nfe = r.nfe;
    row.network_calls = scheduled ? scheduled_calls : r.nfe * calls_per_evaluation;
    row.accepted = r.accepted_steps;
    row.rejected = r.rejected_steps;
    if (!at::isfinite(r.x).all().item<bool>())
      throw SolverError(fmt::format("solver/{}: the samples hold NaN or Inf", run.solver.name));
    row.straightness = rec.straightness(x0, r.x);
    row.times = rec.times();
    row.mean_speed = rec.mean_speed();
    row.samples = to_array(r.x.slice(0, 0, std::min(in.store, m)));
    if (in.keep_paths > 0) row.trajectory = to_array(rec.trajectory());
    std::map<std::string, at::Tensor> sample_features;  // each row's features once per spec
    for (size_t i = 0; i < in.metrics.size(); ++i) {
      const std::string& spec = in.metric_spec[i];
      if (spec == "model") {
        row.metrics.push_back(model_values.values[i]);
        continue;
      }
      const bool uses_reference = in.metrics[i]->uses_reference();
      if (spec == "raw") {
        row.metrics.push_back(in.metrics[i]->compute(r.x, uses_reference ? in.reference : at::Tensor()));
        continue;
      }
      if (!sample_features.count(spec)) sample_features[spec] = in.extractors.at(spec)->features(r.x);
      row.metrics.push_back(in.metrics[i]->compute(sample_features[spec],
                                                   uses_reference ? in.reference_features.at(spec) : at::Tensor()));
    }
  } catch (const std::exception& e) {
    row.error = e.what();
    row.metrics.assign(in.metrics.size(), std::nan(""));
    row.straightness = std::nan("");
  }
  return row;
}

// Every finished stage, on its EMA weights (by default), on the inputs of prepare_eval().
void TrialRun::evaluate() {
  const auto t_eval = Clock::now();
  during_inputs_.reset();  // the evaluations during training are done: their memory goes before this one's
  eval_model_.reset();
  model_->eval();
  at::NoGradGuard no_grad;
  auto evaluated = [&](const Finished& f) -> const std::vector<at::Tensor>& {
    return trial_.eval.use_ema && !f.ema.empty() ? f.ema : f.raw;
  };
  load_weights(*model_, evaluated(carry_.finished.back()));
  for (const auto& kv : model_->named_parameters()) out_.weights.emplace_back(kv.key(), to_array(kv.value()));
  for (const auto& kv : model_->named_buffers()) out_.weights.emplace_back(kv.key(), to_array(kv.value()));
  out_.architecture = trial_.architecture.name;
  for (const auto& [key, value] : trial_.architecture.params.values())
    out_.architecture_params.emplace_back(key, to_string(value));
  out_.event_shape = data_->event_shape();
  out_.condition = trial_.condition;
  out_.phema = phema_record(carry_.finished.back().phema);
  for (size_t k = 0; k < out_.rounds.size(); ++k)
    if (carry_.finished[k].pairs_x0.defined()) {
      out_.rounds[k].pairs_x0 = to_array(carry_.finished[k].pairs_x0);
      out_.rounds[k].pairs_x1 = to_array(carry_.finished[k].pairs_x1);
    }

  const EvalInputs in = prepare_eval();
  describe_eval(in);
  const VelocityField field = eval_field(model_, in);
  const StepField jump = step_field(model_, in);
  out_.cuda_graph = trial_.eval.cuda_graph && dev_.is_cuda() ? "on" : "off";

  for (size_t k = 0; k < carry_.finished.size(); ++k) {
    load_weights(*model_, evaluated(carry_.finished[k]));
    // Later stages from seeds of their own: each stage's rows do not depend on how many stages came before.
    if (k > 0) torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0xe7a1ULL + uint64_t(k));
    evaluate_runs(k, in, field, jump, "");
    for (const double std : trial_.eval.ema_stds) {
      load_weights(*model_, phema_weights(carry_.finished[k], std));
      torch::manual_seed(phema_seed(k, std));
      evaluate_runs(k, in, field, jump, fmt::format("ema_std={}", std));
    }
  }
  out_.eval_seconds = seconds_since(t_eval);
}

void TrialRun::evaluate_runs(size_t k, const EvalInputs& in, const VelocityField& field, const StepField& jump,
                             const std::string& suffix) {
  const ModelMetricValues model_values = model_metrics(in, model_);
  for (size_t i = 0; i < trial_.eval.runs.size(); ++i) {
    EvalRow row = evaluate_run(trial_.eval.runs[i], i, in, field, jump, model_values);
    if (row.error.empty() && !model_values.error.empty()) row.error = model_values.error;
    row.round = carry_.finished[k].record.round;
    row.train_step = carry_.finished[k].record.steps;
    if (!suffix.empty()) row.label += (row.label.find(':') == std::string::npos ? ":" : ",") + suffix;
    if (!row.error.empty()) ++out_.failed_rows;
    if (hooks_.evaluated) hooks_.evaluated(trial_step(row), row);
    out_.eval.push_back(std::move(row));
  }
}

PhemaRecord TrialRun::phema_record(const std::vector<PhemaSnapshot>& snapshots) const {
  PhemaRecord r;
  if (snapshots.empty()) return r;
  for (const auto& kv : model_->named_parameters())
    if (kv.value().requires_grad()) r.parameters.push_back(kv.key());
  std::vector<at::Tensor> rows;
  for (const auto& s : snapshots) r.steps.push_back(s.step), r.stds.push_back(s.std), rows.push_back(s.flat);
  r.values = to_array(at::stack(rows));
  return r;
}

TrialResult TrialRun::posthoc(const std::vector<std::pair<std::string, Array>>& weights, const PhemaRecord& phema,
                              const std::vector<double>& stds) {
  out_.id = trial_.id;
  out_.seed = trial_.seed;
  out_.device = device_;
  torch::manual_seed(static_cast<uint64_t>(trial_.seed));
  setup();
  std::map<std::string, const Array*> by_key;
  for (const auto& [key, value] : weights) by_key[key] = &value;
  auto stored = [&](const std::string& key, const at::Tensor& like) {
    const auto it = by_key.find(key);
    if (it == by_key.end()) throw Error(fmt::format("the stored weights have no tensor '{}'", key));
    const at::Tensor w = to_tensor(*it->second);
    if (w.sizes() != like.sizes())
      throw Error(fmt::format("the stored tensor '{}' has shape {}, the model's {}", key, c10::str(w.sizes()),
                              c10::str(like.sizes())));
    return w.to(like.options());
  };
  Finished f;
  for (const auto& kv : model_->named_parameters()) f.raw.push_back(stored(kv.key(), kv.value()));
  for (const auto& kv : model_->named_buffers()) f.raw.push_back(stored(kv.key(), kv.value()));
  std::vector<std::string> trained;
  int64_t width = 0;
  for (const auto& kv : model_->named_parameters())
    if (kv.value().requires_grad()) trained.push_back(kv.key()), width += kv.value().numel();
  if (trained != phema.parameters || phema.values.shape.size() != 2 || phema.values.shape[1] != width)
    throw Error("the post-hoc EMA snapshots do not hold this model's trained parameters");
  const at::Tensor values = to_tensor(phema.values).to(opts_.device());
  for (size_t i = 0; i < phema.steps.size(); ++i)
    f.phema.push_back({phema.steps[i], phema.stds[i], values[int64_t(i)]});
  f.record = stages_.back();
  const size_t k = stages_.size() - 1;
  for (size_t j = 0; j < k; ++j) carry_.finished.push_back(Finished{{}, {}, {}, {}, {}, stages_[j]});
  carry_.finished.push_back(std::move(f));
  model_->eval();
  at::NoGradGuard no_grad;
  const EvalInputs in = prepare_eval();
  describe_eval(in);
  const VelocityField field = eval_field(model_, in);
  const StepField jump = step_field(model_, in);
  const auto t_eval = Clock::now();
  for (const double std : stds) {
    load_weights(*model_, phema_weights(carry_.finished[k], std));
    torch::manual_seed(phema_seed(k, std));
    evaluate_runs(k, in, field, jump, fmt::format("ema_std={}", std));
  }
  out_.eval_seconds = seconds_since(t_eval);
  out_.status = "completed";
  return out_;
}

std::vector<at::Tensor> TrialRun::phema_weights(const Finished& f, double std) const {
  load_weights(*model_, f.raw);  // the raw buffers and untrained parameters, as the EMA's weights have them
  const at::Tensor flat = phema_reconstruct(f.phema, f.record.steps, std).to(opts_.device());
  return weights_with(*model_, &flat);
}

bool TrialRun::evaluated_during(size_t k, int64_t step) const {
  return std::any_of(carry_.during.begin(), carry_.during.end(),
                     [&](const EvalRow& r) { return r.round == stages_[k].round && r.train_step == step; });
}

// The weights the final evaluation takes from a stage, as they are now, without touching the model or the optimizer:
// the EMA's values of the parameters the optimizer trains (its flat buffer holds them in the model's parameter
// order, as FlatAdamW::assign writes them back) and the model's own other parameters and buffers.
std::vector<at::Tensor> weights_now(Architecture& model, const FlatEma& ema, bool use_ema) {
  return weights_with(model, use_ema && ema.defined() ? &ema.flat() : nullptr);
}

std::vector<at::Tensor> weights_with(Architecture& model, const at::Tensor* flat) {
  std::vector<at::Tensor> w;
  int64_t offset = 0;
  for (const auto& p : model.parameters()) {
    if (flat && p.requires_grad()) {
      w.push_back(flat->slice(0, offset, offset + p.numel()).view(p.sizes()));
      offset += p.numel();
    } else {
      w.push_back(p.detach());
    }
  }
  for (const auto& b : model.buffers()) w.push_back(b.detach());
  if (flat && offset != flat->numel())
    throw Error(fmt::format("internal: the EMA holds {} values for {} trained parameters", flat->numel(), offset));
  return w;
}

bool TrialRun::evaluate_during(size_t k, int64_t step, const FlatEma& ema) {
  const auto t0 = Clock::now();
  const RngGuard rng(dev_);  // training's random stream, as it was
  if (!eval_model_) {
    eval_model_ = new_model();  // its initialisation draws from the generators, put back by the guard
    eval_model_->eval();
  }
  at::NoGradGuard no_grad;
  if (!during_inputs_) {
    during_inputs_ = std::make_unique<EvalInputs>(prepare_eval());
    during_rng_ = RngState::capture(dev_);  // where the final evaluation's round 0 runs go on drawing
  }
  load_weights(*eval_model_, weights_now(*model_, ema, trial_.eval.use_ema));
  const VelocityField field = eval_field(eval_model_, *during_inputs_);
  const StepField jump = step_field(eval_model_, *during_inputs_);
  // The generators as the final evaluation has them at this stage's first run.
  if (k == 0) during_rng_.restore(dev_);
  else torch::manual_seed(static_cast<uint64_t>(trial_.seed) + 0xe7a1ULL + uint64_t(k));
  const auto& during = trial_.eval.during;
  std::vector<EvalRow> rows;
  const ModelMetricValues model_values = model_metrics(*during_inputs_, eval_model_);
  for (size_t i = 0; i < trial_.eval.runs.size(); ++i) {
    if (!during.empty() && std::find(during.begin(), during.end(), i) == during.end()) continue;
    if (should_stop_ && should_stop_()) return false;  // the checkpoint goes without this step's rows
    EvalRow row = evaluate_run(trial_.eval.runs[i], i, *during_inputs_, field, jump, model_values);
    if (row.error.empty() && !model_values.error.empty()) row.error = model_values.error;
    row.round = stages_[k].round;
    row.train_step = step;
    rows.push_back(std::move(row));
  }
  for (auto& row : rows) {
    if (hooks_.evaluated) hooks_.evaluated(steps_before_ + step, row);
    carry_.during.push_back(std::move(row));
  }
  out_.during_seconds += seconds_since(t0);
  return true;
}

}  // namespace

void set_pairing_ahead(bool on) { pairing_ahead.store(on); }

TrialResult run_trial(const TrialConfig& trial, const Registry& reg, const std::string& device,
                      const ProgressFn& progress, const std::string& checkpoint, const StopFn& should_stop,
                      const TrialHooks& hooks) {
  return TrialRun(trial, reg, device, progress, checkpoint, should_stop, hooks).run();
}

TrialResult evaluate_posthoc_ema(const TrialConfig& trial, const Registry& reg, const std::string& device,
                                 const std::vector<std::pair<std::string, Array>>& weights, const PhemaRecord& phema,
                                 const std::vector<double>& stds) {
  const ProgressFn progress;
  const std::string checkpoint;
  const StopFn stop;
  const TrialHooks hooks;
  return TrialRun(trial, reg, device, progress, checkpoint, stop, hooks).posthoc(weights, phema, stds);
}

}  // namespace flowlab

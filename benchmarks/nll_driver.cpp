// The flowlab side of benchmarks/nll_vs_flow_matching.sh: times metric/nll, the path `flowlab run` takes for the nll
// metric (the plugin's compute_model on a ModelAccess built as the engine builds it, under the engine's
// NoGradGuard), on a trial's stored model (rebuilt from weights/ as `flowlab sample` does) and a dataset's reference
// samples.
//   flowlab_nll_driver RESULTS TRIAL DATASET N OUTDIR [--reps R] [--threads T] [--seed S] [--rtol X] [--atol X]
//                      [--exact-max-dim D] [--probes K] [--probe rademacher|gaussian] [--dump]
// Reference samples: torch seeded with S, then DATASET's reference(N) (digits: its held-out split), float32, CPU.
// The metric gets quantization_step 0, so both sides see the same x (no dequantization noise) and the value is in
// nats per sample. One untimed warm-up call, then R timed calls. The field is wrapped to count its calls: the NFE of
// each call (one network evaluation plus its vector-Jacobian products per augmented-field evaluation).
// --dump also writes OUTDIR/x.f32 (the reference samples), OUTDIR/v.f32 (the field at the reference samples at
// t = 0, 0.25, 0.5, 1, one t shared by the batch as in a solve) and OUTDIR/logp.f64 (the per-sample log p of
// flowlab::log_likelihood with the metric's options, the seed's generator drawing the same probes as the metric).
// Prints one JSON line: seconds and NFE per timed call, the NLL, the shape.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "flowlab/architecture.hpp"
#include "flowlab/dataset.hpp"
#include "flowlab/likelihood.hpp"
#include "flowlab/metric.hpp"
#include "flowlab/noise.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"

namespace {

using flowlab::Tensor;

/// The stored model rebuilt as framework/cli/sample.cpp's rebuild_model does (unconditional trials only).
std::shared_ptr<flowlab::Architecture> rebuild(const flowlab::Registry& reg, const flowlab::StoredModel& stored) {
  if (stored.condition != "none" && !stored.condition.empty())
    throw flowlab::Error("nll_driver: unconditional trials only, got condition " + stored.condition);
  flowlab::Params ap;
  for (const auto& [k, v] : stored.params) ap.set(k, v);
  auto model = reg.create<flowlab::Architecture>("architecture", stored.architecture, ap);
  flowlab::ArchitectureSpec spec;
  spec.event_shape = stored.event_shape;
  model->build(spec);
  model->eval();
  size_t loaded = 0;
  auto load = [&](const std::string& key, Tensor& t) {
    const auto it = std::find_if(stored.weights.begin(), stored.weights.end(),
                                 [&](const auto& kv) { return kv.first == key; });
    if (it == stored.weights.end()) throw flowlab::Error("nll_driver: the stored weights lack " + key);
    const auto& a = it->second;
    const Tensor v = at::from_blob(const_cast<float*>(a.values.data()), a.shape, at::kFloat).clone();
    if (v.sizes() != t.sizes()) throw flowlab::Error("nll_driver: shape mismatch for " + key);
    const at::NoGradGuard no_grad;
    t.copy_(v);
    ++loaded;
  };
  for (auto& kv : model->named_parameters()) load(kv.key(), kv.value());
  for (auto& kv : model->named_buffers()) load(kv.key(), kv.value());
  if (loaded != stored.weights.size()) throw flowlab::Error("nll_driver: extra stored tensors");
  return model;
}

void write_raw(const std::string& path, const Tensor& t) {
  const Tensor c = t.contiguous();
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.nbytes()));
  if (!out) throw flowlab::Error("nll_driver: cannot write " + path);
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 6) {
    std::cerr << "usage: flowlab_nll_driver RESULTS TRIAL DATASET N OUTDIR [--reps R] [--threads T] [--seed S] "
                 "[--rtol X] [--atol X] [--exact-max-dim D] [--probes K] [--probe P] [--dump]\n";
    return 2;
  }
  const std::string results = argv[1], trial = argv[2], dataset = argv[3], outdir = argv[5];
  const int64_t n = std::stoll(argv[4]);
  int64_t reps = 5, threads = 1, seed = 0, exact_max_dim = 16, probes = 1;
  double rtol = 1e-5, atol = 1e-5;
  std::string probe = "rademacher";
  bool dump = false;
  for (int i = 6; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw flowlab::Error("nll_driver: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--reps") reps = std::stoll(next());
    else if (a == "--threads") threads = std::stoll(next());
    else if (a == "--seed") seed = std::stoll(next());
    else if (a == "--rtol") rtol = std::stod(next());
    else if (a == "--atol") atol = std::stod(next());
    else if (a == "--exact-max-dim") exact_max_dim = std::stoll(next());
    else if (a == "--probes") probes = std::stoll(next());
    else if (a == "--probe") probe = next();
    else if (a == "--dump") dump = true;
    else throw flowlab::Error("nll_driver: unknown option " + a);
  }
  at::set_num_threads(static_cast<int>(threads));
  const flowlab::Registry reg;
  const auto model = rebuild(reg, flowlab::read_model(results, trial));
  auto data = reg.create<flowlab::Dataset>("dataset", dataset, flowlab::Params());
  at::manual_seed(static_cast<uint64_t>(seed));
  const Tensor x = data->reference(n, at::TensorOptions().dtype(at::kFloat)).x.contiguous();
  auto noise = reg.create<flowlab::Noise>("noise", "gaussian", flowlab::Params());

  // What the engine hands the metric (TrialRun::model_access), with the field's calls counted.
  int64_t calls = 0;
  flowlab::ModelAccess access;
  access.field = [model, &calls](const Tensor& xx, const Tensor& t) {
    ++calls;
    Tensor v = model->forward(xx, t);
    return v.scalar_type() == xx.scalar_type() ? v : v.to(xx.scalar_type());
  };
  access.noise_log_prob = [noise](const Tensor& xx) { return noise->log_prob(xx); };
  access.make_solver = [&reg](const std::string& name, const flowlab::Params& p) {
    return reg.create<flowlab::Solver>("solver", name, p);
  };
  access.quantization_step = 0;
  flowlab::Params mp;
  mp.set("solver", std::string("dopri5")).set("rtol", rtol).set("atol", atol).set("exact_max_dim", exact_max_dim);
  mp.set("probes", probes).set("probe", probe).set("seed", seed);
  auto metric = reg.create<flowlab::Metric>("metric", "nll", mp);
  const auto& nll_metric = dynamic_cast<const flowlab::ModelMetric&>(*metric);

  const int64_t d = x.numel() / x.size(0);
  if (dump) {
    const at::NoGradGuard no_grad;
    std::vector<Tensor> vs;
    for (const double t : {0.0, 0.25, 0.5, 1.0}) vs.push_back(model->forward(x, at::full({1}, t).expand({x.size(0)})));
    write_raw(outdir + "/x.f32", x);
    write_raw(outdir + "/v.f32", at::stack(vs));
    // The metric's own call, per sample: same solver, options and generator (seeded as the metric seeds it).
    flowlab::Params sp;
    sp.set("rtol", rtol).set("atol", atol);
    auto solver = reg.create<flowlab::Solver>("solver", "dopri5", sp);
    flowlab::LikelihoodOptions lo;
    lo.exact = d <= exact_max_dim;
    lo.probes = probes;
    lo.probe = probe;
    lo.generator = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
    const auto r = flowlab::log_likelihood(*solver, access.field, x, access.noise_log_prob, lo);
    write_raw(outdir + "/logp.f64", r.log_p.contiguous());
  }

  std::vector<double> seconds;
  std::vector<int64_t> nfe;
  double nll = 0;
  for (int64_t rep = -1; rep < reps; ++rep) {  // rep -1: the warm-up
    calls = 0;
    const at::NoGradGuard no_grad;  // as the engine evaluates
    const auto t0 = std::chrono::steady_clock::now();
    nll = nll_metric.compute_model(access, x);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (rep >= 0) seconds.push_back(s), nfe.push_back(calls);
  }
  // The network's share: as many evaluations of flowlab::divergence (the field and its vector-Jacobian products, what
  // one augmented-field evaluation costs besides the solver's and the likelihood's bookkeeping) as the last call
  // made, at t = 0.5, with probes of the metric's kind (Rademacher) when it uses Hutchinson's estimator.
  std::vector<double> network_seconds;
  {
    const Tensor t = at::full({1}, 0.5).expand({x.size(0)});
    std::vector<int64_t> pshape{probes};
    pshape.insert(pshape.end(), x.sizes().begin(), x.sizes().end());
    const Tensor eps = d <= exact_max_dim ? Tensor() : at::bernoulli(at::full(pshape, 0.5)) * 2 - 1;
    const at::NoGradGuard no_grad;
    for (int64_t rep = -1; rep < reps; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t i = 0; i < (nfe.empty() ? 0 : nfe.back()); ++i) {
        Tensor value;
        flowlab::divergence(access.field, x, t, eps, &value);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep >= 0) network_seconds.push_back(s);
    }
  }
  std::cout << fmt::format(
                   "{{\"seconds\": [{}], \"nfe\": [{}], \"network_seconds\": [{}], \"nll\": {:.17g}, \"n\": {}, "
                   "\"dim\": {}, \"shape\": [{}], \"exact\": {}, \"threads\": {}, \"describe\": \"{}\"}}",
                   fmt::join(seconds, ", "), fmt::join(nfe, ", "), fmt::join(network_seconds, ", "), nll, x.size(0), d,
                   fmt::join(x.sizes(), ", "),
                   d <= exact_max_dim ? "true" : "false", at::get_num_threads(), nll_metric.describe(access))
            << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << "nll_driver: " << e.what() << "\n";
  return 1;
}

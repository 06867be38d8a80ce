// `flowlab sample`: rebuilds a trial's evaluated model from weights/ (the architecture created through the registry
// with its stored parameters, built for the stored event shape and condition, every stored tensor loaded by its
// state-dict key) and integrates new samples with a chosen solver.
#include <fmt/format.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "stored_model.hpp"
#include "flowlab/architecture.hpp"
#include "flowlab/images.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"
#include "flowlab/solver.hpp"

namespace fs = std::filesystem;

namespace flowlab::cli {
namespace {

at::Tensor to_tensor(const Array& a) {
  return at::from_blob(const_cast<float*>(a.values.data()), a.shape, at::kFloat).clone();
}

Array to_array(const at::Tensor& t) {
  const at::Tensor c = t.detach().to(at::kCPU, at::kFloat).contiguous();
  Array a;
  a.shape.assign(c.sizes().begin(), c.sizes().end());
  a.values.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  return a;
}

const Array* find_weight(const StoredModel& m, const std::string& suffix) {
  for (const auto& [k, v] : m.weights)
    if (k == suffix || (k.size() > suffix.size() && k.compare(k.size() - suffix.size() - 1, std::string::npos, "." + suffix) == 0))
      return &v;
  return nullptr;
}

void write_h5(const std::string& path, const Array& a, const SampleArgs& args, int64_t nfe) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) throw Error("sample: cannot create " + path);
  const std::vector<hsize_t> dims(a.shape.begin(), a.shape.end());
  const hid_t sp = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t d = H5Dcreate2(f, "samples", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const herr_t st = H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, a.values.data());
  auto put = [&](const char* name, const std::string& v) {
    const hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    const hid_t s = H5Screate(H5S_SCALAR);
    const hid_t attr = H5Acreate2(d, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    const char* p = v.c_str();
    H5Awrite(attr, t, &p);
    H5Aclose(attr), H5Sclose(s), H5Tclose(t);
  };
  put("results", args.file);
  put("trial", args.trial);
  put("solver", args.solver);
  put("nfe", std::to_string(nfe));
  H5Dclose(d), H5Sclose(sp);
  if (st < 0 || H5Fclose(f) < 0) throw Error("sample: writing " + path + " failed");
}

}  // namespace

std::shared_ptr<Architecture> rebuild_model(const Registry& registry, const StoredModel& stored, ArchitectureSpec& spec) {
  Params ap;
  for (const auto& [k, v] : stored.params) ap.set(k, v);
  auto model = registry.create<Architecture>("architecture", stored.architecture, ap);
  spec.event_shape = stored.event_shape;
  const bool use_label = stored.condition == "label" || stored.condition == "both";
  const bool use_attr = stored.condition == "attr" || stored.condition == "both";
  if (use_label) {
    const Array* w = find_weight(stored, "classes.weight");
    if (!w) throw Error("the stored weights hold no class embedding (classes.weight)");
    spec.num_classes = w->shape[0] - 1;
  }
  if (use_attr) {
    const Array* w = find_weight(stored, "attr.weight");
    if (!w) throw Error("the stored weights hold no attribute embedding (attr.weight)");
    spec.attr_dim = w->shape[1];
  }
  model->build(spec);
  model->eval();
  size_t loaded = 0;
  auto load = [&](const std::string& key, at::Tensor& t) {
    const auto it = std::find_if(stored.weights.begin(), stored.weights.end(), [&](const auto& kv) { return kv.first == key; });
    if (it == stored.weights.end()) throw Error(fmt::format("the stored weights lack '{}'", key));
    const at::Tensor v = to_tensor(it->second);
    if (v.sizes() != t.sizes())
      throw Error(fmt::format("'{}' is stored as [{}] but the model has [{}]", key, fmt::join(v.sizes(), ", "),
                              fmt::join(t.sizes(), ", ")));
    t.copy_(v);
    ++loaded;
  };
  for (auto& kv : model->named_parameters()) load(kv.key(), kv.value());
  for (auto& kv : model->named_buffers()) load(kv.key(), kv.value());
  if (loaded != stored.weights.size())
    throw Error(fmt::format("{} stored tensors but the model has {}", stored.weights.size(), loaded));

  return model;
}

CLI::App* add_sample(CLI::App& app, SampleArgs& a) {
  auto* cmd = app.add_subcommand("sample", "draw new samples from a trial's stored model");
  cmd->add_option("results", a.file, "the HDF5 results file")->required();
  cmd->add_option("--trial", a.trial, "the trial id")->required()->type_name("ID");
  cmd->add_option("--solver", a.solver, "the solver (default: euler with --steps, dopri5 with --rtol)")->type_name("NAME");
  auto* steps = cmd->add_option("--steps", a.steps, "steps of a fixed-step solver")->check(CLI::PositiveNumber);
  auto* rtol = cmd->add_option("--rtol", a.rtol, "relative tolerance of an adaptive solver")->check(CLI::PositiveNumber);
  steps->excludes(rtol);
  cmd->add_option("--n", a.n, "how many samples (default 1000; with --from-stored-noise: all stored)")->check(CLI::PositiveNumber);
  cmd->add_option("--guidance", a.guidance, "classifier-free guidance weight w (conditioned models; default 1)");
  cmd->add_option("--class", a.label, "class label to sample (label-conditioned models)");
  cmd->add_option("--seed", a.seed, "seed of the standard normal noise (default 0)");
  cmd->add_flag("--from-stored-noise", a.from_stored_noise,
                "start from the trial's stored noise samples/x0 (reproduces its eval rows exactly)");
  cmd->add_option("--out", a.out, "FILE.h5 (dataset samples), FILE.csv or FILE.png (image data)")->required();
  return cmd;
}

int run_sample(const Registry& registry, const SampleArgs& args_in) {
  SampleArgs args = args_in;
  const StoredResults res = read_results(args.file);
  const StoredTrial& trial = res.trial(args.trial);
  const std::string ext = fs::path(args.out).extension().string();
  if (ext != ".h5" && ext != ".csv" && ext != ".png")
    throw Error(fmt::format("--out: '{}' must end in .h5, .csv or .png", args.out));
  if (args.solver.empty()) args.solver = args.rtol > 0 ? "dopri5" : "euler";
  const StoredModel stored = read_model(args.file, trial.id);

  torch::NoGradGuard no_grad;
  at::set_num_threads(1);  // as the trial's worker evaluated it (threads: 1 unless set), for the same sums
  ArchitectureSpec spec;
  auto model = rebuild_model(registry, stored, spec);
  const bool use_label = spec.num_classes > 0, use_attr = spec.attr_dim > 0;

  at::Tensor x0;
  if (args.from_stored_noise) {
    x0 = to_tensor(read_array(args.file, fmt::format("trials/{}/samples/x0", trial.id)));
    if (args.n > 0 && args.n < x0.size(0)) x0 = x0.slice(0, 0, args.n);
  } else {
    torch::manual_seed(static_cast<uint64_t>(args.seed));
    std::vector<int64_t> shape = {args.n > 0 ? args.n : 1000};
    for (auto s : stored.event_shape) shape.push_back(s);
    x0 = at::randn(shape, at::kFloat);
  }
  const int64_t n = x0.size(0);
  VelocityField field = [&](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); };
  if (use_label || use_attr) {
    Condition cond;
    if (args.label >= 0) {
      if (!use_label || args.label >= spec.num_classes)
        throw Error(fmt::format("--class: {} is not a class of this model ({})", args.label,
                                use_label ? fmt::format("0 to {}", spec.num_classes - 1) : std::string("it is not label-conditioned")));
      cond.label = at::full({n}, args.label, at::kLong);
    }
    field = guided_field(model, cond, args.guidance);
  } else if (args.label >= 0) {
    throw Error("--class: this model is not conditioned");
  }

  Params sp;
  if (args.steps > 0) sp.set("steps", args.steps);
  if (args.rtol > 0) sp.set("rtol", args.rtol);
  auto solver = registry.create<Solver>("solver", args.solver, sp);
  const SampleResult r = solver->sample(x0, field);
  const Array out = to_array(r.x);
  if (fs::path(args.out).has_parent_path()) fs::create_directories(fs::path(args.out).parent_path());
  if (ext == ".h5") {
    write_h5(args.out, out, args, r.nfe);
  } else if (ext == ".csv") {
    std::ofstream f(args.out);
    const int64_t per = n ? static_cast<int64_t>(out.values.size()) / n : 0;
    for (int64_t j = 0; j < per; ++j) f << (j ? "," : "") << "x" << j;
    f << "\n";
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < per; ++j) f << (j ? "," : "") << fmt::format("{}", out.values[static_cast<size_t>(i * per + j)]);
      f << "\n";
    }
    if (!f) throw Error("sample: writing " + args.out + " failed");
  } else if (!write_image_grid(out, args.out, 8)) {
    throw Error(fmt::format("--out: a PNG needs image samples [N, C, H, W]; these are [{}]: use .h5 or .csv", fmt::join(r.x.sizes(), ", ")));
  }
  std::cout << fmt::format("{}: {} samples from {} with solver/{} ({} NFE)\n", args.out, n, trial.id, args.solver, r.nfe);
  return 0;
}

}  // namespace flowlab::cli

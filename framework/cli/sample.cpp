// `flowlab sample`: rebuilds a trial's evaluated model from weights/ (the architecture created through the registry
// with its stored parameters, built for the stored event shape and condition, every stored tensor loaded by its
// state-dict key) and integrates new samples with a chosen solver. --interpolate integrates noises along a slerp
// between two noises; --inpaint completes an observed image by the replacement method of the sampling text.
#include <fmt/format.h>
#include <hdf5.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "commands.hpp"
#include "stored_model.hpp"
#include "flowlab/architecture.hpp"
#include "flowlab/arrays.hpp"
#include "flowlab/files.hpp"
#include "flowlab/objective.hpp"
#include "flowlab/path.hpp"
#include "flowlab/images.hpp"
#include "flowlab/registry.hpp"
#include "flowlab/report.hpp"
#include "flowlab/runge_kutta.hpp"
#include "flowlab/solver.hpp"

namespace fs = std::filesystem;

namespace flowlab::cli {
namespace {

const Array* find_weight(const StoredModel& m, const std::string& suffix) {
  for (const auto& [k, v] : m.weights)
    if (k == suffix ||
        (k.size() > suffix.size() && k.compare(k.size() - suffix.size() - 1, std::string::npos, "." + suffix) == 0))
      return &v;
  return nullptr;
}

/// `samples` (with the attributes below) and the `extra` float32 datasets beside it.
void write_h5(const std::string& path, const Array& a, const SampleArgs& args, int64_t nfe,
              const std::vector<std::pair<std::string, Array>>& extra) {
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  // Built in memory, then written by write_file: a full disk is reported with the file and the errno.
  const hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_core(fapl, 1 << 20, 0);
  const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f < 0) throw Error("sample: cannot create " + path);
  herr_t st = 0;
  auto dataset = [&](const std::string& name, const Array& v) {
    const std::vector<hsize_t> dims(v.shape.begin(), v.shape.end());
    const hid_t sp = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    const hid_t d = H5Dcreate2(f, name.c_str(), H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.values.data()) < 0) st = -1;
    H5Sclose(sp);
    return d;
  };
  for (const auto& [name, v] : extra) H5Dclose(dataset(name, v));
  const hid_t d = dataset("samples", a);
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
  put("mode", args.interpolate ? "interpolate" : !args.inpaint.empty() ? "inpaint" : "sample");
  H5Dclose(d);
  std::string image;
  if (st >= 0 && H5Fflush(f, H5F_SCOPE_LOCAL) >= 0) {
    const ssize_t n = H5Fget_file_image(f, nullptr, 0);
    image.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n <= 0 || H5Fget_file_image(f, image.data(), image.size()) != n) st = -1;
  } else {
    st = -1;
  }
  if (H5Fclose(f) < 0 || st < 0) throw Error("sample: writing " + path + " failed");
  write_file(path, image);
}

/// The noise path of --interpolate: for each weight w in `weights`, the slerp of the directions of `a` and `b`
/// (any shape, flattened) scaled by the linear interpolation of their norms,
///   x(w) = ((1 - w) |a| + w |b|) (sin((1 - w) theta) a/|a| + sin(w theta) b/|b|) / sin(theta),  cos(theta) = <a, b> /
///   (|a| |b|),
/// computed in float64. It is the usual slerp when |a| = |b|, and keeps |x(w)| between |a| and |b| when they differ
/// (the plain formula dips below both norms near the ends when theta > 90 degrees). w = 0 and w = 1 give a and b
/// exactly; nearly parallel directions fall back to the normalized linear interpolation. Returns [W, ...].
at::Tensor slerp(const at::Tensor& a, const at::Tensor& b, const std::vector<double>& weights) {
  const at::Tensor ad = a.to(at::kDouble).flatten(), bd = b.to(at::kDouble).flatten();
  const double na = ad.norm().item<double>(), nb = bd.norm().item<double>();
  if (!(na > 0) || !(nb > 0)) throw Error("--interpolate: a noise of norm 0 has no direction to interpolate");
  const at::Tensor ua = ad / na, ub = bd / nb;
  const double theta = std::acos(std::clamp(at::dot(ua, ub).item<double>(), -1.0, 1.0));
  std::vector<at::Tensor> rows;
  for (const double w : weights) {
    if (w == 0.0) {
      rows.push_back(a.clone());
      continue;
    }
    if (w == 1.0) {
      rows.push_back(b.clone());
      continue;
    }
    at::Tensor dir;
    if (std::sin(theta) < 1e-6) {
      dir = (1 - w) * ua + w * ub;
      dir = dir / dir.norm();
    } else {
      dir = (std::sin((1 - w) * theta) * ua + std::sin(w * theta) * ub) / std::sin(theta);
    }
    rows.push_back((((1 - w) * na + w * nb) * dir).reshape(a.sizes()).to(a.scalar_type()));
  }
  return at::stack(rows);
}

/// An image given to --inpaint or --observed as [C, H, W] in [-1, 1], checked against the event shape.
at::Tensor read_event_image(const std::string& flag, const std::string& file, const std::vector<int64_t>& event,
                            int channels) {
  if (!fs::exists(file)) throw Error(fmt::format("{}: {} does not exist", flag, file));
  const Array img = read_image(file, channels);
  if (img.shape[1] != event[1] || img.shape[2] != event[2])
    throw Error(fmt::format("{}: {} is {}x{} pixels but the trial's images are {}x{} (width x height)", flag, file,
                            img.shape[2], img.shape[1], event[2], event[1]));
  return to_tensor(img);
}

/// The replacement method of the sampling text's inpainting, on the solver's own uniform grid t_0 = 0 < ... < t_N = 1:
/// before each step from t_k, the known pixels are set to the observed image carried along the path to t_k,
/// alpha(t_k) x1_obs + sigma(t_k) x0 (x0 the row's initial noise); one solver step goes to t_{k+1}; at t = 1 the known
/// pixels are set to the observed image itself.
SampleResult inpaint(const Solver& solver, int64_t steps, const Path& path, const at::Tensor& x0,
                     const VelocityField& field, const at::Tensor& known, const at::Tensor& observed) {
  const at::Tensor keep = known.to(at::kBool).unsqueeze(0).expand_as(x0);
  const at::Tensor obs = observed.unsqueeze(0).expand_as(x0);
  std::vector<int64_t> per_row(static_cast<size_t>(x0.dim()), 1);
  per_row[0] = x0.size(0);
  SampleResult out;
  at::Tensor x = x0;
  for (int64_t k = 0; k < steps; ++k) {
    const double t = double(k) / double(steps), t_next = k + 1 == steps ? 1.0 : double(k + 1) / double(steps);
    const Schedule sch = path.schedule(path.clamp_to_domain(at::full({x0.size(0)}, t, x0.options())));
    x = at::where(keep, sch.alpha.reshape(per_row) * obs + sch.sigma.reshape(per_row) * x0, x);
    SampleOptions opt;
    opt.t0 = t, opt.t1 = t_next, opt.steps = 1;
    const SampleResult r = solver.sample(x, field, opt);
    x = r.x;
    out.nfe += r.nfe;
    out.accepted_steps += r.accepted_steps;
  }
  out.x = at::where(keep, obs, x);
  return out;
}

}  // namespace

std::shared_ptr<Architecture> rebuild_model(const Registry& registry, const StoredModel& stored,
                                            ArchitectureSpec& spec) {
  Params ap;
  for (const auto& [k, v] : stored.params) ap.set(k, v);
  auto model = registry.create<Architecture>("architecture", stored.architecture, ap);
  spec.event_shape = stored.event_shape;
  spec.step_input = registry.create<Objective>("objective", stored.objective)->step_input();
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
    const auto it =
        std::find_if(stored.weights.begin(), stored.weights.end(), [&](const auto& kv) { return kv.first == key; });
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
  cmd->add_option("--solver", a.solver, "the solver (default: euler with --steps, dopri5 with --rtol)")
      ->type_name("NAME");
  auto* steps = cmd->add_option("--steps", a.steps, "steps of a fixed-step solver")->check(CLI::PositiveNumber);
  auto* rtol =
      cmd->add_option("--rtol", a.rtol, "relative tolerance of an adaptive solver")->check(CLI::PositiveNumber);
  steps->excludes(rtol);
  cmd->add_option("--n", a.n,
                  "how many samples (default 1000, 8 with --inpaint, or all stored with --from-stored-noise; "
                  "--interpolate: 10 points)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--guidance", a.guidance, "classifier-free guidance weight w (conditioned models; default 1)");
  cmd->add_option("--class", a.label, "class label to sample (label-conditioned models)");
  cmd->add_option("--seed", a.seed, "seed of the standard normal noise (default 0)");
  cmd->add_flag("--from-stored-noise", a.from_stored_noise,
                "start from the trial's stored noise samples/x0 (reproduces its eval rows exactly)");
  auto* interp = cmd->add_flag("--interpolate", a.interpolate,
                               "samples along a slerp between two noises (drawn with --seed, or the first two stored "
                               "with --from-stored-noise) at --n evenly spaced weights in [0, 1] (default 10)");
  auto* mask =
      cmd->add_option("--inpaint", a.inpaint,
                      "complete --observed where this mask is black (white: known pixels, kept); image trials, "
                      "fixed-step solvers; --n completions (default 8)")
          ->type_name("MASK.png");
  auto* observed = cmd->add_option("--observed", a.observed, "the image --inpaint completes")->type_name("IMG.png");
  mask->needs(observed);
  observed->needs(mask);
  interp->excludes(mask);
  cmd->add_option("--out", a.out,
                  "FILE.h5 (dataset samples; with --interpolate also noise and weights, with --inpaint mask and "
                  "observed), FILE.csv or FILE.png (image data)")
      ->required();
  return cmd;
}

namespace {

// The starting noise: the trial's stored noise (--from-stored-noise) or fresh draws from --seed, or for
// --interpolate a slerp between two of them at `weights`.
struct Noise {
  at::Tensor x0;
  std::vector<double> weights;  // --interpolate's
};

Noise sample_noise(const SampleArgs& args, const StoredTrial& trial, const std::vector<int64_t>& event,
                   bool inpainting) {
  Noise z;
  at::Tensor& x0 = z.x0;
  at::Tensor ends;  // the two noises of --interpolate
  std::vector<double>& weights = z.weights;
  const int64_t fresh = args.n > 0 ? args.n : args.interpolate ? 10 : inpainting ? 8 : 1000;
  if (args.from_stored_noise) {
    x0 = to_tensor(read_array(args.file, fmt::format("trials/{}/samples/x0", trial.id)));
    if (args.interpolate) {
      if (x0.size(0) < 2)
        throw Error(fmt::format("--interpolate: trial {} stores {} noise row(s); it needs 2", trial.id, x0.size(0)));
      ends = x0.slice(0, 0, 2);
    } else if (args.n > 0 && args.n < x0.size(0)) {
      x0 = x0.slice(0, 0, args.n);
    }
  } else {
    torch::manual_seed(static_cast<uint64_t>(args.seed));
    std::vector<int64_t> shape = {args.interpolate ? 2 : fresh};
    for (auto s : event) shape.push_back(s);
    x0 = at::randn(shape, at::kFloat);
    if (args.interpolate) ends = x0;
  }
  if (args.interpolate) {
    for (int64_t i = 0; i < fresh; ++i) weights.push_back(i + 1 == fresh ? 1.0 : double(i) / double(fresh - 1));
    x0 = slerp(ends[0], ends[1], weights);
  }
  return z;
}

// The field to integrate: the model's velocity, guided (--guidance, --class) for a conditioned model.
VelocityField sample_field(const std::shared_ptr<Architecture>& model, const ArchitectureSpec& spec,
                           const SampleArgs& args, int64_t n) {
  const bool use_label = spec.num_classes > 0, use_attr = spec.attr_dim > 0;
  VelocityField field = [model](const at::Tensor& x, const at::Tensor& t) { return model->forward(x, t); };
  if (use_label || use_attr) {
    Condition cond;
    if (args.label >= 0) {
      if (!use_label || args.label >= spec.num_classes)
        throw Error(fmt::format(
            "--class: {} is not a class of this model ({})", args.label,
            use_label ? fmt::format("0 to {}", spec.num_classes - 1) : std::string("it is not label-conditioned")));
      cond.label = at::full({n}, args.label, at::kLong);
    }
    field = guided_field(model, cond, args.guidance);
  } else if (args.label >= 0) {
    throw Error("--class: this model is not conditioned");
  }

  return field;
}

// Runs the solver from x0: inpainting by replacement (--inpaint), or plain sampling.
SampleResult solve(const Registry& registry, const SampleArgs& args, const StoredModel& stored,
                   const StoredTrial& trial, const ArchitectureSpec& spec, const std::shared_ptr<Architecture>& model,
                   const at::Tensor& x0, const VelocityField& field, const at::Tensor& known,
                   const at::Tensor& observed) {
  const bool inpainting = !args.inpaint.empty();
  const int64_t n = x0.size(0);
  Params sp;
  if (args.steps > 0) sp.set("steps", args.steps);
  if (args.rtol > 0) sp.set("rtol", args.rtol);
  auto solver = registry.create<Solver>("solver", args.solver, sp);
  SampleResult r;
  if (inpainting) {
    const auto* fixed = dynamic_cast<const FixedStepRungeKutta*>(solver.get());
    if (!fixed)
      throw Error(
          fmt::format("--inpaint: needs a fixed-step solver (euler, midpoint, heun or rk4 with --steps), not solver/{}",
                      args.solver));
    if (stored.path.empty())
      throw Error(
          fmt::format("--inpaint: trial {} stores no config naming its path (an older results file)", trial.id));
    Params pp;
    for (const auto& [k, v] : stored.path_params) pp.set(k, v);
    const auto path = registry.create<Path>("path", stored.path, pp);
    if (!path->affine())
      throw Error(
          fmt::format("--inpaint: path/{} is not affine (x_t = alpha_t x1 + sigma_t x0): the replacement method "
                      "needs its schedule",
                      stored.path));
    r = inpaint(*solver, args.steps > 0 ? args.steps : fixed->steps(), *path, x0, field, known, observed);
  } else {
    // The trial's path, for solvers that convert the velocity through its schedule (data-prediction multistep).
    std::shared_ptr<Path> path;
    if (!stored.path.empty()) {
      Params pp;
      for (const auto& [k, v] : stored.path_params) pp.set(k, v);
      path = registry.create<Path>("path", stored.path, pp);
    }
    SampleOptions so;
    so.path = path.get();
    if (path) so.path_name = "path/" + stored.path;
    if (!args.from_stored_noise) so.noise_name = "noise/gaussian";  // drawn with at::randn above
    // A stochastic solver's noise (euler_maruyama) from --seed too, on its own generator: the same command gives the
    // same samples. (It is not the stream of the trial's eval rows, which eval_run_seed derives per run.)
    so.seed = static_cast<uint64_t>(args.seed);
    // A few-step model's average velocity, for solver/few_step (unguided; a conditioned model with --class).
    if (spec.step_input) {
      Condition cond;
      if (args.label >= 0) cond.label = at::full({n}, args.label, at::kLong);
      so.step_field = [model, cond](const at::Tensor& x, const at::Tensor& t, const at::Tensor& d) {
        return model->forward_step(x, t, d, cond);
      };
    } else if (solver->uses_step_field()) {
      throw Error(fmt::format("--solver {}: steps with a few-step model's average velocity, and trial {} was trained "
                              "with objective/{}, which has no step input",
                              args.solver, trial.id, stored.objective));
    }
    r = solver->sample(x0, field, so);
  }
  return r;
}

// Writes the samples as --out's extension says: .h5 (with the noise, weights, mask as the options made them), .csv
// or a .png grid.
void write_samples(const SampleArgs& args, const std::string& ext, const SampleResult& r, const Noise& z,
                   const at::Tensor& known, const at::Tensor& observed) {
  const bool inpainting = !args.inpaint.empty();
  const at::Tensor& x0 = z.x0;
  const std::vector<double>& weights = z.weights;
  const int64_t n = r.x.size(0);
  const Array out = to_array(r.x);
  if (fs::path(args.out).has_parent_path()) fs::create_directories(fs::path(args.out).parent_path());
  if (ext == ".h5") {
    std::vector<std::pair<std::string, Array>> extra;
    if (args.interpolate) {
      extra.emplace_back("noise", to_array(x0));
      extra.emplace_back("weights", to_array(at::tensor(weights, at::kDouble)));
    }
    if (inpainting) {
      extra.emplace_back("mask", to_array(known));
      extra.emplace_back("observed", to_array(observed));
    }
    write_h5(args.out, out, args, r.nfe, extra);
  } else if (ext == ".csv") {
    std::string f;
    const int64_t per = n ? static_cast<int64_t>(out.values.size()) / n : 0;
    for (int64_t j = 0; j < per; ++j) f += fmt::format("{}x{}", j ? "," : "", j);
    f += "\n";
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < per; ++j)
        f += fmt::format("{}{}", j ? "," : "", out.values[static_cast<size_t>(i * per + j)]);
      f += "\n";
    }
    write_file(args.out, f);  // a full disk: a WriteError naming the file
  } else if (!write_image_grid(out, args.out, 8)) {
    throw Error(fmt::format("--out: a PNG needs image samples [N, C, H, W]; these are [{}]: use .h5 or .csv",
                            fmt::join(r.x.sizes(), ", ")));
  }
}

}  // namespace

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

  const bool inpainting = !args.inpaint.empty();
  const auto& event = stored.event_shape;
  at::Tensor known, observed;
  if (inpainting) {
    if (event.size() != 3 || (event[0] != 1 && event[0] != 3))
      throw Error(
          fmt::format("--inpaint: trial {} is not an image trial (event shape [{}]): inpainting needs images [C, H, W]",
                      trial.id, fmt::join(event, ", ")));
    known = read_event_image("--inpaint", args.inpaint, event, 1) > 0;  // white (>= 128 of 255): known
    observed = read_event_image("--observed", args.observed, event, static_cast<int>(event[0]));
  }
  if (args.interpolate && args.n == 1) throw Error("--interpolate: --n must be at least 2 (both ends are included)");

  const Noise z = sample_noise(args, trial, event, inpainting);
  const at::Tensor& x0 = z.x0;
  const int64_t n = x0.size(0);
  const VelocityField field = sample_field(model, spec, args, n);
  const SampleResult r = solve(registry, args, stored, trial, spec, model, x0, field, known, observed);
  write_samples(args, ext, r, z, known, observed);
  const std::string what = args.interpolate ? std::string("samples along a slerp between two noises (weights 0 to 1)")
                           : inpainting     ? fmt::format("completions of {} outside {}", args.observed, args.inpaint)
                                            : std::string("samples");
  std::cout << fmt::format("{}: {} {} from {} with solver/{} ({} NFE)\n", args.out, n, what, trial.id, args.solver,
                           r.nfe);
  return 0;
}

}  // namespace flowlab::cli

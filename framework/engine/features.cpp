// Feature extractors: raw coordinates, the builtin classifiers (trained once per data file, cached on disk) and
// TorchScript modules. See features.hpp for the contract.
#include "flowlab/features.hpp"

#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/script.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <sstream>

#include "flowlab/dataset.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/files.hpp"
#include "flowlab/registry.hpp"

namespace flowlab {

FeatureExtractor::~FeatureExtractor() = default;

namespace {

namespace fs = std::filesystem;

std::atomic<int64_t> nets_trained{0};

std::string forms_list() {
  std::string out;
  for (const auto& f : feature_extractor_forms()) out += (out.empty() ? "" : ", ") + f;
  return out;
}

// x [N, ...] in chunks of `chunk` rows through f, concatenated: bounded memory for large sets.
template <class F>
at::Tensor chunked(const at::Tensor& x, int64_t chunk, F&& f) {
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < x.size(0); i += chunk) parts.push_back(f(x.slice(0, i, std::min(x.size(0), i + chunk))));
  return parts.empty() ? at::Tensor() : at::cat(parts);
}

// ---------------------------------------------------------------------------------------------------------------- raw

class RawFeatures final : public FeatureExtractor {
 public:
  at::Tensor features(const at::Tensor& x) const override { return x.reshape({x.size(0), -1}).to(at::kFloat); }
  at::Tensor differentiable_features(const at::Tensor& x) const override { return features(x); }
  std::string describe() const override { return "raw"; }
};

// --------------------------------------------------------------------------------------------------------- torchscript

class TorchScriptFeatures final : public FeatureExtractor {
 public:
  TorchScriptFeatures(std::string path, const std::string& device) : path_(std::move(path)), device_(device) {
    std::error_code ec;
    if (!fs::is_regular_file(path_, ec))
      throw Error(
          fmt::format("feature extractor torchscript:{}: the file '{}' does not exist or is not a file", path_, path_));
    try {
      module_ = torch::jit::load(path_, device_);
    } catch (const c10::Error& e) {
      throw Error(fmt::format("feature extractor torchscript:{}: cannot load '{}' as a TorchScript module: {}", path_,
                              path_, e.what_without_backtrace()));
    }
    module_.eval();
    for (auto p : module_.parameters()) p.requires_grad_(false);  // fixed: gradients reach the input only
  }
  at::Tensor differentiable_features(const at::Tensor& x) const override {
    const c10::IValue y = module_.forward({x.to(device_, at::kFloat)});
    if (!y.isTensor())
      throw Error(fmt::format("feature extractor torchscript:{}: forward returned a {}, expected a tensor", path_,
                              y.tagKind()));
    return y.toTensor().reshape({x.size(0), -1}).to(x.device());
  }
  at::Tensor features(const at::Tensor& x) const override {
    torch::NoGradGuard no_grad;
    const at::Tensor out = chunked(x, 256, [&](const at::Tensor& part) {
      c10::IValue y;
      try {
        y = module_.forward({part.to(device_, at::kFloat)});
      } catch (const c10::Error& e) {
        throw Error(fmt::format("feature extractor torchscript:{}: forward failed on input {}: {}", path_,
                                shape_string(part.sizes()), e.what_without_backtrace()));
      }
      if (!y.isTensor())
        throw Error(fmt::format("feature extractor torchscript:{}: forward returned a {}, expected a tensor", path_,
                                y.tagKind()));
      const at::Tensor t = y.toTensor();
      if (t.dim() == 0 || t.size(0) != part.size(0))
        throw Error(
            fmt::format("feature extractor torchscript:{}: forward returned {} for {} inputs; expected [N, ...]", path_,
                        shape_string(t.sizes()), part.size(0)));
      return t.reshape({t.size(0), -1}).to(at::kFloat);
    });
    return out.defined() ? out.to(x.device()) : at::empty({0, 0}, x.options().dtype(at::kFloat));
  }
  std::string describe() const override { return "torchscript:" + path_; }

 private:
  std::string path_;
  at::Device device_;
  mutable torch::jit::Module module_;  // forward() is not const, but it changes nothing in eval mode
};

// ------------------------------------------------------------------------------------------------------------ builtin

/// Bump when the architecture, the recipe or the data split changes: older cache files are then retrained.
constexpr int64_t kNetVersion = 1;
constexpr uint64_t kTrainSeed = 20240613;

/// A builtin net and how it is trained.
struct Recipe {
  std::string dataset;         ///< dataset plugin, created with default parameters
  std::string accuracy_label;  ///< "held-out" or "test": what reference() is
  int64_t side;                ///< image side (8 or 28)
  int64_t c1, c2, hidden;      ///< channels of the two convolutions, width of the feature layer
  int64_t classes;
  int64_t epochs, batch;
  double lr;  ///< Adam, cosine-annealed to 0 over all steps
};

const Recipe* recipe_for(const std::string& name) {
  static const Recipe digits{"digits", "held-out", 8, 32, 64, 128, 10, 40, 64, 3e-3};
  static const Recipe fashion{"fashion_mnist", "test", 28, 16, 32, 128, 10, 3, 128, 3e-3};
  if (name == "digits") return &digits;
  if (name == "fashion_mnist") return &fashion;
  return nullptr;
}

/// conv3x3(c1) + BN + ReLU + maxpool2, conv3x3(c2) + BN + ReLU + maxpool2, linear(hidden) + ReLU = the features,
/// linear(10) = the logits.
struct ClassifierNet : torch::nn::Module {
  explicit ClassifierNet(const Recipe& r) {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, r.c1, 3).padding(1)));
    bn1 = register_module("bn1", torch::nn::BatchNorm2d(r.c1));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(r.c1, r.c2, 3).padding(1)));
    bn2 = register_module("bn2", torch::nn::BatchNorm2d(r.c2));
    fc1 = register_module("fc1", torch::nn::Linear(r.c2 * (r.side / 4) * (r.side / 4), r.hidden));
    fc2 = register_module("fc2", torch::nn::Linear(r.hidden, r.classes));
  }
  at::Tensor features(at::Tensor x) {
    x = at::max_pool2d(at::relu(bn1(conv1(x))), 2);
    x = at::max_pool2d(at::relu(bn2(conv2(x))), 2);
    return at::relu(fc1(x.flatten(1)));
  }
  at::Tensor logits(const at::Tensor& x) { return fc2(features(x)); }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};

/// FNV-1a (64 bit) over the bytes of the files, in order, as 16 hex digits.
std::string hash_files(const std::string& spec, const std::vector<std::string>& files) {
  uint64_t h = 0xcbf29ce484222325ULL;
  std::vector<char> buf(1 << 20);
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw Error(fmt::format("feature extractor {}: cannot read the data file '{}'", spec, f));
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const auto n = static_cast<size_t>(in.gcount());
      for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 0x100000001b3ULL;
    }
  }
  return fmt::format("{:016x}", h);
}

/// The files the dataset reads with its default parameters (what the cache is keyed by).
std::vector<std::string> data_files(const Recipe& r, const Registry& registry) {
  const Params p = registry.resolve("dataset", r.dataset);
  if (r.dataset == "digits") return {p.str("file")};
  const std::string dir = p.str("dir");
  std::vector<std::string> files;
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                        "t10k-labels-idx1-ubyte.gz"})
    files.push_back(dir + "/" + f);
  return files;
}

/// What a cache file holds besides the weights.
struct NetInfo {
  double accuracy = 0;
  int64_t evaluated = 0;  ///< number of reference images the accuracy was measured on
  double train_seconds = 0;
};

void note(const std::string& text) { std::cerr << "flowlab: note: " << text << "\n" << std::flush; }

// Runs f with torch's default CPU generator seeded with kTrainSeed, then puts the generator back as it was: what
// happens here leaves the caller's random stream untouched.
template <class F>
auto with_fixed_seed(F&& f) {
  auto gen = at::Generator(at::globalContext().defaultGenerator(at::kCPU));
  at::Tensor saved;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    saved = gen.get_state();
  }
  struct Restore {
    at::Generator& gen;
    at::Tensor& state;
    ~Restore() {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(state);
    }
  } restore{gen, saved};
  at::manual_seed(kTrainSeed);
  return f();
}

// A net initialised and trained on the training split of r.dataset (CPU, fixed seed), with its accuracy on the
// dataset's reference split in `info`. Call inside with_fixed_seed().
std::shared_ptr<ClassifierNet> train(const Recipe& r, const Dataset& data, NetInfo& info) {
  // The engine asks for features inside its evaluation, under a NoGradGuard: training needs gradients back on.
  const at::AutoGradMode grad_on(true);
  auto model = std::make_shared<ClassifierNet>(r);
  ClassifierNet& net = *model;
  const auto t0 = std::chrono::steady_clock::now();
  const Batch train_set = data.take(at::arange(data.size(), at::kLong), at::kFloat);
  const Batch heldout = data.reference(std::numeric_limits<int64_t>::max(), at::kFloat);
  const int64_t n = train_set.x.size(0), steps_per_epoch = (n + r.batch - 1) / r.batch;
  const int64_t total = r.epochs * steps_per_epoch;
  torch::optim::Adam opt(net.parameters(), torch::optim::AdamOptions(r.lr));
  int64_t step = 0;
  net.train();
  for (int64_t e = 0; e < r.epochs; ++e) {
    const at::Tensor perm = at::randperm(n, at::kLong);
    for (int64_t i = 0; i < n; i += r.batch, ++step) {
      const at::Tensor idx = perm.slice(0, i, std::min(n, i + r.batch));
      const double lr = r.lr * 0.5 * (1 + std::cos(M_PI * double(step) / double(total)));
      for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      const at::Tensor loss =
          at::cross_entropy_loss(net.logits(train_set.x.index_select(0, idx)), train_set.label.index_select(0, idx));
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
  }
  net.eval();
  torch::NoGradGuard no_grad;
  const at::Tensor predicted =
      chunked(heldout.x, 1000, [&](const at::Tensor& part) { return net.logits(part).argmax(1); });
  info.evaluated = heldout.x.size(0);
  info.accuracy = predicted.eq(heldout.label).to(at::kDouble).mean().item<double>();
  info.train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return model;
}

void save_net(const std::string& path, ClassifierNet& net, const std::string& data_hash, const NetInfo& info) {
  torch::serialize::OutputArchive archive, weights;
  net.save(weights);
  archive.write("net", weights);
  archive.write("version", c10::IValue(kNetVersion));
  archive.write("data_hash", c10::IValue(data_hash));
  archive.write("accuracy", c10::IValue(info.accuracy));
  archive.write("evaluated", c10::IValue(info.evaluated));
  archive.write("train_seconds", c10::IValue(info.train_seconds));
  fs::create_directories(fs::path(path).parent_path());
  // In memory first (LibTorch's file writer aborts the process on a full disk), then write_file: a WriteError.
  std::ostringstream bytes(std::ios::out | std::ios::binary);
  archive.save_to(bytes);
  write_file(path, bytes.str(), fmt::format("{}.tmp.{}", path, ::getpid()));
}

/// Loads the cache into `net`; returns false (with `why`) when it is missing, unreadable or stale.
bool load_net(const std::string& path, ClassifierNet& net, const std::string& data_hash, NetInfo& info,
              std::string& why) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return false;
  try {
    torch::serialize::InputArchive archive, weights;
    archive.load_from(path);
    c10::IValue version, hash, accuracy, evaluated, seconds;
    if (!archive.try_read("version", version) || !version.isInt()) {
      why = "it has no net version";
      return false;
    }
    if (version.toInt() != kNetVersion) {
      why = fmt::format("it holds net version {}, this flowlab uses version {}", version.toInt(), kNetVersion);
      return false;
    }
    archive.read("data_hash", hash);
    if (!hash.isString() || hash.toStringRef() != data_hash) {
      why = "it was trained on other data";
      return false;
    }
    archive.read("accuracy", accuracy);
    archive.read("evaluated", evaluated);
    archive.read("train_seconds", seconds);
    archive.read("net", weights);
    net.load(weights);
    info.accuracy = accuracy.toDouble();
    info.evaluated = evaluated.toInt();
    info.train_seconds = seconds.toDouble();
    return true;
  } catch (const std::exception& e) {
    why = fmt::format("it cannot be read ({})", std::string(e.what()).substr(0, std::string(e.what()).find('\n')));
    return false;
  }
}

class BuiltinFeatures final : public FeatureExtractor {
 public:
  BuiltinFeatures(std::string name, const Recipe& r, std::shared_ptr<ClassifierNet> net, const NetInfo& info,
                  const std::string& device)
      : name_(std::move(name)), recipe_(r), net_(std::move(net)), info_(info), device_(device) {
    net_->to(device_);
    net_->eval();
    for (auto& p : net_->parameters()) p.requires_grad_(false);  // fixed: gradients reach the input only
  }
  at::Tensor differentiable_features(const at::Tensor& x) const override {
    const int64_t side = r().side;
    if (x.dim() < 2 || x.numel() != x.size(0) * side * side)
      throw Error(fmt::format("feature extractor builtin:{}: expects images [N, 1, {}, {}] (or [N, {}]), got {}", name_,
                              side, side, side * side, shape_string(x.sizes())));
    return net_->features(x.reshape({x.size(0), 1, side, side}).to(device_, at::kFloat)).to(x.device());
  }
  at::Tensor features(const at::Tensor& x) const override {
    const int64_t per_image = r().side * r().side;
    if (x.dim() < 2 || x.numel() != x.size(0) * per_image)
      throw Error(fmt::format("feature extractor builtin:{}: expects images [N, 1, {}, {}] (or [N, {}]), got {}", name_,
                              r().side, r().side, per_image, shape_string(x.sizes())));
    torch::NoGradGuard no_grad;
    const at::Tensor images = x.reshape({x.size(0), 1, r().side, r().side});
    const at::Tensor out =
        chunked(images, 1000, [&](const at::Tensor& part) { return net_->features(part.to(device_, at::kFloat)); });
    return out.defined() ? out.to(x.device()) : at::empty({0, r().hidden}, x.options().dtype(at::kFloat));
  }
  std::string describe() const override {
    return fmt::format("builtin:{} v{} ({} accuracy {:.4f}, {} images)", name_, kNetVersion, r().accuracy_label,
                       info_.accuracy, info_.evaluated);
  }

 private:
  const Recipe& r() const { return recipe_; }

  std::string name_;
  Recipe recipe_;
  std::shared_ptr<ClassifierNet> net_;
  NetInfo info_;
  at::Device device_;
};

std::mutex builtin_mutex;  // one training at a time in a process

std::shared_ptr<FeatureExtractor> make_builtin(const std::string& name, const Recipe& r, const Registry& registry,
                                               const std::string& device) {
  std::lock_guard<std::mutex> lock(builtin_mutex);
  const std::string hash = hash_files("builtin:" + name, data_files(r, registry));
  const std::string path = (fs::path(feature_cache_dir()) / fmt::format("builtin-{}-{}.pt", name, hash)).string();
  auto net = with_fixed_seed([&] { return std::make_shared<ClassifierNet>(r); });
  NetInfo info;
  std::string why;
  {
    at::NoGradGuard no_grad;  // loading into fresh parameters
    if (load_net(path, *net, hash, info, why)) return std::make_shared<BuiltinFeatures>(name, r, net, info, device);
  }
  if (!why.empty()) note(fmt::format("feature net cache '{}' is not used: {}; retraining", path, why));
  std::cerr << fmt::format("flowlab: training the builtin:{} feature net (once; cached as {}) ...\n", name, path)
            << std::flush;
  const auto data = registry.create<Dataset>("dataset", r.dataset);
  if (data->num_classes() != r.classes)
    throw Error(fmt::format("builtin:{}: dataset/{} has {} classes, the net expects {}", name, r.dataset,
                            data->num_classes(), r.classes));
  net = with_fixed_seed([&] { return train(r, *data, info); });
  ++nets_trained;
  std::cerr << fmt::format("flowlab: builtin:{} feature net: {} accuracy {:.4f} on {} images, trained in {:.1f} s\n",
                           name, r.accuracy_label, info.accuracy, info.evaluated, info.train_seconds)
            << std::flush;
  try {
    save_net(path, *net, hash, info);
  } catch (const std::exception& e) {  // an unwritable cache costs a retraining next time, not this run
    note(fmt::format("cannot write the feature net cache '{}' ({}); it will be trained again next time", path,
                     std::string(e.what()).substr(0, std::string(e.what()).find('\n'))));
  }
  return std::make_shared<BuiltinFeatures>(name, r, net, info, device);
}

}  // namespace

std::string feature_cache_dir() {
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };
  if (!env("FLOWLAB_CACHE_DIR").empty()) return env("FLOWLAB_CACHE_DIR");
  if (!env("XDG_CACHE_HOME").empty()) return env("XDG_CACHE_HOME") + "/flowlab";
  if (!env("HOME").empty()) return env("HOME") + "/.cache/flowlab";
  throw Error("feature cache: none of FLOWLAB_CACHE_DIR, XDG_CACHE_HOME and HOME is set; set FLOWLAB_CACHE_DIR");
}

int64_t builtin_feature_nets_trained() { return nets_trained.load(); }

std::shared_ptr<FeatureExtractor> make_feature_extractor(const std::string& spec, const Registry& registry,
                                                         const std::string& device) {
  try {
    (void)at::Device(device);
  } catch (const c10::Error&) {
    throw Error(fmt::format("feature extractor {}: '{}' is not a device (cpu, cuda, cuda:N)", spec, device));
  }
  if (spec == "raw") return std::make_shared<RawFeatures>();
  const std::string builtin = "builtin:", torchscript = "torchscript:";
  if (spec.rfind(builtin, 0) == 0) {
    const std::string name = spec.substr(builtin.size());
    if (const Recipe* r = recipe_for(name)) return make_builtin(name, *r, registry, device);
  } else if (spec.rfind(torchscript, 0) == 0 && spec.size() > torchscript.size()) {
    return std::make_shared<TorchScriptFeatures>(
        fs::absolute(spec.substr(torchscript.size())).lexically_normal().string(), device);
  }
  throw Error(fmt::format("feature extractor '{}' is not one of: {}", spec, forms_list()));
}

}  // namespace flowlab

// Feature extractors: spec errors, the cache directory, raw, TorchScript modules built here in C++ (no Python), and
// the builtin nets: their accuracy, that the disk cache is reused, and that a stale or corrupt cache is retrained.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <torch/script.h>
#include <torch/serialize/output-archive.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>

#include "flowlab/dataset.hpp"
#include "flowlab/errors.hpp"
#include "flowlab/features.hpp"
#include "support.hpp"

using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

/// Sets an environment variable for the scope, restoring the old value (or its absence) afterwards.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() { had_ ? (void)::setenv(name_, old_.c_str(), 1) : (void)::unsetenv(name_); }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

/// A fresh temporary directory, removed with the object; FLOWLAB_CACHE_DIR points into it meanwhile.
class TempCache {
 public:
  explicit TempCache(const std::string& tag)
      : dir_(fs::temp_directory_path() / ("flowlab_features_" + tag + "_" + std::to_string(::getpid()))),
        env_("FLOWLAB_CACHE_DIR", (dir_ / "cache").string()) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~TempCache() { fs::remove_all(dir_); }
  const fs::path& dir() const { return dir_; }
  fs::path cache() const { return dir_ / "cache"; }
  /// The one cache file of a builtin net.
  fs::path net_file(const std::string& name) const {
    std::vector<fs::path> found;
    if (fs::exists(cache()))
      for (const auto& e : fs::directory_iterator(cache()))
        if (e.path().filename().string().rfind("builtin-" + name + "-", 0) == 0) found.push_back(e.path());
    REQUIRE(found.size() == 1);
    return found[0];
  }

 private:
  fs::path dir_;
  ScopedEnv env_;
};

std::string contents(const fs::path& p) {
  std::stringstream ss;
  ss << std::ifstream(p, std::ios::binary).rdbuf();
  return ss.str();
}

/// The accuracy in a builtin net's describe(): "builtin:NAME v1 (LABEL accuracy 0.9xxx, N images)".
double stated_accuracy(const std::string& description, const std::string& name, const std::string& label,
                       int64_t images) {
  const std::regex form("builtin:" + name + " v[0-9]+ \\(" + label + " accuracy (0\\.[0-9]{4}|1\\.0000), " +
                        std::to_string(images) + " images\\)");
  std::smatch m;
  INFO(description);
  REQUIRE(std::regex_match(description, m, form));
  return std::stod(m[1]);
}

/// Accuracy of the nearest class centroid in feature space: centroids from the training features, evaluated on the
/// held-out ones. An independent check that the features carry the classes.
double centroid_accuracy(const flowlab::FeatureExtractor& fx, const flowlab::Dataset& data) {
  const auto train = data.take(at::arange(data.size(), at::kLong), at::kFloat);
  at::manual_seed(0);
  const auto held = data.reference(std::numeric_limits<int64_t>::max(), at::kFloat);
  const Tensor f = fx.features(train.x), g = fx.features(held.x);
  std::vector<Tensor> centroids;
  for (int64_t k = 0; k < data.num_classes(); ++k) centroids.push_back(f.index({train.label == k}).mean(0));
  const Tensor predicted = at::cdist(g, at::stack(centroids)).argmin(1);
  return predicted.eq(held.label).to(at::kDouble).mean().item<double>();
}

}  // namespace

TEST_CASE("feature extractor specs: the valid forms, and exact errors for the rest", "[features]") {
  CHECK(flowlab::feature_extractor_forms() ==
        std::vector<std::string>{"raw", "builtin:digits", "builtin:fashion_mnist", "torchscript:PATH"});
  for (const std::string bad : {"", "RAW", "builtin:", "builtin:mnist", "torchscript:", "inception", "torchscript"}) {
    INFO(bad);
    CHECK(message_of<flowlab::Error>([&] { flowlab::make_feature_extractor(bad, registry()); }) ==
          "feature extractor '" + bad +
              "' is not one of: raw, builtin:digits, builtin:fashion_mnist, torchscript:PATH");
  }
  CHECK(message_of<flowlab::Error>([&] { flowlab::make_feature_extractor("raw", registry(), "gpu0"); }) ==
        "feature extractor raw: 'gpu0' is not a device (cpu, cuda, cuda:N)");
}

TEST_CASE("feature_cache_dir: FLOWLAB_CACHE_DIR, then XDG_CACHE_HOME/flowlab, then HOME/.cache/flowlab",
          "[features]") {
  {
    ScopedEnv a("FLOWLAB_CACHE_DIR", "/tmp/a"), b("XDG_CACHE_HOME", "/tmp/x"), c("HOME", "/tmp/h");
    CHECK(flowlab::feature_cache_dir() == "/tmp/a");
  }
  {
    ScopedEnv a("FLOWLAB_CACHE_DIR", ""), b("XDG_CACHE_HOME", "/tmp/x"), c("HOME", "/tmp/h");
    CHECK(flowlab::feature_cache_dir() == "/tmp/x/flowlab");
  }
  {
    ScopedEnv a("FLOWLAB_CACHE_DIR", ""), b("XDG_CACHE_HOME", ""), c("HOME", "/tmp/h");
    CHECK(flowlab::feature_cache_dir() == "/tmp/h/.cache/flowlab");
  }
}

TEST_CASE("raw features are the flattened points in float32", "[features]") {
  const auto fx = flowlab::make_feature_extractor("raw", registry());
  CHECK(fx->describe() == "raw");
  const Tensor x = at::randn({7, 1, 2, 3}, at::kDouble);
  const Tensor f = fx->features(x);
  CHECK(f.scalar_type() == at::kFloat);
  CHECK(at::equal(f, x.reshape({7, 6}).to(at::kFloat)));
}

TEST_CASE("torchscript: a module saved here in C++ gives the features of the same computation", "[features]") {
  TempCache tmp("torchscript");
  at::manual_seed(1);
  const Tensor w = at::randn({16, 3}), b = at::randn({3});
  torch::jit::Module m("m");
  m.register_parameter("w", w, false);
  m.register_parameter("b", b, false);
  // output [N, 3, 2]: flattened to [N, 6] by the extractor
  m.define("def forward(self, x):\n"
           "    h = torch.tanh(torch.matmul(x.flatten(1), self.w) + self.b)\n"
           "    return torch.stack([h, h * h], 2)\n");
  const std::string path = (tmp.dir() / "features.pt").string();
  m.save(path);

  const auto fx = flowlab::make_feature_extractor("torchscript:" + path, registry());
  CHECK(fx->describe() == "torchscript:" + path);
  const Tensor x = at::randn({600, 1, 4, 4}, at::kDouble);  // more than one chunk of 256
  const Tensor f = fx->features(x);
  const Tensor h = at::tanh(at::matmul(x.to(at::kFloat).flatten(1), w) + b);
  const Tensor expected = at::stack({h, h * h}, 2).reshape({600, 6});
  CHECK(f.scalar_type() == at::kFloat);
  CHECK(f.sizes() == at::IntArrayRef({600, 6}));
  CHECK(at::allclose(f, expected, 1e-6, 1e-6));

  // a relative path is made absolute
  const fs::path old = fs::current_path();
  fs::current_path(tmp.dir());
  const auto rel = flowlab::make_feature_extractor("torchscript:features.pt", registry());
  fs::current_path(old);
  CHECK(rel->describe() == "torchscript:" + path);

  const std::string missing = (tmp.dir() / "nope.pt").string();
  CHECK(message_of<flowlab::Error>([&] { flowlab::make_feature_extractor("torchscript:" + missing, registry()); }) ==
        "feature extractor torchscript:" + missing + ": the file '" + missing + "' does not exist or is not a file");
  const std::string junk = (tmp.dir() / "junk.pt").string();
  std::ofstream(junk) << "not a zip archive";
  CHECK_THAT(message_of<flowlab::Error>([&] { flowlab::make_feature_extractor("torchscript:" + junk, registry()); }),
             Catch::Matchers::StartsWith("feature extractor torchscript:" + junk + ": cannot load '" + junk +
                                         "' as a TorchScript module: "));
}

TEST_CASE("builtin:digits reaches 95% on the held-out 20%, is cached, and a stale cache is retrained",
          "[features][data]") {
  TempCache tmp("digits");
  const int64_t trained = flowlab::builtin_feature_nets_trained();
  // training leaves the caller's random stream alone
  at::manual_seed(9);
  const auto t0 = std::chrono::steady_clock::now();
  const auto fx = flowlab::make_feature_extractor("builtin:digits", registry());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Tensor after = at::rand({4});
  at::manual_seed(9);
  CHECK(at::equal(after, at::rand({4})));
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 1);
  std::cout << "builtin:digits trained in " << seconds << " s: " << fx->describe() << "\n";
  const double accuracy = stated_accuracy(fx->describe(), "digits", "held-out", 360);
  CHECK(accuracy >= 0.95);

  const auto data = registry().create<flowlab::Dataset>("dataset", "digits");
  const Tensor x = data->take(at::arange(10, at::kLong), at::kDouble).x;
  const Tensor f = fx->features(x);
  CHECK(f.sizes() == at::IntArrayRef({10, 128}));
  CHECK(f.scalar_type() == at::kFloat);
  CHECK(at::equal(fx->features(x.reshape({10, 64})), f));  // flattened images are accepted too
  CHECK(centroid_accuracy(*fx, *data) >= 0.9);
  CHECK_THAT(message_of<flowlab::Error>([&] { fx->features(at::zeros({3, 2})); }),
             Catch::Matchers::Equals("feature extractor builtin:digits: expects images [N, 1, 8, 8] (or [N, 64]), got "
                                     "[3, 2]"));

  // the second extractor loads the cache: no training, the file untouched, the same net
  const fs::path file = tmp.net_file("digits");
  const auto mtime = fs::last_write_time(file);
  const std::string bytes = contents(file);
  const auto again = flowlab::make_feature_extractor("builtin:digits", registry());
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 1);
  CHECK(fs::last_write_time(file) == mtime);
  CHECK((contents(file) == bytes));
  CHECK(again->describe() == fx->describe());
  CHECK(at::equal(again->features(x), f));
  CHECK(fs::directory_iterator(tmp.cache()) != fs::directory_iterator());
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.cache())) ++files;
  CHECK(files == 1);  // no temporary file left behind

  // a corrupt cache is retrained (with a note), not a crash; training is deterministic, so the same net comes back
  std::ofstream(file, std::ios::binary | std::ios::trunc) << "garbage";
  const auto retrained = flowlab::make_feature_extractor("builtin:digits", registry());
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 2);
  CHECK(retrained->describe() == fx->describe());
  CHECK(at::equal(retrained->features(x), f));
  flowlab::make_feature_extractor("builtin:digits", registry());  // and its cache file is good again
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 2);

  // so is a cache of another net version
  {
    torch::serialize::OutputArchive old;
    old.write("version", c10::IValue(int64_t{0}));
    old.save_to(file.string());
  }
  const auto replaced = flowlab::make_feature_extractor("builtin:digits", registry());
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 3);
  CHECK(replaced->describe() == fx->describe());
  CHECK(at::equal(replaced->features(x), f));
  flowlab::make_feature_extractor("builtin:digits", registry());
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 3);
}

TEST_CASE("builtin:fashion_mnist reaches 90% on the 10000 test images", "[features][data][slow]") {
  TempCache tmp("fashion");
  const int64_t trained = flowlab::builtin_feature_nets_trained();
  const auto t0 = std::chrono::steady_clock::now();
  const auto fx = flowlab::make_feature_extractor("builtin:fashion_mnist", registry());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 1);
  std::cout << "builtin:fashion_mnist trained in " << seconds << " s: " << fx->describe() << "\n";
  CHECK(stated_accuracy(fx->describe(), "fashion_mnist", "test", 10000) >= 0.90);
  const auto again = flowlab::make_feature_extractor("builtin:fashion_mnist", registry());
  CHECK(flowlab::builtin_feature_nets_trained() == trained + 1);
  CHECK(again->describe() == fx->describe());
  const auto data = registry().create<flowlab::Dataset>("dataset", "fashion_mnist");
  at::manual_seed(0);
  const Tensor x = data->reference(100, at::kFloat).x;
  CHECK(at::equal(again->features(x), fx->features(x)));
  CHECK(fx->features(x).sizes() == at::IntArrayRef({100, 128}));
}

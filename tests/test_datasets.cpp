// Datasets: determinism for a seed, shapes, labels and attributes (contract over every dataset plugin), the
// statistics of each definition, the digits and Fashion-MNIST counts, missing-file errors, and the TorchCFM presets
// of eight_gaussians and moons against TorchCFM's definitions (torchcfm_moons_reference.csv for torchdyn's grid).
#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>
#include <catch2/generators/catch_generators_range.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

#include "flowlab/dataset.hpp"
#include "support.hpp"

using Catch::Matchers::StartsWith;
using flowlab::Tensor;
using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;
namespace fs = std::filesystem;

namespace {

fs::path scratch() { return flowlab::test::scratch_dir("flowlab_datasets_"); }

// A 4 x 2 binary PGM, white but for one black pixel at column 3, row 1.
std::string write_pgm() {
  const fs::path p = scratch() / "one_dark_pixel.pgm";
  std::ofstream f(p, std::ios::binary);
  f << "P5\n4 2\n255\n";
  const unsigned char px[8] = {255, 255, 255, 255, 255, 255, 255, 0};
  f.write(reinterpret_cast<const char*>(px), 8);
  return p.string();
}

std::string write_csv() {
  const fs::path p = scratch() / "table.csv";
  std::ofstream(p) << "gene_a,gene_b\n0,10\n3,20\n7,30\n1,40\n";
  return p.string();
}

// Two class folders of three 4 x 2 PGMs each, for image_folder.
std::string write_image_folder() {
  const fs::path d = scratch() / "image_folder";
  for (int k = 0; k < 6; ++k) {
    const fs::path p = d / (k < 3 ? "a" : "b") / (std::to_string(k) + ".pgm");
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary);
    f << "P5\n4 2\n255\n";
    for (int i = 0; i < 8; ++i) f.put(static_cast<char>(k * 40 + i * 3));
  }
  return d.string();
}

// Parameters that make every dataset constructible here.
flowlab::Params params_for(const std::string& name) {
  flowlab::Params p;
  if (name == "image_density") p.set("file", write_pgm());
  if (name == "tabular") p.set("file", write_csv());
  if (name == "image_folder") p.set("dir", write_image_folder());
  if (name == "array")
    p.set("file", std::string(FLOWLAB_TEST_DATA) + "/importers/images_u8.npy")
        .set("labels", std::string(FLOWLAB_TEST_DATA) + "/importers/labels_i8.npy");
  return p;
}

std::shared_ptr<flowlab::Dataset> make(const std::string& name, const flowlab::Params& p) {
  return registry().create<flowlab::Dataset>("dataset", name, p);
}

}  // namespace

TEST_CASE("contract: every dataset is deterministic for a seed and has the declared shapes", "[dataset][contract]") {
  std::vector<std::string> names;
  for (const auto& info : registry().list("dataset")) names.push_back(info.name);
  const std::string name = GENERATE_COPY(from_range(names));
  INFO("dataset/" << name);
  auto d = make(name, params_for(name));
  at::manual_seed(5);
  const auto a = d->sample(64, at::kDouble);
  at::manual_seed(5);
  const auto b = d->sample(64, at::kDouble);
  CHECK(at::equal(a.x, b.x));
  std::vector<int64_t> shape = {64};
  for (auto s : d->event_shape()) shape.push_back(s);
  CHECK(a.x.sizes() == at::IntArrayRef(shape));
  CHECK(a.x.scalar_type() == at::kDouble);
  if (d->num_classes() > 0) {
    REQUIRE(a.label.defined());
    CHECK(at::equal(a.label, b.label));
    CHECK(a.label.min().item<int64_t>() >= 0);
    CHECK(a.label.max().item<int64_t>() < d->num_classes());
  }
  if (d->attr_dim() > 0) CHECK(a.attr.sizes() == at::IntArrayRef({64, d->attr_dim()}));
  at::manual_seed(6);
  CHECK_FALSE(at::equal(d->sample(64, at::kDouble).x, a.x));
  // every dataset has a reference: an independent stream, or a held-out part it names
  at::manual_seed(7);
  const auto r = d->reference(2, at::kDouble);
  shape[0] = r.x.size(0);
  CHECK(r.x.sizes() == at::IntArrayRef(shape));
  CHECK(r.x.size(0) >= 1);
  CHECK(r.x.size(0) <= 2);
  CHECK(d->reference_source() == (d->size() == 0 ? "independent stream" : d->reference_source()));
  CHECK(d->reference_source() != "none");
}

TEST_CASE("ring_gaussians: each mode sits on the ring at its angle", "[dataset]") {
  flowlab::Params p;
  p.set("modes", std::int64_t{6}).set("radius", 5.0).set("std", 0.1);
  auto d = make("ring_gaussians", p);
  at::manual_seed(0);
  const auto batch = d->sample(60000, at::kDouble);
  for (int64_t k = 0; k < 6; ++k) {
    const Tensor pts = batch.x.index({batch.label == k});
    const double tol = 5 * 0.1 / std::sqrt(double(pts.size(0)));
    const double a = 2 * M_PI * k / 6;
    CHECK(std::abs(pts.select(1, 0).mean().item<double>() - 5 * std::cos(a)) < tol);
    CHECK(std::abs(pts.select(1, 1).mean().item<double>() - 5 * std::sin(a)) < tol);
    CHECK(std::abs(pts.size(0) / 60000.0 - 1 / 6.0) < 0.01);
  }
  CHECK(std::abs(batch.attr.mean().item<double>() - 5.0) < 0.01);
  CHECK(max_abs(batch.attr.squeeze(1) - batch.x.norm(2, {1})) < 1e-12);
}

TEST_CASE("the 2D toys follow their definitions", "[dataset]") {
  at::manual_seed(0);
  const auto cb = make("checkerboard", {})->sample(20000, at::kDouble);
  // every point on a dark square: floor(x/2) + floor(y/2) even, inside [-4, 4]^2
  const Tensor parity = ((cb.x.select(1, 0) / 2).floor() + (cb.x.select(1, 1) / 2).floor()).remainder(2);
  CHECK(parity.abs().max().item<double>() == 0);
  CHECK(max_abs(cb.x) <= 4.0);
  flowlab::Params clean;
  clean.set("noise", 0.0);
  const auto circ = make("circles", clean)->sample(1000, at::kDouble);
  CHECK(max_abs(circ.attr.squeeze(1) - (3 - 1.5 * circ.label.to(at::kDouble))) < 1e-12);
  const auto moons = make("moons", clean)->sample(1000, at::kDouble);
  const Tensor upper = moons.x.index({moons.label == 0}) + at::tensor({0.5, 0.25}, at::kDouble);
  CHECK(max_abs(upper.norm(2, {1}) - 1) < 1e-12);  // the upper moon is the unit half circle
  const auto spirals = make("spirals", clean)->sample(1000, at::kDouble);
  CHECK(max_abs(spirals.attr) <= M_PI + 1e-12);  // r / 3 with r <= 3 pi
  const auto roll = make("swiss_roll", clean)->sample(1000, at::kDouble);
  CHECK(roll.attr.min().item<double>() >= 1.5 * M_PI / 5 - 1e-12);
  CHECK(roll.attr.max().item<double>() <= 4.5 * M_PI / 5 + 1e-12);
  const auto eight = make("eight_gaussians", {})->sample(8000, at::kDouble);
  CHECK(std::abs(eight.attr.mean().item<double>() - 2.0) < 0.05);
}

TEST_CASE("image_density draws only from dark pixels", "[dataset]") {
  flowlab::Params p;
  p.set("file", write_pgm()).set("extent", 2.0);
  const auto b = make("image_density", p)->sample(1000, at::kDouble);
  // 4 x 2 pixels over [-2, 2] x [-1, 1]; the dark pixel (col 3, row 1) covers x in [1, 2], y in [-1, 0].
  CHECK(b.x.select(1, 0).min().item<double>() >= 1.0);
  CHECK(b.x.select(1, 1).max().item<double>() <= 0.0);
  flowlab::Params missing;
  missing.set("file", std::string("/nonexistent/logo.png"));
  CHECK(message_of<flowlab::CreateError>([&] { make("image_density", missing); }) ==
        "dataset/image_density: construction failed (" + registry().info("dataset", "image_density").file +
            "): dataset/image_density: cannot read image '/nonexistent/logo.png': can't fopen");
}

namespace {

// The rows of x [N, ...] as byte strings, sorted: a multiset that can be compared and intersected.
std::vector<std::string> sorted_rows(const Tensor& x) {
  const Tensor flat = x.to(at::kDouble).reshape({x.size(0), -1}).contiguous();
  std::vector<std::string> rows;
  const auto bytes = static_cast<size_t>(flat.size(1)) * sizeof(double);
  for (int64_t i = 0; i < flat.size(0); ++i)
    rows.emplace_back(reinterpret_cast<const char*>(flat[i].data_ptr<double>()), bytes);
  std::sort(rows.begin(), rows.end());
  return rows;
}

size_t common_rows(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  return both.size();
}

// Pixels and label of each example, so that two examples equal only when both are.
Tensor with_labels(const flowlab::Batch& b) {
  return at::cat({b.x.reshape({b.x.size(0), -1}).to(at::kDouble), b.label.unsqueeze(1).to(at::kDouble)}, 1);
}

}  // namespace

TEST_CASE("holdout_split: a fixed seeded split, the same as its Python re-implementation", "[dataset]") {
  const auto [train, heldout] = flowlab::holdout_split(1797);
  // tests/data/digits_reference.txt (make_digits_reference.py re-implements the split in Python): holdout 360,
  // train 1437, first [12, 17, 26, 27, 37, 43, 45, 48], sum 312576
  REQUIRE(heldout.size(0) == 360);
  REQUIRE(train.size(0) == 1437);
  CHECK(at::equal(heldout.slice(0, 0, 8), at::tensor(std::vector<int64_t>{12, 17, 26, 27, 37, 43, 45, 48}, at::kLong)));
  CHECK(heldout.sum().item<int64_t>() == 312576);
  CHECK(at::equal(std::get<0>(at::sort(at::cat({train, heldout}))), at::arange(1797, at::kLong)));
  // torch's generator plays no part
  at::manual_seed(1);
  CHECK(at::equal(flowlab::holdout_split(1797).second, heldout));
  CHECK(at::equal(flowlab::holdout_split(4).second, at::tensor(std::vector<int64_t>{2}, at::kLong)));
  CHECK(flowlab::holdout_split(1).second.size(0) == 0);
  CHECK(flowlab::holdout_split(2).second.size(0) == 1);
}

TEST_CASE("digits: 1797 images of 8x8 in [-1, 1] with sklearn's class counts", "[dataset][data]") {
  auto d = make("digits", {});
  REQUIRE(d->size() == 1437);
  const auto train = d->take(at::arange(1437, at::kLong), at::kDouble);
  at::manual_seed(0);
  const auto held = d->reference(5000, at::kDouble);  // more than there are: all 360, in a random order
  REQUIRE(held.x.size(0) == 360);
  const Tensor all_x = at::cat({train.x, held.x}), all_labels = at::cat({train.label, held.label});
  CHECK(all_x.sizes() == at::IntArrayRef({1797, 1, 8, 8}));
  CHECK(all_x.min().item<double>() == -1.0);
  CHECK(all_x.max().item<double>() == 1.0);
  // tests/data/digits_reference.txt (make_digits_reference.py): mean pixel 4.884164579855314 in 0..16
  CHECK(std::abs(all_x.mean().item<double>() - (4.884164579855314 / 8 - 1)) < 1e-12);
  CHECK(at::equal(at::bincount(all_labels, {}, 10),
                  at::tensor(std::vector<int64_t>{178, 182, 177, 183, 181, 182, 181, 179, 174, 180}, at::kLong)));
  CHECK(at::equal(at::bincount(held.label, {}, 10),
                  at::tensor(std::vector<int64_t>{39, 38, 36, 30, 32, 36, 37, 38, 37, 37}, at::kLong)));
}

TEST_CASE("digits: training draws and the 20% hold-out are disjoint and the same in every instance", "[dataset][data]") {
  auto a = make("digits", {});
  auto b = make("digits", {});
  CHECK(a->reference_source() == "held-out split (seeded 20%, 360 of 1797)");
  const auto train_rows = sorted_rows(with_labels(a->take(at::arange(a->size(), at::kLong), at::kDouble)));
  at::manual_seed(3);
  const auto held_rows = sorted_rows(with_labels(a->reference(360, at::kDouble)));
  REQUIRE(train_rows.size() == 1437);
  REQUIRE(held_rows.size() == 360);
  CHECK(common_rows(train_rows, held_rows) == 0);
  // all 1797 rows of the file are distinct, so the two parts are a partition of them
  CHECK(std::adjacent_find(train_rows.begin(), train_rows.end()) == train_rows.end());
  // training draws come only from the training part
  at::manual_seed(4);
  const auto drawn = sorted_rows(with_labels(a->sample(20000, at::kDouble)));
  CHECK(common_rows(drawn, held_rows) == 0);
  CHECK(std::all_of(drawn.begin(), drawn.end(),
                    [&](const std::string& r) { return std::binary_search(train_rows.begin(), train_rows.end(), r); }));
  // a second instance holds out the same images; reference() is a seeded draw without replacement
  at::manual_seed(3);
  const auto b_held = b->reference(360, at::kDouble);
  CHECK((sorted_rows(with_labels(b_held)) == held_rows));
  at::manual_seed(3);
  CHECK(at::equal(a->reference(360, at::kDouble).x, b_held.x));
  CHECK((sorted_rows(with_labels(b->take(at::arange(b->size(), at::kLong), at::kDouble))) == train_rows));
  at::manual_seed(5);
  const auto some = sorted_rows(with_labels(a->reference(100, at::kDouble)));
  CHECK(some.size() == 100);
  CHECK(std::adjacent_find(some.begin(), some.end()) == some.end());
  CHECK(common_rows(some, held_rows) == 100);
}

TEST_CASE("fashion_mnist: trains on the 60000, references the 10000 test images", "[dataset][data]") {
  auto d = make("fashion_mnist", {});
  REQUIRE(d->size() == 60000);
  CHECK(d->reference_source() == "test set (10000)");
  const auto tr = d->take(at::arange(60000, at::kLong), at::kFloat);
  at::manual_seed(0);
  const auto te = d->reference(20000, at::kFloat);
  REQUIRE(te.x.size(0) == 10000);
  CHECK(tr.x.sizes() == at::IntArrayRef({60000, 1, 28, 28}));
  CHECK(at::equal(at::bincount(tr.label, {}, 10), at::full({10}, 6000, at::kLong)));
  CHECK(at::equal(at::bincount(te.label, {}, 10), at::full({10}, 1000, at::kLong)));
  CHECK(tr.x.min().item<float>() == -1.0f);
  CHECK(tr.x.max().item<float>() == 1.0f);
  // the reference rows are exactly the t10k file's images
  const std::string raw = flowlab::read_data_file("test", "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "");
  REQUIRE(raw.size() == 16 + 10000 * 784u);
  const Tensor file = at::from_blob(const_cast<char*>(raw.data() + 16), {10000, 784}, at::kByte).to(at::kFloat);
  CHECK((sorted_rows(file / 127.5 - 1) == sorted_rows(te.x)));
  // and training draws never come from them (Fashion-MNIST's train and test files share no image)
  at::manual_seed(1);
  CHECK(common_rows(sorted_rows(d->sample(2000, at::kFloat).x), sorted_rows(te.x)) == 0);
}

TEST_CASE("a missing data file names the file and the Debian package", "[dataset][errors]") {
  flowlab::Params digits;
  digits.set("file", std::string("/nonexistent/digits.csv.gz"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("digits", digits); }),
             Catch::Matchers::EndsWith("): dataset/digits: data file '/nonexistent/digits.csv.gz' cannot be opened (No "
                                       "such file or directory); it comes from Debian's python3-sklearn package "
                                       "(scripts/setup.sh extracts it with apt-get download and dpkg-deb -x)"));
  flowlab::Params fm;
  fm.set("dir", std::string("/nonexistent"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("fashion_mnist", fm); }),
             Catch::Matchers::EndsWith("): dataset/fashion_mnist: data file '/nonexistent/train-images-idx3-ubyte.gz' "
                                       "cannot be opened (No such file or directory); it comes from Debian's "
                                       "dataset-fashion-mnist package (scripts/setup.sh installs it)"));
}

TEST_CASE("tabular reads CSV and HDF5 with log1p, scaling and standardisation", "[dataset]") {
  // holdout_split(4): rows 0, 1, 3 train, row 2 (7, 30) is held out
  flowlab::Params p;
  p.set("file", write_csv()).set("normalize", std::string("none"));
  auto raw = make("tabular", p);
  REQUIRE(raw->size() == 3);
  CHECK(raw->reference_source() == "held-out split (seeded 20%, 1 of 4)");
  CHECK(at::equal(raw->take(at::arange(3, at::kLong), at::kDouble).x,
                  at::tensor(std::vector<double>{0, 10, 3, 20, 1, 40}, at::kDouble).reshape({3, 2})));
  CHECK(at::equal(raw->reference(10, at::kDouble).x, at::tensor(std::vector<double>{7, 30}, at::kDouble).reshape({1, 2})));
  at::manual_seed(0);
  CHECK(common_rows(sorted_rows(raw->sample(1000, at::kDouble).x), sorted_rows(raw->reference(1, at::kDouble).x)) == 0);
  // statistics from the training rows only, applied to the held-out row too
  p.set("log1p", true).set("normalize", std::string("scale"));
  auto scaled_set = make("tabular", p);
  const Tensor scaled = scaled_set->take(at::arange(3, at::kLong), at::kDouble).x;
  CHECK(at::equal(std::get<0>(scaled.min(0)), at::full({2}, -1.0, at::kDouble)));
  CHECK(at::equal(std::get<0>(scaled.max(0)), at::full({2}, 1.0, at::kDouble)));
  CHECK(std::abs(scaled[2][0].item<double>() - (2 * std::log1p(1) / std::log1p(3) - 1)) < 1e-12);
  CHECK(std::abs(scaled_set->reference(1, at::kDouble).x[0][0].item<double>() - (2 * std::log1p(7) / std::log1p(3) - 1)) <
        1e-12);
  p.set("log1p", false).set("normalize", std::string("standardize"));
  auto z_set = make("tabular", p);
  const Tensor z = z_set->take(at::arange(3, at::kLong), at::kDouble).x;
  CHECK(max_abs(z.mean(0)) < 1e-12);
  CHECK(max_abs(z.std(0) - 1) < 1e-12);
  // column 0 of the training rows: 0, 3, 1 (mean 4/3, std sqrt(7/3)); the held-out 7 maps to (7 - 4/3) / std
  CHECK(std::abs(z_set->reference(1, at::kDouble).x[0][0].item<double>() - (7 - 4.0 / 3) / std::sqrt(7.0 / 3)) < 1e-12);

  const std::string h5 = (scratch() / "table.h5").string();
  const hid_t f = H5Fcreate(h5.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  const hsize_t dims[2] = {3, 2};
  const hid_t space = H5Screate_simple(2, dims, nullptr);
  const hid_t d = H5Dcreate2(f, "/expr", H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const double values[6] = {1, 2, 3, 4, 5, 6};
  H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values);
  H5Dclose(d), H5Sclose(space), H5Fclose(f);
  flowlab::Params hp;
  hp.set("file", h5).set("dataset", std::string("/expr")).set("normalize", std::string("none"));
  auto from_h5 = make("tabular", hp);  // holdout_split(3): rows 0, 1 train, row 2 is held out
  CHECK(at::equal(from_h5->take(at::arange(2, at::kLong), at::kDouble).x,
                  at::tensor(std::vector<double>{1, 2, 3, 4}, at::kDouble).reshape({2, 2})));
  CHECK(at::equal(from_h5->reference(5, at::kDouble).x, at::tensor(std::vector<double>{5, 6}, at::kDouble).reshape({1, 2})));
  hp.set("dataset", std::string("/missing"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("tabular", hp); }),
             Catch::Matchers::EndsWith("): dataset/tabular: '" + h5 + "' has no dataset '/missing' (set parameter 'dataset')"));
  fs::remove_all(scratch());
}

// ---- preset: torchcfm (TorchCFM's sample_8gaussians and sample_moons, torchcfm.utils) ----------------------------

namespace {

// The covariance [2, 2] of the rows of x [N, 2] (divisor N - 1).
Tensor covariance(const Tensor& x) {
  const Tensor c = x - x.mean(0, true);
  return c.t().mm(c) / double(x.size(0) - 1);
}

flowlab::Params preset(const std::string& value) {
  flowlab::Params p;
  p.set("preset", value);
  return p;
}

// tests/data/torchcfm_moons_reference.csv (make_torchcfm_moons_reference.py: torchdyn's generate_moons(n,
// noise=None) * 3 - 1, float32): n -> rows [n, 3] of (label, x, y).
std::map<int64_t, std::vector<std::array<double, 3>>> torchdyn_grids() {
  std::ifstream f(std::string(FLOWLAB_TEST_DATA) + "/torchcfm_moons_reference.csv");
  REQUIRE(f.good());
  std::map<int64_t, std::vector<std::array<double, 3>>> grids;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#' || line[0] == 'n') continue;
    std::stringstream ss(line);
    std::string cell;
    std::vector<double> v;
    while (std::getline(ss, cell, ',')) v.push_back(std::stod(cell));
    REQUIRE(v.size() == 5);
    auto& rows = grids[int64_t(v[0])];
    REQUIRE(int64_t(v[1]) == int64_t(rows.size()));
    rows.push_back({v[2], v[3], v[4]});
  }
  return grids;
}

// torchdyn's grid for n points, from its definition: the first n/2 at a = linspace(0, pi, n/2) on (cos a, sin a),
// the other n - n/2 at b = linspace(0, pi, n - n/2) on (1 - cos b, 1 - sin b - 0.5); times 3 minus 1. [n, 2].
Tensor torchdyn_grid(int64_t n) {
  std::vector<double> xy;
  const int64_t n_out = n / 2, n_in = n - n_out;
  for (int64_t part = 0; part < 2; ++part) {
    const int64_t m = part == 0 ? n_out : n_in;
    for (int64_t k = 0; k < m; ++k) {
      const double a = m == 1 ? 0.0 : M_PI * double(k) / double(m - 1);
      xy.push_back(3 * (part == 0 ? std::cos(a) : 1 - std::cos(a)) - 1);
      xy.push_back(3 * (part == 0 ? std::sin(a) : 1 - std::sin(a) - 0.5) - 1);
    }
  }
  return at::tensor(xy, at::kDouble).reshape({n, 2});
}

}  // namespace

TEST_CASE("eight_gaussians preset torchcfm: TorchCFM's sample_8gaussians", "[dataset][torchcfm]") {
  // TorchCFM: centres 5 * {(+-1, 0), (0, +-1), (+-1/sqrt2, +-1/sqrt2)} (= 5 (cos, sin)(k pi / 4)), each drawn with
  // probability 1/8 (torch.multinomial(torch.ones(8))), plus MultivariateNormal(0, sqrt(0.1) I).
  auto d = make("eight_gaussians", preset("torchcfm"));
  // Exactly scale 5 and std 0.1^(1/4): the same draws as the explicit parameters, bit for bit.
  flowlab::Params explicit_params;
  explicit_params.set("scale", 5.0).set("std", std::pow(0.1, 0.25));
  at::manual_seed(11);
  const auto a = d->sample(1000, at::kDouble);
  at::manual_seed(11);
  CHECK(at::equal(a.x, make("eight_gaussians", explicit_params)->sample(1000, at::kDouble).x));

  at::manual_seed(0);
  const int64_t n = 100000;
  const auto b = d->sample(n, at::kDouble);
  const Tensor angle = b.label.to(at::kDouble) * (M_PI / 4);
  const Tensor centre = at::stack({at::cos(angle), at::sin(angle)}, 1) * 5;
  const Tensor eps = b.x - centre;
  // Around its centre: mean 0, covariance sqrt(0.1) I = 0.316228 I. Standard errors: mean 0.562 / sqrt(n) = 0.0018,
  // variance sqrt(0.1) sqrt(2 / n) = 0.0014; the tolerances are about 5 of them.
  CHECK(max_abs(eps.mean(0)) < 0.01);
  CHECK(max_abs(covariance(eps) - std::sqrt(0.1) * at::eye(2, at::kDouble)) < 0.007);
  // Uniform centres: each 1/8 (standard error 0.001).
  const Tensor share = at::bincount(b.label, {}, 8).to(at::kDouble) / double(n);
  CHECK(max_abs(share - 0.125) < 0.006);
  // The whole mixture: mean 0 (standard error 3.58 / sqrt(n) = 0.011) and covariance (25 / 2 + sqrt(0.1)) I =
  // 12.8162 I (each centre coordinate has mean square 25 / 2; standard error of the variance about 0.03).
  CHECK(max_abs(b.x.mean(0)) < 0.06);
  CHECK(max_abs(covariance(b.x) - (12.5 + std::sqrt(0.1)) * at::eye(2, at::kDouble)) < 0.15);
}

TEST_CASE("moons preset torchcfm: torchdyn's angle grids, a uniform shift, times 3 minus 1", "[dataset][torchcfm]") {
  auto d = make("moons", preset("torchcfm"));
  // The deterministic part is torchdyn's own grid (float32 values, hence 1e-6), and the definition's (to 1e-12);
  // what is left is one shift per point, the same on both coordinates, in 3 * [0, 0.2).
  const auto grids = torchdyn_grids();
  REQUIRE(grids.size() == 4);
  for (const auto& [n, rows] : grids) {
    INFO("n = " << n);
    REQUIRE(int64_t(rows.size()) == n);
    at::manual_seed(n);
    const auto b = d->sample(n, at::kDouble);
    REQUIRE(b.x.sizes() == at::IntArrayRef({n, 2}));
    const Tensor grid = torchdyn_grid(n);
    std::vector<double> theirs;
    std::vector<int64_t> labels;
    for (const auto& r : rows) {
      labels.push_back(int64_t(r[0]));
      theirs.push_back(r[1]);
      theirs.push_back(r[2]);
    }
    CHECK(max_abs(grid - at::tensor(theirs, at::kDouble).reshape({n, 2})) < 1e-6);
    CHECK(at::equal(b.label, at::tensor(labels, at::kLong)));
    const Tensor shift = b.x - grid;
    CHECK(max_abs(shift.select(1, 0) - shift.select(1, 1)) < 1e-12);
    CHECK(shift.min().item<double>() >= -1e-12);
    CHECK(shift.max().item<double>() < 0.6);
  }

  at::manual_seed(0);
  const int64_t n = 100000;
  const auto b = d->sample(n, at::kDouble);
  const Tensor shift = (b.x - torchdyn_grid(n)).select(1, 0) / 3;  // u ~ U[0, 0.2)
  CHECK(max_abs((b.x - torchdyn_grid(n)).select(1, 1) / 3 - shift) < 1e-12);
  // Support [0, 0.2): with 10^5 draws, some within 0.001 of each end (a miss has probability (1 - 0.005)^(10^5)).
  CHECK(shift.min().item<double>() >= 0);
  CHECK(shift.min().item<double>() < 0.001);
  CHECK(shift.max().item<double>() < 0.2);
  CHECK(shift.max().item<double>() > 0.199);
  // U[0, 0.2): mean 0.1, variance 0.2^2 / 12 = 0.00333 (standard errors 1.8e-4 and 9.4e-6).
  CHECK(std::abs(shift.mean().item<double>() - 0.1) < 0.001);
  CHECK(std::abs(shift.var().item<double>() - 0.04 / 12) < 6e-5);
  // The points: 3 (g + (u, u)) - 1 with g on the grid. For an even n the two moons pair up, so the grid's mean is
  // (0.5, 0.25) exactly, and the mean is 3 (0.5 + 0.1, 0.25 + 0.1) - 1 = (0.8, 0.05) (standard error 5.5e-4).
  // TorchCFM's own sample_moons(10^5) gave (0.7997, 0.0497) and the covariance below to 0.002.
  CHECK(max_abs(b.x.mean(0) - at::tensor({0.8, 0.05}, at::kDouble)) < 0.003);
  // Covariance 9 (C_grid + Var(u) [[1, 1], [1, 1]]), with the grid's C_grid (the uniform angle's, to O(1/n)):
  // Var x = 3/4, Var y = 9/16 - 1/pi, Cov xy = 1/8 - 1/pi; Var(u) = 1/300. So
  // [[6.78, 1.125 - 9/pi + 0.03], [., 5.0625 - 9/pi + 0.03]] = [[6.78, -1.70977], [., 2.22772]];
  // standard errors up to 0.0014 (the sample covariance of grid and shift); without the shift every entry would be
  // 0.03 lower.
  const double c_xy = 1.125 - 9 / M_PI + 0.03, c_yy = 5.0625 - 9 / M_PI + 0.03;
  const Tensor expected = at::tensor({6.78, c_xy, c_xy, c_yy}, at::kDouble).reshape({2, 2});
  CHECK(max_abs(covariance(b.x) - expected) < 0.008);
}

TEST_CASE("preset none keeps the draws of eight_gaussians and moons as they were", "[dataset][torchcfm]") {
  // The defaults, re-derived from the plugins' definitions with the same calls on torch's generator.
  at::manual_seed(21);
  const auto eight = make("eight_gaussians", preset("none"))->sample(500, at::kDouble);
  at::manual_seed(21);
  const Tensor k = at::randint(8, {500}, at::kLong);
  const Tensor angle = k.to(at::kDouble) * (M_PI / 4);
  const Tensor centre = at::stack({at::cos(angle), at::sin(angle)}, 1) * 2.0;
  CHECK(at::equal(eight.x, centre + 0.2 * at::randn({500, 2}, at::kDouble)));
  at::manual_seed(21);
  CHECK(at::equal(make("eight_gaussians", {})->sample(500, at::kDouble).x, eight.x));

  at::manual_seed(22);
  const auto moons = make("moons", {})->sample(500, at::kDouble);
  at::manual_seed(22);
  const Tensor moon = at::randint(2, {500}, at::kLong);
  const Tensor a = at::rand({500}, at::kDouble) * M_PI;
  const Tensor lower = moon.to(at::kDouble);
  const Tensor x = at::cos(a) * (1 - 2 * lower) + lower;
  const Tensor y = at::sin(a) * (1 - 2 * lower) + 0.5 * lower;
  CHECK(at::equal(moons.x, at::stack({x - 0.5, y - 0.25}, 1) + 0.05 * at::randn({500, 2}, at::kDouble)));
  CHECK(at::equal(moons.label, moon));
}

TEST_CASE("preset: an unknown value lists the valid ones; a parameter the preset fixes is refused",
          "[dataset][torchcfm][errors]") {
  CHECK(message_of<flowlab::ParamError>([] { make("moons", preset("torchdyn")); }) ==
        "dataset/moons: parameter 'preset' must be one of none, torchcfm, got 'torchdyn'");
  CHECK(message_of<flowlab::ParamError>([] { make("eight_gaussians", preset("TorchCFM")); }) ==
        "dataset/eight_gaussians: parameter 'preset' must be one of none, torchcfm, got 'TorchCFM'");
  flowlab::Params scale = preset("torchcfm");
  scale.set("scale", 4.0);
  CHECK(message_of<flowlab::ParamError>([&] { make("eight_gaussians", scale); }) ==
        "dataset/eight_gaussians: parameter 'scale' is fixed to 5 by preset torchcfm; leave it unset (got 4)");
  flowlab::Params std_ = preset("torchcfm");
  std_.set("std", 0.5);
  CHECK(message_of<flowlab::ParamError>([&] { make("eight_gaussians", std_); }) ==
        "dataset/eight_gaussians: parameter 'std' is fixed to 0.1^(1/4) by preset torchcfm; leave it unset (got 0.5)");
  flowlab::Params noise = preset("torchcfm");
  noise.set("noise", 0.2);
  CHECK(message_of<flowlab::ParamError>([&] { make("moons", noise); }) ==
        "dataset/moons: parameter 'noise' is fixed by preset torchcfm (one uniform shift in [0, 0.2) per point, on "
        "both coordinates, before the x3); leave it unset (got 0.2)");
}

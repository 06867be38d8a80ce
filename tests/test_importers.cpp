// Data importers ([importers]): dataset/image_folder on folders of PNG and JPEG files written here with
// stb_image_write, dataset/array on .npy/.npz files written by NumPy (tests/data/importers/, from
// tests/data/make_importers_reference.py), dataset/tabular on N-D HDF5 datasets, and metric/frechet's (mu, sigma)
// .npz statistics files (pytorch-fid's layout), read back by NumPy. Shapes, labels, values, the held-out split, and
// the located errors for missing, truncated and corrupt files and bad options.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#include <hdf5.h>
#include <stb/stb_image_write.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "flowlab/dataset.hpp"
#include "flowlab/metric.hpp"
#include "support.hpp"

using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::EndsWith;
using flowlab::Tensor;
using flowlab::test::message_of;
using flowlab::test::registry;
using flowlab::test::ScratchDir;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<flowlab::Dataset> make(const std::string& name, const flowlab::Params& p) {
  return registry().create<flowlab::Dataset>("dataset", name, p);
}

std::string data(const std::string& name) { return std::string(FLOWLAB_TEST_DATA) + "/importers/" + name; }

/// A gray w x h image whose pixel (row r, column c) is (seed * 37 + (r * w + c) * 11) % 256, as [h, w] uint8.
Tensor pattern(int w, int h, int seed) {
  return ((at::arange(int64_t(w) * h, at::kLong) * 11 + seed * 37) % 256).to(at::kByte).reshape({h, w});
}

/// Writes `img` ([h, w] gray or [h, w, 3] RGB uint8) as a PNG.
void write_png(const fs::path& p, const Tensor& img) {
  const Tensor c = img.contiguous();
  const int comp = c.dim() == 3 ? int(c.size(2)) : 1;
  fs::create_directories(p.parent_path());
  REQUIRE(stbi_write_png(p.c_str(), int(c.size(1)), int(c.size(0)), comp, c.data_ptr<uint8_t>(), int(c.size(1)) * comp));
}

/// The held-out split's training rows of x, as the datasets return them.
Tensor training_rows(const Tensor& x) { return x.index_select(0, flowlab::holdout_split(x.size(0)).first); }

/// All training examples of d, in order.
flowlab::Batch all_training(const flowlab::Dataset& d) { return d.take(at::arange(d.size(), at::kLong), at::kDouble); }

/// The bytes of a file.
std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

void spit(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

// ---- image_folder -----------------------------------------------------------------------------------------------

TEST_CASE("image_folder: class subfolders of gray PNGs load with their labels, values and the seeded split",
          "[importers][dataset]") {
  ScratchDir dir("flowlab_image_folder");
  // 2 classes x 6 images of 5 x 4 (w x h); also a hidden folder, a text file and an empty folder, all ignored
  std::vector<Tensor> expected;
  for (int k = 0; k < 12; ++k) {
    const Tensor img = pattern(5, 4, k);
    write_png(dir.dir / (k < 6 ? "cat" : "dog") / fmt::format("img_{:02d}.png", k % 6), img);
    expected.push_back(img.unsqueeze(0));
  }
  write_png(dir.dir / ".hidden" / "x.png", pattern(7, 7, 0));
  spit(dir.file("cat/README.txt"), "not an image");
  fs::create_directories(dir.dir / "empty");
  flowlab::Params p;
  p.set("dir", dir.dir.string());
  auto d = make("image_folder", p);
  const Tensor all = at::stack(expected);  // [12, 1, 4, 5]
  CHECK(d->event_shape() == std::vector<int64_t>{1, 4, 5});
  CHECK(d->num_classes() == 2);
  REQUIRE(d->size() == 12 - 3);  // ceil(0.2 * 12) = 3 held out
  CHECK(d->quantization_step() == 2.0 / 255);
  CHECK(d->reference_source() ==
        "held-out split (seeded 20%, 3 of 12); in memory: 12 x [1, 4, 5] uint8 + int64 labels, 336 B");
  const auto b = all_training(*d);
  CHECK(at::equal(b.x, training_rows(all).to(at::kDouble) / 127.5 - 1));
  const Tensor labels = at::tensor(std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, at::kLong);
  CHECK(at::equal(b.label, training_rows(labels)));
  // the reference draws the 3 held-out images, with their labels
  const auto heldout = flowlab::holdout_split(12).second;
  const auto r = d->reference(10, at::kDouble);
  REQUIRE(r.x.size(0) == 3);
  const Tensor want = all.index_select(0, heldout).to(at::kDouble) / 127.5 - 1;
  CHECK(at::equal(std::get<0>(at::sort(r.x.flatten(1).sum(1))), std::get<0>(at::sort(want.flatten(1).sum(1)))));
  CHECK(at::equal(std::get<0>(at::sort(r.label)), std::get<0>(at::sort(labels.index_select(0, heldout)))));
}

TEST_CASE("image_folder: an unlabelled folder of RGB PNGs, gray conversion, and JPEG", "[importers][dataset]") {
  ScratchDir dir("flowlab_image_folder_rgb");
  std::vector<Tensor> expected;
  for (int k = 0; k < 5; ++k) {
    const Tensor img = at::stack({pattern(3, 2, k), pattern(3, 2, k + 1), pattern(3, 2, k + 2)}, 2);  // [2, 3, 3]
    write_png(dir.dir / fmt::format("{}.png", k), img);
    expected.push_back(img.permute({2, 0, 1}));
  }
  flowlab::Params p;
  p.set("dir", dir.dir.string());
  auto d = make("image_folder", p);
  CHECK(d->event_shape() == std::vector<int64_t>{3, 2, 3});
  CHECK(d->num_classes() == 0);
  const auto b = all_training(*d);
  CHECK_FALSE(b.label.defined());
  CHECK(at::equal(b.x, training_rows(at::stack(expected)).to(at::kDouble) / 127.5 - 1));
  p.set("color", std::string("gray"));
  CHECK(make("image_folder", p)->event_shape() == std::vector<int64_t>{1, 2, 3});

  // a smooth gray JPEG at quality 100 decodes close to what was written (stb_image_write stores every JPEG as
  // 3-component YCbCr, so `color: auto` would see RGB; `gray` takes the luminance back)
  ScratchDir jdir("flowlab_image_folder_jpeg");
  const Tensor smooth = (at::arange(16, at::kLong).unsqueeze(0) * 4 + at::arange(16, at::kLong).unsqueeze(1) * 3 + 40)
                            .to(at::kByte).contiguous();  // [16, 16]
  for (int k = 0; k < 3; ++k)
    REQUIRE(stbi_write_jpg(jdir.file(fmt::format("{}.jpg", k)).c_str(), 16, 16, 1, smooth.data_ptr<uint8_t>(), 100));
  flowlab::Params jp;
  jp.set("dir", jdir.dir.string());
  CHECK(make("image_folder", jp)->event_shape() == std::vector<int64_t>{3, 16, 16});
  jp.set("color", std::string("gray"));
  auto j = make("image_folder", jp);
  CHECK(j->event_shape() == std::vector<int64_t>{1, 16, 16});
  const Tensor err = (all_training(*j).x - (smooth.to(at::kDouble) / 127.5 - 1)).abs().max();
  CHECK(err.item<double>() <= 4 / 127.5);
}

TEST_CASE("image_folder: mixed sizes are refused, or resized by crop or stretch as configured", "[importers][dataset]") {
  ScratchDir dir("flowlab_image_folder_mixed");
  write_png(dir.dir / "a.png", at::full({4, 4}, 200, at::kByte));
  write_png(dir.dir / "b.png", at::full({6, 8}, 100, at::kByte));  // 8 wide, 6 high
  write_png(dir.dir / "c.png", at::full({4, 4}, 50, at::kByte));
  flowlab::Params p;
  p.set("dir", dir.dir.string());
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             EndsWith("): dataset/image_folder: '" + dir.dir.string() + "': mixed image sizes: '" + dir.file("a.png") +
                      "' is 4x4, '" + dir.file("b.png") + "' is 8x6 (width x height); set parameter 'size' to resize "
                      "them all"));
  for (const std::string fit : {"crop", "resize"}) {
    INFO("fit " << fit);
    p.set("size", int64_t{3}).set("fit", fit).set("holdout", 0.5);
    auto d = make("image_folder", p);
    CHECK(d->event_shape() == std::vector<int64_t>{1, 3, 3});
    // uniform images stay uniform at their value
    const Tensor x = at::cat({all_training(*d).x, d->reference(5, at::kDouble).x}).flatten(1);
    const Tensor v = std::get<0>(at::sort(x.mean(1)));
    CHECK(at::allclose(v, at::tensor(std::vector<double>{50, 100, 200}, at::kDouble) / 127.5 - 1, 0, 1e-12));
    CHECK(at::equal(x.amax(1), x.amin(1)));
  }
  p.set("fit", std::string("squash"));
  CHECK_THAT(message_of<flowlab::Error>([&] { make("image_folder", p); }),
             ContainsSubstring("parameter 'fit'") && ContainsSubstring("crop") && ContainsSubstring("resize"));
}

TEST_CASE("image_folder: no images, a missing folder, truncated and corrupt files give located errors",
          "[importers][dataset][errors]") {
  ScratchDir dir("flowlab_image_folder_bad");
  fs::create_directories(dir.dir / "class_a");
  spit(dir.file("class_a/notes.txt"), "no images here");
  flowlab::Params p;
  p.set("dir", dir.dir.string());
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             EndsWith("): dataset/image_folder: '" + dir.dir.string() +
                      "' has no images (png, jpg, jpeg, bmp, tga, pgm, ppm files, at its top level or in class "
                      "subfolders)"));
  p.set("dir", dir.file("nowhere"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             EndsWith("): dataset/image_folder: '" + dir.file("nowhere") + "' is not a readable folder (it does not exist)"));
  p.set("dir", std::string(""));
  CHECK(message_of<flowlab::ParamError>([&] { make("image_folder", p); }) ==
        "dataset/image_folder: parameter 'dir' is required (a folder of images)");

  // a truncated PNG: the header reads, the pixels do not
  p.set("dir", dir.dir.string());
  for (int k = 0; k < 3; ++k) write_png(dir.dir / "class_a" / fmt::format("{}.png", k), pattern(20, 20, k));
  const std::string good = slurp(dir.file("class_a/1.png"));
  spit(dir.file("class_a/1.png"), good.substr(0, good.size() / 2));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             ContainsSubstring("dataset/image_folder: cannot decode image '" + dir.file("class_a/1.png") + "': "));
  // not an image at all
  spit(dir.file("class_a/1.png"), "this is text, not a PNG file");
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             ContainsSubstring("dataset/image_folder: cannot read image '" + dir.file("class_a/1.png") + "': "));
  // images both at the top level and in class folders
  spit(dir.file("class_a/1.png"), good);
  write_png(dir.dir / "stray.png", pattern(20, 20, 9));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { make("image_folder", p); }),
             ContainsSubstring("has images both at its top level ('stray.png') and in class subfolders ('class_a')"));
}

// ---- array ------------------------------------------------------------------------------------------------------

TEST_CASE("array: NumPy's .npy files (uint8, float32, Fortran-order float64) with labels from an .npy",
          "[importers][dataset]") {
  flowlab::Params p;
  p.set("file", data("images_u8.npy")).set("labels", data("labels_i8.npy"));
  auto d = make("array", p);
  const Tensor images = ((at::arange(120, at::kLong) * 7) % 256).to(at::kByte).reshape({10, 1, 3, 4});
  const Tensor labels = at::arange(10, at::kLong) % 3;
  CHECK(d->event_shape() == std::vector<int64_t>{1, 3, 4});
  REQUIRE(d->size() == 8);
  CHECK(d->num_classes() == 3);
  CHECK(d->quantization_step() == 2.0 / 255);
  CHECK(d->reference_source() ==
        "held-out split (seeded 20%, 2 of 10); in memory: 10 x [1, 3, 4] uint8 + int64 labels, 200 B");
  const auto b = all_training(*d);
  CHECK(at::equal(b.x, training_rows(images).to(at::kDouble) / 127.5 - 1));
  CHECK(at::equal(b.label, training_rows(labels)));
  const auto r = d->reference(2, at::kDouble);
  CHECK(r.x.size(0) == 2);
  CHECK(r.label.defined());

  flowlab::Params t;
  t.set("file", data("table_f4.npy")).set("holdout", 0.4);
  auto table = make("array", t);
  CHECK(table->event_shape() == std::vector<int64_t>{3});
  CHECK(table->quantization_step() == 0);
  CHECK(table->num_classes() == 0);
  const Tensor expect = (at::arange(15, at::kDouble) / 4 - 1).to(at::kFloat).reshape({5, 3});
  CHECK(at::equal(all_training(*table).x,
                  expect.index_select(0, flowlab::holdout_split(5, 0.4).first).to(at::kDouble)));
  CHECK(table->reference_source() == "held-out split (seeded 40%, 2 of 5); in memory: 5 x [3] float32, 60 B");
  t.set("normalize", std::string("standardize"));
  const Tensor z = all_training(*make("array", t)).x;
  CHECK(std::abs(z.mean().item<double>()) < 1e-6);
  CHECK(std::abs(z.std().item<double>() - 1) < 1e-6);

  flowlab::Params f;
  f.set("file", data("fortran_f8.npy"));
  auto fortran = make("array", f);  // [3, 4] = arange(12) in C order; holdout_split(3) keeps rows 0, 1
  CHECK(fortran->event_shape() == std::vector<int64_t>{4});
  CHECK(at::equal(all_training(*fortran).x, at::arange(12, at::kDouble).reshape({3, 4}).index_select(
                                                0, flowlab::holdout_split(3).first)));
}

TEST_CASE("array: .npz archives (savez and savez_compressed), named arrays and labels, channels_last",
          "[importers][dataset]") {
  const Tensor x = ((at::arange(240, at::kLong) * 5) % 256).to(at::kByte).reshape({10, 4, 3, 2});
  const Tensor y = at::arange(10, at::kLong) % 4;
  for (const std::string file : {"nhwc.npz", "nhwc_compressed.npz"}) {
    INFO(file);
    flowlab::Params p;
    p.set("file", data(file)).set("key", std::string("x")).set("labels", std::string("y"));
    auto keep = make("array", p);
    CHECK(keep->event_shape() == std::vector<int64_t>{4, 3, 2});
    p.set("layout", std::string("channels_last"));
    auto d = make("array", p);
    CHECK(d->event_shape() == std::vector<int64_t>{2, 4, 3});
    CHECK(d->num_classes() == 4);
    const auto b = all_training(*d);
    CHECK(at::equal(b.x, training_rows(x.permute({0, 3, 1, 2})).to(at::kDouble) / 127.5 - 1));
    CHECK(at::equal(b.label, training_rows(y)));
    p.set("layout", std::string("add_channel"));
    CHECK(make("array", p)->event_shape() == std::vector<int64_t>{1, 4, 3, 2});
  }
}

TEST_CASE("array: bad input gives located errors: missing array, types, truncated and corrupt files",
          "[importers][dataset][errors]") {
  ScratchDir dir("flowlab_array_bad");
  const auto error = [](const flowlab::Params& p) {
    return message_of<flowlab::CreateError>([&] { make("array", p); });
  };
  flowlab::Params p;
  p.set("file", data("nhwc.npz")).set("key", std::string("images"));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + data("nhwc.npz") + "': has no array 'images' (it holds 'x', 'y')"));
  p.set("key", std::string("x")).set("labels", std::string("classes"));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + data("nhwc.npz") + "': has no array 'classes' (it holds 'x', 'y')"));
  p.set("file", data("complex.npy")).set("labels", std::string(""));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + data("complex.npy") +
                                "': element type '<c16' is not supported; valid: <f4, <f8, |u1, |i1, <i4, <i8, |b1"));
  p.set("file", dir.file("absent.npy"));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + dir.file("absent.npy") +
                                "': cannot be opened (No such file or directory)"));
  p.set("file", dir.file("table.csv"));
  CHECK(message_of<flowlab::ParamError>([&] { make("array", p); }) ==
        "dataset/array: parameter 'file' must end in .npy or .npz; got '" + dir.file("table.csv") + "'");
  p.set("file", data("images_u8.npy")).set("labels", data("table_f4.npy"));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + data("images_u8.npy") + "': labels must be integers, not float32"));
  p.set("labels", data("labels_i8.npy")).set("layout", std::string("channels_last"));
  CHECK(make("array", p)->event_shape() == std::vector<int64_t>{4, 1, 3});  // [10, 1, 3, 4] read as N, H, W, C
  p.set("file", data("table_f4.npy")).set("labels", std::string(""));
  CHECK(message_of<flowlab::ParamError>([&] { make("array", p); }) ==
        "dataset/array: parameter 'layout' is channels_last, which needs a 4-D array [N, H, W, C]; '" +
            data("table_f4.npy") + "' has shape [5, 3]");

  // a truncated .npy: the header, or the data, is cut
  const std::string npy = slurp(data("images_u8.npy"));
  spit(dir.file("cut.npy"), npy.substr(0, npy.size() - 7));
  p.set("file", dir.file("cut.npy")).set("layout", std::string("keep"));
  CHECK_THAT(error(p), EndsWith("): dataset/array: '" + dir.file("cut.npy") +
                                "': truncated: shape 10x1x3x4 of |u1 needs 120 bytes of data, the file has 113"));
  spit(dir.file("cut.npy"), npy.substr(0, 40));
  CHECK_THAT(error(p), ContainsSubstring("dataset/array: '" + dir.file("cut.npy") + "': truncated: the header needs"));
  spit(dir.file("cut.npy"), npy.substr(0, 4));
  CHECK_THAT(error(p), EndsWith("dataset/array: '" + dir.file("cut.npy") +
                                "': truncated: 4 bytes, shorter than an .npy header"));
  spit(dir.file("text.npy"), "this is no numpy file at all");
  p.set("file", dir.file("text.npy"));
  CHECK_THAT(error(p), EndsWith("'" + dir.file("text.npy") + "': not an .npy file (no \\x93NUMPY magic at its start)"));
  std::string broken = npy;
  broken.replace(broken.find("'shape'"), 7, "'shope'");
  spit(dir.file("header.npy"), broken);
  p.set("file", dir.file("header.npy"));
  CHECK_THAT(error(p), ContainsSubstring("'" + dir.file("header.npy") + "': malformed .npy header (unknown key 'shope')"));

  // a truncated .npz (the zip directory at its end is gone) and a corrupt one (deflated bytes flipped)
  const std::string npz = slurp(data("nhwc_compressed.npz"));
  spit(dir.file("cut.npz"), npz.substr(0, npz.size() / 2));
  p.set("file", dir.file("cut.npz")).set("key", std::string("x"));
  CHECK_THAT(error(p), ContainsSubstring("dataset/array: '" + dir.file("cut.npz") + "': cannot be read as an .npz (zip) archive: "));
  std::string corrupt = npz;
  const size_t at = corrupt.find("x.npy") + 5 + 40;  // inside the deflated data of x.npy
  for (size_t k = at; k < at + 16; ++k) corrupt[k] = static_cast<char>(~corrupt[k]);
  spit(dir.file("corrupt.npz"), corrupt);
  p.set("file", dir.file("corrupt.npz"));
  const std::string m = error(p);
  CHECK_THAT(m, ContainsSubstring("dataset/array: '" + dir.file("corrupt.npz")));
  // a labels array of the wrong length
  flowlab::Params q;
  q.set("file", data("images_u8.npy")).set("labels", data("complex.npy"));
  CHECK_THAT(error(q), EndsWith("'" + data("complex.npy") +
                                "': element type '<c16' is not supported; valid: <f4, <f8, |u1, |i1, <i4, <i8, |b1"));
  q.set("file", data("table_f4.npy")).set("labels", data("labels_i8.npy"));
  CHECK_THAT(error(q), EndsWith("): dataset/array: '" + data("table_f4.npy") +
                                "': labels have shape [10], expected [5] (one per sample)"));
  q.set("file", data("table_f4.npy")).set("labels", std::string("")).set("holdout", 1.0);
  CHECK(message_of<flowlab::ParamError>([&] { make("array", q); }) ==
        "dataset/array: parameter 'holdout' must be in (0, 1), got 1");
}

// ---- tabular: N-D HDF5 ------------------------------------------------------------------------------------------

TEST_CASE("tabular: N-D HDF5 datasets are samples of their shape ([N, C, H, W], [N, H, W, C], [N, H, W])",
          "[importers][dataset]") {
  ScratchDir dir("flowlab_tabular_nd");
  const std::string h5 = dir.file("images.h5");
  // /nhwc: uint8 [6, 2, 3, 2] with values (k * 13) % 256 and a 0 and a 255 among the training samples
  const Tensor nhwc = ((at::arange(72, at::kLong) * 13) % 256).to(at::kByte).reshape({6, 2, 3, 2}).contiguous();
  const Tensor gray = at::arange(5 * 2 * 3, at::kFloat).reshape({5, 2, 3}).contiguous();
  {
    const hid_t f = H5Fcreate(h5.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t d4[4] = {6, 2, 3, 2}, d3[3] = {5, 2, 3};
    hid_t s = H5Screate_simple(4, d4, nullptr);
    hid_t d = H5Dcreate2(f, "/nhwc", H5T_NATIVE_UINT8, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, nhwc.data_ptr<uint8_t>());
    H5Dclose(d), H5Sclose(s);
    s = H5Screate_simple(3, d3, nullptr);
    d = H5Dcreate2(f, "/gray", H5T_NATIVE_FLOAT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, gray.data_ptr<float>());
    H5Dclose(d), H5Sclose(s), H5Fclose(f);
  }
  flowlab::Params p;
  p.set("file", h5).set("dataset", std::string("/nhwc")).set("normalize", std::string("none"));
  auto keep = make("tabular", p);
  CHECK(keep->event_shape() == std::vector<int64_t>{2, 3, 2});
  CHECK(keep->quantization_step() == 1);
  CHECK(at::equal(all_training(*keep).x, training_rows(nhwc).to(at::kDouble)));
  p.set("layout", std::string("channels_last")).set("normalize", std::string("scale"));
  auto d = make("tabular", p);
  CHECK(d->event_shape() == std::vector<int64_t>{2, 2, 3});
  const Tensor train = training_rows(nhwc.permute({0, 3, 1, 2})).to(at::kDouble);
  const double lo = train.min().item<double>(), hi = train.max().item<double>();
  CHECK(d->quantization_step() == 2 / (hi - lo));
  CHECK(at::allclose(all_training(*d).x, (train - lo) / ((hi - lo) / 2) - 1, 0, 1e-6));
  CHECK(d->reference(5, at::kDouble).x.size(0) == 2);  // ceil(0.2 * 6)

  flowlab::Params g;
  g.set("file", h5).set("dataset", std::string("/gray")).set("normalize", std::string("none"))
      .set("layout", std::string("add_channel"));
  auto gd = make("tabular", g);
  CHECK(gd->event_shape() == std::vector<int64_t>{1, 2, 3});
  CHECK(gd->quantization_step() == 0);
  CHECK(at::equal(all_training(*gd).x, training_rows(gray.unsqueeze(1)).to(at::kDouble)));
  g.set("layout", std::string("channels_last"));
  CHECK(message_of<flowlab::ParamError>([&] { make("tabular", g); }) ==
        "dataset/tabular: parameter 'layout' is channels_last, which needs a 4-D dataset [N, H, W, C]; '" + h5 +
            ":/gray' has 3 dimensions");
  std::ofstream(dir.file("t.csv")) << "1,2\n3,4\n5,6\n";
  flowlab::Params c;
  c.set("file", dir.file("t.csv")).set("layout", std::string("add_channel"));
  CHECK(message_of<flowlab::ParamError>([&] { make("tabular", c); }) ==
        "dataset/tabular: parameter 'layout' is 'add_channel', which applies only to HDF5 datasets of 3 or more "
        "dimensions; '" + dir.file("t.csv") + "' is a 2-D table");
}

// ---- frechet statistics files -----------------------------------------------------------------------------------

namespace {

/// Set A of case 0 of tests/data/frechet_reference.csv, and that case's distance.
std::pair<Tensor, double> frechet_case0() {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/frechet_reference.csv");
  REQUIRE(in.good());
  std::vector<double> a;
  double distance = NAN;
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0,A,", 0) == 0) {
      std::istringstream s(line.substr(4));
      std::string v;
      while (std::getline(s, v, ',')) a.push_back(std::stod(v));
    } else if (line.rfind("0,distance,", 0) == 0) {
      distance = std::stod(line.substr(11));
    }
  }
  return {at::tensor(a, at::kDouble).reshape({-1, 3}), distance};
}

}  // namespace

TEST_CASE("frechet: reads and writes pytorch-fid's (mu, sigma) .npz statistics", "[importers][metric]") {
  const auto [a, expected] = frechet_case0();
  REQUIRE(a.size(0) == 200);
  flowlab::Params p;
  p.set("stats", data("stats.npz"));
  auto m = registry().create<flowlab::Metric>("metric", "frechet", p);
  // the reference argument is not used: the file's statistics (NumPy's mean and np.cov of set B) stand in for it
  CHECK(std::abs(m->compute(a, at::zeros({2, 3}, at::kDouble)) - expected) <= 1e-9 * (1 + std::abs(expected)));
  // so it says so, and the engine hands it no reference at all (an undefined tensor)
  CHECK_FALSE(m->uses_reference());
  CHECK(registry().create<flowlab::Metric>("metric", "frechet")->uses_reference());
  CHECK(std::abs(m->compute(a, Tensor()) - expected) <= 1e-9 * (1 + std::abs(expected)));

  ScratchDir dir("flowlab_frechet_stats");
  flowlab::Params w;
  w.set("save_stats", dir.file("samples.npz")).set("save_reference_stats", dir.file("reference.npz"));
  auto writer = registry().create<flowlab::Metric>("metric", "frechet", w);
  const Tensor b = at::randn({50, 3}, at::kDouble) + 1;
  const double d = writer->compute(a, b);
  // NumPy reads both files back as pytorch-fid would (np.load(...)['mu'], ['sigma']), float64, with the right values
  const auto r = flowlab::test::run_command(
      "/usr/bin/python3 -c \"import numpy as np, sys; s = np.load(sys.argv[1]); print(sorted(s.keys()), s['mu'].dtype, "
      "s['sigma'].dtype, s['mu'].shape, s['sigma'].shape); print(repr(float(s['mu'][0])), repr(float(s['sigma'][1, 2])))\" " +
      dir.file("samples.npz"));
  REQUIRE(r.status == 0);
  std::ostringstream want;
  want << "['mu', 'sigma'] float64 float64 (3,) (3, 3)\n";
  CHECK_THAT(r.out, Catch::Matchers::StartsWith(want.str()));
  const Tensor mu = a.mean(0), sigma = at::cov(a.t());
  std::istringstream second(r.out.substr(want.str().size()));
  double mu0 = 0, s12 = 0;
  second >> mu0 >> s12;
  CHECK(mu0 == mu[0].item<double>());
  CHECK(s12 == sigma[1][2].item<double>());
  // reading them back: the samples against their own statistics give 0, and the two files give the same distance
  flowlab::Params own;
  own.set("stats", dir.file("samples.npz"));
  CHECK(std::abs(registry().create<flowlab::Metric>("metric", "frechet", own)->compute(a, a)) < 1e-9);
  own.set("stats", dir.file("reference.npz"));
  CHECK(std::abs(registry().create<flowlab::Metric>("metric", "frechet", own)->compute(a, a) - d) < 1e-9);

  // bad statistics files: located errors
  flowlab::Params bad;
  bad.set("stats", data("nhwc.npz"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { registry().create<flowlab::Metric>("metric", "frechet", bad); }),
             EndsWith("): metric/frechet: '" + data("nhwc.npz") + "': has no array 'mu' (it holds 'x', 'y')"));
  bad.set("stats", dir.file("missing.npz"));
  CHECK_THAT(message_of<flowlab::CreateError>([&] { registry().create<flowlab::Metric>("metric", "frechet", bad); }),
             ContainsSubstring("metric/frechet: '" + dir.file("missing.npz") + "': cannot be read as an .npz (zip) archive"));
  bad.set("stats", data("stats.npy"));
  CHECK(message_of<flowlab::ParamError>([&] { registry().create<flowlab::Metric>("metric", "frechet", bad); }) ==
        "metric/frechet: parameter 'stats' must end in .npz; got '" + data("stats.npy") + "'");
  auto four = registry().create<flowlab::Metric>("metric", "frechet", p);
  CHECK_THAT(message_of<flowlab::Error>([&] { four->compute(at::randn({10, 4}, at::kDouble), at::Tensor()); }),
             ContainsSubstring("metric/frechet: the samples have dimension 4 (after `features`), the statistics in '" +
                               data("stats.npz") + "' 3"));
}

// ---- benchmark (hidden; benchmarks/importers_vs_python.sh runs it) -----------------------------------------------

TEST_CASE("importers throughput on FLOWLAB_IMPORTERS_BENCH_DIR", "[.][importers_bench]") {
  const char* dir = std::getenv("FLOWLAB_IMPORTERS_BENCH_DIR");
  if (!dir) SKIP("set FLOWLAB_IMPORTERS_BENCH_DIR (benchmarks/importers_vs_python.sh does)");
  const char* r = std::getenv("FLOWLAB_IMPORTERS_BENCH_REPEATS");
  const int repeats = r ? std::atoi(r) : 3;
  const std::string d(dir);
  struct Case {
    std::string label, plugin;
    flowlab::Params params;
  };
  std::vector<Case> cases(3);
  cases[0] = {"image_folder (PNG folder)", "image_folder", {}};
  cases[0].params.set("dir", d + "/images");
  cases[1] = {"array (.npy)", "array", {}};
  cases[1].params.set("file", d + "/images.npy").set("labels", d + "/labels.npy");
  cases[2] = {"array (.npz)", "array", {}};
  cases[2].params.set("file", d + "/images.npz").set("key", std::string("x")).set("labels", std::string("y"));
  for (const auto& c : cases) {
    double best = 1e300;
    std::shared_ptr<flowlab::Dataset> ds;
    for (int k = 0; k < repeats; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      ds = make(c.plugin, c.params);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    // the pixel values back from [-1, 1], training and held-out parts together
    const Tensor x = at::cat({all_training(*ds).x, ds->reference(ds->size(), at::kDouble).x});
    const auto n = x.size(0);
    const auto sum = static_cast<int64_t>(((x + 1) * 127.5).round().sum().item<double>());
    std::printf("flowlab %-28s %6lld images  %8.4f s  %12.0f images/s  pixel sum %lld\n", c.label.c_str(),
                static_cast<long long>(n), best, double(n) / best, static_cast<long long>(sum));
  }
}

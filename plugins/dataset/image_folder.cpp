// A folder of images as data: PNG and JPEG (also BMP, TGA, PGM/PPM) decoded through Debian's libstb (stb_image;
// stb_image_resize for `size`). Class labels come from subfolder names (DIR/cat/*.png, DIR/dog/*.png: labels 0 and 1
// in sorted name order, searched recursively below each class folder); images directly in DIR are an unlabelled set.
// Every image gets the same shape: `size` 0 keeps the stored size and refuses mixed sizes; `size` S gives S x S, by
// a centre crop to a square and a resize (`fit: crop`) or by stretching (`fit: resize`). `color` picks 1 (gray) or 3
// (RGB) channels. Pixels are scaled to [-1, 1] as x / 127.5 - 1 (quantization step 2/255). A fixed, seeded held-out
// split (flowlab::holdout_split, 20% by default, like digits) feeds reference(). Files are decoded once, in
// parallel; reference_source() also states the memory the images take.
#include <fmt/format.h>
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>

#include "loaded_array.hpp"

namespace {

namespace fs = std::filesystem;
constexpr const char* kOwner = "dataset/image_folder";
constexpr const char* kExtensions = "png, jpg, jpeg, bmp, tga, pgm, ppm";

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tga" || e == ".pgm" || e == ".ppm";
}

bool hidden(const fs::path& p) { return p.filename().string().rfind('.', 0) == 0; }

/// Options of dataset/image_folder.
struct ImageFolderOptions {
  std::string dir;    ///< the folder (required)
  int64_t size;       ///< output side; 0 keeps the stored size
  std::string fit;    ///< crop or resize
  std::string color;  ///< auto, gray or rgb
  double holdout;     ///< held-out fraction
  explicit ImageFolderOptions(const flowlab::Params& p)
      : dir(p.str("dir")),
        size(p.integer("size")),
        fit(p.str("fit")),
        color(p.str("color")),
        holdout(p.real("holdout")) {
    if (dir.empty()) throw flowlab::ParamError(kOwner, "dir", "is required (a folder of images)");
    if (size < 0 || size > 4096)
      throw flowlab::ParamError(kOwner, "size", fmt::format("must be in 0..4096, got {}", size));
    if (fit != "crop" && fit != "resize")
      throw flowlab::ParamError(kOwner, "fit", fmt::format("is '{}'; valid: crop, resize", fit));
    if (color != "auto" && color != "gray" && color != "rgb")
      throw flowlab::ParamError(kOwner, "color", fmt::format("is '{}'; valid: auto, gray, rgb", color));
  }
};

/// Image files below `d`, recursively, sorted by path.
std::vector<fs::path> images_below(const fs::path& d) {
  std::vector<fs::path> out;
  for (auto it = fs::recursive_directory_iterator(d, fs::directory_options::follow_directory_symlink);
       it != fs::recursive_directory_iterator(); ++it) {
    if (hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && is_image(it->path())) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class ImageFolder final : public flowlab::importers::LoadedArray {
 public:
  explicit ImageFolder(const flowlab::Params& p) : opt_(p) {
    const fs::path root(opt_.dir);
    std::error_code ec;
    if (!fs::is_directory(root, ec))
      throw flowlab::Error(fmt::format("{}: '{}' is not a readable folder{}", kOwner, opt_.dir,
                                       fs::exists(root, ec) ? "" : " (it does not exist)"));
    // top-level images (an unlabelled set) or class subfolders (sorted by name), not both
    std::vector<fs::path> top, classes;
    for (const auto& e : fs::directory_iterator(root)) {
      if (hidden(e.path())) continue;
      if (e.is_directory()) classes.push_back(e.path());
      else if (e.is_regular_file() && is_image(e.path())) top.push_back(e.path());
    }
    std::sort(top.begin(), top.end());
    std::sort(classes.begin(), classes.end());
    std::vector<fs::path> files;
    std::vector<int64_t> labels;
    std::vector<std::string> class_names;
    for (const auto& c : classes) {
      const auto found = images_below(c);
      if (found.empty()) continue;  // a folder of other things (or an empty one) is no class
      for (const auto& f : found) files.push_back(f), labels.push_back(static_cast<int64_t>(class_names.size()));
      class_names.push_back(c.filename().string());
    }
    if (!class_names.empty() && !top.empty())
      throw flowlab::Error(fmt::format(
          "{}: '{}' has images both at its top level ('{}') and in class subfolders ('{}'); put every image in a "
          "class folder, or none",
          kOwner, opt_.dir, top.front().filename().string(), class_names.front()));
    if (class_names.empty()) files = top;
    if (files.empty())
      throw flowlab::Error(fmt::format("{}: '{}' has no images ({} files, at its top level or in class subfolders)",
                                       kOwner, opt_.dir, kExtensions));
    const auto n = static_cast<int64_t>(files.size());

    // headers first: size and channels of every file, without decoding
    std::vector<int> w(files.size()), h(files.size()), comp(files.size());
    std::vector<std::string> errors(files.size());
    at::parallel_for(0, n, 64, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        if (!stbi_info(files[size_t(i)].c_str(), &w[size_t(i)], &h[size_t(i)], &comp[size_t(i)]))
          errors[size_t(i)] = fmt::format("{}: cannot read image '{}': {}", kOwner, files[size_t(i)].string(),
                                          stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
    });
    rethrow_first(errors);
    int channels = opt_.color == "gray" ? 1 : 3;
    if (opt_.color == "auto") channels = std::all_of(comp.begin(), comp.end(), [](int c) { return c <= 2; }) ? 1 : 3;
    int64_t out_h = opt_.size, out_w = opt_.size;
    if (opt_.size == 0) {
      out_h = h[0], out_w = w[0];
      for (size_t i = 1; i < files.size(); ++i)
        if (w[i] != w[0] || h[i] != h[0])
          throw flowlab::Error(fmt::format(
              "{}: '{}': mixed image sizes: '{}' is {}x{}, '{}' is {}x{} (width x height); set parameter 'size' to "
              "resize them all",
              kOwner, opt_.dir, files[0].string(), w[0], h[0], files[i].string(), w[i], h[i]));
    }

    // decode into [N, C, H, W] uint8
    at::Tensor images = at::empty({n, channels, out_h, out_w}, at::kByte);
    uint8_t* const base = images.data_ptr<uint8_t>();
    const int64_t plane = out_h * out_w;
    at::parallel_for(0, n, 16, [&](int64_t b, int64_t e) {
      std::vector<uint8_t> scratch;
      for (int64_t i = b; i < e; ++i) {
        const std::string path = files[size_t(i)].string();
        int iw = 0, ih = 0, ic = 0;
        std::unique_ptr<uint8_t, void (*)(void*)> px(stbi_load(path.c_str(), &iw, &ih, &ic, channels), stbi_image_free);
        if (!px) {
          errors[size_t(i)] = fmt::format("{}: cannot decode image '{}': {}", kOwner, path,
                                          stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
          continue;
        }
        const uint8_t* src = px.get();
        if (iw != out_w || ih != out_h) {
          // crop: the centred square (min side) is resized; resize: the whole image is stretched
          int x0 = 0, y0 = 0, cw = iw, ch = ih;
          if (opt_.fit == "crop") {
            const int side = std::min(iw, ih);
            x0 = (iw - side) / 2, y0 = (ih - side) / 2, cw = ch = side;
          }
          scratch.resize(size_t(plane * channels));
          if (!stbir_resize_uint8(px.get() + (int64_t(y0) * iw + x0) * channels, cw, ch, iw * channels, scratch.data(),
                                  int(out_w), int(out_h), 0, channels)) {
            errors[size_t(i)] = fmt::format("{}: cannot resize image '{}'", kOwner, path);
            continue;
          }
          src = scratch.data();
        }
        uint8_t* dst = base + i * channels * plane;
        if (channels == 1) {
          std::copy(src, src + plane, dst);
        } else {
          for (int64_t k = 0; k < plane; ++k)
            for (int c = 0; c < channels; ++c) dst[c * plane + k] = src[k * channels + c];
        }
      }
    });
    rethrow_first(errors);
    at::Tensor y;
    if (!class_names.empty()) y = at::tensor(labels, at::kLong);
    load(kOwner, opt_.dir, images, y, opt_.holdout, "auto", static_cast<int64_t>(class_names.size()));
  }

 private:
  static void rethrow_first(const std::vector<std::string>& errors) {
    for (const auto& e : errors)
      if (!e.empty()) throw flowlab::Error(e);
  }

  ImageFolderOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(
    dataset, image_folder, ImageFolder, "1.0.0",
    "a folder of PNG/JPEG images (labels from class subfolders; 20% held out), scaled to [-1, 1]",
    FLOWLAB_PARAM(dir, string, "", "the folder: class subfolders of images, or images at its top level")
        FLOWLAB_PARAM(size, int, "0", "output side S (S x S); 0 keeps the stored size and refuses mixed sizes")
            FLOWLAB_PARAM(fit, enum(crop | resize), "crop",
                          "with size: crop (centre square, then resize) or resize (stretch the whole image)")
                FLOWLAB_PARAM(color, enum(auto | gray | rgb), "auto",
                              "channels: gray (1), rgb (3), or auto (gray when every file is gray, else rgb)")
                    FLOWLAB_PARAM(holdout, float, "0.2", "fraction held out for reference() (seeded, fixed)"))

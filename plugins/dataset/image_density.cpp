// 2D points with density proportional to an image's darkness (the textbook's logo-shaped distribution):
// a pixel is drawn with probability proportional to 1 - gray/255 (or gray/255 with invert), then a point
// uniformly inside it, mapped to [-extent, extent]^2 with y up. Reads PNG, BMP, PGM ... through stb_image.
// Generative (size() == 0): reference() is an independent stream of fresh samples, like the 2D toys.
#include <fmt/format.h>
#include <stb/stb_image.h>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/image_density.
struct ImageDensityOptions {
  std::string file;  ///< image path (required)
  double extent;     ///< the longer image side maps to [-extent, extent]
  bool invert;       ///< density from brightness instead of darkness
  explicit ImageDensityOptions(const flowlab::Params& p)
      : file(p.str("file")), extent(p.real("extent")), invert(p.boolean("invert")) {
    if (file.empty()) throw flowlab::ParamError(p.owner(), "file", "is required (an image path)");
    if (!(extent > 0)) throw flowlab::ParamError(p.owner(), "extent", fmt::format("must be > 0, got {}", extent));
  }
};

class ImageDensity final : public flowlab::Dataset {
 public:
  explicit ImageDensity(const flowlab::Params& p) : opt_(p) {
    int w = 0, h = 0, c = 0;
    unsigned char* pixels = stbi_load(opt_.file.c_str(), &w, &h, &c, 1);
    if (!pixels)
      throw flowlab::Error(fmt::format("{}: cannot read image '{}': {}", p.owner(), opt_.file, stbi_failure_reason()));
    const at::Tensor gray = at::from_blob(pixels, {h * w}, at::kByte).to(at::kDouble) / 255.0;
    stbi_image_free(pixels);
    weights_ = opt_.invert ? gray : 1 - gray;
    if (!(weights_.sum().item<double>() > 0))
      throw flowlab::Error(fmt::format("{}: image '{}' has no {} pixels to draw from", p.owner(), opt_.file,
                                       opt_.invert ? "bright" : "dark"));
    w_ = w, h_ = h;
  }
  std::vector<int64_t> event_shape() const override { return {2}; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    const at::Tensor idx = at::multinomial(weights_, n, true).to(o.device());
    const at::Tensor col = idx.remainder(w_).to(o.dtype()) + at::rand({n}, o);
    const at::Tensor row = idx.div(w_, "floor").to(o.dtype()) + at::rand({n}, o);
    const double s = 2 * opt_.extent / double(std::max(w_, h_));
    const at::Tensor pts = at::stack({(col - w_ / 2.0) * s, (h_ / 2.0 - row) * s}, 1);
    return {pts, at::Tensor(), pts.norm(2, {1}, true)};
  }

 private:
  ImageDensityOptions opt_;
  at::Tensor weights_;
  int64_t w_ = 0, h_ = 0;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, image_density, ImageDensity, "1.0.0", "2D points with density from an image's darkness",
               FLOWLAB_PARAM(file, string, "", "image file (PNG, BMP, PGM, ...)")
                   FLOWLAB_PARAM(extent, float, "4", "the longer side maps to [-extent, extent]")
                       FLOWLAB_PARAM(invert, bool, "false", "use brightness instead of darkness"))

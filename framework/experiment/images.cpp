// Image sample grids as PNG, written with stb_image_write (Debian's libstb-dev).
#include "flowlab/images.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>

namespace flowlab {

/// A grid of images [N, C, H, W] in [-1, 1] as an 8-bit PNG (C = 1: grey, 3: RGB), `cols` images per row with a
/// one-pixel border. Returns false when the shape is not an image batch.
bool write_image_grid(const Array& a, const std::string& path, int64_t cols) {
  if (a.shape.size() != 4 || (a.shape[1] != 1 && a.shape[1] != 3)) return false;
  const int64_t n = a.shape[0], c = a.shape[1], h = a.shape[2], w = a.shape[3];
  cols = std::max<int64_t>(1, std::min(cols, n));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t W = cols * (w + 1) + 1, H = rows * (h + 1) + 1;
  std::vector<unsigned char> px(static_cast<size_t>(W * H * c), 255);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ox = 1 + (i % cols) * (w + 1), oy = 1 + (i / cols) * (h + 1);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const float v = a.values[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
          const double u = std::clamp((double(v) + 1.0) / 2.0, 0.0, 1.0);
          px[static_cast<size_t>(((oy + y) * W + ox + x) * c + ch)] = static_cast<unsigned char>(std::lround(u * 255));
        }
  }
  if (!stbi_write_png(path.c_str(), static_cast<int>(W), static_cast<int>(H), static_cast<int>(c), px.data(),
                      static_cast<int>(W * c)))
    throw Error("could not write " + path);
  return true;
}

}  // namespace flowlab

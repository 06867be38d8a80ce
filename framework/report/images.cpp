// Image sample grids as PNG, written with stb_image_write, and images read with stb_image (Debian's libstb-dev).
#include "flowlab/images.hpp"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include <stb/stb_image.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace flowlab {

std::vector<uint8_t> image_grid(const Array& a, int64_t cols, int& width, int& height) {
  if (a.shape.size() != 4 || (a.shape[1] != 1 && a.shape[1] != 3)) return {};
  const int64_t n = a.shape[0], c = a.shape[1], h = a.shape[2], w = a.shape[3];
  cols = std::max<int64_t>(1, std::min(cols, n));
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t W = cols * (w + 1) + 1, H = rows * (h + 1) + 1;
  std::vector<uint8_t> px(static_cast<size_t>(W * H * c), 255);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ox = 1 + (i % cols) * (w + 1), oy = 1 + (i / cols) * (h + 1);
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x) {
          const float v = a.values[static_cast<size_t>(((i * c + ch) * h + y) * w + x)];
          const double u = std::clamp((double(v) + 1.0) / 2.0, 0.0, 1.0);
          px[static_cast<size_t>(((oy + y) * W + ox + x) * c + ch)] = static_cast<uint8_t>(std::lround(u * 255));
        }
  }
  width = static_cast<int>(W), height = static_cast<int>(H);
  return px;
}

bool write_image_grid(const Array& a, const std::string& path, int64_t cols) {
  int W = 0, H = 0;
  const std::vector<uint8_t> px = image_grid(a, cols, W, H);
  if (px.empty()) return false;
  const int c = static_cast<int>(a.shape[1]);
  if (!stbi_write_png(path.c_str(), W, H, c, px.data(), W * c)) throw Error("could not write " + path);
  return true;
}

void write_image(const Array& a, const std::string& path) {
  if (a.shape.size() != 3 || (a.shape[0] != 1 && a.shape[0] != 3))
    throw Error(fmt::format("write_image: {} needs one image [C, H, W] with C = 1 or 3", path));
  const int64_t c = a.shape[0], h = a.shape[1], w = a.shape[2];
  std::vector<unsigned char> px(static_cast<size_t>(c * h * w));
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const double u =
            std::clamp((double(a.values[static_cast<size_t>((ch * h + y) * w + x)]) + 1.0) / 2.0, 0.0, 1.0);
        px[static_cast<size_t>((y * w + x) * c + ch)] = static_cast<unsigned char>(std::lround(u * 255));
      }
  if (!stbi_write_png(path.c_str(), static_cast<int>(w), static_cast<int>(h), static_cast<int>(c), px.data(),
                      static_cast<int>(w * c)))
    throw Error("could not write " + path);
}

Array read_image(const std::string& path, int channels) {
  int w = 0, h = 0, file_channels = 0;
  unsigned char* px = stbi_load(path.c_str(), &w, &h, &file_channels, channels);
  if (!px) throw Error(fmt::format("cannot read image {}: {}", path, stbi_failure_reason()));
  Array a;
  a.shape = {channels, h, w};
  a.values.resize(static_cast<size_t>(channels) * h * w);
  for (int ch = 0; ch < channels; ++ch)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x)
        a.values[static_cast<size_t>((ch * h + y) * w + x)] =
            static_cast<float>(px[static_cast<size_t>((y * w + x) * channels + ch)]) / 255.0f * 2.0f - 1.0f;
  stbi_image_free(px);
  return a;
}

}  // namespace flowlab

// Image sample grids as PNG files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "flowlab/errors.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

/// A grid of images [N, C, H, W] with values in [-1, 1] (C = 1: grey, 3: RGB) as an 8-bit PNG, `cols` images per
/// row with a one-pixel white border. Returns false when the shape is not an image batch; throws flowlab::Error
/// when the file cannot be written.
FLOWLAB_API bool write_image_grid(const Array& images, const std::string& path, int64_t cols);

/// The pixels write_image_grid writes: row-major [height, width, C] 8-bit values, with `width` and `height` set.
/// Empty when the shape is not an image batch [N, C, H, W] with C = 1 or 3.
FLOWLAB_API std::vector<uint8_t> image_grid(const Array& images, int64_t cols, int& width, int& height);

/// One image [C, H, W] with values in [-1, 1] (C = 1 or 3) as an 8-bit PNG of W x H pixels, no border (masks and
/// observed images for `flowlab sample --inpaint`). Throws flowlab::Error for another shape or a failed write.
FLOWLAB_API void write_image(const Array& image, const std::string& path);

/// An 8-bit PNG (or BMP, PNM) read with stb_image as [channels, H, W] with
/// values in [-1, 1] (0 -> -1, 255 -> 1: the inverse of write_image_grid). `channels` 1 converts colour to grey,
/// 3 grey to RGB. Throws flowlab::Error naming the file when it cannot be read.
FLOWLAB_API Array read_image(const std::string& path, int channels);

}  // namespace flowlab

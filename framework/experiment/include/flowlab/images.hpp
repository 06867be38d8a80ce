// Image sample grids as PNG files.
#pragma once

#include <string>

#include "flowlab/errors.hpp"
#include "flowlab/records.hpp"

namespace flowlab {

/// A grid of images [N, C, H, W] with values in [-1, 1] (C = 1: grey, 3: RGB) as an 8-bit PNG, `cols` images per
/// row with a one-pixel white border. Returns false when the shape is not an image batch; throws flowlab::Error
/// when the file cannot be written.
FLOWLAB_API bool write_image_grid(const Array& images, const std::string& path, int64_t cols);

}  // namespace flowlab

// sklearn's 8x8 handwritten digits: 1797 images [1, 8, 8] with labels 0-9, read from digits.csv.gz (64 pixel
// values in 0..16, then the label, per line), which scripts/setup.sh extracts from Debian's python3-sklearn.
// Pixels are scaled to [-1, 1] as x / 8 - 1.
#include <fmt/format.h>

#include <sstream>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/digits.
struct DigitsOptions {
  std::string file;  ///< path of digits.csv.gz (default: where scripts/setup.sh puts it)
  explicit DigitsOptions(const flowlab::Params& p) : file(p.str("file")) {}
};

class Digits final : public flowlab::StoredImages {
 public:
  explicit Digits(const flowlab::Params& p) : opt_(p) {
    const std::string text = flowlab::read_data_file(
        "dataset/digits", opt_.file,
        "Debian's python3-sklearn package (scripts/setup.sh extracts it with apt-get download and dpkg-deb -x)");
    std::vector<uint8_t> pixels;
    std::vector<int64_t> labels;
    std::istringstream lines(text);
    std::string line;
    int64_t row = 0;
    while (std::getline(lines, line)) {
      if (line.empty()) continue;
      ++row;
      std::istringstream fields(line);
      std::string v;
      int64_t col = 0;
      while (std::getline(fields, v, ',')) {
        const int value = std::stoi(v);
        if (col < 64) pixels.push_back(static_cast<uint8_t>(value));
        else labels.push_back(value);
        ++col;
      }
      if (col != 65)
        throw flowlab::Error(fmt::format("dataset/digits: {}:{}: expected 65 values (64 pixels, label), got {}",
                                         opt_.file, row, col));
    }
    const int64_t n = static_cast<int64_t>(labels.size());
    set_images(at::tensor(pixels, at::kByte).reshape({n, 1, 8, 8}), at::tensor(labels, at::kLong), 10, 16);
  }

 private:
  DigitsOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, digits, Digits, "1.0.0", "sklearn 8x8 digits (1797 images, 10 classes), scaled to [-1, 1]",
               FLOWLAB_PARAM(file, string, "/usr/local/share/flowlab/datasets/digits.csv.gz",
                             "digits.csv.gz from Debian's python3-sklearn"))

// sklearn's 8x8 handwritten digits: 1797 images [1, 8, 8] with labels 0-9, read from digits.csv.gz (64 pixel
// values in 0..16, then the label, per line), which scripts/setup.sh extracts from Debian's python3-sklearn.
// Pixels are scaled to [-1, 1] as x / 8 - 1. A fixed, seeded 20% of the images (flowlab::holdout_split: 360 of the
// 1797, the same on every machine) is held out: sample(), size() and take() see the other 1437, reference() only
// the 360, and reference_source() is "held-out split (seeded 20%, 360 of 1797)".
#include <fmt/format.h>

#include <sstream>

#include "flowlab/dataset.hpp"

namespace {

/// Options of dataset/digits.
struct DigitsOptions {
  std::string file;  ///< path of digits.csv.gz
  explicit DigitsOptions(const flowlab::Params& p) : file(p.str("file")) {}
};

class Digits final : public flowlab::StoredImages {
 public:
  explicit Digits(const flowlab::Params& p) : opt_(p) {
    const std::string text = flowlab::read_data_file(
        p.owner(), opt_.file,
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
        throw flowlab::Error(
            fmt::format("{}: {}:{}: expected 65 values (64 pixels, label), got {}", p.owner(), opt_.file, row, col));
    }
    const int64_t n = static_cast<int64_t>(labels.size());
    const at::Tensor images = at::tensor(pixels, at::kByte).reshape({n, 1, 8, 8});
    const at::Tensor all_labels = at::tensor(labels, at::kLong);
    const auto [train, heldout] = flowlab::holdout_split(n);
    set_images(images.index_select(0, train), all_labels.index_select(0, train), images.index_select(0, heldout),
               all_labels.index_select(0, heldout), 10, 16,
               fmt::format("held-out split (seeded 20%, {} of {})", heldout.size(0), n));
  }

 private:
  DigitsOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, digits, Digits, "2.0.0",
               "sklearn 8x8 digits (1797 images, 10 classes; 1437 train, 360 held out), scaled to [-1, 1]",
               FLOWLAB_PARAM(file, string, "/usr/local/share/flowlab/datasets/digits.csv.gz",
                             "digits.csv.gz from Debian's python3-sklearn"))

// Fashion-MNIST (Xiao et al. 2017): 28x28 grayscale images [1, 28, 28], 60000 train and 10000 test, 10 classes,
// read from the IDX files of Debian's dataset-fashion-mnist. Pixels are scaled to [-1, 1] as x / 127.5 - 1.
// sample(), size() and take() see the 60000 training images (train-*), reference() draws from the 10000 test images
// (t10k-*); reference_source() is "test set (10000)". Both are loaded. (An earlier `split` parameter that trained on
// either file is gone: the test set is the reference, never training data.)
#include <fmt/format.h>

#include "flowlab/dataset.hpp"

namespace {

constexpr char kProvenance[] = "Debian's dataset-fashion-mnist package (scripts/setup.sh installs it)";

/// Options of dataset/fashion_mnist.
struct FashionMnistOptions {
  std::string dir;  ///< directory of the IDX files
  explicit FashionMnistOptions(const flowlab::Params& p) : dir(p.str("dir")) {}
};

uint32_t big_endian(const std::string& s, size_t at) {
  const auto* b = reinterpret_cast<const unsigned char*>(s.data() + at);
  return (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | uint32_t(b[3]);
}

// Reads an IDX file: magic 0x00000800 | ndim, then ndim big-endian sizes, then unsigned bytes. `owner` names the
// plugin in messages.
at::Tensor read_idx(const std::string& owner, const std::string& path, uint32_t ndim) {
  const std::string data = flowlab::read_data_file(owner, path, kProvenance);
  if (data.size() < 4 + 4 * ndim || big_endian(data, 0) != (0x800u | ndim))
    throw flowlab::Error(fmt::format("{}: '{}' is not an IDX file of {} dimensions", owner, path, ndim));
  std::vector<int64_t> shape;
  size_t count = 1;
  for (uint32_t d = 0; d < ndim; ++d) shape.push_back(big_endian(data, 4 + 4 * d)), count *= shape.back();
  const size_t offset = 4 + 4 * ndim;
  if (data.size() != offset + count)
    throw flowlab::Error(
        fmt::format("{}: '{}' holds {} bytes of data, its header says {}", owner, path, data.size() - offset, count));
  return at::from_blob(const_cast<char*>(data.data() + offset), shape, at::kByte).clone();
}

class FashionMnist final : public flowlab::StoredImages {
 public:
  explicit FashionMnist(const flowlab::Params& p) : opt_(p), owner_(p.owner()) {
    auto [images, labels] = read_split("train");
    auto [test_images, test_labels] = read_split("t10k");
    const int64_t n_test = test_images.size(0);
    set_images(images, labels, test_images, test_labels, 10, 255, fmt::format("test set ({})", n_test));
  }

 private:
  // images [N, 1, 28, 28] uint8 and labels [N] int64 of one file pair ("train" or "t10k").
  std::pair<at::Tensor, at::Tensor> read_split(const std::string& name) const {
    const std::string prefix = opt_.dir + "/" + name;
    at::Tensor images = read_idx(owner_, prefix + "-images-idx3-ubyte.gz", 3).unsqueeze(1);
    at::Tensor labels = read_idx(owner_, prefix + "-labels-idx1-ubyte.gz", 1).to(at::kLong);
    if (images.size(0) != labels.size(0))
      throw flowlab::Error(
          fmt::format("{}: {} images but {} labels in {}-*", owner_, images.size(0), labels.size(0), prefix));
    return {images, labels};
  }

  FashionMnistOptions opt_;
  std::string owner_;
};

}  // namespace

FLOWLAB_PLUGIN(dataset, fashion_mnist, FashionMnist, "2.0.0",
               "Fashion-MNIST 28x28, 10 classes (trains on the 60000, references the 10000 test images), in [-1, 1]",
               FLOWLAB_PARAM(dir, string, "/usr/share/datasets/fashion-mnist", "directory of the IDX .gz files"))

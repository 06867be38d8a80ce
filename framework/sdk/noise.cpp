// A dataset used as the base distribution (data-to-data flows, the textbook's logo-shaped base).
#include "flowlab/noise.hpp"

#include <fmt/format.h>

namespace flowlab {
namespace {

class DatasetNoise final : public Noise {
 public:
  explicit DatasetNoise(std::shared_ptr<const Dataset> dataset) : dataset_(std::move(dataset)) {}
  Tensor sample(at::IntArrayRef shape, const at::TensorOptions& options) const override {
    const auto event = dataset_->event_shape();
    if (shape.size() != event.size() + 1 || !std::equal(event.begin(), event.end(), shape.begin() + 1))
      throw Error(fmt::format("dataset as noise: asked for samples of shape {}, but the dataset's event shape is {}",
                              shape_string(shape), shape_string(event)));
    return dataset_->sample(shape[0], options).x;
  }

 private:
  std::shared_ptr<const Dataset> dataset_;
};

}  // namespace

std::shared_ptr<Noise> noise_from_dataset(std::shared_ptr<const Dataset> dataset) {
  return std::make_shared<DatasetNoise>(std::move(dataset));
}

}  // namespace flowlab

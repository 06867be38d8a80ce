// Test plugin with a static initialiser that writes a marker file: listing must not run it.
#include <cstdio>
#include <cstdlib>

#include "flowlab/noise.hpp"

namespace {
struct Marker {
  Marker() {
    if (const char* path = std::getenv("FLOWLAB_TEST_MARKER"))
      if (FILE* f = std::fopen(path, "w")) std::fclose(f);
  }
} marker;

class MarkerNoise final : public flowlab::Noise {
 public:
  explicit MarkerNoise(const flowlab::Params&) {}
  flowlab::Tensor sample(at::IntArrayRef shape, const at::TensorOptions& o) const override { return at::ones(shape, o); }
};
}  // namespace

FLOWLAB_PLUGIN(noise, marker, MarkerNoise, "1.0.0", "static initialiser writes a marker")

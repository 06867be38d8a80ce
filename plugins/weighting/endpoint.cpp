// Endpoint emphasis: w(t) = t^2 (towards the data, t = 1) or (1 - t)^2 (towards the noise, t = 0).
#include "flowlab/weighting.hpp"

namespace {

/// Options of weighting/endpoint.
struct EndpointOptions {
  bool data;  ///< end = data: w = t^2; end = noise: w = (1 - t)^2 (default data)
  explicit EndpointOptions(const flowlab::Params& p) : data(p.str("end") == "data") {}
};

class EndpointWeighting final : public flowlab::Weighting {
 public:
  explicit EndpointWeighting(const flowlab::Params& p) : opt_(p) {}
  flowlab::Tensor weight(const flowlab::Tensor& t, const flowlab::Path&) const override {
    return opt_.data ? t * t : (1 - t) * (1 - t);
  }

 private:
  EndpointOptions opt_;
};

}  // namespace

FLOWLAB_PLUGIN(weighting, endpoint, EndpointWeighting, "1.0.0", "w(t) = t^2 (end=data) or (1-t)^2 (end=noise)",
               FLOWLAB_PARAM(end, enum(data|noise), "data", "data: t^2, emphasises t -> 1; noise: (1-t)^2"))

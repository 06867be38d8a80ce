// Endpoint emphasis, on the velocity loss: w(t) = t^2 (towards the data, t = 1) or (1 - t)^2 (towards the noise,
// t = 0) multiplies ||v - u||^2, whatever the path.
//
// Source: the training text (shared/reference 004, "Flow Matching Training", Weighted Loss, item 3 "Endpoint
// emphasis: w(t) = t^2 or w(t) = (1-t)^2"), written inside L_weighted = E[w(t) ||v_theta(x_t, t) - u_t||^2], i.e.
// on the velocity loss; the text names no paper, so flowlab keeps it on ||v - u||^2. The text puts data at t = 0:
// its (1 - t)^2 (emphasis on its t = 0, "if sampling quality at t = 0 is critical") is flowlab's t^2 (end = data)
// under t -> 1 - t, and its t^2 is flowlab's (1 - t)^2 (end = noise).
// On the rectified path (alpha' sigma - alpha sigma' = 1) these are the unweighted losses of the other
// parametrisations: t^2 = alpha^2 is the plain eps-prediction loss ||eps_hat - eps||^2 and (1 - t)^2 = sigma^2 the
// plain x1-prediction loss ||x1_hat - x1||^2 (see weighting/min_snr for the conversion); on other paths they are not.
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

FLOWLAB_PLUGIN(weighting, endpoint, EndpointWeighting, "1.0.0",
               "t^2 (end=data) or (1-t)^2 (end=noise) on the velocity loss ||v-u||^2, as training text 004 writes "
               "it (no paper given)",
               FLOWLAB_PARAM(end, enum(data | noise), "data", "data: t^2, emphasises t -> 1; noise: (1-t)^2"))

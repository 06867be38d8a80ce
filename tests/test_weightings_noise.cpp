// Weightings against their formulas, and noise distributions' moments, fitting and errors.
#include <catch2/catch_test_macros.hpp>

#include <cmath>

#include "flowlab/noise.hpp"
#include "flowlab/registry.hpp"
#include "support.hpp"
#include "flowlab/weighting.hpp"

using flowlab::Tensor;

using flowlab::test::max_abs;
using flowlab::test::message_of;
using flowlab::test::registry;

namespace {


template <class T>
std::shared_ptr<T> make(const std::string& kind, const std::string& name, const flowlab::Params& p = flowlab::Params()) {
  return registry().create<T>(kind, name, p);
}



/// A two-point dataset, to use as a base distribution.
class TwoPoints final : public flowlab::Dataset {
 public:
  std::vector<int64_t> event_shape() const override { return {2}; }
  flowlab::Batch sample(int64_t n, const at::TensorOptions& o) const override {
    return {at::ones({n, 2}, o) * 3, Tensor(), Tensor()};
  }
};

}  // namespace

TEST_CASE("weightings follow their formulas", "[weighting]") {
  const Tensor t = at::tensor({0.1, 0.25, 0.5, 0.9}, at::kDouble);
  auto rectified = make<flowlab::Path>("path", "rectified");
  auto cosine = make<flowlab::Path>("path", "cosine");
  CHECK(at::equal(make<flowlab::Weighting>("weighting", "uniform")->weight(t, *rectified), at::ones_like(t)));
  CHECK(max_abs(make<flowlab::Weighting>("weighting", "endpoint")->weight(t, *rectified) - t * t) < 1e-15);
  flowlab::Params noise_end;
  noise_end.set("end", std::string("noise"));
  CHECK(max_abs(make<flowlab::Weighting>("weighting", "endpoint", noise_end)->weight(t, *rectified) - (1 - t) * (1 - t)) < 1e-15);
  // rectified: SNR = t^2 / (1 - t)^2, so 1/SNR = ((1 - t) / t)^2, clipped at max_weight.
  CHECK(max_abs(make<flowlab::Weighting>("weighting", "snr")->weight(t, *rectified) - ((1 - t) / t).pow(2)) < 1e-12);
  flowlab::Params clip;
  clip.set("max_weight", 10.0);
  CHECK(make<flowlab::Weighting>("weighting", "snr", clip)->weight(t, *rectified)[0].item<double>() == 10.0);
  // cosine, min_snr (Hang et al.'s min(SNR, 5) / SNR on the eps loss, times alpha^2 / (pi/2)^2 on ||v - u||^2):
  // min(sin^2, 5 cos^2)(pi t / 2) / (pi / 2)^2; with loss = velocity, SNR = tan^2(pi t / 2) clipped at gamma = 5.
  const Tensor sin2 = at::sin(M_PI / 2 * t).pow(2), cos2 = at::cos(M_PI / 2 * t).pow(2);
  CHECK(max_abs(make<flowlab::Weighting>("weighting", "min_snr")->weight(t, *cosine) -
                at::minimum(sin2, 5 * cos2) / (M_PI * M_PI / 4)) < 1e-12);
  flowlab::Params on_velocity;
  on_velocity.set("loss", std::string("velocity"));
  const Tensor snr = at::tan(M_PI / 2 * t).pow(2);
  CHECK(max_abs(make<flowlab::Weighting>("weighting", "min_snr", on_velocity)->weight(t, *cosine) -
                snr.clamp_max(5.0)) < 1e-12);
  auto bridge = make<flowlab::Path>("path", "bridge");
  CHECK(message_of<flowlab::Error>([&] { make<flowlab::Weighting>("weighting", "snr")->weight(t, *bridge); }) ==
        "weighting/snr: needs an affine path (one with an alpha/sigma schedule)");
  flowlab::Params bad_end;
  bad_end.set("end", std::string("middle"));
  CHECK(message_of<flowlab::Error>([&] { make<flowlab::Weighting>("weighting", "endpoint", bad_end); }) ==
        "weighting/endpoint: parameter 'end' must be one of data, noise, got 'middle'");
  flowlab::Params bad_gamma;
  bad_gamma.set("gamma", 0.0);
  CHECK(message_of<flowlab::Error>([&] { make<flowlab::Weighting>("weighting", "min_snr", bad_gamma); }) ==
        "weighting/min_snr: parameter 'gamma' must be > 0, got 0");
}

TEST_CASE("noise distributions have their moments", "[noise]") {
  constexpr int64_t kN = 200000;
  const double tol = 5 / std::sqrt(double(kN));  // 5 standard errors
  at::manual_seed(3);
  const Tensor g = make<flowlab::Noise>("noise", "gaussian")->sample({kN, 2}, at::kDouble);
  CHECK(std::abs(g.mean().item<double>()) < tol);
  CHECK(std::abs(g.std().item<double>() - 1) < tol);

  flowlab::Params box;
  box.set("low", -2.0).set("high", 4.0);
  const Tensor u = make<flowlab::Noise>("noise", "uniform", box)->sample({kN}, at::kDouble);
  CHECK(u.min().item<double>() >= -2.0);
  CHECK(u.max().item<double>() < 4.0);
  CHECK(std::abs(u.mean().item<double>() - 1.0) < 6 * tol);

  flowlab::Params rate;
  rate.set("rate", 0.3);
  const Tensor s = make<flowlab::Noise>("noise", "sparse", rate)->sample({kN}, at::kDouble);
  CHECK(std::abs(s.eq(0).to(at::kDouble).mean().item<double>() - 0.3) < tol);

  auto matched = make<flowlab::Noise>("noise", "matched");
  CHECK(message_of<flowlab::Error>([&] { matched->sample({2, 2}, at::kDouble); }) ==
        "noise/matched: sample() before fit(): the data's std is not estimated");
  matched->fit(at::randn({kN, 2}, at::kDouble) * 3 + 1);
  CHECK(std::abs(matched->sample({kN, 2}, at::kDouble).std().item<double>() - 3) < 3 * tol * 2);

  flowlab::Params per;
  per.set("per_feature", true);
  auto matched_pf = make<flowlab::Noise>("noise", "matched", per);
  matched_pf->fit(at::randn({kN, 2}, at::kDouble) * at::tensor({0.5, 4.0}, at::kDouble));
  const Tensor pf = matched_pf->sample({kN, 2}, at::kDouble).std(0);
  CHECK(std::abs(pf[0].item<double>() - 0.5) < 0.02);
  CHECK(std::abs(pf[1].item<double>() - 4.0) < 0.1);
}

TEST_CASE("bad noise parameters name the parameter", "[noise][errors]") {
  flowlab::Params box;
  box.set("low", 1.0).set("high", 1.0);
  CHECK(message_of<flowlab::Error>([&] { make<flowlab::Noise>("noise", "uniform", box); }) ==
        "noise/uniform: parameter 'high' must be > low (1), got 1");
  flowlab::Params rate;
  rate.set("rate", 1.0);
  CHECK(message_of<flowlab::Error>([&] { make<flowlab::Noise>("noise", "sparse", rate); }) ==
        "noise/sparse: parameter 'rate' must be in [0, 1), got 1");
}

TEST_CASE("a dataset serves as the base distribution", "[noise]") {
  auto base = flowlab::noise_from_dataset(std::make_shared<TwoPoints>());
  CHECK(at::equal(base->sample({4, 2}, at::kDouble), at::full({4, 2}, 3.0, at::kDouble)));
  CHECK(message_of<flowlab::Error>([&] { base->sample({4, 3}, at::kDouble); }) ==
        "dataset as noise: asked for samples of shape [4, 3], but the dataset's event shape is [2]");
}

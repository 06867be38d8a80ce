// Metrics: the Frechet distance against SciPy (tests/data/frechet_reference.csv, make_frechet_reference.py),
// and its analytic properties.
#include <catch2/catch_test_macros.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "flowlab/metric.hpp"
#include "support.hpp"

using flowlab::test::registry;

TEST_CASE("frechet matches SciPy's sqrtm-based value", "[metric]") {
  std::ifstream in(std::string(FLOWLAB_TEST_DATA) + "/frechet_reference.csv");
  REQUIRE(in.good());
  std::map<int, std::vector<std::vector<double>>> a, b;
  std::map<int, double> expected;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::string k, tag, v;
    std::getline(ss, k, ','), std::getline(ss, tag, ',');
    std::vector<double> row;
    while (std::getline(ss, v, ',')) row.push_back(std::stod(v));
    if (tag == "distance") expected[std::stoi(k)] = row[0];
    else (tag == "A" ? a : b)[std::stoi(k)].push_back(row);
  }
  REQUIRE(expected.size() == 3);
  auto metric = registry().create<flowlab::Metric>("metric", "frechet");
  auto to_tensor = [](const std::vector<std::vector<double>>& rows) {
    std::vector<double> flat;
    for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
    return at::tensor(flat, at::kDouble).reshape({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
  };
  for (const auto& [k, d] : expected) {
    INFO("case " << k << ": expected " << d);
    CHECK(std::abs(metric->compute(to_tensor(a[k]), to_tensor(b[k])) - d) <= 1e-9 * (1 + std::abs(d)));
  }
}

TEST_CASE("frechet is zero for identical sets, symmetric, and exact for shifted copies", "[metric]") {
  auto metric = registry().create<flowlab::Metric>("metric", "frechet");
  at::manual_seed(0);
  const at::Tensor x = at::randn({500, 4}, at::kDouble), y = at::randn({400, 4}, at::kDouble) * 2;
  CHECK(std::abs(metric->compute(x, x)) < 1e-9);
  CHECK(std::abs(metric->compute(x, y) - metric->compute(y, x)) < 1e-9);
  // A shifted copy has the same covariance: the distance is |shift|^2.
  CHECK(std::abs(metric->compute(x, x + at::tensor({1.0, 2.0, 0.0, -2.0}, at::kDouble)) - 9.0) < 1e-9);
  // Images are flattened.
  CHECK(std::abs(metric->compute(x.reshape({500, 1, 2, 2}), x.reshape({500, 1, 2, 2}))) < 1e-9);
}
